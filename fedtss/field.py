"""Arithmetic in the prime field GF(p), p = 2**61 - 1, on numpy uint64 arrays.

Why this prime:

* Capacity. The aggregate is a sum of fixed-point updates, and the sum must never wrap
  around the modulus. 1,000 clients x sample weights up to 10,000 x 2**16 fractional bits is
  about 2**39.3 per unit of clipped value, which leaves about 2**21 of headroom (clip bounds,
  sign offset) below p ~ 2**61; a 31-bit prime would wrap before the first client is added.
  :mod:`fedtss.quantize` checks the exact bound for a given configuration.
* Cheap reduction. p is a Mersenne prime, so ``2**61 ≡ 1`` and any 64-bit value reduces
  with a shift, a mask and an add: ``x ≡ (x & p) + (x >> 61)``. No division anywhere.
* One machine word per element: shares are plain little-endian uint64 arrays, and the sum
  of two elements (< 2**62) never overflows a word.

Elements are numpy ``uint64`` values in ``[0, p)``. These helpers are pure and vectorized;
they do not validate their inputs on every call (that would double their cost), so callers
that receive untrusted arrays check them once with :func:`require_field_array`. The fast
sharing kernels live in :mod:`fedtss._kernels`; the functions here are the readable
reference they are tested against, and what the rest of the protocol uses for small work
(aggregating shares, Lagrange weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from fedtss.errors import InvalidShare

__all__ = [
    "MODULUS",
    "FieldArray",
    "is_field_array",
    "require_field_array",
    "add",
    "sub",
    "neg",
    "mul_scalar",
    "mulmod",
    "horner_eval",
    "lagrange_coefficients_at_zero",
]

MODULUS = 2**61 - 1
"""The field's prime p = 2**61 - 1 (as a Python int)."""

FieldArray = NDArray[np.uint64]

_P = np.uint64(MODULUS)
_M32 = np.uint64(0xFFFFFFFF)
_M29 = np.uint64((1 << 29) - 1)
_S32 = np.uint64(32)
_S29 = np.uint64(29)
_S61 = np.uint64(61)
_EIGHT = np.uint64(8)


def is_field_array(values: object) -> bool:
    """Whether ``values`` is a numpy uint64 array whose every entry is below p."""
    if not isinstance(values, np.ndarray) or values.dtype != np.uint64:
        return False
    return values.size == 0 or bool(values.max() < _P)


def require_field_array(values: object, what: str) -> FieldArray:
    """Return ``values`` if it is a field array, else raise :class:`InvalidShare` naming it."""
    if not isinstance(values, np.ndarray) or values.dtype != np.uint64:
        kind = getattr(values, "dtype", type(values).__name__)
        raise InvalidShare(f"{what} must be a numpy uint64 array, got {kind}")
    if not is_field_array(values):
        raise InvalidShare(f"{what} has values >= p = 2**61 - 1; reduce them modulo p first")
    return values


def add(a: FieldArray, b: FieldArray) -> FieldArray:
    """Return (a + b) mod p."""
    total = a + b  # < 2**62: no overflow
    return _subtract_p_where_needed(total)


def sub(a: FieldArray, b: FieldArray) -> FieldArray:
    """Return (a - b) mod p."""
    return _subtract_p_where_needed(a + (_P - b))


def neg(a: FieldArray) -> FieldArray:
    """Return (-a) mod p."""
    return _subtract_p_where_needed(_P - a)


def mul_scalar(a: FieldArray, scalar: int) -> FieldArray:
    """Return (a * scalar) mod p for one integer ``scalar`` (any Python int)."""
    b = np.uint64(scalar % MODULUS)
    return _mulmod(a, b >> _S32, b & _M32)


def mulmod(a: FieldArray, b: FieldArray) -> FieldArray:
    """Return (a * b) mod p elementwise (a 122-bit product, reduced without division)."""
    return _mulmod(a, b >> _S32, b & _M32)


def horner_eval(coefficients: FieldArray, x: int) -> FieldArray:
    """Evaluate, per column, the polynomial with ``coefficients[k]`` as the x**k row at x.

    ``coefficients`` has shape (degree + 1, d); row 0 is the constant term.
    """
    result = coefficients[-1].copy()
    for row in coefficients[-2::-1]:
        result = add(mul_scalar(result, x), row)
    return result


def lagrange_coefficients_at_zero(xs: Sequence[int]) -> list[int]:
    """Return λ_j with f(0) = Σ_j λ_j f(x_j) for every polynomial of degree < len(xs).

    λ_j = Π_{m ≠ j} x_m / (x_m - x_j) mod p. The points must be distinct and non-zero mod p.
    """
    points = [int(x) % MODULUS for x in xs]
    if len(set(points)) != len(points) or 0 in points:
        raise InvalidShare(f"evaluation points must be distinct and non-zero, got {list(xs)}")
    weights = []
    for j, xj in enumerate(points):
        numerator = 1
        denominator = 1
        for m, xm in enumerate(points):
            if m != j:
                numerator = numerator * xm % MODULUS
                denominator = denominator * (xm - xj) % MODULUS
        weights.append(numerator * pow(denominator, -1, MODULUS) % MODULUS)
    return weights


def _subtract_p_where_needed(values: FieldArray) -> FieldArray:
    # Inputs are below 2p, so one conditional subtraction reduces them.
    return np.where(values >= _P, values - _P, values)


def _mulmod(a: FieldArray, b_high: np.uint64 | FieldArray, b_low: np.uint64 | FieldArray) -> FieldArray:
    # a·b with a = a1·2**32 + a0: 2**64 ≡ 8, and mid·2**32 ≡ (mid mod 2**29)·2**32 + (mid >> 29).
    a_high = a >> _S32
    a_low = a & _M32
    mid = a_high * b_low + a_low * b_high
    low = a_low * b_low
    total = (
        _EIGHT * (a_high * b_high)
        + ((mid & _M29) << _S32)
        + (mid >> _S29)
        + (low & _P)
        + (low >> _S61)
    )
    total = (total & _P) + (total >> _S61)
    return _subtract_p_where_needed(total)
