"""Versioned binary formats for everything fedtss stores: share vectors, models, manifests.

Every byte fetched from a content store is parsed by one decoder here, which takes a size
limit and raises :class:`FormatError` naming what is wrong; nothing is ever unpickled.
Integers are little-endian. Each format is versioned so that it can change without
ambiguity.

**Field vector** (a share, or a member's aggregate share), version 1::

    offset size
    0      4    magic b"FTFV"
    4      1    version 0x01
    5      1    kind: 1 = share, 2 = aggregate share (:class:`VectorKind`)
    6      2    reserved, zero
    8      8    length L (uint64, >= 1)
    16     8·L  values, uint64 little-endian, each < p = 2^61 - 1

**Model** (named float32 tensors), version 1::

    0      4    magic b"FTMD"
    4      1    version 0x01
    5      3    reserved, zero
    8      4    header length H (uint32)
    12     H    header: canonical JSON (below), UTF-8
    12+H   pad  zero bytes up to the next multiple of 8
    ...    4·N  float32 little-endian data of every tensor, in header order (N elements)

The header is ``{"tensors":[{"name":…,"offset":…,"shape":[…]},…]}`` with keys sorted and no
spaces (``json.dumps(sort_keys=True, separators=(",", ":"))``); tensors are sorted by name,
``offset`` counts elements from the start of the data and each tensor starts where the
previous one ends. Names are 1-200 characters of ``[A-Za-z0-9_.:/-]``. There is exactly one
valid encoding of a given set of tensors, and :func:`decode_model` rejects every other: honest
committee members vote on the CID of the model blob, so equal models must give equal bytes.
A model the committee made may also carry the round's federated evaluation,
``"metrics":{"loss":0.31,…}`` (names as tensor names, finite numbers written as Python's
``repr`` of a float64: the shortest text that reads back as the same number;
:func:`decode_model_metrics` reads them).

**Client manifest**, schema 1: canonical JSON (sorted keys, no spaces, UTF-8) of::

    {"chain_id": int, "client": "0x…", "contract": "0x…", "n": int,
     "quantization": {"clip_norm": float, "fractional_bits": int,
                      "max_clients": int, "max_samples": int},
     "round": int, "schema": 1, "share_cids": [CID of member 1's sealed share, …],
     "t": int, "vector_length": int}

``share_cids[j-1]`` is the CID (v1, base32, sha2-256, codec raw or dag-pb) of the sealed
share for member j. ``chain_id`` and ``round`` are at most 2^53 - 1 so that every JSON reader
parses them exactly. When the committee checks norms (:mod:`fedtss.validation`, "The norm
check") the manifest also has ``"norm_claims": ["…", …]``: member j's value on the client's
squared-norm polynomial at index j - 1, n field elements written as decimal strings (no sign, no
leading zero: they exceed 2^53); otherwise the key is absent. When the members weight the
updates (the Shamir mode with checks on; :mod:`fedtss.quantize`, "Weighted by the members") it
has ``"samples": int``, the client's sample count in [1, ``max_samples``]; otherwise that key is
absent too.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from math import prod
from typing import Any

import numpy as np
from multiformats import CID
from numpy.typing import NDArray

from fedtss.cid import is_canonical_cid
from fedtss._checks import FIELD_PRIME, normalize_address, require_int
from fedtss.errors import ConfigError, FormatError
from fedtss.quantize import QuantizationConfig

__all__ = [
    "VectorKind",
    "encode_field_vector",
    "decode_field_vector",
    "ModelLayout",
    "model_layout",
    "encode_model",
    "decode_model",
    "decode_model_metrics",
    "flatten_model",
    "unflatten_model",
    "MANIFEST_SCHEMA",
    "MANIFEST_MAX_BYTES",
    "Manifest",
    "RoundTerms",
    "check_manifest",
    "encode_manifest",
    "field_vector_bytes",
    "parse_manifest",
    "shared_vector_length",
]

P = FIELD_PRIME

# -- field vectors -----------------------------------------------------------------------

_VECTOR_MAGIC = b"FTFV"
_VECTOR_VERSION = 1
_VECTOR_HEADER = struct.Struct("<4sBBHQ")


class VectorKind(IntEnum):
    """What a field vector blob holds; a decoder is told which one it expects."""

    SHARE = 1
    AGGREGATE_SHARE = 2
    #: A share of a client's wrap-around proof (:mod:`fedtss.wraparound`).
    PROOF_SHARE = 3


def encode_field_vector(values: NDArray[np.uint64], *, kind: VectorKind) -> bytes:
    """Encode a 1-D uint64 vector of field elements (each < p) as a field vector blob."""
    kind = _vector_kind(kind)
    if not isinstance(values, np.ndarray) or values.dtype != np.uint64 or values.ndim != 1:
        raise FormatError("field vector must be a 1-D numpy uint64 array")
    if values.size == 0:
        raise FormatError("field vector must not be empty")
    if int(values.max()) >= P:
        raise FormatError("field vector holds a value >= p = 2^61 - 1")
    header = _VECTOR_HEADER.pack(_VECTOR_MAGIC, _VECTOR_VERSION, kind, 0, values.size)
    data = np.ascontiguousarray(values, dtype="<u8")
    return b"".join((header, memoryview(data).cast("B")))


def field_vector_bytes(length: int) -> int:
    """Size of an encoded field vector of ``length`` elements (16-byte header + 8 per element)."""
    return _VECTOR_HEADER.size + 8 * length


def _vector_kind(kind: object) -> VectorKind:
    try:
        return VectorKind(kind)
    except ValueError:
        raise FormatError(f"unknown field vector kind {kind!r}") from None


def decode_field_vector(
    blob: bytes,
    *,
    kind: VectorKind,
    max_bytes: int,
    expected_length: int | None = None,
) -> NDArray[np.uint64]:
    """Parse a field vector blob of the expected ``kind``; return its values.

    The result is a read-only view of ``blob`` (no copy); copy it to modify it.
    """
    kind = _vector_kind(kind)
    data = _as_bytes_view(blob, max_bytes, "field vector")
    if data.nbytes < _VECTOR_HEADER.size:
        raise FormatError(f"field vector truncated: {data.nbytes} bytes, header needs 16")
    magic, version, found_kind, reserved, length = _VECTOR_HEADER.unpack_from(data)
    _check_magic_version(magic, version, _VECTOR_MAGIC, _VECTOR_VERSION, "field vector")
    if found_kind != kind:
        raise FormatError(f"field vector has kind {found_kind}, expected {int(kind)} ({kind.name})")
    if reserved != 0:
        raise FormatError("field vector reserved bytes are not zero")
    if length == 0:
        raise FormatError("field vector length is 0")
    if expected_length is not None and length != expected_length:
        raise FormatError(f"field vector has length {length}, expected {expected_length}")
    _check_body_size(data.nbytes - _VECTOR_HEADER.size, 8 * length, "field vector")
    values = np.frombuffer(data, dtype="<u8", count=length, offset=_VECTOR_HEADER.size)
    if int(values.max()) >= P:
        raise FormatError("field vector holds a value >= p = 2^61 - 1")
    return values.view(np.uint64)


def _as_bytes_view(blob: object, max_bytes: int, what: str) -> memoryview:
    require_int(max_bytes, "max_bytes", low=0, high=2**62, error=ConfigError)
    try:
        data = memoryview(blob).cast("B")  # type: ignore[arg-type]
    except TypeError:
        raise FormatError(f"{what} must be bytes, got {type(blob).__name__}") from None
    if data.nbytes > max_bytes:
        raise FormatError(f"{what} of {data.nbytes} bytes exceeds the limit of {max_bytes}")
    return data


def _check_magic_version(
    magic: bytes, version: int, expected_magic: bytes, expected_version: int, what: str
) -> None:
    if magic != expected_magic:
        raise FormatError(f"not a {what}: magic {magic!r}, expected {expected_magic!r}")
    if version != expected_version:
        raise FormatError(f"{what} version {version} is not supported (only {expected_version})")


def _check_body_size(actual: int, expected: int, what: str) -> None:
    if actual < expected:
        raise FormatError(f"{what} truncated: {actual} data bytes, header says {expected}")
    if actual > expected:
        raise FormatError(f"{what} has {actual - expected} trailing bytes after its data")


# -- models ------------------------------------------------------------------------------

_MODEL_MAGIC = b"FTMD"
_MODEL_VERSION = 1
_MODEL_PREFIX = struct.Struct("<4sB3sI")
_TENSOR_NAME = re.compile(r"[A-Za-z0-9_.:/\-]{1,200}")
_MAX_NDIM = 8


@dataclass(frozen=True)
class ModelLayout:
    """Names and shapes of a model's tensors, sorted by name: how a flat vector is cut."""

    tensors: tuple[tuple[str, tuple[int, ...]], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.tensors, tuple) or not self.tensors:
            raise FormatError("a model needs a tuple of at least one (name, shape) tensor")
        for name, shape in self.tensors:
            _check_tensor_spec(name, shape)
        names = [name for name, _ in self.tensors]
        if names != sorted(set(names)):
            raise FormatError("model tensor names must be unique and sorted")

    @property
    def size(self) -> int:
        """Total number of float32 elements."""
        return sum(prod(shape) for _, shape in self.tensors)

    def to_json(self) -> list[dict[str, Any]]:
        """``[{"name": ..., "shape": [...]}, ...]``: the form a deployment record stores."""
        return [{"name": name, "shape": list(shape)} for name, shape in self.tensors]

    @classmethod
    def from_json(cls, entries: object) -> ModelLayout:
        """Parse :meth:`to_json`'s form (untrusted: a deployment file); FormatError if malformed."""
        if not isinstance(entries, list):
            raise FormatError("a model layout is a list of {name, shape} entries")
        specs = []
        for entry in entries:
            if not isinstance(entry, dict) or set(entry) != {"name", "shape"} or not isinstance(entry["shape"], list):
                raise FormatError("each model layout entry needs exactly a name and a shape (a list)")
            specs.append((entry["name"], tuple(entry["shape"])))
        return cls(tuple(sorted(specs, key=lambda spec: str(spec[0]))))

    def difference(self, expected: ModelLayout) -> str | None:
        """What differs from ``expected``, in a few words (the first tensor that does), or None."""
        mine, theirs = dict(self.tensors), dict(expected.tensors)
        for name in sorted(set(mine) | set(theirs)):
            if name not in mine:
                return f"tensor {name} {list(theirs[name])} is missing"
            if name not in theirs:
                return f"tensor {name} {list(mine[name])} is not in the layout"
            if mine[name] != theirs[name]:
                return f"tensor {name} has shape {list(mine[name])}, the layout says {list(theirs[name])}"
        return None


def model_layout(tensors: Mapping[str, NDArray[np.float32]]) -> ModelLayout:
    """The layout (names and shapes, by name) of named float32 tensors."""
    return _layout_of(tensors)


def _check_tensor_spec(name: object, shape: object) -> None:
    if not isinstance(name, str) or _TENSOR_NAME.fullmatch(name) is None:
        raise FormatError(f"tensor name {name!r:.80} is not 1-200 chars of [A-Za-z0-9_.:/-]")
    if not isinstance(shape, tuple) or len(shape) > _MAX_NDIM:
        raise FormatError(f"tensor {name}: shape must be a tuple of at most {_MAX_NDIM} ints")
    for dim in shape:
        require_int(dim, f"tensor {name} dimension", low=0, high=2**40, error=FormatError)


def _layout_of(tensors: Mapping[str, NDArray[np.float32]]) -> ModelLayout:
    if not isinstance(tensors, Mapping):
        raise FormatError(f"model must be a mapping of names to arrays, got {type(tensors).__name__}")
    for name, array in tensors.items():
        if not isinstance(array, np.ndarray) or array.dtype != np.float32:
            raise FormatError(f"tensor {name!r:.80} must be a numpy float32 array")
    for name in tensors:
        _check_tensor_spec(name, ())
    names = sorted(tensors)
    return ModelLayout(tuple((name, tuple(tensors[name].shape)) for name in names))


def _model_header(layout: ModelLayout, metrics: Mapping[str, float] | None = None) -> bytes:
    entries, offset = [], 0
    for name, shape in layout.tensors:
        entries.append({"name": name, "offset": offset, "shape": list(shape)})
        offset += prod(shape)
    header: dict[str, Any] = {"tensors": entries}
    if metrics:
        header["metrics"] = {name: float(value) for name, value in metrics.items()}
    return _canonical_json(header)


def _check_metrics(metrics: object) -> dict[str, float]:
    """Metric names (like tensor names) to finite floats; FormatError otherwise."""
    if not isinstance(metrics, Mapping) or not metrics:
        raise FormatError("model metrics must be a non-empty mapping of names to numbers")
    checked = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or _TENSOR_NAME.fullmatch(name) is None:
            raise FormatError(f"metric name {name!r:.80} is not 1-200 chars of [A-Za-z0-9_.:/-]")
        try:
            number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
        except OverflowError:  # an integer of more digits than a float64 holds
            number = math.nan
        if not math.isfinite(number):
            raise FormatError(f"metric {name} must be a finite number, got {str(value)[:40]!r}")
        checked[name] = number
    return checked


def _canonical_json(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _padding(header_length: int) -> int:
    return -(_MODEL_PREFIX.size + header_length) % 8


def encode_model(tensors: Mapping[str, NDArray[np.float32]], *, metrics: Mapping[str, float] | None = None) -> bytes:
    """Encode named float32 tensors; equal inputs give byte-identical blobs.

    ``metrics`` (optional) are the federated evaluation the committee reconstructed in the round
    that made this model: the clients' sample-weighted mean metrics of the model that round
    started from. They travel in the header (``"metrics": {name: number}``), so the CID the
    members vote on covers them.
    """
    layout = _layout_of(tensors)
    header = _model_header(layout, None if metrics is None else _check_metrics(metrics))
    prefix = _MODEL_PREFIX.pack(_MODEL_MAGIC, _MODEL_VERSION, bytes(3), len(header))
    parts: list[bytes | memoryview] = [prefix, header, bytes(_padding(len(header)))]
    for name, _ in layout.tensors:
        data = np.ascontiguousarray(tensors[name], dtype="<f4").reshape(-1)
        parts.append(memoryview(data).cast("B"))
    return b"".join(parts)


def decode_model(blob: bytes, *, max_bytes: int) -> dict[str, NDArray[np.float32]]:
    """Parse a model blob into ``{name: float32 array}`` in name order.

    Arrays are read-only views of ``blob`` (no copy); copy them to train in place.
    """
    data = _as_bytes_view(blob, max_bytes, "model")
    if data.nbytes < _MODEL_PREFIX.size:
        raise FormatError(f"model truncated: {data.nbytes} bytes, prefix needs 12")
    magic, version, reserved, header_length = _MODEL_PREFIX.unpack_from(data)
    _check_magic_version(magic, version, _MODEL_MAGIC, _MODEL_VERSION, "model")
    if reserved != bytes(3):
        raise FormatError("model reserved bytes are not zero")
    data_start = _MODEL_PREFIX.size + header_length + _padding(header_length)
    if data_start > data.nbytes:
        raise FormatError(f"model truncated: header of {header_length} bytes does not fit")
    raw_header = bytes(data[_MODEL_PREFIX.size : _MODEL_PREFIX.size + header_length])
    if any(data[_MODEL_PREFIX.size + header_length : data_start]):
        raise FormatError("model header padding is not zero")
    layout = _parse_model_header(raw_header)
    _check_body_size(data.nbytes - data_start, 4 * layout.size, "model")
    return _tensor_views(data, data_start, layout)


def decode_model_metrics(blob: bytes, *, max_bytes: int) -> dict[str, float]:
    """The federated metrics a model blob carries ({} when it carries none); checks the whole blob."""
    decode_model(blob, max_bytes=max_bytes)
    data = _as_bytes_view(blob, max_bytes, "model")
    _, _, _, header_length = _MODEL_PREFIX.unpack_from(data)
    header = _load_json(bytes(data[_MODEL_PREFIX.size : _MODEL_PREFIX.size + header_length]), "model header")
    return dict(header.get("metrics", {}))


def _parse_model_header(raw: bytes) -> ModelLayout:
    header = _load_json(raw, "model header")
    if not isinstance(header, dict) or not {"tensors"} <= set(header) <= {"tensors", "metrics"}:
        raise FormatError('model header must be an object with the key "tensors" (and optionally "metrics")')
    metrics = _check_metrics(header["metrics"]) if "metrics" in header else None
    entries = header["tensors"]
    if not isinstance(entries, list):
        raise FormatError("model header tensors must be a list")
    specs = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {"name", "offset", "shape"}:
            raise FormatError("each model tensor entry needs exactly name, offset and shape")
        if not isinstance(entry["shape"], list):
            raise FormatError(f"tensor {entry['name']!r:.80}: shape must be a list")
        specs.append((entry["name"], tuple(entry["shape"])))
    layout = ModelLayout(tuple(specs))
    if _model_header(layout, metrics) != raw:
        raise FormatError("model header is not in canonical form (offsets, order or spacing)")
    return layout


def _tensor_views(
    data: memoryview, data_start: int, layout: ModelLayout
) -> dict[str, NDArray[np.float32]]:
    tensors, offset = {}, data_start
    for name, shape in layout.tensors:
        count = prod(shape)
        flat = np.frombuffer(data, dtype="<f4", count=count, offset=offset)
        tensors[name] = flat.view(np.float32).reshape(shape)
        offset += 4 * count
    return tensors


def flatten_model(
    tensors: Mapping[str, NDArray[np.float32]],
) -> tuple[NDArray[np.float32], ModelLayout]:
    """Concatenate float32 tensors in name order into one vector, with the layout to undo it."""
    layout = _layout_of(tensors)
    flat = np.concatenate([tensors[name].reshape(-1) for name, _ in layout.tensors])
    return flat.astype(np.float32, copy=False), layout


def unflatten_model(
    flat: NDArray[np.float32], layout: ModelLayout
) -> dict[str, NDArray[np.float32]]:
    """Cut a flat float32 vector back into named tensors (views of ``flat``)."""
    if not isinstance(flat, np.ndarray) or flat.dtype != np.float32 or flat.ndim != 1:
        raise FormatError("flat model must be a 1-D numpy float32 array")
    if flat.size != layout.size:
        raise FormatError(f"flat model has {flat.size} elements, layout needs {layout.size}")
    tensors, offset = {}, 0
    for name, shape in layout.tensors:
        count = prod(shape)
        tensors[name] = flat[offset : offset + count].reshape(shape)
        offset += count
    return tensors


# -- JSON --------------------------------------------------------------------------------


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise FormatError("JSON object has a duplicate key")
    return result


def _reject_constant(token: str) -> None:
    raise FormatError(f"JSON constant {token} is not allowed")


_MAX_JSON_DEPTH = 8
_BACKSLASH, _QUOTE = ord("\\"), ord('"')
_OPENERS, _CLOSERS = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def _json_depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting outside strings, in linear time without recursion.

    json's C scanner recurses once per level and can exhaust the C stack (a segfault, not an
    exception) when a process raised its recursion limit, so nesting is bounded first. A
    quote is escaped when an odd run of backslashes precedes it; bytes after JSON's first
    syntax error may be misread here, but the parser stops at that error anyway.
    """
    text = np.frombuffer(raw, dtype=np.uint8)
    if text.size == 0:
        return 0
    positions = np.arange(text.size)
    last_plain = np.maximum.accumulate(np.where(text != _BACKSLASH, positions, -1))
    run_before = np.empty(text.size, dtype=np.int64)
    run_before[0] = 0
    run_before[1:] = positions[:-1] - last_plain[:-1]
    quotes = (text == _QUOTE) & (run_before % 2 == 0)
    outside = np.cumsum(quotes) % 2 == 0
    step = np.isin(text, _OPENERS).astype(np.int64) - np.isin(text, _CLOSERS)
    return int(np.cumsum(np.where(outside, step, 0)).max())


def _load_json(raw: bytes, what: str) -> object:
    """Strict JSON: UTF-8 only, no duplicate keys, no NaN/Infinity; any failure is FormatError."""
    if _json_depth(raw) > _MAX_JSON_DEPTH:
        raise FormatError(f"{what}: JSON nested deeper than {_MAX_JSON_DEPTH} levels")
    try:
        text = raw.decode("utf-8")
        return json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except FormatError as error:
        raise FormatError(f"{what}: {error}") from None
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise FormatError(f"{what} is not valid UTF-8 JSON: {error}") from None


# -- client manifests --------------------------------------------------------------------

MANIFEST_SCHEMA = 1
MANIFEST_MAX_BYTES = 64 * 1024
_JSON_SAFE_INT = 2**53 - 1
_CID_CODECS = frozenset({"raw", "dag-pb"})
_MANIFEST_KEYS = frozenset(
    {"schema", "chain_id", "contract", "round", "client", "n", "t", "vector_length",
     "quantization", "share_cids"}
)
_QUANTIZATION_KEYS = frozenset({"clip_norm", "fractional_bits", "max_clients", "max_samples"})
#: Keys a manifest of the masked mode adds (:mod:`fedtss.masking`); a Shamir-mode one has neither.
_MASKED_KEYS = frozenset({"masked_cid", "modulus_bits"})
#: The key a manifest adds when the committee checks norms (:mod:`fedtss.validation`).
_NORM_CLAIMS_KEY = "norm_claims"
_SAMPLES_KEY = "samples"
#: The keys a manifest adds with its norm claims: the wrap-around proof (:mod:`fedtss.wraparound`).
_PROOF_KEYS = frozenset({"proof_cids", "bit_claims"})
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class Manifest:
    """What one client submitted in one round: where its n sealed shares are, and how to read them.

    ``share_cids[j - 1]`` is the CID of the sealed share for committee member j;
    ``vector_length`` is the length d + 1 (+ metrics) of the shared update.

    In the masked mode (:mod:`fedtss.masking`) ``masked_cid`` names the client's one masked
    vector (``modulus_bits`` bits per value) and ``share_cids[j - 1]`` member j's sealed shares
    of the client's seeds; in the Shamir mode both are None.

    ``norm_claims`` (Shamir mode, when the committee checks norms): n field elements, member j's
    value on the client's squared-norm polynomial at index j - 1
    (:func:`fedtss.validation.claim_norm_values`); empty otherwise.

    ``samples`` (Shamir mode with the committee's checks on): the client's sample count, its
    FedAvg weight, which the members apply to its unweighted shares
    (:mod:`fedtss.quantize`, "Weighted by the members"); None otherwise (the client weighted the
    update itself, and its count stays inside the shared vector).

    ``proof_cids`` and ``bit_claims`` come with ``norm_claims``: the client's wrap-around proof
    (:mod:`fedtss.wraparound`), ``proof_cids[j - 1]`` member j's sealed share of it and
    ``bit_claims[j - 1]`` member j's bit-check value.
    """

    chain_id: int
    contract: str
    round: int
    client: str
    n: int
    t: int
    vector_length: int
    quantization: QuantizationConfig
    share_cids: tuple[str, ...]
    masked_cid: str | None = None
    modulus_bits: int | None = None
    norm_claims: tuple[int, ...] = ()
    samples: int | None = None
    proof_cids: tuple[str, ...] = ()
    bit_claims: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        require_int(self.chain_id, "chain_id", low=1, high=_JSON_SAFE_INT, error=FormatError)
        require_int(self.round, "round", low=1, high=_JSON_SAFE_INT, error=FormatError)
        require_int(self.n, "n", low=2, high=255, error=FormatError)
        require_int(self.t, "t", low=2, high=self.n, error=FormatError)
        require_int(self.vector_length, "vector_length", low=2, high=2**40, error=FormatError)
        for name in ("contract", "client"):
            address = normalize_address(getattr(self, name), name, error=FormatError)
            object.__setattr__(self, name, address)
        if not isinstance(self.quantization, QuantizationConfig):
            raise FormatError("quantization must be a QuantizationConfig")
        if not isinstance(self.share_cids, (list, tuple)) or len(self.share_cids) != self.n:
            raise FormatError(f"share_cids must list exactly n = {self.n} CIDs")
        object.__setattr__(self, "share_cids", tuple(self.share_cids))
        for member, cid in enumerate(self.share_cids, start=1):
            _check_cid(cid, f"share_cids[{member - 1}] (member {member})")
        if (self.masked_cid is None) != (self.modulus_bits is None):
            raise FormatError("masked_cid and modulus_bits come together (masked mode) or not at all")
        if self.masked_cid is not None:
            _check_cid(self.masked_cid, "masked_cid")
            require_int(self.modulus_bits, "modulus_bits", low=8, high=64, error=FormatError)
        if not isinstance(self.norm_claims, (list, tuple)) or len(self.norm_claims) not in (0, self.n):
            raise FormatError(f"norm_claims must list exactly n = {self.n} field elements, or none")
        object.__setattr__(self, "norm_claims", tuple(self.norm_claims))
        for member, value in enumerate(self.norm_claims, start=1):
            require_int(value, f"norm_claims[{member - 1}] (member {member})", low=0, high=P - 1, error=FormatError)
        if self.norm_claims and self.masked_cid is not None:
            raise FormatError("norm_claims belong to the Shamir mode: a masked manifest has none")
        if bool(self.proof_cids) != bool(self.norm_claims) or bool(self.bit_claims) != bool(self.norm_claims):
            raise FormatError("proof_cids and bit_claims come with norm_claims (the wrap-around check) or not at all")
        if self.proof_cids:
            if not isinstance(self.proof_cids, (list, tuple)) or len(self.proof_cids) != self.n:
                raise FormatError(f"proof_cids must list exactly n = {self.n} CIDs")
            object.__setattr__(self, "proof_cids", tuple(self.proof_cids))
            for member, cid in enumerate(self.proof_cids, start=1):
                _check_cid(cid, f"proof_cids[{member - 1}] (member {member})")
            if not isinstance(self.bit_claims, (list, tuple)) or len(self.bit_claims) != self.n:
                raise FormatError(f"bit_claims must list exactly n = {self.n} field elements")
            object.__setattr__(self, "bit_claims", tuple(self.bit_claims))
            for member, value in enumerate(self.bit_claims, start=1):
                require_int(value, f"bit_claims[{member - 1}] (member {member})", low=0, high=P - 1, error=FormatError)
        if self.samples is not None:
            require_int(self.samples, "samples", low=1, high=self.quantization.max_samples, error=FormatError)
            if self.masked_cid is not None:
                raise FormatError("samples belong to the Shamir mode: a masked manifest has none")

    @property
    def blob_cids(self) -> tuple[str, ...]:
        """Every blob this manifest names, in the order a client stores them: the sealed shares,
        the masked vector (masked mode), the sealed proof shares (the wrap-around check). What a
        client uploads for a round is these and the manifest itself."""
        return (*self.share_cids, *((self.masked_cid,) if self.masked_cid else ()), *self.proof_cids)


def _check_cid(value: object, name: str) -> None:
    """Accept only CID v1, base32, sha2-256, codec raw or dag-pb: one string per CID."""
    if not isinstance(value, str) or len(value) > 200:
        raise FormatError(f"{name} must be a CID string")
    if is_canonical_cid(value):
        return  # the common case, checked without multiformats (whose validation leaves cycles)
    try:
        cid = CID.decode(value)
        canonical = cid.encode("base32")
        ok = (
            cid.version == 1
            and cid.codec.name in _CID_CODECS
            and cid.hashfun.name == "sha2-256"
            and len(cid.raw_digest) == 32
        )
    except Exception:  # multiformats raises several types for bad input
        raise FormatError(f"{name} is not a valid CID: {value!r:.80}") from None
    if not ok or canonical != value:
        raise FormatError(
            f"{name} must be a base32 CID v1 with sha2-256 and codec raw or dag-pb, got {value!r:.80}"
        )


def encode_manifest(manifest: Manifest) -> bytes:
    """The canonical JSON bytes of ``manifest`` (sorted keys, no spaces, UTF-8)."""
    q = manifest.quantization
    masked = {} if manifest.masked_cid is None else {"masked_cid": manifest.masked_cid,
                                                     "modulus_bits": manifest.modulus_bits}
    claims = {_NORM_CLAIMS_KEY: [str(value) for value in manifest.norm_claims]} if manifest.norm_claims else {}
    samples = {} if manifest.samples is None else {_SAMPLES_KEY: manifest.samples}
    proof = {} if not manifest.proof_cids else {"proof_cids": list(manifest.proof_cids),
                                                "bit_claims": [str(value) for value in manifest.bit_claims]}
    return _canonical_json(
        {
            **masked,
            **proof,
            **claims,
            **samples,
            "schema": MANIFEST_SCHEMA,
            "chain_id": manifest.chain_id,
            "contract": manifest.contract,
            "round": manifest.round,
            "client": manifest.client,
            "n": manifest.n,
            "t": manifest.t,
            "vector_length": manifest.vector_length,
            "quantization": {
                "clip_norm": q.clip_norm,
                "fractional_bits": q.fractional_bits,
                "max_clients": q.max_clients,
                "max_samples": q.max_samples,
            },
            "share_cids": list(manifest.share_cids),
        }
    )


def parse_manifest(blob: bytes, *, max_bytes: int = MANIFEST_MAX_BYTES) -> Manifest:
    """Parse and validate a client manifest; raise :class:`FormatError` naming the bad field."""
    data = _as_bytes_view(blob, max_bytes, "manifest")
    document = _load_json(bytes(data), "manifest")
    masked = isinstance(document, dict) and "masked_cid" in document
    claimed = isinstance(document, dict) and _NORM_CLAIMS_KEY in document
    weighted = isinstance(document, dict) and _SAMPLES_KEY in document
    _require_keys(document, _MANIFEST_KEYS | (_MASKED_KEYS if masked else set())
                  | ({_NORM_CLAIMS_KEY} | _PROOF_KEYS if claimed else set()) | ({_SAMPLES_KEY} if weighted else set()),
                  "manifest")
    require_int(document["schema"], "schema", low=MANIFEST_SCHEMA, high=MANIFEST_SCHEMA,
                error=FormatError)
    quantization = document["quantization"]
    _require_keys(quantization, _QUANTIZATION_KEYS, "manifest quantization")
    try:
        config = QuantizationConfig(**quantization)
    except ConfigError as error:
        raise FormatError(f"manifest quantization: {error}") from None
    if not isinstance(document["share_cids"], list):
        raise FormatError("manifest share_cids must be a list")
    fields = {key: document[key] for key in (_MANIFEST_KEYS | (_MASKED_KEYS if masked else set()))
              - {"schema", "quantization"}}
    claims = _parse_norm_claims(document[_NORM_CLAIMS_KEY]) if claimed else ()
    samples = require_int(document[_SAMPLES_KEY], "samples", low=1, high=config.max_samples,
                          error=FormatError) if weighted else None  # present, so never null
    proof_cids = document["proof_cids"] if claimed else []
    if not isinstance(proof_cids, list) or (claimed and not proof_cids):
        raise FormatError("manifest proof_cids must be a non-empty list (or absent)")
    bit_claims = _parse_norm_claims(document["bit_claims"], "bit_claims") if claimed else ()
    return Manifest(**fields, quantization=config, norm_claims=claims, samples=samples, proof_cids=tuple(proof_cids),
                    bit_claims=bit_claims)


def _parse_norm_claims(value: object, name: str = _NORM_CLAIMS_KEY) -> tuple[int, ...]:
    """The manifest's norm (or bit) claims, from their one canonical spelling (a non-empty list of
    decimal strings)."""
    if not isinstance(value, list) or not value:
        raise FormatError(f"manifest {name} must be a non-empty list (or absent)")
    if not all(isinstance(item, str) and _DECIMAL.fullmatch(item) for item in value):
        raise FormatError(f"manifest {name} must be decimal strings without sign or leading zeros")
    return tuple(int(item) for item in value)


def _require_keys(document: object, expected: frozenset[str], what: str) -> None:
    if not isinstance(document, dict):
        raise FormatError(f"{what} must be a JSON object")
    missing, unknown = expected - set(document), set(document) - expected
    if missing:
        raise FormatError(f"{what} is missing {', '.join(sorted(missing))}")
    if unknown:
        raise FormatError(f"{what} has unknown keys {', '.join(sorted(map(str, unknown)))[:200]}")


# -- what one round's manifests must say ------------------------------------------------


def shared_vector_length(tensors: Mapping[str, NDArray[np.float32]], metric_count: int = 0) -> int:
    """Length d + 1 + m of the vector a client shares for a model of these tensors: every float32
    element, the sample count, then ``metric_count`` federated metrics (see :mod:`fedtss.quantize`)."""
    return _layout_of(tensors).size + 1 + metric_count


@dataclass(frozen=True)
class RoundTerms:
    """What every manifest of one round must say: where, which round, the committee and the
    federation's vector length and quantization (as the member reading it expects them), and
    whether it carries norm claims (the committee checks norms) and its sample count (the members
    weight the clients' updates)."""

    chain_id: int
    contract: str
    round: int
    n: int
    t: int
    vector_length: int
    quantization: QuantizationConfig
    modulus_bits: int | None = None  # the masked mode's ring; None in the Shamir mode
    norm_claims: bool = False
    samples: bool = False
    #: Coordinates of a client's wrap-around proof (:mod:`fedtss.wraparound`), which comes with the
    #: norm claims; None when there is none.
    proof_length: int | None = None


def check_manifest(manifest: Manifest, *, client: str, terms: RoundTerms) -> None:
    """Raise :class:`FormatError` unless ``manifest`` is ``client``'s for exactly these terms."""
    expected = {
        "chain_id": terms.chain_id,
        "contract": terms.contract.lower(),
        "round": terms.round,
        "client": client.lower(),
        "n": terms.n,
        "t": terms.t,
        "vector_length": terms.vector_length,
        "quantization": terms.quantization,
        "modulus_bits": terms.modulus_bits,
    }
    for name, value in expected.items():
        if getattr(manifest, name) != value:
            raise FormatError(f"manifest {name} does not match this round ({getattr(manifest, name)!r:.80})")
    if (manifest.samples is not None) != terms.samples:
        raise FormatError("manifest samples: this round's members weight updates, the manifest states no sample count"
                          if terms.samples else "manifest samples: this round's clients weight their own updates")
    if bool(manifest.norm_claims) != terms.norm_claims:
        raise FormatError("manifest norm_claims: this round's committee checks norms, the manifest claims none"
                          if terms.norm_claims else "manifest norm_claims: this round checks no norms")
