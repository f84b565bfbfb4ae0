"""Shamir sharing: exact reconstruction, privacy of t - 1 shares, aggregation, error correction.

The fast kernels are checked against ``tests/vectors/shamir.json``, produced by the independent
pure-Python implementation in ``tests/fedtss/shamir_reference.py``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fedtss import _kernels, field, shamir
from fedtss.errors import ConfigError, InconsistentShares, InvalidShare, NotEnoughShares, ShareError
from fedtss.randomness import (
    COEFFICIENTS_LABEL,
    derive_subkey,
    keystream_words,
    replace_rejected_words,
    uniform_field_elements,
)
from fedtss.shamir import reconstruct_at_zero, reconstruct_checked, share_vector
from tests.fedtss import shamir_reference

P = field.MODULUS
VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "shamir.json").read_text())


def key_of(seed: int) -> bytes:
    return seed.to_bytes(32, "little")


def random_secret(rng: np.random.Generator, d: int) -> np.ndarray:
    return rng.integers(0, P, size=d, dtype=np.uint64)


def rows_of(shares: np.ndarray, holders: list[int]) -> dict[int, np.ndarray]:
    return {j: shares[j - 1] for j in holders}


# --- agreement with the reference implementation -------------------------------------------

@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"t{v['threshold']}-n{v['holders']}")
def test_kernels_reproduce_the_reference_test_vectors(vector: dict) -> None:
    secret = np.array([int(v) for v in vector["secret"]], dtype=np.uint64)
    expected = np.array([[int(v) for v in row] for row in vector["shares"]], dtype=np.uint64)
    shares = share_vector(
        secret, threshold=vector["threshold"], holders=vector["holders"], key=bytes.fromhex(vector["key"])
    )
    assert np.array_equal(shares, expected)
    last_t = list(range(vector["holders"] - vector["threshold"] + 1, vector["holders"] + 1))
    assert np.array_equal(reconstruct_at_zero(rows_of(shares, last_t)), secret)


def test_reference_implementation_still_produces_the_stored_vectors() -> None:
    assert shamir_reference.build_vectors() == VECTORS
    for vector in VECTORS:
        shares = {j + 1: [int(v) for v in row] for j, row in enumerate(vector["shares"])}
        first_t = {j: shares[j] for j in range(1, vector["threshold"] + 1)}
        assert shamir_reference.reconstruct_at_zero(first_t) == [int(v) for v in vector["secret"]]


def test_sharing_across_keystream_chunks_matches_numpy_horner() -> None:
    # d is prime and larger than one keystream chunk, so the last chunk is partial.
    d, threshold, holders = 65_537, 3, 4
    secret = random_secret(np.random.default_rng(1), d)
    key = key_of(7)
    words = keystream_words(derive_subkey(key, COEFFICIENTS_LABEL), (threshold - 1) * d)
    coefficients = np.vstack([secret, (words & np.uint64(P)).reshape(threshold - 1, d)])
    shares = share_vector(secret, threshold=threshold, holders=holders, key=key)
    for x in range(1, holders + 1):
        assert np.array_equal(shares[x - 1], field.horner_eval(coefficients, x))


def test_a_rejected_coefficient_word_is_replaced_as_the_reference_does(monkeypatch) -> None:
    # A word whose low 61 bits equal p occurs with probability 2**-61, so no real key can be
    # found that produces one: the stream is patched (the only mock here) to force it.
    secret_values, threshold, holders, key = [5, 6, 7], 3, 4, key_of(11)
    forced_position = 4  # coefficient c_2 of coordinate 1
    real_fill = shamir._fill_coefficient_words

    def fill_with_a_rejected_word(words, subkey, d, offset):
        real_fill(words, subkey, d, offset)
        words.reshape(-1)[forced_position] |= np.uint64(P)

    monkeypatch.setattr(shamir, "_fill_coefficient_words", fill_with_a_rejected_word)
    shares = share_vector(np.array(secret_values, np.uint64), threshold=threshold, holders=holders, key=key)

    subkey = derive_subkey(key, COEFFICIENTS_LABEL)
    c = [[w & P for w in shamir_reference.stream_words(subkey, 6)[k * 3 : k * 3 + 3]] for k in range(2)]
    c[1][1] = shamir_reference.field_element(subkey, forced_position, P)
    assert c[1][1] != P
    expected = [[(s + c[0][i] * x + c[1][i] * x * x) % P for i, s in enumerate(secret_values)]
                for x in range(1, holders + 1)]
    assert shares.tolist() == expected


def test_replace_rejected_words_touches_only_words_equal_to_p_in_61_bits() -> None:
    subkey = derive_subkey(key_of(3), COEFFICIENTS_LABEL)
    words = np.array([P, 2**64 - 1, 1, P - 1], dtype=np.uint64)
    assert replace_rejected_words(words, subkey, start_word=10) == 2
    assert [int(w) & P for w in words[:2]] == [
        shamir_reference.field_element(subkey, 10, P),
        shamir_reference.field_element(subkey, 11, P),
    ]
    assert words[2:].tolist() == [1, P - 1]


def test_keystream_words_give_random_access_to_one_stream() -> None:
    subkey = derive_subkey(key_of(5), COEFFICIENTS_LABEL)
    whole = keystream_words(subkey, 40)
    assert whole.tolist() == shamir_reference.stream_words(subkey, 40)
    for start in (0, 1, 7, 16):
        assert np.array_equal(keystream_words(subkey, 9, start), whole[start : start + 9])


def test_kernel_counts_rejected_words_and_secret_values_outside_the_field() -> None:
    words = np.array([[P, 3, 2**64 - 1]], dtype=np.uint64)
    secret = np.array([1, P, 2], dtype=np.uint64)
    out = np.empty((3, 3), dtype=np.uint64)
    assert _kernels.share_words(secret, words, out, 0) == (2, 1)


# --- the secret-sharing properties -----------------------------------------------------------

threshold_and_holders = st.integers(min_value=2, max_value=9).flatmap(
    lambda t: st.tuples(st.just(t), st.integers(min_value=t, max_value=12))
)
dimensions = st.sampled_from([1, 2, 13, 101, 2_053, 4_099])  # primes; 2,053 > one kernel block


@settings(max_examples=25, deadline=None)
@given(threshold_and_holders, dimensions, st.integers(min_value=0, max_value=2**32), st.data())
def test_any_t_shares_reconstruct_the_secret(tn, d, seed, data) -> None:
    threshold, holders = tn
    secret = random_secret(np.random.default_rng(seed), d)
    shares = share_vector(secret, threshold=threshold, holders=holders, key=key_of(seed))
    chosen = data.draw(st.lists(st.integers(1, holders), min_size=threshold, max_size=threshold, unique=True))
    assert np.array_equal(reconstruct_at_zero(rows_of(shares, chosen)), secret)


def test_every_t_subset_reconstructs_and_t_minus_1_do_not() -> None:
    secret = random_secret(np.random.default_rng(2), 50)
    shares = share_vector(secret, threshold=3, holders=5, key=key_of(2))
    for subset in itertools.combinations(range(1, 6), 3):
        assert np.array_equal(reconstruct_at_zero(rows_of(shares, list(subset))), secret)
    for subset in itertools.combinations(range(1, 6), 2):
        assert not np.array_equal(reconstruct_at_zero(rows_of(shares, list(subset))), secret)


def _joint_bins(shares: np.ndarray, holders: list[int], bins: int, part: str) -> np.ndarray:
    # Each share value falls in one of ``bins`` cells, by its top bits (equal ranges of [0, p))
    # or by its low bits (value mod bins); the joint cell of the holders' values is a histogram
    # cell. "lagrange" bins the one value these holders' shares would reconstruct if they were
    # enough (their Lagrange combination at 0): the statistic a one-degree-short sharing fails.
    if part == "lagrange":
        combined = reconstruct_at_zero(rows_of(shares, holders))
        return np.bincount((combined // np.uint64(P // bins + 1)).astype(np.int64), minlength=bins)
    cells = np.zeros(shares.shape[1], dtype=np.int64)
    for j in holders:
        if part == "high":
            cell = shares[j - 1] // np.uint64(P // bins + 1)
        else:
            cell = shares[j - 1] % np.uint64(bins)
        cells = cells * bins + cell.astype(np.int64)
    return np.bincount(cells, minlength=bins ** len(holders))


def _privacy_pvalues(threshold: int, holders: int, seen_by: list[int], part: str) -> tuple[float, float]:
    """p-values of the binned shares of the holders ``seen_by``, for the secrets 0 and (p - 1) / 2.

    Returns (two-sample test: same distribution for both secrets, smallest uniformity test).
    The second secret is half the field away from 0: p - 1 would be -1, a neighbour of 0 whose
    binned shares look the same as 0's even when the shares reveal the secret.
    """
    d, bins = 40_000, 8
    counts = []
    for value, seed in ((0, 21), ((P - 1) // 2, 22)):
        secret = np.full(d, value, dtype=np.uint64)
        shares = share_vector(secret, threshold=threshold, holders=holders, key=key_of(seed))
        counts.append(_joint_bins(shares, seen_by, bins, part))
    same = stats.chi2_contingency(np.array(counts) + 1).pvalue
    uniform = min(stats.chisquare(histogram).pvalue for histogram in counts)
    return same, uniform


#: (t, n, the t - 1 holders whose shares are looked at together)
PRIVACY_CASES = [(3, 5, [2, 5]), (4, 7, [1, 3, 7])]


@pytest.mark.parametrize("part", ["high", "low", "lagrange"])
@pytest.mark.parametrize(("threshold", "holders", "seen_by"), PRIVACY_CASES)
def test_t_minus_1_shares_are_distributed_independently_of_the_secret(threshold, holders, seen_by, part) -> None:
    same, uniform = _privacy_pvalues(threshold, holders, seen_by, part)
    assert same > 1e-4 and uniform > 1e-4


@pytest.mark.parametrize(("threshold", "holders", "seen_by", "part"), [
    (3, 5, [2, 5], "high"), (3, 5, [2, 5], "low"), (3, 5, [2, 5], "lagrange"), (4, 7, [1, 3, 7], "lagrange"),
    # (Coarse bins of three shares cannot see a relation with large coefficients: for [1, 3, 7]
    # only the Lagrange statistic has the power to fail, so only it is the control there.)
])
def test_privacy_check_fails_when_the_shares_seen_determine_the_secret(threshold, holders, seen_by, part) -> None:
    # The same check on a sharing one degree too low: the holders seen now suffice.
    same, uniform = _privacy_pvalues(threshold - 1, holders, seen_by, part)
    assert same < 1e-10 and uniform < 1e-10


@settings(max_examples=20, deadline=None)
@given(threshold_and_holders, dimensions, st.integers(min_value=2, max_value=6),
       st.integers(min_value=0, max_value=2**32), st.data())
def test_sum_of_shares_reconstructs_the_sum_of_secrets(tn, d, clients, seed, data) -> None:
    threshold, holders = tn
    rng = np.random.default_rng(seed)
    secrets = [random_secret(rng, d) for _ in range(clients)]
    all_shares = [
        share_vector(s, threshold=threshold, holders=holders, key=key_of(seed * 8 + i))
        for i, s in enumerate(secrets)
    ]
    aggregate = all_shares[0]
    total = secrets[0]
    for shares, secret in zip(all_shares[1:], secrets[1:]):
        aggregate = field.add(aggregate, shares)
        total = field.add(total, secret)
    chosen = data.draw(st.lists(st.integers(1, holders), min_size=threshold, max_size=threshold, unique=True))
    assert np.array_equal(reconstruct_at_zero(rows_of(aggregate, chosen)), total)


@settings(max_examples=20, deadline=None)
@given(threshold_and_holders, dimensions, st.integers(min_value=2, max_value=5),
       st.integers(min_value=0, max_value=2**32), st.data())
def test_shares_added_with_public_weights_reconstruct_the_weighted_sum_of_secrets(tn, d, clients, seed, data) -> None:
    """What a member does when it weights each client's share by its sample count: any weight in
    [0, p), p - 1 included (which takes a share out again), gives a share of sum_i w_i secret_i."""
    threshold, holders = tn
    rng = np.random.default_rng(seed)
    secrets = [random_secret(rng, d) for _ in range(clients)]
    weights = data.draw(st.lists(st.one_of(st.integers(0, P - 1), st.sampled_from([0, 1, P - 1])),
                                 min_size=clients, max_size=clients))
    sums = np.zeros((holders, d), dtype=np.uint64)
    for i, (secret, weight) in enumerate(zip(secrets, weights)):
        shares = share_vector(secret, threshold=threshold, holders=holders, key=key_of(seed * 8 + i))
        for j in range(holders):
            shamir.add_weighted_share(sums[j], shares[j], weight)
    expected = [sum(w * int(s[k]) for w, s in zip(weights, secrets)) % P for k in range(d)]
    chosen = data.draw(st.lists(st.integers(1, holders), min_size=threshold, max_size=threshold, unique=True))
    assert [int(v) for v in reconstruct_at_zero(rows_of(sums, chosen))] == expected


def test_adding_a_weighted_share_refuses_values_outside_the_field_a_bad_weight_or_another_length() -> None:
    for weight in (5, 0, P - 1):  # values >= p whose 61 low bits are 0 mod p, and ones that are not
        total = np.array([7, 8, 9, 10, 11], dtype=np.uint64)
        with pytest.raises(InvalidShare, match=">= p"):
            shamir.add_weighted_share(total, np.array([1, P, 2**61 + 5, 2**63 + 7, 2**64 - 1], dtype=np.uint64), weight)
        assert total.tolist() == [7, 8, 9, 10, 11]  # the values added are taken out again
    total = np.zeros(4, dtype=np.uint64)
    for weight in (-1, P, 2.0, True):
        with pytest.raises(ConfigError, match="weight"):
            shamir.add_weighted_share(total, np.ones(4, dtype=np.uint64), weight)
    with pytest.raises(InvalidShare, match="shape"):
        shamir.add_weighted_share(total, np.ones(5, dtype=np.uint64), 1)


def test_same_key_gives_same_shares_and_another_key_other_shares() -> None:
    secret = np.arange(10, dtype=np.uint64)
    first = share_vector(secret, threshold=2, holders=3, key=key_of(1))
    assert np.array_equal(first, share_vector(secret, threshold=2, holders=3, key=key_of(1)))
    assert not np.array_equal(first, share_vector(secret, threshold=2, holders=3, key=key_of(2)))


# --- checked reconstruction: naming and excluding wrong holders -------------------------------

def _corrupt(shares: dict[int, np.ndarray], holders: list[int], rng: np.random.Generator) -> None:
    for j in holders:
        vector = shares[j].copy()
        where = rng.integers(0, vector.size)
        vector[where] = (int(vector[where]) + int(rng.integers(1, P))) % P
        shares[j] = vector


@settings(max_examples=25, deadline=None)
@given(threshold_and_holders, dimensions, st.integers(min_value=0, max_value=2**32), st.data())
def test_up_to_half_the_redundancy_wrong_holders_are_named_and_excluded(tn, d, seed, data) -> None:
    threshold, holders = tn
    rng = np.random.default_rng(seed)
    secret = random_secret(rng, d)
    shares = rows_of(share_vector(secret, threshold=threshold, holders=holders, key=key_of(seed)),
                     list(range(1, holders + 1)))
    correctable = (holders - threshold) // 2
    wrong = data.draw(st.lists(st.integers(1, holders), max_size=correctable, unique=True))
    _corrupt(shares, wrong, rng)
    result = reconstruct_checked(shares, threshold=threshold, key=key_of(seed + 1))
    assert np.array_equal(result.secret, secret)
    assert result.excluded_holders == tuple(sorted(wrong))
    assert len(result.used_holders) == threshold
    assert not set(result.used_holders) & set(wrong)


@settings(max_examples=15, deadline=None)
@given(threshold_and_holders.filter(lambda tn: tn[1] > tn[0]), st.sampled_from([1, 13, 2_053]),
       st.integers(min_value=0, max_value=2**32), st.data())
def test_more_wrong_holders_than_correctable_raise_instead_of_a_wrong_secret(tn, d, seed, data) -> None:
    threshold, holders = tn
    rng = np.random.default_rng(seed)
    secret = random_secret(rng, d)
    shares = rows_of(share_vector(secret, threshold=threshold, holders=holders, key=key_of(seed)),
                     list(range(1, holders + 1)))
    too_many = (holders - threshold) // 2 + 1
    wrong = data.draw(st.lists(st.integers(1, holders), min_size=too_many,
                               max_size=min(holders, too_many + 2), unique=True))
    _corrupt(shares, wrong, rng)
    with pytest.raises(InconsistentShares):
        reconstruct_checked(shares, threshold=threshold, key=key_of(seed + 1))


def test_one_wrong_coordinate_in_a_long_share_vector_is_found() -> None:
    secret = random_secret(np.random.default_rng(4), 200_000)
    all_shares = share_vector(secret, threshold=3, holders=6, key=key_of(4))
    shares = rows_of(all_shares, [1, 2, 3, 4, 5, 6])
    shares[4] = all_shares[3].copy()
    shares[4][123_456] ^= np.uint64(1)
    result = reconstruct_checked(shares, threshold=3, key=key_of(5))
    assert result.excluded_holders == (4,)
    assert np.array_equal(result.secret, secret)


def test_a_wrong_share_that_cannot_be_located_is_reported_without_holders() -> None:
    shares = rows_of(share_vector(np.arange(5, dtype=np.uint64), threshold=3, holders=4, key=key_of(6)),
                     [1, 2, 3, 4])
    shares[2] = shares[2] + np.uint64(1)
    with pytest.raises(InconsistentShares) as raised:
        reconstruct_checked(shares, threshold=3, key=key_of(7))
    assert raised.value.holders == ()
    assert not shamir.is_consistent(shares, threshold=3, key=key_of(7))


def test_consistent_shares_are_reported_consistent() -> None:
    shares = rows_of(share_vector(np.arange(5, dtype=np.uint64), threshold=3, holders=6, key=key_of(8)),
                     [1, 2, 4, 6])
    assert shamir.is_consistent(shares, threshold=3, key=key_of(9))
    result = reconstruct_checked(shares, threshold=3, key=key_of(9))
    assert result.excluded_holders == () and result.used_holders == (1, 2, 4)


def test_all_255_holders_decode_with_the_largest_correctable_number_of_errors() -> None:
    secret = random_secret(np.random.default_rng(10), 3)
    shares = rows_of(share_vector(secret, threshold=5, holders=255, key=key_of(10)), list(range(1, 256)))
    wrong = list(range(3, 255, 2))[:125]  # floor((255 - 5) / 2) = 125
    _corrupt(shares, wrong, np.random.default_rng(11))
    result = reconstruct_checked(shares, threshold=5, key=key_of(12))
    assert result.excluded_holders == tuple(wrong)
    assert np.array_equal(result.secret, secret)


# --- refusing bad input with errors that say what to change -----------------------------------

@pytest.mark.parametrize(
    ("threshold", "holders", "match"),
    [(1, 3, "threshold must be"), (4, 3, "holders must be"), (2, 256, "holders must be"),
     (True, 3, "threshold must be"), (2.0, 3, "threshold must be")],
)
def test_share_vector_refuses_out_of_range_parameters(threshold, holders, match) -> None:
    with pytest.raises(ConfigError, match=match):
        share_vector(np.zeros(3, np.uint64), threshold=threshold, holders=holders, key=key_of(1))


def test_share_vector_refuses_a_key_that_is_not_32_bytes() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        share_vector(np.zeros(3, np.uint64), threshold=2, holders=3, key=b"short")


def test_share_vector_refuses_secrets_outside_the_field_or_of_the_wrong_type() -> None:
    with pytest.raises(ShareError, match="values >= p"):
        share_vector(np.array([1, P], np.uint64), threshold=2, holders=3, key=key_of(1))
    with pytest.raises(InvalidShare, match="uint64"):
        share_vector(np.zeros(3, np.float32), threshold=2, holders=3, key=key_of(1))
    with pytest.raises(InvalidShare, match="one-dimensional"):
        share_vector(np.zeros((2, 2), np.uint64), threshold=2, holders=3, key=key_of(1))


def test_reconstruction_refuses_malformed_shares() -> None:
    good = np.zeros(4, dtype=np.uint64)
    with pytest.raises(InvalidShare, match="differ in length"):
        reconstruct_at_zero({1: good, 2: np.zeros(5, np.uint64)})
    with pytest.raises(InvalidShare, match="holder index"):
        reconstruct_at_zero({0: good, 2: good})
    with pytest.raises(InvalidShare, match="holder index"):
        reconstruct_at_zero({256: good, 2: good})
    with pytest.raises(InvalidShare, match=r"holders \[2\] have values >= p"):
        reconstruct_at_zero({1: good, 2: np.array([0, 0, P, 0], np.uint64)})
    with pytest.raises(InvalidShare, match=r"holders \[3\] have values >= p"):
        reconstruct_checked({1: good, 2: good, 3: np.full(4, P, np.uint64)}, threshold=2, key=key_of(1))
    with pytest.raises(NotEnoughShares, match="no shares"):
        reconstruct_at_zero({})


def test_checked_reconstruction_refuses_fewer_shares_than_the_threshold() -> None:
    shares = rows_of(share_vector(np.arange(3, dtype=np.uint64), threshold=4, holders=5, key=key_of(1)),
                     [1, 2, 3])
    with pytest.raises(NotEnoughShares, match="3 shares given, threshold is 4"):
        reconstruct_checked(shares, threshold=4, key=key_of(2))


def test_projection_vector_is_in_the_field_and_depends_on_the_key() -> None:
    first = uniform_field_elements(key_of(1), 1000, label=b"x")
    assert field.is_field_array(first)
    assert np.array_equal(first, uniform_field_elements(key_of(1), 1000, label=b"x"))
    assert not np.array_equal(first, uniform_field_elements(key_of(1), 1000, label=b"y"))
