"""Reed-Solomon decoding of Shamir shares over GF(2**61 - 1), by Gao's algorithm (private).

Shamir shares of one secret are a Reed-Solomon codeword: the values of a polynomial of degree
< k at the holders' points. With m points, up to floor((m - k) / 2) wrong values can be
located and corrected. Gao's algorithm ("A New Algorithm for Decoding Reed-Solomon Codes",
2003) needs one interpolation and one partial extended Euclid, O(m**2) field operations, which
over Python ints is a few milliseconds even for m = 255 (Berlekamp-Welch solves an m x m
linear system, O(m**3)). The callers decode one scalar per holder (a random projection of the
share vectors), so this never runs per coordinate.

Polynomials are lists of ints, lowest degree first, without trailing zeros (``[]`` is 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from fedtss.field import MODULUS

__all__ = ["Decoded", "DecodingFailure", "decode", "evaluate", "interpolate"]

_P = MODULUS


class DecodingFailure(Exception):
    """The values are further from every codeword than the decoding radius (internal)."""


@dataclass(frozen=True)
class Decoded:
    """The decoded polynomial and the points whose values disagreed with it."""

    polynomial: list[int]
    error_points: tuple[int, ...]


def decode(points: Sequence[int], values: Sequence[int], k: int) -> Decoded:
    """Return the polynomial of degree < k within floor((m - k) / 2) errors of the values.

    Raises :class:`DecodingFailure` when there is none (too many errors to correct).
    """
    m = len(points)
    g0 = _vanishing(tuple(points))
    g1 = interpolate(points, values)
    r_prev, r_cur = list(g0), g1
    v_prev, v_cur = [], [1]
    # Stop as soon as deg(r) < (m + k) / 2, i.e. 2·deg(r) < m + k.
    while 2 * _degree(r_cur) >= m + k:
        quotient, remainder = _divmod(r_prev, r_cur)
        r_prev, r_cur = r_cur, remainder
        v_prev, v_cur = v_cur, _sub(v_prev, _mul(quotient, v_cur))
    polynomial, remainder = _divmod(r_cur, v_cur)
    if remainder or _degree(polynomial) >= k:
        raise DecodingFailure(f"more than {(m - k) // 2} errors among {m} values")
    errors = tuple(x for x, y in zip(points, values) if evaluate(polynomial, x) != y % _P)
    if 2 * len(errors) > m - k:
        raise DecodingFailure(f"{len(errors)} errors among {m} values exceed the radius")
    return Decoded(polynomial, errors)


def evaluate(polynomial: Sequence[int], x: int) -> int:
    """Return polynomial(x) mod p."""
    result = 0
    for coefficient in reversed(polynomial):
        result = (result * x + coefficient) % _P
    return result


def interpolate(points: Sequence[int], values: Sequence[int]) -> list[int]:
    """Return the polynomial of degree < len(points) through (points[i], values[i])."""
    result = [0] * len(points)
    for yi, basis in zip(values, _lagrange_basis(tuple(points))):
        for power, coefficient in enumerate(basis):
            result[power] += yi * coefficient
    return _trim([c % _P for c in result])


@lru_cache(maxsize=64)
def _lagrange_basis(points: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """The Lagrange basis polynomials of ``points``: a verdict decodes every client over the same
    members' points, so they are computed once per set of points, not once per client."""
    g0 = _vanishing(points)
    basis = []
    for xi in points:
        numerator = _divide_by_root(g0, xi)  # Π_{j≠i} (x - x_j)
        scale = pow(evaluate(numerator, xi), -1, _P)
        basis.append(tuple(c * scale % _P for c in numerator))
    return tuple(basis)


@lru_cache(maxsize=64)
def _vanishing(points: tuple[int, ...]) -> tuple[int, ...]:
    """Π (x - x_j) over ``points`` (cached, so a tuple)."""
    result = [1]
    for x in points:
        result = _mul(result, [(-x) % _P, 1])
    return tuple(result)


def _divide_by_root(polynomial: Sequence[int], root: int) -> list[int]:
    # Synthetic division by (x - root); the remainder is zero for the callers' roots.
    quotient = [0] * (len(polynomial) - 1)
    carry = 0
    for i in range(len(polynomial) - 1, 0, -1):
        carry = (polynomial[i] + carry * root) % _P
        quotient[i - 1] = carry
    return quotient


def _degree(polynomial: list[int]) -> int:
    return len(polynomial) - 1


def _trim(polynomial: list[int]) -> list[int]:
    while polynomial and polynomial[-1] == 0:
        polynomial.pop()
    return polynomial


def _add(a: list[int], b: list[int]) -> list[int]:
    longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
    result = list(longer)
    for i, c in enumerate(shorter):
        result[i] = (result[i] + c) % _P
    return _trim(result)


def _sub(a: list[int], b: list[int]) -> list[int]:
    return _add(a, [(-c) % _P for c in b])


def _mul(a: list[int], b: list[int]) -> list[int]:
    if not a or not b:
        return []
    result = [0] * (len(a) + len(b) - 1)
    for i, ca in enumerate(a):
        for j, cb in enumerate(b):
            result[i + j] += ca * cb
    return _trim([c % _P for c in result])


def _divmod(a: list[int], b: list[int]) -> tuple[list[int], list[int]]:
    remainder = list(a)
    if _degree(remainder) < _degree(b):
        return [], remainder
    inverse_lead = pow(b[-1], -1, _P)
    quotient = [0] * (len(remainder) - len(b) + 1)
    for shift in range(len(quotient) - 1, -1, -1):
        coefficient = remainder[shift + len(b) - 1] * inverse_lead % _P
        quotient[shift] = coefficient
        if coefficient:
            for i, cb in enumerate(b):
                remainder[shift + i] = (remainder[shift + i] - coefficient * cb) % _P
    return _trim(quotient), _trim(remainder[: len(b) - 1])
