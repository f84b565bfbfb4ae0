"""Committee members: whole rounds in one process on anvil, with bad clients and a bad member.

The agents are built from TOML configs by the same code as ``python -m agents.aggregator``;
tests/agents/conftest.py hands them the contract's real events in chain order.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
import tracemalloc
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents import aggregator
from agents.aggregator import (
    CLIENT_FAULTS,
    AggregateAndSubmit,
    AggregatorAgent,
    FetchShare,
    MemberView,
    ReconstructAndPropose,
    StartReconstruction,
    Submission,
    WaitingRound,
    aggregate_shares,
    collect_client_shares,
    sum_client_shares,
    compute_aggregate,
    compute_fetch_timeout,
    fetch_aggregate_shares,
    is_worth_waiting,
    on_aggregate_share_submitted,
    on_collection_closed,
    on_threshold_reached,
    on_tick,
    open_client_share,
    publish_aggregate,
    reconstruct_model,
    round_model,
)
from agents.client import ClientAgent, PreparedUpdate, UpdateContext, prepare_update
from agents.runtime import Skip, Tick, handle_event_retrying, is_transient
from fedtss import field as gf
from fedtss.chain import AggregateShareSubmitted, ClientSet, CollectionClosed, RoundState, ThresholdReached, events_of
from fedtss.cid import compute_cid
from fedtss.errors import ChainUnavailable, FormatError, StorageError
from fedtss.formats import (
    Manifest,
    RoundTerms,
    VectorKind,
    check_manifest,
    encode_field_vector,
    encode_manifest,
    flatten_model,
)
from fedtss.quantize import QuantizationConfig
from fedtss.sealing import ShareContext, keypair_from_seed, seal_share
from fedtss.shamir import share_vector
from fedtss.storage import KuboStore, LocalStore
from tests.agents.conftest import Federation
from tests.fedtss.test_formats import EXTREME_NUMBERS, JSON_VALUES

LOGGER = "fedtss.agents"
MEMBER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
SHARE_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def _at() -> dict[str, object]:
    """Where a hand-made event happened: block, transaction and log index."""
    return {"block_number": 1, "tx_hash": "0x00", "log_index": 0}


def _view(**overrides: object) -> MemberView:
    values = dict(member_index=2, last_share_round=0, last_vote_round=0, state=RoundState.Aggregating,
                  committee_deadline=1000)
    return MemberView(**{**values, **overrides})


# ---------------------------------------------------------------- handlers (no chain)


def test_collection_closed_makes_a_member_aggregate_once() -> None:
    event = CollectionClosed(round=4, clients=3, aggregation_deadline=1000, **_at())
    assert on_collection_closed(_view(), event, now=10) == [AggregateAndSubmit(4)]
    for view, now in [
        (_view(member_index=0), 10),
        (_view(last_share_round=4), 10),
        (_view(state=RoundState.Finalized), 10),
        (_view(), 1001),
    ]:
        (action,) = on_collection_closed(view, event, now)
        assert isinstance(action, Skip) and action.round == 4


def test_threshold_reached_makes_a_member_start_collecting_shares_once() -> None:
    event = ThresholdReached(round=4, included_clients=ClientSet(0b101), proposal_deadline=2000, **_at())
    reconstructing = _view(state=RoundState.Reconstructing)
    assert on_threshold_reached(reconstructing, event, now=10) == [StartReconstruction(4, ClientSet(0b101), 2000)]
    for view, now in [
        (replace(reconstructing, last_vote_round=4), 10),
        (replace(reconstructing, state=RoundState.Finalized), 10),
        (reconstructing, 2001),
    ]:
        (action,) = on_threshold_reached(view, event, now)
        assert isinstance(action, Skip)


def _share_posted(round_: int, member_index: int) -> AggregateShareSubmitted:
    return AggregateShareSubmitted(round=round_, member=MEMBER, member_index=member_index, share_cid=SHARE_CID,
                                   included_clients=ClientSet(0b111), **_at())


def test_a_share_posted_in_a_round_the_member_waits_in_is_fetched_and_others_are_left_alone() -> None:
    event = _share_posted(4, member_index=3)
    assert on_aggregate_share_submitted(frozenset({4}), event, now=10) == [FetchShare(event)]
    assert on_aggregate_share_submitted(frozenset({3}), event, now=10) == []
    assert on_aggregate_share_submitted(frozenset(), event, now=10) == []


def _waiting(round_: int, **overrides: float) -> WaitingRound:
    values = dict(settled=3, over_set=3, members=5, wanted=4, waited=0.0, share_wait=1.0, remaining=60.0)
    return WaitingRound(round_, **{**values, **overrides})


class _SlowStore:
    """A store whose every read takes ``delay`` seconds (a share fetched from another node)."""

    def __init__(self, blobs: dict[str, bytes], delay: float) -> None:
        self.blobs, self.delay = blobs, delay

    def get(self, cid: str, *, max_bytes: int, timeout: float | None = None) -> bytes:
        time.sleep(self.delay)
        return self.blobs[cid]


def test_a_look_counts_a_share_whose_fetch_lands_within_the_grace_and_only_then() -> None:
    share = np.arange(6, dtype=np.uint64)
    blob = encode_field_vector(share, kind=VectorKind.AGGREGATE_SHARE)
    store = _SlowStore({compute_cid(blob): blob}, delay=0.05)
    agent = type("Member", (), {"node": type("Node", (), {"store": store})()})()
    posted = AggregateShareSubmitted(block_number=9, tx_hash="0x1", log_index=0, round=3, member="0xm2",
                                     member_index=2, share_cid=compute_cid(blob), included_clients=ClientSet(0b11))
    with aggregator.AggregateShareFetcher(agent, 3, ClientSet(0b11), share.size) as without_grace:
        without_grace.offer(posted)
        assert without_grace.refresh() == {}  # in flight: counted at the next look
    with aggregator.AggregateShareFetcher(agent, 3, ClientSet(0b11), share.size) as with_grace:
        with_grace.offer(posted)
        found = with_grace.refresh(grace=2.0)
    assert list(found) == [2] and np.array_equal(found[2], share)


def test_a_share_fetch_older_than_the_grace_is_not_waited_for_again(monkeypatch) -> None:
    blob = encode_field_vector(np.arange(6, dtype=np.uint64), kind=VectorKind.AGGREGATE_SHARE)
    store = _SlowStore({compute_cid(blob): blob}, delay=1.0)  # hangs past every look below
    agent = type("Member", (), {"node": type("Node", (), {"store": store})()})()
    posted = AggregateShareSubmitted(block_number=9, tx_hash="0x1", log_index=0, round=3, member="0xm2",
                                     member_index=2, share_cid=compute_cid(blob), included_clients=ClientSet(0b11))
    waited: list[int] = []
    real_wait = aggregator.wait
    monkeypatch.setattr(aggregator, "wait", lambda futures, timeout=None: waited.append(len(futures))
                        or real_wait(futures, timeout=timeout))
    with aggregator.AggregateShareFetcher(agent, 3, ClientSet(0b11), 6) as fetcher:
        fetcher.offer(posted)
        assert fetcher.refresh(grace=0.05) == {}  # waited for the young fetch, which did not land
        time.sleep(0.06)
        assert fetcher.refresh(grace=0.05) == {}  # older than the grace now: not waited for
    assert waited == [1]


def test_a_tick_makes_a_member_reconstruct_exactly_where_waiting_is_no_longer_worth_it() -> None:
    waiting = {4: _waiting(4, settled=5, over_set=5), 5: _waiting(5, waited=1.0)}  # 4: all in; 5: only t
    assert on_tick(waiting, Tick(), now=10) == [ReconstructAndPropose(4)]
    assert on_tick({5: _waiting(5, waited=30.0)}, Tick(), now=10) == [ReconstructAndPropose(5)]
    assert on_tick({}, Tick(), now=10) == []


def _worth_waiting(**overrides: float) -> bool:
    values = dict(settled=3, over_set=3, members=5, wanted=4, waited=0.0, share_wait=1.0, remaining=60.0)
    return is_worth_waiting(**{**values, **overrides})


def test_a_member_waits_for_every_share_only_up_to_share_wait_once_t_plus_1_are_in() -> None:
    assert _worth_waiting(settled=4, over_set=4, waited=0.5)  # everybody's share helps exclude more
    assert not _worth_waiting(settled=4, over_set=4, waited=1.0)  # t + 1: a wrong one can be detected
    assert not _worth_waiting(settled=5, over_set=5, waited=0.0)  # everybody posted: nothing to wait for


def test_a_member_with_only_t_shares_waits_on_for_one_that_can_check_them_until_half_the_time_left() -> None:
    assert _worth_waiting(settled=3, over_set=3, waited=1.0)
    assert _worth_waiting(settled=4, over_set=3, waited=29.0)  # the 4th share is over another client set
    assert not _worth_waiting(settled=3, over_set=3, waited=30.0)  # a member is down: go ahead with t
    assert not _worth_waiting(settled=5, over_set=3, waited=1.0)  # every member posted: no more will come


def test_after_inconsistent_shares_a_member_waits_for_one_more_without_the_share_wait() -> None:
    # t + 1 = 4 shares detected a wrong one; a 5th lets the reconstruction exclude it.
    assert _worth_waiting(settled=4, over_set=4, wanted=5, waited=20.0, share_wait=0.0)
    assert not _worth_waiting(settled=4, over_set=4, wanted=5, waited=30.0, share_wait=0.0)
    assert not _worth_waiting(settled=5, over_set=5, wanted=5, waited=1.0, share_wait=0.0)


def test_a_member_never_waits_past_half_the_time_to_the_proposal_deadline() -> None:
    assert not _worth_waiting(settled=4, over_set=4, waited=0.5, share_wait=10.0, remaining=1.0)
    assert not _worth_waiting(settled=3, over_set=3, waited=0.0, remaining=0.0)


# ------------------------------------------------------------------ pure pipelines


def test_reconstruct_model_names_a_wrong_member_and_gives_the_same_blob_with_any_key() -> None:
    rng = np.random.default_rng(3)
    tensors = {"w": rng.standard_normal(7).astype(np.float32)}
    total = np.append(rng.integers(0, 1 << 20, 7, dtype=np.uint64), np.uint64(100))
    shares = share_vector(total, threshold=2, holders=4, key=bytes(32))
    by_member = {j: shares[j - 1] for j in range(1, 5)}
    by_member[3] = gf.add(by_member[3], np.ones(8, dtype=np.uint64))
    quantization = QuantizationConfig(clip_norm=10.0)
    one = reconstruct_model(tensors, by_member, threshold=2, quantization=quantization, key=b"\x01" * 32)
    two = reconstruct_model(tensors, by_member, threshold=2, quantization=quantization, key=b"\x02" * 32)
    assert one.excluded_members == (3,) and two.excluded_members == (3,)
    assert one.blob == two.blob and one.total_samples == 100


def test_aggregate_shares_sums_in_order_and_sets_one_bit_per_client() -> None:
    shares = {0: np.array([1, 2], np.uint64), 3: np.array([gf.MODULUS - 1, 5], np.uint64)}
    total, bitmap = aggregate_shares(shares, 2)
    assert total.tolist() == [0, 7] and bitmap == ClientSet(0b1001)


# ------------------------------------------------------------- whole rounds on anvil


def test_full_round_gives_plaintext_fedavg_and_one_model_cid(make_federation_in, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2)
    started = time.monotonic()
    fed.drive()
    total = time.monotonic() - started

    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])
    final_cid, _ = fed.finalized_model()
    assert set(fed.votes().values()) == {final_cid}
    # The member whose vote came too late reconstructs the same bytes too.
    late = next(m for m in fed.members if m.node.address not in fed.votes())
    _, tensors = round_model(late, 1)
    shares = fetch_aggregate_shares(late, 1, ClientSet(0b111), flatten_model(tensors)[1].size + 1)
    model = reconstruct_model(tensors, shares, threshold=2, quantization=late.federation.quantization,
                              key=b"\x07" * 32)
    assert compute_cid(model.blob) == final_cid
    phases = {name: round(fed.seconds[name], 2) for name in ("RoundOpened", "CollectionClosed", "ThresholdReached")}
    print(f"\nin-process round, 3 clients, n=3, t=2: {phases} total={total:.2f}s")
    reconstructed = [r.getMessage() for r in caplog.records if "action=reconstruct_and_propose" in r.getMessage()]
    assert len(reconstructed) == 3 and sum(" tx=" in m for m in reconstructed) == 2  # the late one sent no vote
    assert "not voting" in next(m for m in reconstructed if " tx=" not in m)


def _prepare(fed: Federation, index: int, *, round_for_member: dict[int, int] | None = None) -> PreparedUpdate:
    """Client ``index``'s honest round-1 update, with some members' shares sealed for other rounds."""
    agent: ClientAgent = fed.clients[index]
    node = agent.node
    keys = [key for _, key in node.contract.committee()]
    delta, samples = fed.client_update(index)

    def prepared(round_: int) -> PreparedUpdate:
        context = UpdateContext(node.deployment.chain_id, node.deployment.address, round_, node.address)
        return prepare_update(delta, samples, context=context, member_keys=keys, threshold=node.contract.threshold(),
                              quantization=agent.federation.quantization, sharing_key=b"\x05" * 32,
                              ephemeral_seeds=[bytes([9 + j]) * 32 for j in range(len(keys))])

    honest = prepared(1)
    sealed = list(honest.sealed_shares)
    for member, round_ in (round_for_member or {}).items():
        sealed[member - 1] = prepared(round_).sealed_shares[member - 1]
    return _with_shares(honest, sealed)


def _with_shares(prepared: PreparedUpdate, sealed: list[bytes]) -> PreparedUpdate:
    manifest = replace(prepared.manifest, share_cids=tuple(compute_cid(blob) for blob in sealed))
    return PreparedUpdate(tuple(sealed), manifest, encode_manifest(manifest))


def _submit(fed: Federation, index: int, manifest_blob: bytes, shares: tuple[bytes, ...] = ()) -> str:
    """Store the blobs and send ``submitUpdate`` as client ``index`` (the test plays that client)."""
    for blob in shares:
        fed.store.put(blob)
    cid = fed.store.put(manifest_blob)
    fed.contract.submit_update(fed.clients[index].node.account, 1, cid)
    return cid


def _excluded(caplog, address: str) -> set[str]:
    """The reasons logged for excluding the client at ``address`` (one per member that did)."""
    return {
        r.getMessage().split("reason=")[1]
        for r in caplog.records
        if f"excluded_client={address}" in r.getMessage()
    }


def test_bad_clients_are_excluded_with_a_logged_reason_and_the_round_finalizes(make_federation_in, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(clients=6, members=3, threshold=2)
    fed.drive(fed.clients[:2])  # clients 0 and 1 are honest agents
    # 2: a manifest CID that points at garbage.
    _submit(fed, 2, b"this is not a manifest")
    # 3: its share for member 1 is sealed for round 2; members 2 and 3 open theirs.
    wrong_round = _prepare(fed, 3, round_for_member={1: 2})
    _submit(fed, 3, wrong_round.manifest_blob, wrong_round.sealed_shares)
    # 4: its manifest's bytes in the store no longer match the CID it submitted.
    honest = _prepare(fed, 4)
    cid = _submit(fed, 4, honest.manifest_blob, honest.sealed_shares)
    fed.store.path_of(cid).write_bytes(honest.manifest_blob.replace(b'"round":1', b'"round":2'))
    # 5: every share blob is one byte longer than a share can be.
    five = _prepare(fed, 5)
    padded = _with_shares(five, [blob + b"\x00" for blob in five.sealed_shares])
    _submit(fed, 5, padded.manifest_blob, padded.sealed_shares)

    fed.drive(fed.members)

    addresses = [c.node.address for c in fed.clients]
    assert _excluded(caplog, addresses[2]) == {"FormatError"}
    assert _excluded(caplog, addresses[3]) == {"InvalidSealedShare"}
    assert _excluded(caplog, addresses[4]) == {"CIDMismatch"}
    assert _excluded(caplog, addresses[5]) == {"BlobTooLarge"}
    assert sum(f"excluded_client={addresses[3]}" in r.getMessage() for r in caplog.records) == 1
    assert fed.contract.state(1) == RoundState.Finalized
    (reached,) = events_of(fed.events(), ThresholdReached)
    assert reached.included_clients == ClientSet(0b1011)  # members 2 and 3 agreed first
    fed.assert_model_is_fedavg_of([0, 1, 3])


def _split_the_committee_on_client_2(fed: Federation) -> None:
    """Clients 0 and 1 submit as agents; client 2's shares open for members 1 and 2 only."""
    fed.drive(fed.clients[:2])
    split = _prepare(fed, 2, round_for_member={3: 2, 4: 2})
    _submit(fed, 2, split.manifest_blob, split.sealed_shares)


def test_a_client_splitting_the_committee_cannot_stop_one_set_from_winning(make_federation_in) -> None:
    fed: Federation = make_federation_in(clients=3, members=4, threshold=2)
    _split_the_committee_on_client_2(fed)
    m1, m2, m3, m4 = fed.members
    # Members 3 and 4 (who exclude client 2) post first, so the smaller set reaches t first;
    # members 1 and 2 (who include it) are the first to hear ThresholdReached. The set is then
    # fixed: members 1 and 2 sum over it, leaving client 2 out (two public sums over sets one
    # client apart would reveal that client's update), so all four shares count and check.
    fed.drive(lambda e: [m3, m4, m1, m2] if isinstance(e, CollectionClosed) else [m1, m2, m3, m4])

    shares = {e.member_index: e.included_clients.bitmap for e in events_of(fed.events(), AggregateShareSubmitted)}
    assert shares == {3: 0b011, 4: 0b011, 1: 0b011, 2: 0b011}  # 1 and 2 leave client 2 out
    (reached,) = events_of(fed.events(), ThresholdReached)
    assert reached.included_clients == ClientSet(0b011)
    final_cid, _ = fed.finalized_model()
    assert fed.votes() == {m1.node.address: final_cid, m2.node.address: final_cid}
    fed.assert_model_is_fedavg_of([0, 1])


def test_a_share_over_a_set_that_lost_is_kept_private_and_only_the_fixed_sets_shares_are_published(
    make_federation_in,
) -> None:
    # Client 2's shares open for members 1 and 2 only. Member 3 posts over {0, 1} before member
    # 2's share fixes {0, 1, 2}: had member 3's blob been published, the public sum over
    # {0, 1, 2} at member 3's point minus it would be member 3's share of client 2, and t - 1
    # colluding members would add theirs and read client 2's update. Member 4 posts nothing, so
    # the others wait for a third share until half the time to the deadline: a short period.
    fed: Federation = make_federation_in(clients=3, members=4, threshold=2, aggregation_period=20)
    _split_the_committee_on_client_2(fed)
    m1, m2, m3, m4 = fed.members
    (closed,) = [e for e in fed.drive([]) if isinstance(e, CollectionClosed)]
    for member in (m1, m3, m2, m4):
        fed.deliver(closed, [member])
    posted = {e.member_index: e for e in events_of(fed.events(), AggregateShareSubmitted)}
    assert {j: e.included_clients.bitmap for j, e in posted.items()} == {1: 0b111, 3: 0b011, 2: 0b111}
    cids = {j: e.share_cid for j, e in posted.items()}
    assert not any(fed.store.has(cid) for cid in cids.values())  # only CIDs on chain so far
    kept = Path(m3.node.config.node.state_dir) / "aggregate-shares" / "round-1.bin"
    assert compute_cid(kept.read_bytes()) == cids[3] and kept.stat().st_mode & 0o077 == 0
    (Path(m1.node.config.node.state_dir) / "aggregate-shares" / "round-1.bin").unlink()  # lost in a crash

    fed.drive()

    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])
    assert fed.store.has(cids[1])  # member 1 computed the same share again and published it
    assert fed.store.has(cids[2])
    assert not fed.store.has(cids[3])  # never: its set lost


class WrongShareMember(AggregatorAgent):
    """A member that posts its honest aggregate share plus one in every coordinate."""

    def execute(self, action):
        if isinstance(action, AggregateAndSubmit):
            aggregate, bitmap = compute_aggregate(self, action.round)
            return publish_aggregate(self, action.round, gf.add(aggregate, np.ones_like(aggregate)), bitmap)
        return super().execute(action)


@pytest.mark.parametrize(("members", "threshold"), [(4, 2), (5, 3)])
def test_a_member_posting_a_wrong_aggregate_share_is_named_and_excluded(
    make_federation_in, caplog, members: int, threshold: int
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(clients=3, members=members, threshold=threshold)
    honest = fed.members[1]
    fed.members[1] = WrongShareMember(**{f.name: getattr(honest, f.name) for f in fields(honest)})
    fed.drive()

    bad = honest.node.address
    named = [r.getMessage() for r in caplog.records if f"member_address={bad}" in r.getMessage()]
    assert named and all("excluded_member=2" in m and "InconsistentShares" in m for m in named)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])
    final_cid, _ = fed.finalized_model()
    assert set(fed.votes().values()) == {final_cid}


def test_events_delivered_again_after_a_round_send_nothing(make_federation_in) -> None:
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2)
    fed.drive()
    nonces = {a.node.address: fed.chain.w3.eth.get_transaction_count(a.node.address) for a in fed.agents}
    before = len(fed.outcomes)
    for event in fed.events():  # a restarted agent re-reads the chain from its checkpoint
        fed.deliver(event)
    assert {a: fed.chain.w3.eth.get_transaction_count(a) for a in nonces} == nonces
    again = fed.outcomes[before:]
    assert len(again) == 3 + 3 + 3  # RoundOpened x 3 clients, CollectionClosed and ThresholdReached x 3 members
    assert all(o.tx_hash is None and o.note for _, _, o in again)


def test_a_member_restarted_mid_round_submits_its_share_once(make_federation_in) -> None:
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2)
    fed.drive(fed.clients)
    (closed,) = [e for e in fed.events() if isinstance(e, CollectionClosed)]
    member = fed.members[0]
    nonce = fed.chain.w3.eth.get_transaction_count(member.node.address)
    fed.deliver(closed, [member])
    fed.deliver(closed, [member])  # the same block's events, re-delivered after a crash
    assert fed.chain.w3.eth.get_transaction_count(member.node.address) == nonce + 1
    assert fed.outcomes[-1][2].note == "already posted an aggregate share in this round"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_own_store_stops_aggregation_instead_of_excluding_every_client() -> None:
    store = KuboStore(f"http://127.0.0.1:{_closed_port()}", timeout=2.0)
    terms = RoundTerms(31337, "0x" + "ab" * 20, 1, n=3, t=2, vector_length=5, quantization=QuantizationConfig(clip_norm=1.0))
    submission = Submission(0, "0x" + "cd" * 20, compute_cid(b"manifest"))
    with pytest.raises(StorageError, match="cannot reach") as raised:
        collect_client_shares(store, [submission], terms, member_index=1, private_key=bytes(range(1, 33)),
                              max_blob_bytes=1 << 20)
    assert is_transient(raised.value)


_TERMS = RoundTerms(31337, "0x" + "AB" * 20, 3, n=3, t=2, vector_length=5,
                    quantization=QuantizationConfig(clip_norm=1.0))
_CLIENT = Submission(0, "0x" + "CD" * 20, compute_cid(b"manifest"))


def _manifest(**overrides: object) -> Manifest:
    values = dict(chain_id=31337, contract="0x" + "ab" * 20, round=3, client="0x" + "cd" * 20, n=3, t=2,
                  vector_length=5, quantization=QuantizationConfig(clip_norm=1.0),
                  share_cids=tuple(compute_cid(bytes([j])) for j in range(3)))
    return Manifest(**{**values, **overrides})


def test_a_manifest_for_this_round_and_client_passes_whatever_the_address_case() -> None:
    check_manifest(_manifest(), client=_CLIENT.client, terms=_TERMS)


@pytest.mark.parametrize("field_name, value", [
    ("chain_id", 1), ("contract", "0x" + "ee" * 20), ("round", 2), ("client", "0x" + "ee" * 20),
    ("n", 4), ("t", 3), ("vector_length", 6), ("quantization", QuantizationConfig(clip_norm=2.0)),
])
def test_a_manifest_for_another_contract_round_client_or_federation_is_refused(field_name: str, value: object) -> None:
    extra = {"share_cids": tuple(compute_cid(bytes([j])) for j in range(4))} if field_name == "n" else {}
    with pytest.raises(FormatError, match=f"manifest {field_name} does not match"):
        check_manifest(_manifest(**{field_name: value, **extra}), client=_CLIENT.client, terms=_TERMS)


# ------------------------------------------- nothing a client sends may stop a member

_MEMBER_KEY, _MEMBER_PUBLIC = keypair_from_seed(b"\x21" * 32)
_OTHER_PUBLIC = [keypair_from_seed(bytes([0x22 + j]) * 32)[1] for j in range(2)]


def _client_address(index: int) -> str:
    return "0x" + f"{index + 1:02x}" * 20


def _context(index: int, member: int) -> ShareContext:
    return ShareContext(_TERMS.chain_id, _TERMS.contract, _TERMS.round, _client_address(index), member)


def _honest_blobs(index: int, terms: RoundTerms = _TERMS) -> tuple[dict, list[bytes]]:
    """Client ``index``'s manifest document and its 3 sealed shares, member 1's openable with _MEMBER_KEY."""
    secret = np.arange(terms.vector_length, dtype=np.uint64) + np.uint64(index)
    shares = share_vector(secret, threshold=terms.t, holders=terms.n, key=bytes([index]) * 32)
    sealed = [seal_share(encode_field_vector(shares[j - 1], kind=VectorKind.SHARE), key, _context(index, j),
                         ephemeral_seed=bytes([40 + j]) * 32)
              for j, key in enumerate([_MEMBER_PUBLIC, *_OTHER_PUBLIC], start=1)]
    manifest = Manifest(chain_id=terms.chain_id, contract=terms.contract, round=terms.round,
                        client=_client_address(index), n=terms.n, t=terms.t,
                        vector_length=terms.vector_length, quantization=terms.quantization,
                        share_cids=tuple(compute_cid(blob) for blob in sealed))
    return json.loads(encode_manifest(manifest)), sealed


def _post(store: LocalStore, index: int, document: dict | bytes, sealed: list[bytes]) -> Submission:
    for blob in sealed:
        store.put(blob)
    manifest_blob = document if isinstance(document, bytes) else json.dumps(document).encode()
    return Submission(index, _client_address(index), store.put(manifest_blob))


@st.composite
def hostile_contributions(draw: st.DrawFn) -> tuple[dict | bytes, list[bytes]]:
    """Client 1's manifest and sealed shares, with one part of them made hostile."""
    document, sealed = _honest_blobs(1)
    part = draw(st.sampled_from(["manifest", "manifest bytes", "sealed bytes", "sealed plaintext"]))
    if part == "manifest":  # well-formed JSON, any value in one to four fields
        paths = [(key,) for key in document] + [("quantization", key) for key in document["quantization"]]
        for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=4, unique=True)):
            parent = document if len(path) == 1 else document[path[0]]
            if isinstance(parent, dict):
                parent[path[-1]] = draw(st.one_of(EXTREME_NUMBERS, JSON_VALUES))
        return document, sealed
    if part == "manifest bytes":
        return draw(st.binary(max_size=300)), sealed
    if part == "sealed bytes":
        blob = bytearray(sealed[0])
        cut = draw(st.integers(0, len(blob)))
        sealed[0] = bytes(blob[:cut]) + draw(st.binary(max_size=40))
    else:  # sealed correctly for member 1, but what it seals is anything
        header = struct.pack("<4sBBHQ", b"FTFV", 1, draw(st.sampled_from([1, 2, 3])), 0,
                             draw(st.sampled_from([0, 1, _TERMS.vector_length, 2**32, 2**63, 2**64 - 1])))
        values = draw(st.lists(st.sampled_from([0, 1, gf.MODULUS - 1, gf.MODULUS, 2**64 - 1]), max_size=6))
        plaintext = draw(st.one_of(st.binary(max_size=80),
                                   st.just(header + struct.pack(f"<{len(values)}Q", *values))))
        sealed[0] = seal_share(plaintext, _MEMBER_PUBLIC, _context(1, 1), ephemeral_seed=b"\x33" * 32)
    document["share_cids"][0] = compute_cid(sealed[0])
    return document, sealed


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory) -> LocalStore:
    return LocalStore(tmp_path_factory.mktemp("hostile-store"))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contribution=hostile_contributions())
def test_anything_a_client_posts_raises_a_client_fault_or_opens_and_only_excludes_that_client(
    fuzz_store: LocalStore, contribution: tuple[dict | bytes, list[bytes]]
) -> None:
    hostile = _post(fuzz_store, 1, *contribution)
    honest = _post(fuzz_store, 0, *_honest_blobs(0))
    options = dict(member_index=1, private_key=_MEMBER_KEY, max_blob_bytes=1 << 20)
    try:
        open_client_share(fuzz_store, hostile, _TERMS, **options)
    except CLIENT_FAULTS:
        pass  # any other exception fails the test: it is a check nobody wrote
    shares, excluded = collect_client_shares(fuzz_store, [honest, hostile], _TERMS, **options)
    assert 0 in shares and [e.submission.index for e in excluded] in ([], [1])
    assert all(not e.reason.startswith("Unexpected") for e in excluded)


def test_summing_shares_as_they_open_gives_the_sum_set_and_exclusions_of_collecting_them(fuzz_store) -> None:
    posted = [_post(fuzz_store, i, *_honest_blobs(i)) for i in (0, 2, 3)]
    posted.append(_post(fuzz_store, 4, b"not a manifest", []))
    options = dict(member_index=1, private_key=_MEMBER_KEY, max_blob_bytes=1 << 20, workers=2)
    summed, excluded = sum_client_shares(fuzz_store, posted, _TERMS, **options)
    shares, collected_excluded = collect_client_shares(fuzz_store, posted, _TERMS, **options)
    total, clients = aggregate_shares(shares, _TERMS.vector_length)
    assert np.array_equal(summed.total, total) and summed.clients == clients == ClientSet(0b1101)
    assert [(e.submission.index, e.reason) for e in excluded] == \
        [(e.submission.index, e.reason) for e in collected_excluded] == [(4, "FormatError")]


def test_where_the_members_weight_updates_a_member_sums_each_share_times_its_manifests_sample_count(tmp_path) -> None:
    """And a manifest without a count is excluded there: it would be summed unweighted."""
    terms = replace(_TERMS, samples=True)
    store = LocalStore(tmp_path / "store")
    counts = {0: 7, 2: 1, 3: 250}
    posted = []
    for index, count in counts.items():
        document, sealed = _honest_blobs(index, terms)
        posted.append(_post(store, index, {**document, "samples": count}, sealed))
    posted.append(_post(store, 4, *_honest_blobs(4, terms)))
    options = dict(member_index=1, private_key=_MEMBER_KEY, max_blob_bytes=1 << 20, workers=2)
    summed, excluded = sum_client_shares(store, posted, terms, **options)
    shares, _ = collect_client_shares(store, posted, terms, **options)
    expected = np.zeros(terms.vector_length, dtype=np.uint64)
    for index, count in counts.items():
        expected = gf.add(expected, gf.mul_scalar(shares[index], count))
    assert np.array_equal(summed.total, expected) and summed.weights == counts
    assert summed.clients == ClientSet(0b1101) and [(e.submission.index, e.reason) for e in excluded] == [(4, "FormatError")]


def test_a_member_summing_as_shares_open_holds_a_few_shares_at_a_time_not_one_per_client(tmp_path) -> None:
    terms = replace(_TERMS, vector_length=20_000)
    store = LocalStore(tmp_path / "store")
    posted = [_post(store, i, *_honest_blobs(i, terms)) for i in range(24)]
    options = dict(member_index=1, private_key=_MEMBER_KEY, max_blob_bytes=1 << 22, workers=2)
    share_bytes = 8 * terms.vector_length

    def peak(run) -> int:
        tracemalloc.start()
        try:
            run()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    summing = peak(lambda: sum_client_shares(store, posted, terms, **options))
    collecting = peak(lambda: collect_client_shares(store, posted, terms, **options))
    assert collecting > 24 * share_bytes  # the dict holds every client's share
    # Two openings in flight (each holds the sealed blob, its plaintext and the share) and the sum
    # with gf.add's temporaries: about 12 at worst, whatever the number of clients.
    assert summing < 13 * share_bytes, f"summing peaked at {summing / share_bytes:.1f} shares"


def test_an_exception_no_check_foresaw_excludes_that_client_only(fuzz_store: LocalStore, monkeypatch) -> None:
    honest, other = _post(fuzz_store, 0, *_honest_blobs(0)), _post(fuzz_store, 2, *_honest_blobs(2))
    real_open = aggregator.open_share_with_key

    def open_share_with_key(sealed: bytes, key: bytes, context: ShareContext) -> bytes:
        if context.client == other.client.lower():
            raise OverflowError("a bug in a check")
        return real_open(sealed, key, context)

    monkeypatch.setattr(aggregator, "open_share_with_key", open_share_with_key)
    shares, excluded = collect_client_shares(fuzz_store, [honest, other], _TERMS, member_index=1,
                                             private_key=_MEMBER_KEY, max_blob_bytes=1 << 20)
    assert list(shares) == [0]
    assert [(e.submission.client, e.reason) for e in excluded] == [(other.client, "UnexpectedOverflowError")]


def test_a_cid_nobody_serves_is_excluded_once_the_fetch_budget_is_spent(jsipfs_node, fuzz_store: LocalStore) -> None:
    # js-ipfs looks for a CID it does not hold until told to stop: the daemon-side fetch
    # timeout is a minute here, the member's budget 3 s, and the other clients still count.
    store = KuboStore(jsipfs_node.api_url, fetch_timeout=60.0)
    honest_document, honest_sealed = _honest_blobs(0)
    for blob in honest_sealed:
        store.put(blob)
    honest = Submission(0, _client_address(0), store.put(json.dumps(honest_document).encode()))
    missing = Submission(1, _client_address(1), compute_cid(b"a manifest nobody ever stored"))
    started = time.monotonic()
    shares, excluded = collect_client_shares(store, [missing, honest], _TERMS, member_index=1,
                                             private_key=_MEMBER_KEY, max_blob_bytes=1 << 20, budget_seconds=3.0)
    elapsed = time.monotonic() - started
    assert list(shares) == [0]
    # The daemon gives up at the client's part of the budget (BlobNotFound), else the member does.
    assert [(e.submission.index, e.reason in ("BlobNotFound", "FetchTimedOut")) for e in excluded] == [(1, True)]
    assert elapsed < 10.0, f"a member waited {elapsed:.1f} s for a blob nobody serves"


def test_each_client_gets_its_part_of_the_fetch_budget() -> None:
    assert compute_fetch_timeout(12.0, clients=10, workers=64) == 6.0  # one batch: half each fetch
    assert compute_fetch_timeout(12.0, clients=10, workers=2) == 1.2  # five batches
    assert compute_fetch_timeout(0.01, clients=1000, workers=1) == 0.05  # never below a floor


def test_clients_posting_cids_nobody_serves_cannot_use_up_the_time_of_the_others(jsipfs_node) -> None:
    # Nine clients first, with manifests nobody stores, two fetches at a time: with the store's
    # minute-long fetch timeout the honest tenth would never be reached within the budget.
    store = KuboStore(jsipfs_node.api_url, fetch_timeout=60.0)
    honest_document, honest_sealed = _honest_blobs(0)
    for blob in honest_sealed:
        store.put(blob)
    missing = [Submission(i, _client_address(i), compute_cid(f"nobody stored this {i}".encode())) for i in range(1, 10)]
    honest = Submission(0, _client_address(0), store.put(json.dumps(honest_document).encode()))
    started = time.monotonic()
    shares, excluded = collect_client_shares(store, [*missing, honest], _TERMS, member_index=1,
                                             private_key=_MEMBER_KEY, max_blob_bytes=1 << 20,
                                             budget_seconds=8.0, workers=2)
    assert list(shares) == [0], [(e.submission.index, e.reason) for e in excluded]
    assert sorted(e.submission.index for e in excluded) == list(range(1, 10))
    assert time.monotonic() - started < 12.0


def test_a_set_fixed_between_the_check_and_the_transaction_is_summed_over_again(make_federation_in) -> None:
    fed: Federation = make_federation_in(clients=3, members=4, threshold=2)
    _split_the_committee_on_client_2(fed)
    m1, _, m3, m4 = fed.members
    (closed,) = [e for e in fed.drive([]) if isinstance(e, CollectionClosed)]
    fed.deliver(closed, [m3, m4])  # {0, 1} is fixed now
    contract, real_round_info = m1.node.contract, m1.node.contract.round_info
    stale = iter([replace(real_round_info(1), included_clients=ClientSet(0))])  # m1 read the round just before
    contract.round_info = lambda round_: next(stale, None) or real_round_info(round_)
    try:
        fed.deliver(closed, [m1])
    finally:
        del contract.round_info
    (share,) = [e for e in events_of(fed.events(), AggregateShareSubmitted) if e.member_index == 1]
    assert share.included_clients == ClientSet(0b011)


def test_a_member_fetches_and_checks_the_rounds_model_once_and_keeps_it_read_only(make_federation_in) -> None:
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2)
    (opened,) = [e for e in fed.events() if e.name == "RoundOpened"]
    member = fed.members[0]
    real_get, model_reads = member.node.store.get, []

    def counting_get(cid, **kwargs):
        model_reads.extend([cid] if cid == opened.model_cid else [])
        return real_get(cid, **kwargs)

    member.node.store = type("CountingStore", (), {"get": staticmethod(counting_get), "put": real_get.__self__.put,
                                                   "has": real_get.__self__.has})()
    fed.drive()
    assert fed.contract.state(1) == RoundState.Finalized and fed.contract.member(member.node.address)[2] == 1
    assert model_reads == [opened.model_cid]  # step 1, publishing and reconstructing read it three times
    cached = member.models[opened.model_cid]
    with pytest.raises(ValueError, match="read-only"):
        next(iter(cached.values()))[...] = 0


def test_a_member_stopped_while_it_waited_for_shares_waits_again_at_start_and_votes(make_federation_in) -> None:
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2)
    (closed,) = events_of(fed.drive(fed.clients), CollectionClosed)
    fed.deliver(closed, fed.members)
    (reached,) = events_of(fed.events(), ThresholdReached)
    fed.deliver(reached, fed.members)
    assert all(member.is_waiting() for member in fed.members)

    # A restart: the checkpoint is past ThresholdReached, and what the member waited for is gone.
    restarted = replace(fed.members[0], pending={})
    fed.members[0] = restarted
    assert restarted.resume_events() == [reached]
    for event in restarted.resume_events():
        fed.deliver(event, [restarted])
    assert restarted.is_waiting()
    fed.drive()

    assert fed.contract.state(1) == RoundState.Finalized
    assert fed.contract.member(restarted.node.address)[2] == 1  # it voted
    assert restarted.resume_events() == []  # nothing left to wait for


def _waiting_after_threshold(fed: Federation, members: list[AggregatorAgent]) -> ThresholdReached:
    """Deliver CollectionClosed and then ThresholdReached to ``members``: they wait for shares."""
    (closed,) = events_of(fed.drive(fed.clients), CollectionClosed)
    fed.deliver(closed, members)
    (reached,) = events_of(fed.events(), ThresholdReached)
    fed.deliver(reached, members)
    return reached


def test_a_node_away_for_a_moment_while_a_member_votes_costs_no_vote(make_federation_in, monkeypatch) -> None:
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2)
    _waiting_after_threshold(fed, fed.members)
    member = fed.members[0]
    contract = member.node.contract
    real_threshold, calls = contract.threshold, []

    def threshold_once_unreachable() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ChainUnavailable("the node at http://127.0.0.1:1 did not answer (threshold): connection refused")
        return real_threshold()

    monkeypatch.setattr(contract, "threshold", threshold_once_unreachable)
    for vote in member.pending.values():  # every member published: let the fetches of all three end
        vote.fetcher.refresh()
        vote.fetcher.collect(wait_for_all=True)
    outcomes = handle_event_retrying(member, Tick(), sleep=lambda seconds: None)

    assert len(calls) >= 2 and not member.is_waiting()
    assert any(o.tx_hash for o in outcomes) and fed.contract.member(member.node.address)[2] == 1  # it voted


def test_a_member_that_cannot_start_over_for_another_client_set_waits_for_none(make_federation_in,
                                                                                monkeypatch) -> None:
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2)
    reached = _waiting_after_threshold(fed, fed.members)
    member = fed.members[0]
    old = member.pending[1].fetcher

    def model_unreadable(agent, round_):
        raise StorageError("the round's model is not in the store")

    monkeypatch.setattr(aggregator, "round_model", model_unreadable)
    with pytest.raises(StorageError):
        aggregator.start_reconstruction(member, StartReconstruction(1, ClientSet(0b011), reached.proposal_deadline))
    assert not member.is_waiting()  # not half set up over the old set, with its fetches abandoned
    with pytest.raises(RuntimeError):
        old._pool.submit(print)


def test_a_restarted_member_resumes_only_on_a_threshold_reached_that_is_confirmations_deep(make_federation_in) -> None:
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2)
    reached = _waiting_after_threshold(fed, fed.members)
    restarted = replace(fed.members[0], pending={})
    node = restarted.node
    depth = fed.chain.w3.eth.block_number - reached.block_number  # blocks on top of it now
    node.config = replace(node.config, node=replace(node.config.node, confirmations=depth + 2))
    assert restarted.resume_events() == []
    for _ in range(2):
        fed.chain.w3.provider.make_request("evm_mine", [])
    assert restarted.resume_events() == [reached]


def test_with_confirmations_a_waiting_member_takes_shares_posted_at_the_head(make_federation_in) -> None:
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2)
    m1, m2, m3 = fed.members
    (closed,) = events_of(fed.drive(fed.clients), CollectionClosed)
    fed.deliver(closed, [m1, m2])
    (reached,) = events_of(fed.events(), ThresholdReached)
    fed.deliver(reached, [m1, m2])
    fed.deliver(closed, [m3])  # m3's share is posted after ThresholdReached...
    fed.deliver(reached, [m3])  # ...and published; m1 has not heard its AggregateShareSubmitted
    m1.node.config = replace(m1.node.config, node=replace(m1.node.config.node, confirmations=5))
    aggregator.waiting_rounds(m1, time.monotonic())
    m1.pending[1].fetcher.collect(wait_for_all=True)
    (waiting,) = aggregator.waiting_rounds(m1, time.monotonic()).values()
    assert waiting.over_set == 3 and waiting.settled == 3
