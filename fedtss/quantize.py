"""Fixed-point quantization of model updates into the field, and back.

A client turns its float32 update Δw into a vector of field elements that can be Shamir-shared
and summed by the committee:

1. **clip**: ``c = Δw · min(1, clip_norm / ‖Δw‖₂)`` in float64 (so every coordinate has
   ``|c_j| <= clip_norm``);
2. **weight and scale**: ``q_j = round(c_j · samples · 2^f)`` (round half to even), where
   ``samples`` is the client's number of training samples and ``f = fractional_bits``;
3. **encode**: ``q_j mod p`` with ``p = 2^61 - 1``; a negative ``q_j`` becomes ``p + q_j``;
4. **append** ``samples`` as the last coordinate, so the vector has length ``d + 1`` and the
   sample count travels inside the shared vector: the chain never learns per-client sizes.

5. **metrics** (federated evaluation, optional): each of the client's ``m`` metric values ``v_k``
   (its evaluation of the global model on its own data) is clipped to ``±clip_norm`` and
   appended as ``round(v_k · samples · 2^f)``, so the vector has length ``d + 1 + m``
   (:func:`quantize_metrics`). The sum gives the sample-weighted mean of each metric
   (:func:`dequantize_metrics`), and no client's own value is ever public. The clip keeps a
   metric coordinate inside the bound every update coordinate has (``|c_j| <= clip_norm``), so
   :func:`check_capacity` covers it too: a loss above ``clip_norm`` is reported as ``clip_norm``.

**Weighted by the members** (the Shamir mode with the committee's checks on): a client shares
its *unweighted* update, ``q_j = round(c_j · 2^f)`` (``samples = 1`` in steps 2 and 5), with 1
as the count coordinate, and states its sample count ``m`` in its manifest; each member adds
``m`` times the client's share to its sum (:func:`fedtss.shamir.add_weighted_share`). By
linearity the reconstructed sum is the same ``Σ_i m_i q_i`` with ``S`` as its count coordinate,
and nothing below changes but the rounding error (at most ``2^-(f+1)``, see below). Why: the
checks bound the squared norm of what a client shares, and without the count in it that bound,
``(clip_norm · 2^f)^2``, no longer grows with the count the client claims
(:func:`fedtss.validation.squared_norm_limit`); the count is public in that mode anyway.

The committee reconstructs ``Q = Σ_i q_i (mod p)``. :func:`dequantize_sum` reads a value above
``(p-1)/2`` as negative, and returns ``Q_j / (2^f · S)`` with ``S = Σ_i samples_i``: the
sample-weighted average ``Σ_i samples_i · c_i / S`` of the clipped updates.

Exactness. The modular sum equals the integer sum as long as every partial sum stays within
``±(p-1)/2``. :func:`check_capacity` (called by :class:`QuantizationConfig` itself) refuses a
configuration unless ``max_clients · (clip_norm · max_samples · 2^f · (1 + 2^-51) + max(1, max_samples / 2))``
and ``max_clients · max_samples`` are both ``<= (p-1)/2`` (the rounding term is 1 for a client
that weights its own update, and ``m / 2`` for an update rounded unweighted and multiplied by
``m`` at the members). The slack is the real worst case of
float64 rounding: the squares of float32 values are exact in float64 and a rounded sum of
them is never below its largest term, so the computed norm is ``>= |Δw_j|``; then
``clip_norm / norm``, the product with ``Δw_j`` and the product with ``samples · 2^f`` (itself
exact) round once each, ``(1 + 2^-53)^3 < 1 + 2^-51``, and ``rint`` adds at most 1/2.

Error bound. Per coordinate and per client, rounding to an integer moves ``q_j`` by at most
1/2, and computing ``c_j · samples · 2^f`` in float64 moves it by at most
``2^-53 · |c_j| · samples · 2^f``. Summed over N clients and divided by ``2^f · S``::

    |mean_j - Σ_i samples_i c_ij / S|  <=  N · 2^-(f+1) / S  +  2^-53 · clip_norm

and converting the exact integer ``Q_j`` to the float64 quotient adds at most three float64
roundings (relative 2^-53 each) of a value below ``clip_norm + N · 2^-(f+1) / S``.
:func:`quantization_error_bound` returns the safe total
``N · 2^-(f+1) / S · (1 + 2^-50) + 2^-50 · clip_norm``. Since each client has at least one
sample (``S >= N``), the error is never above about ``2^-(f+1)`` (7.6e-6 for f = 16). Weighted by the
members, each client's rounding error is multiplied by its count, so the first term becomes
``2^-(f+1)`` itself (``weighted_by_members=True``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from fedtss._checks import FIELD_PRIME, require_int, require_positive_float
from fedtss.errors import ConfigError, FormatError

__all__ = [
    "QuantizationConfig",
    "check_capacity",
    "signed_limit",
    "clip_update",
    "quantize_update",
    "dequantize_sum",
    "quantization_error_bound",
    "quantize_metrics",
    "dequantize_metrics",
]

P = FIELD_PRIME
_HALF = (P - 1) // 2
#: Relative slack for float64 rounding in clipping and in ``c · samples · 2^f``: three
#: roundings of 2^-53 each (see the module docstring).
_FLOAT_SLACK = Fraction(1, 2**51)


@dataclass(frozen=True)
class QuantizationConfig:
    """How updates are clipped and scaled; every client and member must use the same one.

    ``clip_norm`` bounds the L2 norm of one client's update; ``fractional_bits`` is the
    fixed-point precision; ``max_clients`` and ``max_samples`` bound how many clients one
    round sums and how many samples one client may claim. Construction refuses a
    configuration whose sums could wrap around the field (see :func:`check_capacity`).
    """

    clip_norm: float
    fractional_bits: int = 16
    max_clients: int = 1000
    max_samples: int = 10_000

    def __post_init__(self) -> None:
        clip = require_positive_float(self.clip_norm, "clip_norm", error=ConfigError)
        object.__setattr__(self, "clip_norm", clip)
        require_int(self.fractional_bits, "fractional_bits", low=0, high=60, error=ConfigError)
        require_int(self.max_clients, "max_clients", low=1, high=2**40, error=ConfigError)
        require_int(self.max_samples, "max_samples", low=1, high=2**40, error=ConfigError)
        check_capacity(self)


def _worst_client_value(clip_norm: float, max_samples: int, fractional_bits: int) -> Fraction:
    """Upper bound on ``|q_j|`` of one client, float rounding included, whether the client weights
    its update (rounding adds at most 1/2) or the members do (``max_samples`` times 1/2)."""
    scaled = Fraction(clip_norm) * max_samples * 2**fractional_bits
    return scaled * (1 + _FLOAT_SLACK) + max(1, Fraction(max_samples, 2))


def _fits(clip_norm: float, max_samples: int, fractional_bits: int, max_clients: int,
          half: int = _HALF) -> bool:
    worst = max_clients * _worst_client_value(clip_norm, max_samples, fractional_bits)
    return worst <= half and max_clients * max_samples <= half


def signed_limit(modulus_bits: int | None = None) -> int:
    """The largest magnitude a sum may reach: (p-1)/2 in the field, 2^(bits-1) - 1 in Z_(2^bits)."""
    if modulus_bits is None:
        return _HALF
    require_int(modulus_bits, "modulus_bits", low=8, high=64, error=ConfigError)
    return 2 ** (modulus_bits - 1) - 1


def check_capacity(config: QuantizationConfig, *, modulus_bits: int | None = None) -> None:
    """Raise :class:`ConfigError` if a sum of ``max_clients`` updates could wrap around.

    The modulus is the field's p, or ``2^modulus_bits`` for the masked mode
    (:mod:`fedtss.masking`), where the sum is taken in the integers modulo a power of two.
    The message names the signed limit and, for each parameter, the largest value that would
    fit with the others unchanged.
    """
    half = signed_limit(modulus_bits)
    clip, f = config.clip_norm, config.fractional_bits
    clients, samples = config.max_clients, config.max_samples
    if _fits(clip, samples, f, clients, half):
        return
    worst = clients * _worst_client_value(clip, samples, f)
    if modulus_bits is None:
        where, limit = "the field", "(p-1)/2 (p = 2^61 - 1)"
    else:
        where, limit = f"{modulus_bits}-bit masked words", f"2^{modulus_bits - 1} - 1"
    raise ConfigError(
        f"quantization could overflow {where}: max_clients * max_samples * clip_norm * "
        f"2^fractional_bits = {clients} * {samples} * {clip:g} * 2^{f} ~ {_scientific(worst)} "
        f"exceeds the signed limit {limit} = {half:.3e}; "
        f"{_suggestions(config, half)}"
    )


def _scientific(value: Fraction) -> str:
    """``value`` (> 0) as ``1.234e+56`` without converting it to float.

    The numbers come from manifests too, where a client may put the largest float there is:
    ``float()`` of their product would raise OverflowError while this message is built.
    """
    exponent = len(str(math.floor(value))) - 1 if value >= 1 else 0
    mantissa = float(value / Fraction(10) ** exponent) if exponent else float(value)
    return f"{mantissa:.3f}e+{exponent:02d}"


def _suggestions(config: QuantizationConfig, half: int = _HALF) -> str:
    """Name, for each parameter, the largest value that fits with the others unchanged."""
    clip, f = config.clip_norm, config.fractional_bits
    clients, samples = config.max_clients, config.max_samples
    hints = []
    best_f = next((b for b in range(f - 1, -1, -1) if _fits(clip, samples, b, clients, half)), None)
    if best_f is not None:
        hints.append(f"lower fractional_bits to <= {best_f}")
    room = Fraction(half, clients) - max(1, Fraction(samples, 2))
    if room > 0 and clients * samples <= half:
        best_clip = room / (samples * 2**f * (1 + _FLOAT_SLACK))
        hints.append(f"lower clip_norm to <= {float(best_clip) * (1 - 1e-6):.6g}")
    per_client = _worst_client_value(clip, samples, f)
    best_clients = min(math.floor(half / per_client), half // samples)
    if best_clients >= 1:
        hints.append(f"lower max_clients to <= {best_clients}")
    best_samples = _largest_fitting_samples(config, half)
    if best_samples is not None:
        hints.append(f"lower max_samples to <= {best_samples}")
    return "; or ".join(hints) if hints else "lower fractional_bits, clip_norm or max_clients"


def _largest_fitting_samples(config: QuantizationConfig, half: int = _HALF) -> int | None:
    """Bisect for the largest ``max_samples`` below the configured one that fits."""
    low, high = 0, config.max_samples  # fits(low) is taken as true, fits(high) is false
    while high - low > 1:
        mid = (low + high) // 2
        if _fits(config.clip_norm, mid, config.fractional_bits, config.max_clients, half):
            low = mid
        else:
            high = mid
    if low >= 1 and _fits(config.clip_norm, low, config.fractional_bits, config.max_clients, half):
        return low
    return None


def clip_update(delta: NDArray[np.floating], clip_norm: float) -> NDArray[np.float64]:
    """Scale ``delta`` so that its L2 norm is at most ``clip_norm``; returns float64.

    Computed in float64 in a fixed summation order, so the result is the same on every
    machine for the same input; clipping bounds each client's influence on the average.
    """
    clip = require_positive_float(clip_norm, "clip_norm", error=ConfigError)
    values = _require_update(delta).astype(np.float64)
    norm = math.sqrt(_sum_of_squares(values))
    if norm > clip:
        values *= clip / norm
    return values


def _sum_of_squares(values: NDArray[np.float64], block: int = 1 << 16) -> float:
    """Σ x² in cache-sized blocks (a fixed summation order, and no d-sized temporary)."""
    scratch = np.empty(min(block, values.size))
    total = 0.0
    for start in range(0, values.size, block):
        part = values[start : start + block]
        squares = scratch[: part.size]
        np.multiply(part, part, out=squares)
        total += float(squares.sum())
    return total


def _require_update(delta: object) -> NDArray[np.floating]:
    if not isinstance(delta, np.ndarray):
        raise FormatError(f"update must be a numpy array, got {type(delta).__name__}")
    if delta.dtype not in (np.float32, np.float64):
        raise FormatError(f"update must have dtype float32, got {delta.dtype}")
    if delta.ndim != 1 or delta.size == 0:
        raise FormatError(f"update must be a non-empty 1-D vector, got shape {delta.shape}")
    if not np.isfinite(delta).all():
        raise FormatError("update contains NaN or infinite values (did training diverge?)")
    return delta


def quantize_update(
    delta: NDArray[np.float32], samples: int, config: QuantizationConfig
) -> NDArray[np.uint64]:
    """Encode one client's update as ``d + 1`` field elements (last one = ``samples``).

    ``delta`` must be a finite 1-D float32 vector and ``samples`` an int in
    ``[1, config.max_samples]``.
    """
    if isinstance(delta, np.ndarray) and delta.dtype != np.float32:
        raise FormatError(f"update must have dtype float32, got {delta.dtype}")
    require_int(samples, "samples", low=1, high=config.max_samples, error=ConfigError)
    clipped = clip_update(delta, config.clip_norm)
    clipped *= float(samples * 2**config.fractional_bits)
    np.rint(clipped, out=clipped)
    d = clipped.size
    out = np.empty(d + 1, dtype=np.uint64)
    signed = out[:d].view(np.int64)
    np.copyto(signed, clipped, casting="unsafe")
    signed += (signed >> 63) & P  # x < 0 becomes p + x, without a masked (slow) pass
    out[d] = samples
    return out


def dequantize_sum(
    total: NDArray[np.uint64], config: QuantizationConfig
) -> tuple[NDArray[np.float64], int]:
    """Decode a reconstructed sum into (sample-weighted mean update, total samples).

    ``total`` is the field-element sum of the clients' quantized vectors (length ``d + 1``).
    """
    if not isinstance(total, np.ndarray) or total.dtype != np.uint64 or total.ndim != 1:
        raise FormatError("aggregate must be a 1-D numpy uint64 vector")
    if total.size < 2:
        raise FormatError(f"aggregate must have length d + 1 >= 2, got {total.size}")
    if int(total.max()) >= P:
        raise FormatError("aggregate holds a value >= p = 2^61 - 1: not a field vector")
    total_samples = int(total[-1])
    max_total = config.max_clients * config.max_samples
    if not 1 <= total_samples <= max_total:
        raise FormatError(
            f"aggregate's sample count {total_samples} is outside [1, max_clients * "
            f"max_samples = {max_total}]: wrong shares or a different QuantizationConfig"
        )
    encoded = total[:-1].view(np.int64)
    signed = encoded - (((_HALF - encoded) >> 63) & P)  # x > (p-1)/2 becomes x - p
    mean = signed.astype(np.float64)
    mean /= float(2**config.fractional_bits * total_samples)
    return mean, total_samples


def quantization_error_bound(
    config: QuantizationConfig, *, clients: int, total_samples: int, weighted_by_members: bool = False
) -> float:
    """Largest per-coordinate gap between :func:`dequantize_sum` and the exact weighted mean.

    ``clients`` is the number of summed updates and ``total_samples`` their sample total;
    ``weighted_by_members``: the clients shared unweighted updates that the members multiplied
    by each count. See the module docstring for the derivation.
    """
    require_int(clients, "clients", low=1, high=config.max_clients, error=ConfigError)
    require_int(total_samples, "total_samples", low=clients, high=2**62, error=ConfigError)
    rounded = total_samples if weighted_by_members else clients  # halves of a unit summed
    rounding = rounded * 2.0 ** -(config.fractional_bits + 1) / total_samples
    return rounding * (1 + 2**-50) + 2**-50 * config.clip_norm


def quantize_metrics(values: Sequence[float], samples: int, config: QuantizationConfig) -> NDArray[np.uint64]:
    """Encode one client's metric values as ``m`` field elements, weighted by ``samples``.

    Each value is clipped to ``±clip_norm`` (see the module docstring), then encoded like an
    update coordinate: ``round(v · samples · 2^f) mod p``. Appended after :func:`quantize_update`'s
    ``d + 1`` elements.
    """
    require_int(samples, "samples", low=1, high=config.max_samples, error=ConfigError)
    metrics = np.array([float(v) for v in values], dtype=np.float64)
    if not np.isfinite(metrics).all():
        raise FormatError("metric values must be finite")
    np.clip(metrics, -config.clip_norm, config.clip_norm, out=metrics)
    metrics *= float(samples * 2**config.fractional_bits)
    signed = np.rint(metrics).astype(np.int64)
    signed += (signed >> 63) & P
    return signed.view(np.uint64)


def dequantize_metrics(
    total: NDArray[np.uint64], total_samples: int, config: QuantizationConfig
) -> tuple[float, ...]:
    """The sample-weighted mean of each metric from the summed metric elements of a vector."""
    if not isinstance(total, np.ndarray) or total.dtype != np.uint64 or total.ndim != 1:
        raise FormatError("summed metrics must be a 1-D numpy uint64 vector")
    if total.size and int(total.max()) >= P:
        raise FormatError("summed metrics hold a value >= p = 2^61 - 1: not field elements")
    require_int(total_samples, "total_samples", low=1, high=2**62, error=FormatError)
    encoded = total.view(np.int64)
    signed = encoded - (((_HALF - encoded) >> 63) & P)
    scale = float(2**config.fractional_bits * total_samples)
    return tuple(float(value) / scale for value in signed)
