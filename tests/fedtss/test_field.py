"""GF(2**61 - 1) helpers agree with Python integer arithmetic, including at the edges."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedtss import field
from fedtss.errors import InvalidShare

P = field.MODULUS
EDGES = [0, 1, 2, 2**29 - 1, 2**29, 2**32 - 1, 2**32, 2**60, P - 2, P - 1]

elements = st.one_of(st.sampled_from(EDGES), st.integers(min_value=0, max_value=P - 1))
element_lists = st.lists(elements, min_size=1, max_size=40)


def as_array(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def as_ints(array: np.ndarray) -> list[int]:
    return [int(v) for v in array]


def test_modulus_is_the_mersenne_prime_with_room_for_the_largest_planned_sum() -> None:
    assert P == 2**61 - 1
    assert pow(3, P - 1, P) == 1  # Fermat witness: p is (probably) prime, as documented
    clients, max_samples, fractional_bits = 1_000, 10_000, 16
    assert clients * max_samples * 2**fractional_bits * 2**20 < P


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_add_sub_mul_match_python_integers(data: st.DataObject) -> None:
    a = data.draw(element_lists)
    b = data.draw(st.lists(elements, min_size=len(a), max_size=len(a)))
    x, y = as_array(a), as_array(b)
    assert as_ints(field.add(x, y)) == [(u + v) % P for u, v in zip(a, b)]
    assert as_ints(field.sub(x, y)) == [(u - v) % P for u, v in zip(a, b)]
    assert as_ints(field.mulmod(x, y)) == [(u * v) % P for u, v in zip(a, b)]
    assert as_ints(field.neg(x)) == [(-u) % P for u in a]


@settings(max_examples=40, deadline=None)
@given(element_lists, st.integers(min_value=-(2**70), max_value=2**70))
def test_mul_scalar_reduces_any_integer_scalar(values: list[int], scalar: int) -> None:
    assert as_ints(field.mul_scalar(as_array(values), scalar)) == [v * scalar % P for v in values]


@settings(max_examples=40, deadline=None)
@given(st.lists(element_lists, min_size=1, max_size=6).filter(lambda rows: len({len(r) for r in rows}) == 1),
       st.integers(min_value=0, max_value=255))
def test_horner_eval_matches_direct_polynomial_evaluation(rows: list[list[int]], x: int) -> None:
    result = field.horner_eval(np.array(rows, dtype=np.uint64), x)
    expected = [sum(row[i] * x**k for k, row in enumerate(rows)) % P for i in range(len(rows[0]))]
    assert as_ints(result) == expected


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=255), min_size=1, max_size=12, unique=True),
       st.data())
def test_lagrange_coefficients_recover_the_constant_term(xs: list[int], data: st.DataObject) -> None:
    coefficients = data.draw(st.lists(elements, min_size=len(xs), max_size=len(xs)))
    values = [sum(c * x**k for k, c in enumerate(coefficients)) % P for x in xs]
    weights = field.lagrange_coefficients_at_zero(xs)
    assert sum(w * v for w, v in zip(weights, values)) % P == coefficients[0]


@pytest.mark.parametrize("xs", [[1, 1], [0, 2], [3, P + 3]])
def test_lagrange_refuses_repeated_or_zero_points(xs: list[int]) -> None:
    with pytest.raises(InvalidShare, match="distinct and non-zero"):
        field.lagrange_coefficients_at_zero(xs)


def test_is_field_array_accepts_only_uint64_values_below_p() -> None:
    assert field.is_field_array(as_array([0, P - 1]))
    assert field.is_field_array(np.zeros(0, dtype=np.uint64))
    assert not field.is_field_array(as_array([P]))
    assert not field.is_field_array(np.array([1, 2], dtype=np.int64))
    assert not field.is_field_array([1, 2])


def test_require_field_array_names_the_bad_input() -> None:
    with pytest.raises(InvalidShare, match="share of holder 3 has values >= p"):
        field.require_field_array(as_array([P]), "share of holder 3")
    with pytest.raises(InvalidShare, match="must be a numpy uint64 array"):
        field.require_field_array(np.ones(2, dtype=np.float32), "update")
