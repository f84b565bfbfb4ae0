"""fedtss protocol core: pure math and formats that the agents call.

Nothing in this package touches the network, the disk, the clock or a global random state;
randomness and time are parameters. The chain bindings live in :mod:`fedtss.chain` and the
content stores in :mod:`fedtss.storage`.

The protocol API is re-exported here (``fedtss.share_vector``, ``fedtss.seal_share``,
``fedtss.compute_cid``, ...), but loaded on first use: sharing pulls in the compiled numba
kernels and the formats pull in numpy, which would make ``import fedtss`` (and so every
``python -m`` entry point and the error classes) take ~0.3 s longer. Field arithmetic
(``add``, ``sub``, ...) stays under :mod:`fedtss.field`, where its names are unambiguous.
"""

from importlib import import_module as _import_module
from typing import TYPE_CHECKING

from fedtss.errors import *  # noqa: F401,F403
from fedtss.errors import __all__ as _errors_all

#: Public name -> the module that defines it (imported when the name is first used).
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ["MODULUS", "FieldArray", "is_field_array", "require_field_array", "lagrange_coefficients_at_zero"],
        "fedtss.field",
    ),
    **dict.fromkeys(
        ["MAX_HOLDERS", "Reconstruction", "share_vector", "reconstruct_at_zero", "reconstruct_checked",
         "is_consistent"],
        "fedtss.shamir",
    ),
    **dict.fromkeys(
        ["QuantizationConfig", "check_capacity", "signed_limit", "clip_update", "quantize_update", "dequantize_sum",
         "quantization_error_bound"],
        "fedtss.quantize",
    ),
    **dict.fromkeys(
        ["OVERHEAD", "ShareContext", "encode_share_context", "keypair_from_seed", "public_key_from_private",
         "seal_share", "open_share"],
        "fedtss.sealing",
    ),
    **dict.fromkeys(
        ["VectorKind", "encode_field_vector", "decode_field_vector", "ModelLayout", "model_layout", "encode_model",
         "decode_model", "flatten_model", "unflatten_model", "MANIFEST_MAX_BYTES", "Manifest",
         "encode_manifest", "parse_manifest"],
        "fedtss.formats",
    ),
    **dict.fromkeys(
        ["PairContext", "SeedRef", "field_to_ring", "ring_to_field", "pairwise_seed", "mask_update", "share_seeds",
         "reconstruct_seeds", "seeds_to_reveal", "unmask_sum", "encode_ring_vector", "decode_ring_vector"],
        "fedtss.masking",
    ),
    **dict.fromkeys(
        ["compute_cid", "parse_cid", "is_valid_cid", "cid_to_parts", "cid_from_parts"],
        "fedtss.cid",
    ),
}

__all__ = [*_errors_all, *_LAZY]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on demand
    from fedtss.cid import cid_from_parts, cid_to_parts, compute_cid, is_valid_cid, parse_cid
    from fedtss.field import (
        MODULUS,
        FieldArray,
        is_field_array,
        lagrange_coefficients_at_zero,
        require_field_array,
    )
    from fedtss.formats import (
        MANIFEST_MAX_BYTES,
        Manifest,
        ModelLayout,
        VectorKind,
        decode_field_vector,
        decode_model,
        encode_field_vector,
        encode_manifest,
        encode_model,
        flatten_model,
        model_layout,
        parse_manifest,
        unflatten_model,
    )
    from fedtss.masking import (
        PairContext,
        SeedRef,
        decode_ring_vector,
        encode_ring_vector,
        field_to_ring,
        mask_update,
        pairwise_seed,
        reconstruct_seeds,
        ring_to_field,
        seeds_to_reveal,
        share_seeds,
        unmask_sum,
    )
    from fedtss.quantize import (
        QuantizationConfig,
        check_capacity,
        clip_update,
        signed_limit,
        dequantize_sum,
        quantization_error_bound,
        quantize_update,
    )
    from fedtss.sealing import (
        OVERHEAD,
        ShareContext,
        encode_share_context,
        keypair_from_seed,
        open_share,
        public_key_from_private,
        seal_share,
    )
    from fedtss.shamir import (
        MAX_HOLDERS,
        Reconstruction,
        is_consistent,
        reconstruct_at_zero,
        reconstruct_checked,
        share_vector,
    )


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fedtss' has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
