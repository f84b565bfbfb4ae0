"""The round fold: one event at a time into a RoundRecord, a whole event list into every round,
and members' exclusion records beside them.

The unit tests use hand-made events. The properties generate whole trainings with a small
model of the contract's rules (which transaction is allowed in which state, and which events
it emits), and check that the fold agrees with the model and does not care how the event list
is cut into batches.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.records import ExclusionRecord
from fedtss.chain import (
    AggregateShareSubmitted,
    ChainEvent,
    ClientSet,
    CollectionClosed,
    ModelProposed,
    RoundEvent,
    RoundFailed,
    RoundFinalized,
    RoundOpened,
    RoundState,
    ThresholdReached,
    TrainingCompleted,
    TrainingStarted,
    UpdateSubmitted,
)
from fedtss.chain.contract_events import EVENT_TYPES
from fedtss.chain.rounds import (
    RecordedExclusion,
    RoundRecord,
    TimelineMark,
    apply_event,
    apply_exclusions,
    fold_rounds,
)
from fedtss.cid import RAW, cid_from_parts


def _cid(label: str) -> str:
    return cid_from_parts(RAW, hashlib.sha256(label.encode()).digest())


def _address(n: int) -> str:
    return f"0x{n:040x}"


def _tx(n: int) -> str:
    return f"0x{n:064x}"


def _at(block: int, log_index: int = 0) -> dict:
    """Where an event happened: its block, a transaction hash of that block, its log index."""
    return {"block_number": block, "tx_hash": _tx(block), "log_index": log_index}


MODEL = _cid("model 0")
RESULT = _cid("model 1")


def _round_one_finalized() -> list[ChainEvent]:
    """Round 1 by hand: three updates, collection closes at the target, two shares over {0,1,2}
    reach t = 2, two votes finalize, round 2 opens."""
    everyone = ClientSet.of(range(3))
    return [
        TrainingStarted(first_round=1, rounds=2, **_at(10)),
        RoundOpened(round=1, model_cid=MODEL, collection_deadline=1_000, **_at(10, 1)),
        UpdateSubmitted(round=1, client=_address(11), index=0, manifest_cid=_cid("m0"), **_at(11)),
        UpdateSubmitted(round=1, client=_address(12), index=1, manifest_cid=_cid("m1"), **_at(12)),
        UpdateSubmitted(round=1, client=_address(13), index=2, manifest_cid=_cid("m2"), **_at(13)),
        CollectionClosed(round=1, clients=3, aggregation_deadline=1_060, **_at(13, 1)),
        AggregateShareSubmitted(round=1, member=_address(1), member_index=1, share_cid=_cid("s1"),
                                included_clients=everyone, **_at(14)),
        AggregateShareSubmitted(round=1, member=_address(2), member_index=2, share_cid=_cid("s2"),
                                included_clients=everyone, **_at(15)),
        ThresholdReached(round=1, included_clients=everyone, proposal_deadline=1_120, **_at(15, 1)),
        ModelProposed(round=1, member=_address(2), model_cid=RESULT, **_at(16)),
        ModelProposed(round=1, member=_address(1), model_cid=RESULT, **_at(17)),
        RoundFinalized(round=1, model_cid=RESULT, **_at(17, 1)),
        RoundOpened(round=2, model_cid=RESULT, collection_deadline=2_000, **_at(17, 2)),
    ]


# ------------------------------------------------------------------------ one event


def test_a_round_opened_is_collecting_from_its_model_until_its_collection_deadline() -> None:
    opened = RoundOpened(round=4, model_cid=MODEL, collection_deadline=500, **_at(7))
    record = apply_event(RoundRecord(round=4), opened)
    assert (record.state, record.model_cid, record.collection_deadline) == (RoundState.Collecting, MODEL, 500)
    assert record.timeline == (TimelineMark("RoundOpened", RoundState.Collecting, 7, _tx(7)),)
    assert (record.submitted, record.participants, record.result_cid, record.failed_in) == (0, None, None, None)


def test_the_hand_made_round_goes_through_every_state_with_one_mark_each() -> None:
    record = fold_rounds(_round_one_finalized())[1]
    assert record.state is RoundState.Finalized and record.is_finished
    assert [(m.event, m.state, m.block_number) for m in record.timeline] == [
        ("RoundOpened", RoundState.Collecting, 10), ("CollectionClosed", RoundState.Aggregating, 13),
        ("ThresholdReached", RoundState.Reconstructing, 15), ("RoundFinalized", RoundState.Finalized, 17)]
    assert record.mark(RoundState.Aggregating).tx_hash == _tx(13)
    assert record.mark(RoundState.Failed) is None


def test_submissions_shares_and_votes_are_the_events_in_chain_order() -> None:
    events = _round_one_finalized()
    record = fold_rounds(events)[1]
    assert record.submissions == tuple(e for e in events if isinstance(e, UpdateSubmitted))
    assert [s.member_index for s in record.shares] == [1, 2]
    assert [v.member for v in record.votes] == [_address(2), _address(1)]
    assert record.submitted == 3


def test_threshold_reached_fixes_the_client_set_and_the_proposal_deadline() -> None:
    record = fold_rounds(_round_one_finalized()[:9])[1]
    assert record.state is RoundState.Reconstructing
    assert record.included_clients == ClientSet.of(range(3)) and record.participants == 3
    assert record.committee_deadline == 1_120


def test_collection_closed_starts_the_aggregation_deadline_and_no_set_is_fixed_yet() -> None:
    record = fold_rounds(_round_one_finalized()[:6])[1]
    assert record.state is RoundState.Aggregating and not record.is_finished
    assert (record.committee_deadline, record.included_clients, record.participants) == (1_060, None, None)


def test_a_finalized_round_has_its_result_and_the_next_round_trains_from_it() -> None:
    rounds = fold_rounds(_round_one_finalized())
    assert rounds[1].result_cid == RESULT
    assert rounds[2].state is RoundState.Collecting and rounds[2].model_cid == RESULT


def test_a_failed_round_keeps_the_state_it_failed_in_and_is_finished() -> None:
    events = [RoundOpened(round=3, model_cid=MODEL, collection_deadline=9, **_at(1)),
              UpdateSubmitted(round=3, client=_address(11), index=0, manifest_cid=_cid("m"), **_at(2)),
              RoundFailed(round=3, state_at_failure=RoundState.Collecting, **_at(3))]
    record = fold_rounds(events)[3]
    assert (record.state, record.failed_in, record.result_cid) == (RoundState.Failed, RoundState.Collecting, None)
    assert record.is_finished and record.mark(RoundState.Failed).block_number == 3


def test_applying_an_event_returns_a_new_record_and_leaves_the_old_one_as_it_was() -> None:
    opened = apply_event(RoundRecord(round=1), _round_one_finalized()[1])
    submitted = apply_event(opened, _round_one_finalized()[2])
    assert opened.submitted == 0 and submitted.submitted == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        opened.state = RoundState.Failed  # type: ignore[misc]


def test_an_event_of_another_round_is_refused() -> None:
    with pytest.raises(ValueError, match="round 2"):
        apply_event(RoundRecord(round=1), RoundOpened(round=2, model_cid=MODEL, collection_deadline=1, **_at(1)))


def test_a_training_wide_event_is_refused_by_apply_event() -> None:
    with pytest.raises(TypeError, match="TrainingCompleted"):
        apply_event(RoundRecord(round=1), TrainingCompleted(last_round=1, model_cid=RESULT, **_at(1)))


def test_every_round_event_class_has_a_step() -> None:
    """A new contract event must be folded here: each RoundEvent class moves some record."""
    for cls in (c for c in EVENT_TYPES.values() if issubclass(c, RoundEvent)):
        event = _any_event(cls)
        assert apply_event(RoundRecord(round=1), event) != RoundRecord(round=1), cls.__name__


def _any_event(cls: type[RoundEvent]) -> RoundEvent:
    values = {"round": 1, "model_cid": MODEL, "collection_deadline": 1, "client": _address(1), "index": 0,
              "manifest_cid": MODEL, "clients": 2, "aggregation_deadline": 1, "member": _address(2),
              "member_index": 1, "share_cid": MODEL, "included_clients": ClientSet(3), "proposal_deadline": 1,
              "state_at_failure": RoundState.Collecting, "checks": bytes(16), "client_indices": (1,),
              "evidence": (bytes(32),)}
    names = {f.name for f in dataclasses.fields(cls)} - {"block_number", "tx_hash", "log_index"}
    return cls(**{name: values[name] for name in names}, **_at(1))


# -------------------------------------------------------------------------- many events


def test_fold_rounds_skips_training_events_and_rounds_it_did_not_see_open() -> None:
    events = _round_one_finalized()
    rounds = fold_rounds(events[3:])  # from the middle of round 1: its RoundOpened is not there
    assert list(rounds) == [2]
    assert fold_rounds([events[0], TrainingCompleted(last_round=1, model_cid=RESULT, **_at(20))]) == {}


def test_fold_rounds_continues_from_earlier_records_without_changing_them() -> None:
    events = _round_one_finalized()
    before = fold_rounds(events[:6])
    snapshot = dict(before)
    after = fold_rounds(events[6:], before)
    assert before == snapshot and before[1].state is RoundState.Aggregating
    assert after == fold_rounds(events)


# ----------------------------------------------------------------------- exclusions


def test_recorded_exclusions_of_the_round_are_added_with_the_file_they_came_from() -> None:
    record = fold_rounds(_round_one_finalized())[1]
    reports = [ExclusionRecord(1, "InvalidSealedShare", by=_address(1), client=_address(13)),
               ExclusionRecord(2, "FormatError", by=_address(1), client=_address(12)),
               ExclusionRecord(1, "InconsistentShares", by=_address(2), member=3, member_address=_address(3))]
    with_reports = apply_exclusions(record, reports, source="member-1/exclusions.jsonl")
    assert with_reports.exclusions == (
        RecordedExclusion("InvalidSealedShare", _address(1), "member-1/exclusions.jsonl", client=_address(13)),
        RecordedExclusion("InconsistentShares", _address(2), "member-1/exclusions.jsonl", member=3,
                          member_address=_address(3)),
    )
    assert [e.kind for e in with_reports.exclusions] == ["client", "member"]
    assert dataclasses.replace(with_reports, exclusions=()) == record  # nothing else changed


def test_exclusions_from_several_files_accumulate_in_order_and_repeats_are_kept() -> None:
    record = RoundRecord(round=5)
    report = ExclusionRecord(5, "FormatError", by=_address(1), client=_address(9))
    record = apply_exclusions(record, [report, report], source="member-1/exclusions.jsonl")
    record = apply_exclusions(record, [], source="member-2/exclusions.jsonl")
    record = apply_exclusions(record, [dataclasses.replace(report, by=_address(2))], source="member-3/exclusions.jsonl")
    assert [(e.by, e.source) for e in record.exclusions] == [
        (_address(1), "member-1/exclusions.jsonl"), (_address(1), "member-1/exclusions.jsonl"),
        (_address(2), "member-3/exclusions.jsonl")]


# ----------------------------------------------------------------------- properties


@dataclass
class _ModelRound:
    """What the contract holds for one round (``Round`` and the counters beside it)."""

    state: RoundState = RoundState.Collecting
    clients: int = 0
    shares: int = 0
    votes: int = 0
    share_counts: Counter = field(default_factory=Counter)
    vote_counts: Counter = field(default_factory=Counter)
    shared: set = field(default_factory=set)
    voted: set = field(default_factory=set)
    included: ClientSet | None = None
    result: str | None = None
    failed_in: RoundState | None = None


@st.composite
def trainings(draw: st.DrawFn) -> tuple[list[ChainEvent], dict[int, _ModelRound]]:
    """The events of a whole training, drawn transaction by transaction from what the contract
    allows in each state, and the contract's rounds afterwards."""
    committee = draw(st.integers(2, 5))
    threshold = draw(st.integers(2, committee))
    target = draw(st.integers(2, 6))
    min_clients = draw(st.integers(2, target))
    wanted = draw(st.integers(1, 3))
    events: list[ChainEvent] = []
    block = 0

    def emit(*made: tuple[type[ChainEvent], dict]) -> None:
        """One transaction: its events, in order, in a new block."""
        nonlocal block
        block += 1
        for log_index, (cls, fields) in enumerate(made):
            events.append(cls(**fields, **_at(block, log_index)))

    rounds: dict[int, _ModelRound] = {1: _ModelRound()}
    opened = (RoundOpened, {"round": 1, "model_cid": MODEL, "collection_deadline": 100})
    emit((TrainingStarted, {"first_round": 1, "rounds": wanted}), opened)
    current, finalized = 1, 0
    for _ in range(draw(st.integers(0, 60))):
        r = rounds[current]
        moves, may_fail = [], r.state in (RoundState.Aggregating, RoundState.Reconstructing)
        if r.state is RoundState.Collecting:
            moves += ["submit"] if r.clients < target else []
            moves += ["close"] if r.clients >= min_clients else []
            may_fail = r.clients < min_clients
        elif may_fail:
            moves += ["share"] if len(r.shared) < committee else []
            moves += ["vote"] if r.state is RoundState.Reconstructing and len(r.voted) < committee else []
        elif r.state is RoundState.Failed:
            moves += ["reopen"]
        if may_fail and (not moves or draw(st.integers(0, 9)) == 0):
            moves = ["fail"]  # a deadline passed: one draw in ten, or when nothing else can happen
        if not moves:
            break  # training completed
        move = draw(st.sampled_from(moves))
        if move == "submit":
            index, r.clients = r.clients, r.clients + 1
            submitted = (UpdateSubmitted, {"round": current, "client": _address(100 + index), "index": index,
                                           "manifest_cid": _cid(f"m{current}.{index}")})
            if r.clients == target:
                r.state = RoundState.Aggregating
                emit(submitted, (CollectionClosed, {"round": current, "clients": target, "aggregation_deadline": 200}))
            else:
                emit(submitted)
        elif move == "close":
            r.state = RoundState.Aggregating
            emit((CollectionClosed, {"round": current, "clients": r.clients, "aggregation_deadline": 200}))
        elif move == "fail":
            r.failed_in, r.state = r.state, RoundState.Failed
            emit((RoundFailed, {"round": current, "state_at_failure": r.failed_in}))
        elif move == "reopen":
            current += 1
            rounds[current] = _ModelRound()
            emit((RoundOpened, {"round": current, "model_cid": MODEL, "collection_deadline": 100}))
        elif move == "share":
            member = draw(st.sampled_from(sorted(set(range(1, committee + 1)) - r.shared)))
            if r.included is not None:
                included = r.included
            else:  # two candidate sets: everyone, or all but the first client
                included = draw(st.sampled_from([ClientSet.of(range(r.clients)), ClientSet.of(range(1, r.clients))]))
                if len(included) < min_clients:
                    included = ClientSet.of(range(r.clients))
            r.shared.add(member)
            r.shares += 1
            r.share_counts[included] += 1
            share = (AggregateShareSubmitted, {"round": current, "member": _address(member), "member_index": member,
                                               "share_cid": _cid(f"s{current}.{member}"), "included_clients": included})
            if r.state is RoundState.Aggregating and r.share_counts[included] == threshold:
                r.state, r.included = RoundState.Reconstructing, included
                emit(share, (ThresholdReached, {"round": current, "included_clients": included,
                                                "proposal_deadline": 300}))
            else:
                emit(share)
        elif move == "vote":
            member = draw(st.sampled_from(sorted(set(range(1, committee + 1)) - r.voted)))
            cid = draw(st.sampled_from([_cid(f"model {current}"), _cid(f"wrong {current}")]))
            r.voted.add(member)
            r.votes += 1
            r.vote_counts[cid] += 1
            vote = (ModelProposed, {"round": current, "member": _address(member), "model_cid": cid})
            if r.vote_counts[cid] < threshold:
                emit(vote)
                continue
            r.state, r.result = RoundState.Finalized, cid
            finalized += 1
            if finalized < wanted:
                current += 1
                rounds[current] = _ModelRound()
                emit(vote, (RoundFinalized, {"round": current - 1, "model_cid": cid}),
                     (RoundOpened, {"round": current, "model_cid": cid, "collection_deadline": 100}))
            else:
                emit(vote, (RoundFinalized, {"round": current, "model_cid": cid}),
                     (TrainingCompleted, {"last_round": current, "model_cid": cid}))
    return events, rounds


@settings(max_examples=200, deadline=None)
@given(trainings())
def test_folding_a_trainings_events_gives_every_round_the_state_and_counts_the_contract_has(
        training: tuple[list[ChainEvent], dict[int, _ModelRound]]) -> None:
    events, expected = training
    folded = fold_rounds(events)
    assert sorted(folded) == sorted(expected)
    for number, contract in expected.items():
        record = folded[number]
        assert record.state is contract.state
        assert (record.submitted, len(record.shares), len(record.votes)) == (contract.clients, contract.shares,
                                                                              contract.votes)
        assert (record.included_clients, record.result_cid, record.failed_in) == (contract.included, contract.result,
                                                                                  contract.failed_in)
        assert [m.state for m in record.timeline] == sorted({m.state for m in record.timeline}), "one mark a state"
        assert record.timeline[-1].state is record.state


@settings(max_examples=100, deadline=None)
@given(trainings(), st.lists(st.integers(0, 200), max_size=6))
def test_folding_in_batches_gives_the_records_folding_at_once_gives(
        training: tuple[list[ChainEvent], dict[int, _ModelRound]], cuts: list[int]) -> None:
    events, _ = training
    bounds = [0, *sorted(min(c, len(events)) for c in cuts), len(events)]
    rounds: dict[int, RoundRecord] = {}
    for start, stop in zip(bounds, bounds[1:]):
        rounds = fold_rounds(events[start:stop], rounds)
    assert rounds == fold_rounds(events)


@settings(max_examples=100, deadline=None)
@given(trainings())
def test_folding_one_event_at_a_time_with_apply_event_gives_what_fold_rounds_gives(
        training: tuple[list[ChainEvent], dict[int, _ModelRound]]) -> None:
    events, _ = training
    rounds: dict[int, RoundRecord] = {}
    for event in events:
        if isinstance(event, RoundEvent):
            rounds[event.round] = apply_event(rounds.get(event.round, RoundRecord(round=event.round)), event)
    assert rounds == fold_rounds(events)
