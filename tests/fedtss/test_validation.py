"""Per-client share consistency from public projections (fedtss.validation): what it catches, and
that what it publishes tells t - 1 members nothing about the update (with the control that must
fail: the same check without the pad)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fedtss import field as gf
from fedtss._reed_solomon import evaluate, interpolate
from fedtss.errors import ConfigError, FormatError
from fedtss.field import MODULUS
from fedtss.shamir import share_vector
from fedtss.validation import challenge_vector, check_client, pad_vector, project_share

N, T = 5, 3


def _projections(shares: np.ndarray, rho: np.ndarray) -> dict[int, int]:
    return {j: project_share(shares[j - 1], rho) for j in range(1, shares.shape[0] + 1)}


def _dealt(update: np.ndarray, pad: int, key: bytes, holders: int = N, threshold: int = T) -> np.ndarray:
    return share_vector(pad_vector(update, pad), threshold=threshold, holders=holders, key=key)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, MODULUS - 1), min_size=1, max_size=40), st.binary(min_size=32, max_size=32))
def test_an_honest_clients_projections_decode_with_no_member_disagreeing(values, challenge) -> None:
    update = np.array(values, dtype=np.uint64)
    shares = _dealt(update, int.from_bytes(os.urandom(7), "little"), os.urandom(32))
    verdict = check_client(_projections(shares, challenge_vector(challenge, update.size + 1)), threshold=T)
    assert verdict.consistent and verdict.disagreeing == () and verdict.checked


@pytest.mark.parametrize("member", range(1, N + 1))
def test_one_share_off_the_polynomial_shows_at_exactly_that_member(member: int) -> None:
    update = np.arange(30, dtype=np.uint64)
    shares = _dealt(update, 12345, os.urandom(32))
    shares[member - 1, 7] = gf.add(shares[member - 1, 7:8], np.ones(1, dtype=np.uint64))[0]
    verdict = check_client(_projections(shares, challenge_vector(os.urandom(32), 31)), threshold=T)
    assert verdict.consistent and verdict.disagreeing == (member,)


def test_shares_off_the_polynomial_at_more_members_than_can_be_corrected_are_inconsistent() -> None:
    shares = _dealt(np.arange(30, dtype=np.uint64), 9, os.urandom(32))
    shares[0, 3] ^= np.uint64(1)
    shares[1, 4] ^= np.uint64(1)  # two errors: n = 5, t = 3 corrects one
    verdict = check_client(_projections(shares, challenge_vector(os.urandom(32), 31)), threshold=T)
    assert not verdict.consistent


def test_with_exactly_t_projections_nothing_is_checked() -> None:
    shares = _dealt(np.arange(4, dtype=np.uint64), 1, os.urandom(32))
    shares[0, 0] ^= np.uint64(1)
    rho = challenge_vector(os.urandom(32), 5)
    verdict = check_client({j: project_share(shares[j - 1], rho) for j in (1, 2, 3)}, threshold=T)
    assert verdict == verdict.__class__(consistent=True, disagreeing=(), checked=False)


def _g_at_zero(update: np.ndarray, pad: int, rho: np.ndarray) -> int:
    """g(0) = <rho, s>, s the update then the pad (0 for the check run without one): the one value
    the posted projections add to what t - 1 members hold (the test below shows it)."""
    return project_share(pad_vector(update, pad), rho)


def test_the_projections_add_only_g_at_zero_to_what_t_minus_1_members_hold() -> None:
    update = np.arange(20, dtype=np.uint64)
    shares = _dealt(update, 777, os.urandom(32))
    rho = challenge_vector(os.urandom(32), 21)
    posted = _projections(shares, rho)
    coalition = (1, 2)  # t - 1 members
    known = {j: project_share(shares[j - 1], rho) for j in coalition}
    known[0] = _g_at_zero(update, 777, rho)
    # Every other member's projection follows by interpolation from these t values: nothing more.
    polynomial = interpolate(list(known), list(known.values()))
    assert all(evaluate(polynomial, j) == posted[j] for j in range(1, N + 1))


def _leak_pvalue(padded: bool) -> float:
    """p-value that g(0) has the same distribution for two different updates, over fresh pads."""
    rho = challenge_vector(b"\x07" * 32, 11)
    samples = []
    for update in (np.zeros(10, dtype=np.uint64), np.full(10, 5, dtype=np.uint64)):
        values = [_g_at_zero(update, int.from_bytes(os.urandom(8), "little") % MODULUS if padded else 0, rho)
                  for _ in range(400)]
        samples.append(np.bincount(np.array(values, dtype=np.uint64) >> np.uint64(57), minlength=16))
    return stats.chi2_contingency(np.array(samples) + 1).pvalue


def test_what_the_check_publishes_is_independent_of_the_update_with_the_pad() -> None:
    assert _leak_pvalue(padded=True) > 1e-4


def test_control_without_the_pad_what_it_publishes_tells_two_updates_apart() -> None:
    assert _leak_pvalue(padded=False) < 1e-10


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        challenge_vector(b"short", 3)
    with pytest.raises(ConfigError, match="pad must be a field element"):
        pad_vector(np.zeros(2, dtype=np.uint64), MODULUS)
    with pytest.raises(FormatError, match="cannot be projected"):
        project_share(np.zeros(3, dtype=np.uint64), challenge_vector(b"\x01" * 32, 4))
    with pytest.raises(ConfigError, match="at least t"):
        check_client({1: 0, 2: 0}, threshold=3)
    with pytest.raises(FormatError, match="not a field element"):
        check_client({1: 0, 2: 0, 3: MODULUS}, threshold=3)


def test_the_challenge_vector_is_deterministic_and_has_no_zero() -> None:
    rho = challenge_vector(b"\x02" * 32, 1000)
    assert np.array_equal(rho, challenge_vector(b"\x02" * 32, 1000)) and np.all(rho > 0) and np.all(rho < MODULUS)
