"""Masked aggregation: exact sums over any fixed client set, what the public view hides, seeds.

The privacy tests look at what an outsider holds once a round is over (every masked vector and
every seed :func:`seeds_to_reveal` names) and check that one included client's residual is
uniform whatever its update; the controls reveal one seed too many and must fail. What t - 1
members hold of the seeds are Shamir shares (:func:`share_seeds` is :func:`share_vector` of the
seed limbs), whose privacy ``tests/fedtss/test_shamir.py`` checks.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fedtss import field, masking
from fedtss.errors import ConfigError, FormatError, InconsistentShares, ShareError
from fedtss.masking import (
    MODULUS_BITS_CHOICES,
    PairContext,
    SeedRef,
    decode_ring_vector,
    encode_ring_vector,
    field_to_ring,
    mask_update,
    pairwise_seed,
    reconstruct_seeds,
    ring_to_field,
    ring_vector_bytes,
    seed_order,
    seeds_to_reveal,
    select_seed_shares,
    share_seeds,
    unmask_sum,
)
from fedtss.quantize import QuantizationConfig, check_capacity, quantize_update
from fedtss.sealing import keypair_from_seed
from fedtss.shamir import share_vector

P = field.MODULUS
CONTEXT = PairContext(chain_id=31337, contract="0x" + "ab" * 20, round=4)


def seeded(seed: int) -> bytes:
    return np.random.default_rng(seed).bytes(32)


class Federation:
    """N clients with registered keys, masking one round; a pure stand-in for the agents."""

    def __init__(self, clients: int, *, bits: int, threshold: int = 3, holders: int = 5, seed: int = 0) -> None:
        self.clients, self.bits, self.threshold, self.holders = list(range(clients)), bits, threshold, holders
        self.keys = [keypair_from_seed(seeded(1000 * seed + i)) for i in self.clients]
        self.self_seeds = [seeded(1000 * seed + 500 + i) for i in self.clients]

    def pairs(self, own: int) -> dict[int, bytes]:
        return {peer: pairwise_seed(self.keys[own][0], self.keys[peer][1], own_index=own, peer_index=peer,
                                    context=CONTEXT) for peer in self.clients if peer != own}

    def mask(self, own: int, update: np.ndarray) -> np.ndarray:
        return mask_update(update, bits=self.bits, own_index=own, self_seed=self.self_seeds[own],
                           pairwise_seeds=self.pairs(own))

    def seed_shares(self, own: int) -> tuple[list[SeedRef], np.ndarray]:
        order = seed_order(own, self.clients)
        pairs = self.pairs(own)
        seeds = [self.self_seeds[own], *(pairs[ref.peer] for ref in order[1:])]
        return order, share_seeds(seeds, threshold=self.threshold, holders=self.holders, key=seeded(7000 + own))

    def reveals(self, included: list[int]) -> tuple[list[SeedRef], dict[int, np.ndarray]]:
        """Each member's shares of exactly the seeds to reveal, concatenated in their order."""
        refs = seeds_to_reveal(included, self.clients)
        shared = {client: self.seed_shares(client) for client in included}
        reveals = {}
        for member in range(1, self.holders + 1):
            parts = [select_seed_shares(shared[ref.client][1][member - 1], shared[ref.client][0], [ref])
                     for ref in refs]
            reveals[member] = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
        return refs, reveals

    def true_seed(self, ref: SeedRef) -> bytes:
        return self.self_seeds[ref.client] if ref.is_self else self.pairs(ref.client)[ref.peer]


def ring_sum(vectors: list[np.ndarray], bits: int) -> np.ndarray:
    total = np.zeros_like(vectors[0])
    for vector in vectors:
        total += vector
    return total & np.uint64((1 << bits) - 1)


def field_sum(vectors: list[np.ndarray]) -> np.ndarray:
    total = np.zeros_like(vectors[0])
    for vector in vectors:
        total = field.add(total, vector)
    return total


# -- exact aggregation -------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=2, max_value=6), st.sampled_from(MODULUS_BITS_CHOICES), st.data())
def test_unmasking_the_sum_over_any_fixed_set_gives_the_exact_sum_of_its_updates(clients, bits, data) -> None:
    federation = Federation(clients, bits=bits, seed=data.draw(st.integers(0, 10**6)))
    included = sorted(data.draw(st.sets(st.sampled_from(federation.clients), min_size=1)))
    config = QuantizationConfig(clip_norm=1.0, fractional_bits=16, max_clients=8, max_samples=50)
    check_capacity(config, modulus_bits=bits)
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    quantized = [quantize_update(rng.normal(size=300).astype(np.float32), int(rng.integers(1, 51)), config)
                 for _ in federation.clients]
    masked = [federation.mask(i, field_to_ring(quantized[i], bits)) for i in federation.clients]
    refs, reveals = federation.reveals(included)
    seeds, reconstruction = reconstruct_seeds(reveals, threshold=3, key=os.urandom(32)) if refs else ([], None)
    assert seeds == [federation.true_seed(ref) for ref in refs]
    total = unmask_sum(ring_sum([masked[i] for i in included], bits), bits=bits, seeds=dict(zip(refs, seeds)))
    assert np.array_equal(ring_to_field(total, bits), field_sum([quantized[i] for i in included]))


def test_members_down_up_to_n_minus_t_do_not_stop_the_seeds_from_being_rebuilt() -> None:
    federation = Federation(4, bits=48, threshold=3, holders=5)
    refs, reveals = federation.reveals([0, 2, 3])  # client 1 absent after registering
    up = {member: reveals[member] for member in (2, 4, 5)}  # members 1 and 3 down
    seeds, reconstruction = reconstruct_seeds(up, threshold=3, key=os.urandom(32))
    assert seeds == [federation.true_seed(ref) for ref in refs]
    assert SeedRef(0, 1) in refs and SeedRef(1) not in refs


def test_a_member_revealing_wrong_seed_shares_is_named_and_the_seeds_still_come_out_right() -> None:
    federation = Federation(3, bits=48, threshold=3, holders=5)
    refs, reveals = federation.reveals([0, 1])
    reveals[4] = reveals[4].copy()
    reveals[4][3] = (reveals[4][3] + np.uint64(1)) % np.uint64(P)
    seeds, reconstruction = reconstruct_seeds(reveals, threshold=3, key=os.urandom(32))
    assert reconstruction.excluded_holders == (4,)
    assert seeds == [federation.true_seed(ref) for ref in refs]


def test_seed_shares_off_one_polynomial_are_refused_not_turned_into_a_seed() -> None:
    # A client that sends members unrelated seed shares: no polynomial within the correctable
    # errors fits, so reconstruction raises and the client can be named (never a wrong mask).
    bad = {member: share_seeds([os.urandom(32)], threshold=3, holders=5, key=os.urandom(32))[member - 1]
           for member in range(1, 6)}
    with pytest.raises(InconsistentShares):
        reconstruct_seeds(bad, threshold=3, key=os.urandom(32))


def test_limbs_that_are_no_seeds_are_read_as_some_seed_so_one_client_cannot_fail_the_reconstruction() -> None:
    # A client sharing limbs of 56 bits or more (and non-zero padding) must not make every
    # honest member's reconstruction raise: that would let one client fail every round.
    limbs = np.array([(1 << 60) + 7, (1 << 58) + 1, 2, 3, (1 << 57) + 0xFF], dtype=np.uint64)
    shares = share_vector(limbs, threshold=2, holders=3, key=os.urandom(32))
    (seed,), _ = reconstruct_seeds({j: shares[j - 1] for j in (1, 2, 3)}, threshold=2, key=os.urandom(32))
    low = b"".join(int(limb % (1 << 56)).to_bytes(7, "little") for limb in limbs)
    assert seed == low[:masking.SEED_BYTES]


@given(seeds=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=4))
def test_any_seeds_come_back_from_their_limbs_unchanged(seeds: list[bytes]) -> None:
    shares = share_seeds(seeds, threshold=2, holders=3, key=b"\x01" * 32)
    assert reconstruct_seeds({j: shares[j - 1] for j in (1, 3)}, threshold=2, key=b"\x02" * 32)[0] == seeds


def test_share_seeds_is_shamir_sharing_of_the_seed_limbs() -> None:
    seeds, key = [seeded(1), seeded(2)], seeded(3)
    limbs = masking._seeds_to_limbs(seeds)
    assert limbs.size == 2 * masking.LIMBS_PER_SEED and int(limbs.max()) < 1 << 56
    assert np.array_equal(share_seeds(seeds, threshold=3, holders=5, key=key),
                          share_vector(limbs, threshold=3, holders=5, key=key))
    assert masking._limbs_to_seeds(limbs) == seeds


# -- what is revealed ----------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.sets(st.integers(0, 9), min_size=1, max_size=10), st.data())
def test_no_client_ever_has_both_its_self_seed_and_a_pair_inside_the_set_revealed(clients, data) -> None:
    included = data.draw(st.sets(st.sampled_from(sorted(clients))))
    refs = seeds_to_reveal(included, clients)
    revealed_self = {ref.client for ref in refs if ref.is_self}
    assert revealed_self == set(included)
    for ref in refs:
        if not ref.is_self:
            assert ref.client in included and ref.peer not in included


def test_seeds_to_reveal_refuses_an_included_client_outside_the_client_set() -> None:
    with pytest.raises(ConfigError, match=r"\[7\]"):
        seeds_to_reveal([1, 7], [0, 1, 2])


def _public_residual(federation: Federation, target: int, update: np.ndarray, included: list[int],
                     revealed: list[SeedRef]) -> np.ndarray:
    """What an outsider can strip from ``target``'s masked vector with the revealed seeds."""
    masked = federation.mask(target, update)
    known = {ref: federation.true_seed(ref) for ref in revealed if ref.client == target}
    return unmask_sum(masked, bits=federation.bits, seeds=known)


def _residual_pvalues(target: int, included: list[int], reveal_extra: list[SeedRef]) -> tuple[float, float]:
    """p-values (same distribution for two updates; uniformity) of the target's binned residual."""
    bits, d, bins = 32, 40_000, 16
    federation = Federation(4, bits=bits)
    revealed = seeds_to_reveal(included, federation.clients) + reveal_extra
    counts = []
    for value in (0, 1 << 30):  # two updates a quarter of the ring apart
        update = np.full(d, value, dtype=np.uint64)
        residual = _public_residual(federation, target, update, included, revealed)
        counts.append(np.bincount((residual >> np.uint64(bits - 4)).astype(np.int64), minlength=bins))
    same = stats.chi2_contingency(np.array(counts) + 1).pvalue
    uniform = min(stats.chisquare(histogram).pvalue for histogram in counts)
    return same, uniform


def test_an_included_clients_public_residual_is_uniform_whatever_its_update() -> None:
    same, uniform = _residual_pvalues(target=1, included=[0, 1, 3], reveal_extra=[])
    assert same > 1e-4 and uniform > 1e-4


def test_residual_check_fails_when_a_pair_inside_the_set_is_revealed_too() -> None:
    # Control: revealing client 1's pairs with the other included clients (what an honest
    # member never does) leaves the outsider the update itself.
    same, uniform = _residual_pvalues(target=1, included=[0, 1, 3], reveal_extra=[SeedRef(1, 0), SeedRef(1, 3)])
    assert same < 1e-10 and uniform < 1e-10


def test_an_excluded_clients_masked_vector_stays_uniform_after_the_round() -> None:
    # Client 2 uploaded but is outside the set: its pairs with the included are revealed,
    # its self seed never is.
    same, uniform = _residual_pvalues(target=2, included=[0, 1, 3], reveal_extra=[SeedRef(2, 0), SeedRef(2, 1),
                                                                                   SeedRef(2, 3)])
    assert same > 1e-4 and uniform > 1e-4


def test_residual_check_fails_when_an_excluded_clients_self_seed_is_revealed_too() -> None:
    extra = [SeedRef(2), SeedRef(2, 0), SeedRef(2, 1), SeedRef(2, 3)]
    same, uniform = _residual_pvalues(target=2, included=[0, 1, 3], reveal_extra=extra)
    assert same < 1e-10 and uniform < 1e-10


# -- pairwise seeds ------------------------------------------------------------------------


def test_both_clients_of_a_pair_derive_the_same_seed_and_it_changes_with_round_contract_and_pair() -> None:
    a, b, c = (keypair_from_seed(seeded(i)) for i in (1, 2, 3))
    ab = pairwise_seed(a[0], b[1], own_index=0, peer_index=1, context=CONTEXT)
    assert ab == pairwise_seed(b[0], a[1], own_index=1, peer_index=0, context=CONTEXT)
    others = [
        pairwise_seed(a[0], b[1], own_index=0, peer_index=1, context=PairContext(31337, CONTEXT.contract, 5)),
        pairwise_seed(a[0], b[1], own_index=0, peer_index=1, context=PairContext(1, CONTEXT.contract, 4)),
        pairwise_seed(a[0], b[1], own_index=0, peer_index=1, context=PairContext(31337, "0x" + "cd" * 20, 4)),
        pairwise_seed(a[0], b[1], own_index=0, peer_index=2, context=CONTEXT),
        pairwise_seed(a[0], c[1], own_index=0, peer_index=1, context=CONTEXT),
    ]
    assert len({ab, *others}) == 6 and all(len(seed) == 32 for seed in others)


def test_pairwise_seed_refuses_a_pair_with_itself_and_a_low_order_key() -> None:
    a = keypair_from_seed(seeded(1))
    with pytest.raises(ConfigError, match="itself"):
        pairwise_seed(a[0], a[1], own_index=3, peer_index=3, context=CONTEXT)
    with pytest.raises(FormatError, match="client 2's public key"):
        pairwise_seed(a[0], bytes(32), own_index=1, peer_index=2, context=CONTEXT)


# -- the ring and its capacity -------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(MODULUS_BITS_CHOICES), st.lists(st.integers(-(2**31 - 1), 2**31 - 1), min_size=1, max_size=50))
def test_field_and_ring_encodings_of_a_signed_value_convert_both_ways(bits, values) -> None:
    signed = np.array(values, dtype=np.int64)
    in_field = np.where(signed < 0, signed + P, signed).astype(np.uint64)
    in_ring = field_to_ring(in_field, bits)
    assert np.array_equal(in_ring, (signed.astype(np.uint64) & np.uint64((1 << bits) - 1)) if bits < 64
                          else signed.astype(np.uint64))
    assert np.array_equal(ring_to_field(in_ring, bits), in_field)


def test_capacity_of_a_ring_is_checked_and_the_refusal_names_what_to_lower() -> None:
    small = QuantizationConfig(clip_norm=10.0, fractional_bits=16, max_clients=10, max_samples=200)
    check_capacity(small, modulus_bits=32)
    default = QuantizationConfig(clip_norm=10.0)  # 1,000 clients x 10,000 samples
    check_capacity(default, modulus_bits=48)
    with pytest.raises(ConfigError, match=r"32-bit masked words.*2\^31 - 1.*lower fractional_bits to <= \d+"):
        check_capacity(default, modulus_bits=32)


@pytest.mark.parametrize("bits", [0, 31, 33, 72, True, "48"])
def test_a_ring_size_outside_the_offered_ones_is_refused_naming_them(bits) -> None:
    with pytest.raises(ConfigError, match="32, 40, 48, 56, 64"):
        masking.check_modulus_bits(bits)


# -- the masked vector on the wire ---------------------------------------------------------


@pytest.mark.parametrize("bits", MODULUS_BITS_CHOICES)
def test_a_masked_vector_is_stored_in_bits_over_8_bytes_per_value_and_read_back(bits) -> None:
    values = np.random.default_rng(bits).integers(0, 2**63, size=1001, dtype=np.uint64) & np.uint64(
        (1 << bits) - 1 if bits < 64 else 2**64 - 1)
    blob = encode_ring_vector(values, bits)
    assert len(blob) == ring_vector_bytes(1001, bits) == 16 + 1001 * bits // 8
    assert np.array_equal(decode_ring_vector(blob, bits=bits, expected_length=1001), values)


def test_decoding_refuses_another_width_length_or_a_cut_blob_with_one_line() -> None:
    blob = encode_ring_vector(np.arange(10, dtype=np.uint64), 48)
    with pytest.raises(FormatError, match="6 bytes per value, the deployment says 4"):
        decode_ring_vector(blob, bits=32, expected_length=10)
    with pytest.raises(FormatError, match="length 10, expected 11"):
        decode_ring_vector(blob, bits=48, expected_length=11)
    with pytest.raises(FormatError, match="body is 59 bytes"):
        decode_ring_vector(blob[:-1], bits=48, expected_length=10)
    with pytest.raises(FormatError, match="more than 32 bits"):
        encode_ring_vector(np.array([1 << 40], dtype=np.uint64), 32)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from(MODULUS_BITS_CHOICES))
def test_any_bytes_either_decode_to_the_length_asked_or_raise_format_error(blob, bits) -> None:
    try:
        values = decode_ring_vector(blob, bits=bits, expected_length=3)
    except FormatError:
        return
    assert values.shape == (3,) and (bits == 64 or int(values.max()) < 1 << bits)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 16 + 3 * 5 - 1), st.integers(0, 255))
def test_one_changed_header_byte_never_reads_as_another_valid_vector_of_that_length(position, value) -> None:
    blob = bytearray(encode_ring_vector(np.array([1, 2, 3], dtype=np.uint64), 40))
    original = bytes(blob)
    blob[position] = value
    try:
        decoded = decode_ring_vector(bytes(blob), bits=40, expected_length=3)
    except FormatError:
        return
    assert position >= 16 or bytes(blob) == original  # only value bytes may change the values
    assert decoded.shape == (3,)
