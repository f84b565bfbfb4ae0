"""End to end on anvil, one OS process per agent: the result, and the faults a federation must survive.

Every test runs real processes (``python -m agents.client``, ``agents.aggregator``,
``agents.keeper``) started by the demo's own launcher, and reads the outcome from
the chain's events and the store.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import pytest

from agents.learning import apply_mean_update
from fedtss.chain import (
    AggregateShareSubmitted,
    ChainEvent,
    ChecksSubmitted,
    ClientSet,
    ModelProposed,
    RoundFinalized,
    RoundOpened,
    UpdateSubmitted,
)
from fedtss.field import MODULUS
from fedtss.chain import load_deployment
from fedtss.formats import VectorKind, encode_field_vector, flatten_model, shared_vector_length
from fedtss.quantize import QuantizationConfig, clip_update, quantization_error_bound
from fedtss.validation import check_tail_length
from orchestration.launcher import LocalFederation
from orchestration.tracker import RoundTracker

from .conftest import ROUND_TIMEOUT

pytestmark = pytest.mark.slow

_E = TypeVar("_E", bound=ChainEvent)


def _plaintext_round(federation: LocalFederation, model: dict, round_: int) -> tuple[dict, int]:
    """One round of clipped, sample-weighted FedAvg in float from ``model``, with the clients' seeds."""
    spec = federation.spec
    weighted, total = None, 0
    for index in range(spec.clients):
        delta, samples = federation.client_update(index, round_, model)
        contribution = clip_update(delta, spec.clip_norm) * samples
        weighted = contribution if weighted is None else weighted + contribution
        total += samples
    return apply_mean_update(model, weighted / total), total


def _model_cid_opened(tracker: RoundTracker, round_: int) -> str:
    return tracker.round_events(round_, RoundOpened)[0].model_cid


def _by(events: list[_E], field: str, address: str) -> list[_E]:
    """The events whose ``field`` (``client`` or ``member``) is ``address``."""
    return [e for e in events if getattr(e, field) == address]


def _sent_by(federation: LocalFederation, address: str) -> list[tuple[str, int, int]]:
    """Every transaction ``address`` got mined, as (contract function, status, block), in order."""
    w3, contract = federation.contract.w3, federation.contract.contract
    sent = []
    for number in range(w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"] == address:
                function = contract.get_function_by_selector(bytes(tx["input"][:4])).fn_name
                sent.append((function, w3.eth.get_transaction_receipt(tx["hash"])["status"], number))
    return sent


def _assert_is_plaintext_fedavg(federation: LocalFederation, model_in: dict, finalized_cid: str,
                                round_: int) -> None:
    spec = federation.spec
    quantization = QuantizationConfig(clip_norm=spec.clip_norm, fractional_bits=spec.fractional_bits)
    expected, total_samples = _plaintext_round(federation, model_in, round_)
    finalized = federation.load_model(finalized_cid)
    bound = quantization_error_bound(quantization, clients=spec.clients, total_samples=total_samples,
                                     weighted_by_members=spec.members_weight_updates)
    for name, value in expected.items():
        # Quantization moves the float64 mean by <= bound; each side then rounds once to float32.
        tolerance = bound + np.spacing(np.abs(value))
        assert np.all(np.abs(finalized[name] - value) <= tolerance), name
    assert not all(np.array_equal(finalized[n], model_in[n]) for n in model_in), "the model did not move"


@pytest.mark.parametrize("aggregation", ["shamir", "masked"])
def test_two_rounds_finalize_the_plaintext_fedavg_of_the_same_client_updates(small_federation, aggregation) -> None:
    federation, tracker = small_federation(aggregation=aggregation)
    tracker.wait_until(lambda t: t.completed, timeout=2 * ROUND_TIMEOUT)
    previous_cid = federation.initial_model_cid
    for round_ in (1, 2):
        record = tracker.records[round_]
        assert record.state == "Finalized" and record.participants == 3
        assert _model_cid_opened(tracker, round_) == previous_cid
        _assert_is_plaintext_fedavg(federation, federation.load_model(previous_cid), record.model_cid, round_)
        previous_cid = record.model_cid


def test_with_a_block_every_second_agents_and_the_keeper_finalize_a_round_on_interval_mining(
    small_federation,
) -> None:
    federation, tracker = small_federation(rounds=1, block_time=1.0)
    tracker.wait_until(lambda t: t.completed, timeout=2 * ROUND_TIMEOUT)
    record = tracker.records[1]
    assert record.state == "Finalized" and record.participants == 3
    w3 = federation.contract.w3
    sizes = [len(w3.eth.get_block(n)["transactions"]) for n in range(1, w3.eth.block_number + 1)]
    assert 0 in sizes  # blocks came on the clock, empty ones too: not one block per transaction


@pytest.mark.parametrize("aggregation", ["shamir", "masked"])
def test_a_client_that_never_submits_leaves_the_round_to_the_others(small_federation, aggregation) -> None:
    federation, tracker = small_federation(skip=("client-2",), rounds=1, collection_period=8, aggregation=aggregation)
    tracker.wait_until(lambda t: t.completed, timeout=ROUND_TIMEOUT)
    record = tracker.records[1]
    assert record.state == "Finalized"
    assert record.submitted == 2 and record.participants == 2
    assert record.gas.get("closeCollection", 0) > 0, "the keeper closed collection after the deadline"


@pytest.mark.parametrize("aggregation", ["shamir", "masked"])
def test_an_aggregator_killed_after_collection_closes_leaves_the_round_to_t_members(small_federation,
                                                                                  aggregation) -> None:
    federation, tracker = small_federation(rounds=1, aggregation=aggregation)
    tracker.wait_until(lambda t: 1 in t.records and "closed" in t.records[1].marks, timeout=ROUND_TIMEOUT)
    federation.kill("member-3")
    tracker.wait_until(lambda t: t.completed, timeout=ROUND_TIMEOUT)
    assert tracker.records[1].state == "Finalized"
    killed = federation.members[2].address
    assert _by(tracker.round_events(1, ModelProposed), "member", killed) == []
    assert len(tracker.round_events(1, ModelProposed)) == 2


def test_an_agent_killed_and_restarted_mid_round_catches_up_and_submits_once(small_federation) -> None:
    # Collection waits for all 3 clients (the target), so the round needs the restarted one.
    federation, tracker = small_federation(rounds=1)
    tracker.wait_until(lambda t: 1 in t.records, timeout=ROUND_TIMEOUT)
    federation.kill("client-0")  # mid-round: training or about to submit
    federation.start("client-0")
    tracker.wait_until(lambda t: t.completed, timeout=ROUND_TIMEOUT)
    restarted = federation.clients[0].address
    assert len(_by(tracker.round_events(1, UpdateSubmitted), "client", restarted)) == 1
    # One transaction from its account in all: no second submission was even attempted on chain.
    assert federation.contract.w3.eth.get_transaction_count(restarted) == 1
    assert tracker.records[1].state == "Finalized" and tracker.records[1].participants == 3


def test_a_stalled_round_is_failed_by_the_keeper_and_reopened(small_federation) -> None:
    federation, tracker = small_federation(skip=("client-1", "client-2"), rounds=1, collection_period=6,
                                           reopen_failed=True)
    tracker.wait_until(lambda t: 2 in t.records, timeout=ROUND_TIMEOUT)
    assert tracker.records[1].state == "Failed" and tracker.records[1].failed_in == "Collecting"
    assert tracker.records[1].gas.get("failRound", 0) > 0
    assert federation.contract.state(2).name == "Collecting"
    assert _model_cid_opened(tracker, 2) == federation.initial_model_cid
    federation.start("client-1")
    federation.start("client-2")
    # The two clients start (importing PyTorch) only now, with 6 s to submit: on a loaded machine
    # round 2 may fail too and be reopened in its turn. Each reopened round trains from model 0.
    tracker.wait_until(lambda t: t.completed, timeout=2 * ROUND_TIMEOUT)
    last = max(tracker.records)
    assert [tracker.records[r].state for r in range(2, last)] == ["Failed"] * (last - 2)
    assert tracker.records[last].state == "Finalized" and tracker.records[last].participants >= 2
    assert _model_cid_opened(tracker, last) == federation.initial_model_cid


def test_a_member_posting_a_wrong_aggregate_share_is_named_and_the_model_is_still_fedavg(small_federation) -> None:
    # Committee 4, t = 2: floor((4 - 2) / 2) = 1 wrong share can be corrected. The test plays
    # member 4 (its process never starts) and posts random field values over the full client
    # set as soon as collection closes; the honest members wait for every share.
    federation, tracker = small_federation(skip=("member-4",), rounds=1, committee=4, share_wait_seconds=20.0)
    tracker.wait_until(lambda t: 1 in t.records and "closed" in t.records[1].marks, timeout=ROUND_TIMEOUT)
    model_in = federation.load_model(federation.initial_model_cid)
    length = shared_vector_length(model_in, len(load_deployment(federation.deployment_path).model_metrics))
    if federation.spec.resolved_check_period:  # the client checks' norm masks and pad
        length += check_tail_length(federation.contract.threshold())
    garbage = np.random.default_rng(5).integers(0, MODULUS, length, dtype=np.uint64)
    cid = federation.store.put(encode_field_vector(garbage, kind=VectorKind.AGGREGATE_SHARE))
    federation.contract.submit_aggregate_share(federation.members[3], 1, cid, ClientSet.of(range(3)))

    tracker.wait_until(lambda t: t.completed, timeout=ROUND_TIMEOUT)
    record = tracker.records[1]
    assert record.state == "Finalized" and record.participants == 3
    _assert_is_plaintext_fedavg(federation, model_in, record.model_cid, 1)
    bad = federation.members[3].address
    for name in ("member-1", "member-2", "member-3"):
        log = federation.log_path(name).read_text()
        assert f"excluded_member=4 member_address={bad} reason=InconsistentShares" in log, name
    votes = tracker.round_events(1, ModelProposed)
    assert bad not in {v.member for v in votes}


def test_a_member_killed_and_restarted_mid_round_catches_up_and_acts_once(small_federation) -> None:
    federation, tracker = small_federation(rounds=1)
    tracker.wait_until(lambda t: 1 in t.records and "closed" in t.records[1].marks, timeout=ROUND_TIMEOUT)
    federation.kill("member-1")  # before, while or after it posts its aggregate share
    federation.start("member-1")
    tracker.wait_until(lambda t: t.completed, timeout=ROUND_TIMEOUT)
    assert tracker.records[1].state == "Finalized"
    member = federation.members[0].address
    shares = _by(tracker.round_events(1, AggregateShareSubmitted), "member", member)
    votes = _by(tracker.round_events(1, ModelProposed), "member", member)
    checks = _by(tracker.round_events(1, ChecksSubmitted), "member", member)
    assert len(shares) <= 1 and len(votes) <= 1 and len(checks) <= 1
    # Every transaction it got mined is one of those: nothing was sent twice. The one revert
    # allowed is the race every member runs, restarted or not: a vote estimated while the round
    # was Reconstructing and mined after t other votes finalized it.
    sent = _sent_by(federation, member)
    mined = [(function, block) for function, status, block in sent if status == 1]
    assert len(mined) == len(shares) + len(votes) + len(checks), sent
    finalized_at = tracker.round_events(1, RoundFinalized)[0].block_number
    reverted = [(function, block) for function, status, block in sent if status != 1]
    assert all(function == "proposeModel" and block >= finalized_at for function, block in reverted), sent
