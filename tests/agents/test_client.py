"""The client agent: when it acts, what it stores (sealed shares only), and that it submits once."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from agents.client import (
    ClientView,
    TrainAndSubmit,
    UpdateContext,
    on_round_opened,
    prepare_update,
    publish_update,
)
from agents.runtime import Skip, handle_event
from fedtss.chain import RoundOpened, RoundState, UpdateSubmitted, events_of, dev_sealing_keypair
from fedtss.cid import cid_from_parts, compute_cid
from fedtss.errors import InvalidSealedShare
from fedtss.formats import VectorKind, decode_field_vector, parse_manifest
from fedtss.quantize import QuantizationConfig, quantize_update
from fedtss.sealing import ShareContext, open_share
from fedtss.shamir import reconstruct_at_zero
from tests.agents.conftest import Federation

DIGEST = bytes(range(32))
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CLIENT = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"
MEMBERS = ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
           "0x90F79bf6EB2c4f870365E785982E1f101E93b906"]


def _opened(round_: int = 2, deadline: int = 1000) -> RoundOpened:
    return RoundOpened(round=round_, model_cid=cid_from_parts(0x55, DIGEST), collection_deadline=deadline,
                       block_number=5, tx_hash="0x00", log_index=0)


def test_round_opened_makes_an_allowlisted_client_train_on_the_rounds_model() -> None:
    view = ClientView(allowlisted=True, submitted=False, state=RoundState.Collecting)
    assert on_round_opened(view, _opened(), now=999) == [TrainAndSubmit(2, cid_from_parts(0x55, DIGEST))]


@pytest.mark.parametrize(
    ("view", "now", "reason"),
    [
        (ClientView(False, False, RoundState.Collecting), 10, "allowlist"),
        (ClientView(True, True, RoundState.Collecting), 10, "already submitted"),
        (ClientView(True, False, RoundState.Aggregating), 10, "Aggregating"),
        (ClientView(True, False, RoundState.Collecting), 1001, "deadline"),
    ],
)
def test_round_opened_is_skipped_with_a_reason(view: ClientView, now: int, reason: str) -> None:
    (action,) = on_round_opened(view, _opened(), now)
    assert isinstance(action, Skip) and reason in action.reason


def _prepared(round_: int = 3, check_tail: list[int] | None = None):
    delta = np.linspace(-0.5, 0.5, 10, dtype=np.float32)
    keys = [dev_sealing_keypair(m)[1] for m in MEMBERS]
    prepared = prepare_update(
        delta, 40, context=UpdateContext(31337, CONTRACT, round_, CLIENT), member_keys=keys, threshold=2,
        quantization=QuantizationConfig(clip_norm=10.0), sharing_key=b"\x01" * 32,
        ephemeral_seeds=[bytes([2 + j]) * 32 for j in range(3)], check_tail=check_tail, proof_seed=b"\x05" * 32,
    )
    return delta, prepared


def _opened_shares(prepared) -> dict:
    shares = {}
    for j, member in enumerate(MEMBERS, start=1):
        plaintext = open_share(prepared.sealed_shares[j - 1], dev_sealing_keypair(member)[0],
                               ShareContext(31337, CONTRACT, 3, CLIENT, j))
        shares[j] = decode_field_vector(plaintext, kind=VectorKind.SHARE, max_bytes=1 << 20)
    return shares


def test_prepared_update_is_pure_given_its_randomness() -> None:
    _, one = _prepared()
    _, two = _prepared()
    assert one.sealed_shares == two.sealed_shares and one.manifest_blob == two.manifest_blob
    _, three = _prepared(check_tail=[11, 22])
    _, four = _prepared(check_tail=[11, 22])
    assert len(three.sealed_proofs) == 3 and three.sealed_proofs == four.sealed_proofs
    assert three.manifest_blob == four.manifest_blob


def test_with_norms_checked_a_client_proves_its_projections_and_each_member_opens_its_proof_share() -> None:
    """n = 3, t = 2 (n >= 2t - 1): the manifest names the n sealed proof shares and claims each
    member's bit-check value; each member opens its proof share with its share's key, its value
    is the claim, and any t proof shares reconstruct the bits of z_k = y_k + B, k = 1..63."""
    from fedtss.sealing import open_proof, share_key
    from fedtss.wraparound import (
        WrapBounds, bit_check_value, bit_check_weights, bits_seed, client_projections, projection_seed,
        projection_words,
    )

    delta, prepared = _prepared(check_tail=[11, 22])
    manifest = parse_manifest(prepared.manifest_blob)
    assert manifest.proof_cids == tuple(compute_cid(blob) for blob in prepared.sealed_proofs)
    assert len(manifest.bit_claims) == 3
    quantization = QuantizationConfig(clip_norm=10.0)
    bounds = WrapBounds.of(quantization, update=delta.size)
    seed = projection_seed(chain_id=31337, contract=CONTRACT, round_=3, client=CLIENT, share_cids=manifest.share_cids)
    weights = bit_check_weights(bits_seed(seed, manifest.proof_cids), bounds)
    proofs = {}
    for j, member in enumerate(MEMBERS, start=1):
        context = ShareContext(31337, CONTRACT, 3, CLIENT, j)
        key = share_key(prepared.sealed_shares[j - 1], dev_sealing_keypair(member)[0], context)
        proofs[j] = decode_field_vector(open_proof(prepared.sealed_proofs[j - 1], key, context),
                                        kind=VectorKind.PROOF_SHARE, max_bytes=1 << 20)
        assert bit_check_value(proofs[j], weights, j, threshold=2) == manifest.bit_claims[j - 1]
    bits = reconstruct_at_zero({1: proofs[1], 3: proofs[3]})[: bounds.bit_count].reshape(63, bounds.bits)
    assert set(bits.ravel().tolist()) <= {0, 1}
    unweighted = quantize_update(delta, 1, quantization)[:-1]
    expected = client_projections(unweighted, projection_words(seed, delta.size)) + bounds.bound
    assert [sum(int(b) << i for i, b in enumerate(row)) for row in bits] == expected.tolist()


def test_each_member_opens_its_share_and_any_two_give_the_quantized_update() -> None:
    delta, prepared = _prepared()
    manifest = parse_manifest(prepared.manifest_blob)
    assert manifest.share_cids == tuple(compute_cid(blob) for blob in prepared.sealed_shares)
    assert (manifest.round, manifest.n, manifest.t, manifest.vector_length) == (3, 3, 2, 11)
    shares = _opened_shares(prepared)
    expected = quantize_update(delta, 40, QuantizationConfig(clip_norm=10.0))
    assert np.array_equal(reconstruct_at_zero({1: shares[1], 3: shares[3]}), expected)
    assert not any(expected.tobytes() in blob for blob in prepared.sealed_shares)
    assert manifest.samples is None  # the count stays inside the shared vector, private


def test_with_checks_a_client_shares_its_update_unweighted_with_count_one_and_states_its_count_in_the_manifest() -> None:
    """The members weight it (fedtss.quantize, "Weighted by the members"), so the norm the checks
    bound is the clipped update's; what any two members reconstruct is the unweighted update, then
    the check tail (t - 1 = 1 norm mask, and the pad)."""
    delta, prepared = _prepared(check_tail=[11, 22])
    manifest = parse_manifest(prepared.manifest_blob)
    assert manifest.samples == 40 and manifest.vector_length == 13
    shared = reconstruct_at_zero({2: _opened_shares(prepared)[2], 3: _opened_shares(prepared)[3]})
    unweighted = quantize_update(delta, 1, QuantizationConfig(clip_norm=10.0))
    assert shared[-3] == 1 and np.array_equal(shared[:-2], unweighted) and list(shared[-2:]) == [11, 22]


def test_a_share_does_not_open_for_another_member_or_round() -> None:
    _, prepared = _prepared()
    private_1 = dev_sealing_keypair(MEMBERS[0])[0]
    with pytest.raises(InvalidSealedShare):
        open_share(prepared.sealed_shares[1], private_1, ShareContext(31337, CONTRACT, 3, CLIENT, 1))
    with pytest.raises(InvalidSealedShare):
        open_share(prepared.sealed_shares[0], private_1, ShareContext(31337, CONTRACT, 4, CLIENT, 1))


def test_a_client_stores_only_sealed_shares_and_its_manifest_and_submits_once(make_federation_in) -> None:
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2)
    (opened,) = events_of(fed.events(), RoundOpened)
    client = fed.clients[0]
    before = _blob_files(fed)
    nonce = fed.chain.w3.eth.get_transaction_count(client.node.address)

    (first,) = handle_event(client, opened)
    (second,) = handle_event(client, opened)  # the same event again, as after a crash

    assert fed.chain.w3.eth.get_transaction_count(client.node.address) == nonce + 1
    assert second.tx_hash is None and second.note == "already submitted in this round"
    (submitted,) = events_of(fed.events(), UpdateSubmitted)
    assert submitted.manifest_cid == first.cid
    manifest = parse_manifest(fed.store.get(first.cid, max_bytes=1 << 16))
    assert manifest.client == client.node.address.lower() and manifest.round == 1
    for j, cid in enumerate(manifest.share_cids, start=1):
        sealed = fed.store.get(cid, max_bytes=1 << 20)
        assert sealed[:4] == b"FTSS"  # a sealed share, never a plain field vector
        member = fed.members[j - 1]
        open_share(sealed, member.sealing_key.private_key, ShareContext(
            fed.clients[0].node.deployment.chain_id, fed.contract.address, 1, client.node.address, j))
    stored = {fed.store.path_of(cid) for cid in (first.cid, *manifest.share_cids)}
    assert _blob_files(fed) - before == stored  # nothing else: no plaintext update


def _blob_files(fed: Federation) -> set:
    return {path for path in (fed.store.root / "blobs").rglob("*") if path.is_file()}


class _GatedStore:
    """A store whose puts of share blobs all wait until ``together`` of them are in flight at once."""

    def __init__(self, together: int, fail: bytes | None = None) -> None:
        self.order: list[bytes] = []
        self._lock = threading.Lock()
        self._all_in = threading.Barrier(together, timeout=10)
        self._fail = fail

    def put(self, data: bytes) -> str:
        if data != b"manifest":
            self._all_in.wait()  # a BrokenBarrierError after 10 s if they were stored one by one
        with self._lock:
            self.order.append(data)
        if data == self._fail:
            raise InvalidSealedShare("the store refused it")
        return compute_cid(data)


def _prepared_blobs(blobs: list[bytes]):
    manifest = SimpleNamespace(share_cids=tuple(compute_cid(b) for b in blobs), masked_cid=None, proof_cids=())
    manifest.blob_cids = manifest.share_cids  # what Manifest.blob_cids gives without masked vector or proofs
    return SimpleNamespace(manifest=manifest, sealed_shares=tuple(blobs), masked_blob=None, sealed_proofs=(),
                           manifest_blob=b"manifest")


def test_a_client_stores_its_shares_side_by_side_and_the_manifest_only_after_all_of_them() -> None:
    blobs = [f"sealed share {j}".encode() for j in range(5)]
    store = _GatedStore(together=len(blobs))
    assert publish_update(SimpleNamespace(store=store), _prepared_blobs(blobs)) == compute_cid(b"manifest")
    assert sorted(store.order[:-1]) == sorted(blobs) and store.order[-1] == b"manifest"


def test_a_share_the_store_refuses_fails_the_publication_and_no_manifest_is_stored() -> None:
    blobs = [f"sealed share {j}".encode() for j in range(3)]
    store = _GatedStore(together=len(blobs), fail=blobs[1])
    with pytest.raises(InvalidSealedShare, match="refused"):
        publish_update(SimpleNamespace(store=store), _prepared_blobs(blobs))
    assert b"manifest" not in store.order


def test_with_metrics_the_proof_holds_their_ranges_and_each_members_relation_is_a_share_of_zero() -> None:
    """The agents' wiring of the metrics' ranges (n = 3, t = 2): a client with metrics at +-clip_norm
    and within proves them as the members read them: a proof of the length the members expect, the
    bits of m + C and C - m, and each member's relation value (from its own share's metric
    coordinates) on a polynomial that is 0 at 0."""
    from agents.client_checks import WrapCheck
    from fedtss.formats import RoundTerms
    from fedtss.sealing import open_proof, share_key
    from fedtss.validation import CheckedLayout
    from fedtss.wraparound import WrapBounds, proof_length

    quantization = QuantizationConfig(clip_norm=10.0)
    metrics = [10.0, -10.0, 3.25]
    delta = np.linspace(-0.5, 0.5, 10, dtype=np.float32)
    prepared = prepare_update(
        delta, 40, context=UpdateContext(31337, CONTRACT, 3, CLIENT), member_keys=[dev_sealing_keypair(m)[1] for m in MEMBERS],
        threshold=2, quantization=quantization, sharing_key=b"\x01" * 32, metrics=metrics,
        ephemeral_seeds=[bytes([2 + j]) * 32 for j in range(3)], check_tail=[11, 22], proof_seed=b"\x05" * 32,
    )
    manifest = parse_manifest(prepared.manifest_blob)
    layout = CheckedLayout.of(manifest.vector_length, metrics=len(metrics), threshold=2)
    bounds = WrapBounds.of(quantization, update=layout.update, metrics=len(metrics))
    terms = RoundTerms(31337, CONTRACT, 3, 3, 2, manifest.vector_length, quantization, norm_claims=True, samples=True,
                       proof_length=proof_length(bounds, 2))
    wrap = WrapCheck.for_round(b"\x07" * 32, terms, layout)
    shares, proofs, relations = _opened_shares(prepared), {}, {}
    for j, member in enumerate(MEMBERS, start=1):
        context = ShareContext(31337, CONTRACT, 3, CLIENT, j)
        key = share_key(prepared.sealed_shares[j - 1], dev_sealing_keypair(member)[0], context)
        proofs[j] = decode_field_vector(open_proof(prepared.sealed_proofs[j - 1], key, context),
                                        kind=VectorKind.PROOF_SHARE, max_bytes=1 << 20)
        assert proofs[j].size == terms.proof_length
        relations[j] = np.array([wrap.extras(shares[j], wrap.client_proof(manifest, proofs[j]), j)[1]], dtype=np.uint64)
    assert reconstruct_at_zero({1: relations[1], 3: relations[3]}).tolist() == [0]
    assert reconstruct_at_zero({1: relations[1], 2: relations[2]}).tolist() == [0]
    bits = reconstruct_at_zero({2: proofs[2], 3: proofs[3]})[bounds.projection_bit_count : bounds.bit_count]
    ranges = [sum(int(b) << i for i, b in enumerate(row)) for row in bits.reshape(-1, bounds.metric_bits)]
    c = bounds.metric_bound
    assert ranges == [2 * c, 0, 0, 2 * c, round(3.25 * 2**16) + c, c - round(3.25 * 2**16)]
