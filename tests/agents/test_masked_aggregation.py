"""The masked mode's agent steps, pure and against a real content store: clients' uploads, a
member's openings and reveals, and the reconstruction of the included clients' exact sum."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from agents.aggregator import CLIENT_FAULTS, Submission, collect_client_shares
from agents.client import MaskingKeys, UpdateContext, prepare_masked_update, prepare_update, quantized_vector
from agents.masked_aggregation import (
    masked_sum_over,
    open_masked_contribution,
    read_masked_vector,
    reconstruct_masked_sum,
    reveal_length,
    reveal_seed_shares,
)
from fedtss import field as gf
from fedtss.cid import compute_cid
from fedtss.errors import FormatError, InconsistentShares
from fedtss.formats import RoundTerms, encode_manifest, parse_manifest
from fedtss.masking import encode_ring_vector, ring_vector_bytes
from fedtss.quantize import QuantizationConfig
from fedtss.sealing import keypair_from_seed
from fedtss.storage import LocalStore

CHAIN, CONTRACT, ROUND = 31337, "0x" + "ab" * 20, 2
N_MEMBERS, THRESHOLD, BITS, D = 5, 3, 48, 200
QUANTIZATION = QuantizationConfig(clip_norm=1.0, max_clients=10, max_samples=100)
MEMBERS = [keypair_from_seed(bytes([100 + j]) * 32) for j in range(N_MEMBERS)]


def client_address(position: int) -> str:
    return "0x" + f"{position + 1:040x}"


class Round:
    """Four allowlisted clients with registered masking keys; the given ones upload."""

    def __init__(self, store: LocalStore, clients: int = 4) -> None:
        self.store, self.clients = store, clients
        self.keys = [keypair_from_seed(bytes([200 + k]) * 32) for k in range(clients)]
        self.terms = RoundTerms(CHAIN, CONTRACT, ROUND, n=N_MEMBERS, t=THRESHOLD, vector_length=D + 1,
                                quantization=QUANTIZATION, modulus_bits=BITS)
        self.vectors: dict[int, np.ndarray] = {}

    def upload(self, position: int, *, seed: int = 0):
        rng = np.random.default_rng(seed + position)
        delta, samples = rng.normal(size=D).astype(np.float32) * 0.1, 10 + position
        self.vectors[position] = quantized_vector(delta, samples, QUANTIZATION)
        prepared = prepare_masked_update(
            delta, samples,
            context=UpdateContext(CHAIN, CONTRACT, ROUND, client_address(position)),
            member_keys=[public for _, public in MEMBERS], threshold=THRESHOLD, quantization=QUANTIZATION,
            masking=MaskingKeys(BITS, position, tuple(public for _, public in self.keys), self.keys[position][0],
                                os.urandom(32)),
            sharing_key=os.urandom(32), ephemeral_seeds=[os.urandom(32) for _ in MEMBERS])
        return prepared

    def publish(self, prepared) -> str:
        for blob in (*prepared.sealed_shares, prepared.masked_blob):
            self.store.put(blob)
        return self.store.put(prepared.manifest_blob)

    def open_all(self, submissions: list[Submission], member: int):
        return collect_client_shares(
            self.store, submissions, self.terms, member_index=member, private_key=MEMBERS[member - 1][0],
            max_blob_bytes=1 << 24, opener=lambda *a, **k: open_masked_contribution(*a, clients=self.clients, **k))


def submissions_of(round_: Round, positions: list[int]) -> list[Submission]:
    return [Submission(index, client_address(position), round_.publish(round_.upload(position)))
            for index, position in enumerate(positions)]


def field_sum(vectors) -> np.ndarray:
    total = np.zeros(D + 1, dtype=np.uint64)
    for vector in vectors:
        total = gf.add(total, vector)
    return total


def test_a_masked_upload_is_one_vector_of_bits_over_8_bytes_plus_small_sealed_seed_rows(tmp_path) -> None:
    round_ = Round(LocalStore(tmp_path))
    masked = round_.upload(1)
    shamir = prepare_update(np.zeros(D, np.float32), 5, context=UpdateContext(CHAIN, CONTRACT, ROUND, client_address(1)),
                            member_keys=[p for _, p in MEMBERS], threshold=THRESHOLD, quantization=QUANTIZATION,
                            sharing_key=os.urandom(32), ephemeral_seeds=[os.urandom(32) for _ in MEMBERS])
    assert len(masked.masked_blob) == ring_vector_bytes(D + 1, BITS)
    assert parse_manifest(masked.manifest_blob).masked_cid == compute_cid(masked.masked_blob)
    seed_bytes = sum(map(len, masked.sealed_shares))
    assert seed_bytes < sum(map(len, shamir.sealed_shares)) / 4  # 4 clients' seeds, not d values, per member


def test_members_reveal_the_seeds_of_the_set_and_the_sum_comes_out_exact_with_one_client_absent(tmp_path) -> None:
    round_ = Round(LocalStore(tmp_path))
    submissions = submissions_of(round_, [0, 2, 3])  # client 1 is allowlisted and never uploads
    reveals = {}
    for member in range(1, N_MEMBERS + 1):
        rows, excluded = round_.open_all(submissions, member)
        assert not excluded
        by_position = {[0, 2, 3][index]: row for index, row in rows.items()}
        reveals[member] = reveal_seed_shares(by_position, round_.clients)
        assert reveals[member].size == reveal_length([0, 2, 3], round_.clients)
    manifests = [parse_manifest(round_.store.get(s.manifest_cid, max_bytes=1 << 16)) for s in submissions]
    summed = masked_sum_over((read_masked_vector(round_.store, m.masked_cid, round_.terms, max_blob_bytes=1 << 24)
                              for m in manifests), BITS)
    up = {member: reveals[member] for member in (1, 2, 4, 5)}  # member 3 down
    result = reconstruct_masked_sum(up, summed, included_positions=[0, 2, 3], clients=4, threshold=THRESHOLD,
                                    bits=BITS, key=os.urandom(32))
    assert np.array_equal(result.secret, field_sum(round_.vectors[p] for p in (0, 2, 3)))
    assert result.reconstruction.excluded_holders == ()


def test_a_member_posting_a_wrong_reveal_is_named_and_the_sum_is_still_exact(tmp_path) -> None:
    round_ = Round(LocalStore(tmp_path))
    submissions = submissions_of(round_, [0, 1, 2, 3])
    reveals = {}
    for member in range(1, N_MEMBERS + 1):
        rows, _ = round_.open_all(submissions, member)
        reveals[member] = reveal_seed_shares(dict(rows), round_.clients)
    reveals[2] = reveals[2].copy()
    reveals[2][0] ^= np.uint64(1)
    summed = masked_sum_over((read_masked_vector(round_.store, parse_manifest(round_.store.get(
        s.manifest_cid, max_bytes=1 << 16)).masked_cid, round_.terms, max_blob_bytes=1 << 24) for s in submissions), BITS)
    result = reconstruct_masked_sum(reveals, summed, included_positions=[0, 1, 2, 3], clients=4, threshold=THRESHOLD,
                                    bits=BITS, key=os.urandom(32))
    assert result.reconstruction.excluded_holders == (2,)
    assert np.array_equal(result.secret, field_sum(round_.vectors.values()))


def test_a_client_whose_seed_shares_lie_on_no_polynomial_makes_reconstruction_refuse(tmp_path) -> None:
    # Each client's rows come from one polynomial per limb; rows from unrelated sharings
    # (what a client cheating on its seed shares sends) are refused, never unmasked wrongly.
    round_ = Round(LocalStore(tmp_path))
    submissions = submissions_of(round_, [0, 1, 2])
    reveals = {}
    for member in range(1, N_MEMBERS + 1):
        rows, _ = round_.open_all(submissions, member)
        other = Round(LocalStore(tmp_path / f"liar-{member}"))  # fresh seeds for every member's row
        rows[3] = other.open_all(submissions_of(other, [3]), member)[0][0]
        reveals[member] = reveal_seed_shares(rows, round_.clients)
    with pytest.raises(InconsistentShares):
        reconstruct_masked_sum(reveals, np.zeros(D + 1, np.uint64), included_positions=[0, 1, 2, 3], clients=4,
                               threshold=THRESHOLD, bits=BITS, key=os.urandom(32))


@pytest.mark.parametrize("fault", ["missing vector", "wrong width", "shamir manifest", "missing seed row"])
def test_a_client_whose_masked_upload_is_incomplete_or_of_another_mode_is_excluded_by_name(tmp_path, fault) -> None:
    round_ = Round(LocalStore(tmp_path))
    good = submissions_of(round_, [0, 1])
    prepared = round_.upload(2)
    manifest = parse_manifest(prepared.manifest_blob)
    if fault == "missing vector":
        blobs = prepared.sealed_shares
    elif fault == "wrong width":
        wrong = encode_ring_vector(np.zeros(D + 1, np.uint64), 32)
        manifest = replace(manifest, masked_cid=compute_cid(wrong))
        blobs = (*prepared.sealed_shares, wrong)
    elif fault == "shamir manifest":
        manifest = replace(manifest, masked_cid=None, modulus_bits=None)
        blobs = prepared.sealed_shares
    else:
        blobs = (prepared.masked_blob, *prepared.sealed_shares[1:])
    for blob in blobs:
        round_.store.put(blob)
    bad = Submission(2, client_address(2), round_.store.put(encode_manifest(manifest)))
    rows, excluded = round_.open_all([*good, bad], member=1)
    assert sorted(rows) == [0, 1]
    assert [e.submission.client for e in excluded] == [client_address(2)]
    assert isinstance(excluded[0].error, CLIENT_FAULTS)


def test_reading_a_masked_vector_refuses_one_larger_than_the_node_allows(tmp_path) -> None:
    round_ = Round(LocalStore(tmp_path))
    prepared = round_.upload(0)
    round_.publish(prepared)
    with pytest.raises(FormatError, match="max_blob_bytes"):
        read_masked_vector(round_.store, compute_cid(prepared.masked_blob), round_.terms, max_blob_bytes=100)
