"""The wrap-around check's arithmetic (fedtss.wraparound): an honest update proves its projections
small and every member's values check out; crafted wraps of two families (a few coordinates at
p / 2, many medium coordinates whose squares sum to 1 mod p) cannot, and a client that lies in its
bits fails the relation while one that makes the relation hold with non-bits fails the bit check."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from fedtss._reed_solomon import decode, evaluate
from fedtss.errors import ConfigError, FormatError
from fedtss.field import MODULUS
from fedtss.quantize import QuantizationConfig
from fedtss.shamir import share_vector
from fedtss.validation import read_norm_claims
from tests.fedtss.test_validation import _solve, _through  # the norm masks' test, reused for the bit check's
from fedtss.wraparound import (
    PROJECTIONS,
    WrapBounds,
    bit_check_value,
    bit_check_weights,
    bits_seed,
    claim_bit_check_values,
    client_projections,
    metric_range_bits,
    projection_bits,
    projection_seed,
    projection_words,
    proof_vector,
    read_bit_claims,
    relation_gamma,
    relation_tables,
    relation_value,
)

QUANTIZATION = QuantizationConfig(clip_norm=10.0, fractional_bits=16, max_clients=100, max_samples=1000)
N, T = 5, 3
CONTRACT = "0x" + "11" * 20
CLIENT = "0x" + "22" * 20


def seed_for(attempt: int) -> bytes:
    """A client's seed after sealing (its CIDs differ at every attempt)."""
    return projection_seed(chain_id=31337, contract=CONTRACT, round_=4, client=CLIENT,
                           share_cids=[f"bafy-attempt-{attempt}-member-{j}" for j in range(1, N + 1)])


def to_field(values: np.ndarray) -> np.ndarray:
    return (np.asarray(values, dtype=object) % MODULUS).astype(np.uint64)


def honest_update(d: int, rng: np.random.Generator, *, concentrated: bool = False) -> np.ndarray:
    """A quantized update exactly at the clip bound (one sample, 2^16 fractional bits)."""
    direction = np.zeros(d) if concentrated else rng.normal(size=d)
    if concentrated:
        direction[rng.integers(d)] = 1.0
    scaled = direction / np.linalg.norm(direction) * QUANTIZATION.clip_norm * 2**QUANTIZATION.fractional_bits
    return to_field(np.round(scaled).astype(np.int64))


def half_wrap(d: int) -> np.ndarray:
    """(p + 1) / 2 in four coordinates: squared norm 4 * (1/4) = 1 mod p."""
    q = np.zeros(d, dtype=np.uint64)
    q[[3, 50, 97, 140]] = (MODULUS + 1) // 2
    return q


def medium_wrap(d: int) -> np.ndarray:
    """2^26 in 512 coordinates: squared norm 512 * 2^52 = 2^61 = 1 mod p, each coordinate ~100x the clip bound."""
    q = np.zeros(d, dtype=np.uint64)
    q[:512] = 2**26
    return q


def squared_norm_mod_p(q: np.ndarray) -> int:
    return sum(int(v) ** 2 for v in q) % MODULUS


def at_zero(values: dict[int, int], k: int) -> tuple[int, tuple[int, ...]]:
    members = sorted(values)
    decoded = decode(members, [values[j] for j in members], k)
    return evaluate(decoded.polynomial, 0), tuple(decoded.error_points)


class Proof:
    """A client's whole proof as the agents will build it: shares of q, the bits, the claims."""

    def __init__(self, update: np.ndarray, bounds: WrapBounds, *, attempt: int = 0, bits: np.ndarray | None = None,
                 metrics: np.ndarray | None = None, range_bits: np.ndarray | None = None):
        self.seed = seed_for(attempt)
        self.words = projection_words(self.seed, bounds.update)
        self.projections = client_projections(update, self.words)
        self.metrics = np.zeros(0, dtype=np.uint64) if metrics is None else metrics
        if bits is None:
            bits = projection_bits(self.projections, bounds)
        if range_bits is None:
            range_bits = metric_range_bits(self.metrics, bounds)
        masks = [int(v) for v in np.frombuffer(os.urandom(8 * (T - 1)), dtype=np.uint64) % np.uint64(MODULUS)]
        self.update_shares = share_vector(np.concatenate([update, self.metrics]), threshold=T, holders=N,
                                          key=os.urandom(32))
        self.proof_shares = share_vector(proof_vector(np.concatenate([bits, range_bits]), masks), threshold=T,
                                         holders=N, key=os.urandom(32))
        self.weights = bit_check_weights(bits_seed(self.seed, [f"bafy-bits-{j}" for j in range(N)]), bounds)
        self.claims = claim_bit_check_values(self.proof_shares, self.weights, threshold=T)
        self.bounds = bounds

    def relation_values(self, tables) -> dict[int, int]:
        d = self.bounds.update
        return {j: relation_value(self.update_shares[j - 1][:d], self.proof_shares[j - 1], self.words, tables,
                                  self.update_shares[j - 1][d:] if self.bounds.metrics else None)
                for j in range(1, N + 1)}

    def bit_check_values(self) -> dict[int, int]:
        return {j: bit_check_value(self.proof_shares[j - 1], self.weights, j, threshold=T) for j in range(1, N + 1)}


@pytest.fixture(scope="module")
def bounds() -> WrapBounds:
    return WrapBounds.of(QUANTIZATION, update=600)


@pytest.fixture(scope="module")
def tables(bounds):
    return relation_tables(relation_gamma(hashlib.sha256(b"a block that closed collection").digest()), bounds)


def test_the_bounds_leave_honest_projections_ten_norms_of_room_and_a_wrap_far_below_p(bounds):
    largest_honest_norm = QUANTIZATION.clip_norm * 2**QUANTIZATION.fractional_bits
    assert bounds.bound >= 10 * largest_honest_norm
    assert 2 * bounds.bound < 2**bounds.bits
    assert (8 * 2**bounds.bits) ** 2 < MODULUS
    assert bounds.bit_count == PROJECTIONS * bounds.bits


def test_bounds_refuse_a_clip_bound_too_wide_to_tell_a_wrap_and_name_what_to_lower():
    with pytest.raises(ConfigError, match="lower clip_norm or fractional_bits"):
        WrapBounds.of(QuantizationConfig(clip_norm=1000.0, fractional_bits=16, max_clients=10, max_samples=10),
                      update=100)


def test_the_table_kernel_equals_the_gamma_weighted_ternary_projections(bounds, tables):
    rng = np.random.default_rng(7)
    words = rng.integers(0, 2**64, bounds.update, dtype=np.uint64)
    share = rng.integers(0, MODULUS, bounds.update, dtype=np.uint64)
    proof = rng.integers(0, MODULUS, bounds.bit_count + T - 1, dtype=np.uint64)
    gamma = tables.bit_weights[0]  # gamma^1 * 2^0
    expected_projection = 0
    for k in range(1, PROJECTIONS + 1):
        c = [int(w >> np.uint64(k) & np.uint64(1)) - int(w & np.uint64(1)) for w in words]
        expected_projection += pow(int(gamma), k, MODULUS) * sum(ci * int(s) for ci, s in zip(c, share))
    expected_bits = sum(pow(int(gamma), k, MODULUS) * 2**i * int(proof[(k - 1) * bounds.bits + i])
                        for k in range(1, PROJECTIONS + 1) for i in range(bounds.bits))
    gamma_total = sum(pow(int(gamma), k, MODULUS) for k in range(1, PROJECTIONS + 1))
    expected = (expected_bits - bounds.bound * gamma_total - expected_projection) % MODULUS
    assert relation_value(share, proof, words, tables) == expected


def test_client_projections_are_the_ternary_projections_of_the_centred_update_in_the_integers():
    rng = np.random.default_rng(3)
    signed = rng.integers(-2**20, 2**20, 5000)
    words = rng.integers(0, 2**64, 5000, dtype=np.uint64)
    got = client_projections(to_field(signed), words)
    bit = lambda k: ((words >> np.uint64(k)) & np.uint64(1)).astype(np.int64)  # noqa: E731
    expected = [int(np.sum((bit(k) - bit(0)) * signed)) for k in range(1, PROJECTIONS + 1)]
    assert got.tolist() == expected


@pytest.mark.parametrize("concentrated", [False, True], ids=["spread", "one-coordinate"])
def test_an_honest_update_at_its_clip_bound_proves_every_projection_for_every_seed(bounds, concentrated):
    rng = np.random.default_rng(11)
    for attempt in range(30):
        update = honest_update(bounds.update, rng, concentrated=concentrated)
        projections = client_projections(update, projection_words(seed_for(attempt), bounds.update))
        bits = projection_bits(projections, bounds)
        assert set(bits.tolist()) <= {0, 1}
        assert int(np.max(np.abs(projections))) <= bounds.bound


def test_an_honest_clients_relations_and_bits_check_out_at_every_member(bounds, tables):
    proof = Proof(honest_update(bounds.update, np.random.default_rng(5)), bounds)
    value, wrong = at_zero(proof.relation_values(tables), T)
    assert (value, wrong) == (0, ())
    assert read_bit_claims(proof.claims, T)
    assert proof.bit_check_values() == dict(enumerate(proof.claims, start=1))


@pytest.mark.parametrize("make_wrap", [half_wrap, medium_wrap], ids=["half", "medium"])
def test_a_crafted_wrap_passes_the_norm_check_mod_p_but_cannot_prove_its_projections(bounds, make_wrap):
    update = make_wrap(bounds.update)
    assert squared_norm_mod_p(update) == 1  # what the norm check alone sees: a tiny norm
    out_of_range = []
    for attempt in range(40):  # every re-sealing gives the client new projections
        projections = client_projections(update, projection_words(seed_for(attempt), bounds.update))
        outside = int(np.sum((projections + bounds.bound < 0) | (projections + bounds.bound >= 2**bounds.bits)))
        out_of_range.append(outside)
        with pytest.raises(ConfigError, match="exceeds its clip bound"):
            projection_bits(projections, bounds)
    # about half of the 63 projections of the half wrap, nearly all of the medium one's, are out of range
    assert min(out_of_range) >= 15


def test_a_wrap_whose_client_shares_in_range_bits_it_did_not_compute_fails_the_relation(bounds, tables):
    update = half_wrap(bounds.update)
    lying_bits = projection_bits(np.zeros(PROJECTIONS, dtype=np.int64), bounds)  # claims every y_k = 0
    proof = Proof(update, bounds, bits=lying_bits)
    assert read_bit_claims(proof.claims, T)  # they are bits
    value, wrong = at_zero(proof.relation_values(tables), T)
    assert wrong == () and value != 0  # consistent shares of a non-zero relation: the count check fails


def test_a_wrap_that_makes_the_relation_hold_with_non_bits_fails_the_bit_check(bounds, tables):
    update = half_wrap(bounds.update)
    words = projection_words(seed_for(0), bounds.update)
    projections = client_projections(update, words)
    # the lowest "bit" of each z_k holds all of y_k + B mod p: the relations hold exactly
    fake = np.zeros(bounds.projection_bit_count, dtype=np.uint64)
    for k, y in enumerate(projections):
        fake[k * bounds.bits] = (int(y) + bounds.bound) % MODULUS
    proof = Proof(update, bounds, bits=fake)
    assert at_zero(proof.relation_values(tables), T) == (0, ())
    assert not read_bit_claims(proof.claims, T)  # honest claims of its values: not zero at 0
    # claims forged onto a polynomial that is zero at 0 meet the members' real values at <= 2t - 2 points
    forged = [(value - read_norm_claims(proof.claims, T)) % MODULUS for value in proof.claims]
    assert read_bit_claims(forged, T)
    real = proof.bit_check_values()
    assert sum(real[j] == forged[j - 1] for j in real) <= 2 * T - 2


def test_the_seeds_bind_every_cid_and_the_round(bounds):
    base = dict(chain_id=31337, contract=CONTRACT, round_=4, client=CLIENT, share_cids=["a", "b", "c"])
    seed = projection_seed(**base)
    assert projection_seed(**base) == seed
    for change in ({"share_cids": ["a", "b", "d"]}, {"share_cids": ["ab", "", "c"]}, {"round_": 5},
                   {"client": "0x" + "33" * 20}, {"chain_id": 1}):
        assert projection_seed(**{**base, **change}) != seed
    assert bits_seed(seed, ["x"]) != bits_seed(seed, ["y"])
    assert np.array_equal(projection_words(seed, 10), projection_words(seed, 10))


def test_a_share_with_values_outside_the_field_is_the_clients_format_error(bounds, tables):
    words = projection_words(seed_for(0), bounds.update)
    share = np.zeros(bounds.update, dtype=np.uint64)
    share[9] = MODULUS
    with pytest.raises(FormatError):
        relation_value(share, np.zeros(bounds.bit_count, dtype=np.uint64), words, tables)
    proof = np.zeros(bounds.bit_count + T - 1, dtype=np.uint64)
    proof[0] = MODULUS + 5
    with pytest.raises(FormatError):
        bit_check_value(proof, bit_check_weights(seed_for(0), bounds), 1, threshold=T)


def test_a_wrap_of_small_coordinates_spreads_its_projections_far_beyond_the_window():
    """Case (b) of the module docstring: every coordinate below 2^l (2^23 < 2^24) but 2^15 of them,
    so the squared norm is 2^61 = 1 mod p; no coordinate alone leaves the window, yet the projections
    spread over ~sqrt(p) and nearly all land outside it."""
    d = 2**15
    bounds = WrapBounds.of(QUANTIZATION, update=d)
    update = np.full(d, 2**23, dtype=np.uint64)
    assert squared_norm_mod_p(update) == 1 and 2**23 < 2**bounds.bits
    inside = []
    for attempt in range(20):
        projections = client_projections(update, projection_words(seed_for(attempt), d))
        inside.append(int(np.sum((projections + bounds.bound >= 0) & (projections + bounds.bound < 2**bounds.bits))))
        with pytest.raises(ConfigError, match="exceeds its clip bound"):
            projection_bits(projections, bounds)
    assert sum(inside) <= 20 * 63 // 8  # far below the 0.24 per projection the docstring proves


def _second_bits_fit(t: int, n: int, *, masked: bool) -> bool:
    """Whether t - 1 colluders' proof shares plus every member's public bit-check claim fit a second
    bit vector as well as the true one: solve for the masks of a dealing that gives the coalition
    the very same shares (the test of fedtss.validation's norm masks, for the bit check)."""
    bits = [1, 0, 1, 1, 0, 0, 1, 0]
    other = bits[::-1]  # also bits, another vector
    weights = np.array([int.from_bytes(os.urandom(8), "big") % MODULUS for _ in bits], dtype=np.uint64)
    masks = [int.from_bytes(os.urandom(16), "big") % MODULUS for _ in range(t - 1)] if masked else [0] * (t - 1)
    shares = share_vector(proof_vector(np.array(bits, dtype=np.uint64), masks), threshold=t, holders=n,
                          key=os.urandom(32))
    posted = {j: bit_check_value(shares[j - 1], weights, j, threshold=t) for j in range(1, n + 1)}
    coalition = range(1, t)

    def other_share(j: int, new_masks: list[int]) -> np.ndarray:
        values = other + new_masks
        return np.array([_through({c: int(shares[c - 1, k]) for c in coalition}, values[k], j)
                         for k in range(len(values))], dtype=np.uint64)

    def value(j: int, new_masks: list[int]) -> int:
        return bit_check_value(other_share(j, new_masks), weights, j, threshold=t)

    if not masked:
        return all(value(j, [0] * (t - 1)) == posted[j] for j in range(1, n + 1))
    outside = list(range(t, n + 1))
    base = {j: value(j, [0] * (t - 1)) for j in outside}
    unit = {(j, i): (value(j, [int(i == k) for k in range(t - 1)]) - base[j]) % MODULUS
            for j in outside for i in range(t - 1)}
    pick = outside[: t - 1]
    solved = _solve([[unit[j, i] for i in range(t - 1)] for j in pick], [(posted[j] - base[j]) % MODULUS for j in pick])
    return all(value(j, solved) == posted[j] for j in range(1, n + 1))


@pytest.mark.parametrize(("n", "t"), [(5, 3), (7, 4), (11, 6)])
def test_the_bit_check_claims_and_t_minus_1_proof_shares_fit_any_other_bit_vector(n: int, t: int) -> None:
    """What the public bit-check claims tell t - 1 colluders about the bits (hence the projections)
    is nothing: for another bit vector there are masks, under a dealing that gives the coalition the
    very same proof shares, for which every member's value is the very same."""
    assert _second_bits_fit(t, n, masked=True)


@pytest.mark.parametrize(("n", "t"), [(5, 3), (11, 6)])
def test_control_without_the_bit_check_masks_the_claims_tell_two_bit_vectors_apart(n: int, t: int) -> None:
    assert not _second_bits_fit(t, n, masked=False)


def test_warm_up_compiles_the_kernels_an_agent_would_otherwise_compile_inside_its_first_round() -> None:
    from fedtss import _kernels
    from fedtss.wraparound import warm_up

    warm_up(member=True)
    assert _kernels._ternary_projections.signatures and _kernels._table_projection.signatures


#: clip_norm 1 at 2 fractional bits: C = 4, and m + C, C - m take 4 bits (2^4 > 2C).
SMALL = QuantizationConfig(clip_norm=1.0, fractional_bits=2, max_clients=10, max_samples=10)


def _metric_relation_at_zero(bounds: WrapBounds, tables, metric: int, a: int, b: int) -> int:
    """The relation's value at 0 (on the secrets: it is linear) for an honest update of zeros and one
    metric ``metric`` (a field element) whose range bits are those of ``a`` and ``b``."""
    update = np.zeros(bounds.update, dtype=np.uint64)
    words = projection_words(seed_for(0), bounds.update)
    projection = projection_bits(client_projections(update, words), bounds)
    ranges = [(value >> i) & 1 for value in (a, b) for i in range(bounds.metric_bits)]
    bits = np.concatenate([projection, np.array(ranges, dtype=np.uint64)])
    return relation_value(update, bits, words, tables, np.array([metric], dtype=np.uint64))


def test_a_metric_passes_its_range_relations_with_some_bits_exactly_when_it_is_within_the_clip_bound():
    """The whole class, exhaustively for C = 4: for every metric from -12 to 12 and two wrapped ones,
    every pair of 4-bit values the client could share; the relations hold for exactly one pair when
    |m| <= C (m + C and C - m) and for none otherwise."""
    bounds = WrapBounds.of(SMALL, update=50, metrics=1)
    assert (bounds.metric_bound, bounds.metric_bits) == (4, 4)
    tables = relation_tables(relation_gamma(hashlib.sha256(b"metrics").digest()), bounds)
    for metric in [*range(-12, 13), (MODULUS + 1) // 2, MODULUS // 3]:
        passing = [(a, b) for a in range(16) for b in range(16)
                   if _metric_relation_at_zero(bounds, tables, metric % MODULUS, a, b) == 0]
        assert passing == ([(metric + 4, 4 - metric)] if -4 <= metric <= 4 else []), metric


def test_an_honest_clients_metrics_at_the_clip_bound_prove_their_ranges_and_every_relation_holds(bounds):
    bounds = WrapBounds.of(QUANTIZATION, update=bounds.update, metrics=3)
    tables = relation_tables(relation_gamma(hashlib.sha256(b"metrics").digest()), bounds)
    metrics = to_field(np.array([-bounds.metric_bound, 0, bounds.metric_bound]))
    assert bounds.metric_bound == QUANTIZATION.clip_norm * 2**QUANTIZATION.fractional_bits
    proof = Proof(honest_update(bounds.update, np.random.default_rng(5)), bounds, metrics=metrics)
    assert at_zero(proof.relation_values(tables), T) == (0, ())
    assert read_bit_claims(proof.claims, T)
    with pytest.raises(ConfigError, match="metrics must be clipped"):
        metric_range_bits(to_field(np.array([0, bounds.metric_bound + 1, 0])), bounds)


def test_a_metric_beyond_the_clip_bound_that_makes_its_relations_hold_with_non_bits_fails_the_bit_check(bounds):
    bounds = WrapBounds.of(QUANTIZATION, update=bounds.update, metrics=1)
    tables = relation_tables(relation_gamma(hashlib.sha256(b"metrics").digest()), bounds)
    metric = 1000 * bounds.metric_bound
    ranges = np.zeros(2 * bounds.metric_bits, dtype=np.uint64)
    ranges[0] = metric + bounds.metric_bound  # a = m + C in its lowest "bit"
    ranges[bounds.metric_bits] = (bounds.metric_bound - metric) % MODULUS  # b = C - m, a field element
    proof = Proof(honest_update(bounds.update, np.random.default_rng(6)), bounds,
                  metrics=to_field(np.array([metric])), range_bits=ranges)
    assert at_zero(proof.relation_values(tables), T) == (0, ())
    assert not read_bit_claims(proof.claims, T)


@pytest.mark.parametrize(("clip_norm", "fractional_bits"), [(10.0, 16), (1.5, 0), (2.5, 0), (0.3, 3)])
def test_a_metric_clipped_by_an_honest_client_lands_within_the_proved_bound_whatever_the_rounding(
        clip_norm: float, fractional_bits: int) -> None:
    """quantize_metrics clips to +-clip_norm and rounds half to even; the bound rounds the same way,
    so a metric at the clip bound lands exactly on +-C (1.5 -> 2, 2.5 -> 2) and proves its range."""
    from fedtss.quantize import quantize_metrics

    quantization = QuantizationConfig(clip_norm=clip_norm, fractional_bits=fractional_bits, max_clients=10,
                                      max_samples=10)
    bounds = WrapBounds.of(quantization, update=4, metrics=4)
    values = quantize_metrics([clip_norm, -clip_norm, 1e9, -1e9], 1, quantization)
    centred = [int(v) - MODULUS if int(v) > MODULUS // 2 else int(v) for v in values]
    assert centred == [bounds.metric_bound, -bounds.metric_bound, bounds.metric_bound, -bounds.metric_bound]
    assert metric_range_bits(values, bounds).size == 2 * 4 * bounds.metric_bits
