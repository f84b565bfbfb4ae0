"""A round's history from the contract's events: the one fold every reader of rounds shares.

The contract is the single source of truth, and its events tell everything that happened to a
round. :func:`apply_event` applies one event to a :class:`RoundRecord` and returns the new
record; :func:`fold_rounds` applies a list of events to every round they name. Both are pure:
nothing is mutated, nothing is read (no chain, no disk, no clock). The launcher's tracker, the
explorer and the operator CLI read rounds through them and add only what they alone show
(wall-clock times, block timestamps, gas), so a new event or field is added here, once.

What members decided about other parties is not on chain: their exclusion records
(``agents.records``, ``exclusions.jsonl``) are added to a round by :func:`apply_exclusions`.

The fold follows the contract's rules without checking them: the contract emitted each event
only after its guards passed, so the events of one chain, in chain order, are a valid history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from fedtss.chain.contract_events import (
    AggregateShareSubmitted,
    ChainEvent,
    ChecksSubmitted,
    ClientSet,
    CollectionClosed,
    ComplaintsSubmitted,
    ModelProposed,
    RoundEvent,
    RoundFailed,
    RoundFinalized,
    RoundOpened,
    RoundState,
    ThresholdReached,
    UpdateSubmitted,
)

__all__ = [
    "ExclusionReport",
    "RecordedExclusion",
    "RoundRecord",
    "TimelineMark",
    "apply_event",
    "apply_exclusions",
    "fold_rounds",
]

_ENDED = (RoundState.Finalized, RoundState.Failed)


@dataclass(frozen=True)
class TimelineMark:
    """One step of a round's life: the event that moved the round into ``state``, and where."""

    event: str  # the Solidity event name: RoundOpened, CollectionClosed, ThresholdReached, ...
    state: RoundState
    block_number: int
    tx_hash: str


class ExclusionReport(Protocol):
    """What a member recorded about a party it left out: ``agents.records.ExclusionRecord``."""

    @property
    def round(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def by(self) -> str: ...
    @property
    def client(self) -> str | None: ...
    @property
    def member(self) -> int | None: ...
    @property
    def member_address(self) -> str | None: ...


@dataclass(frozen=True)
class RecordedExclusion:
    """A party a member left out of the round, as the member's record says, and where it was read.

    Exactly one of ``client`` (an address) and ``member`` (a 1-based index, with
    ``member_address`` when the record has it) names the party; ``by`` is the member that
    decided, ``reason`` an error class name, ``source`` the record file.
    """

    reason: str
    by: str
    source: str
    client: str | None = None
    member: int | None = None
    member_address: str | None = None

    @property
    def kind(self) -> str:
        """``"client"`` or ``"member"``."""
        return "client" if self.client is not None else "member"


@dataclass(frozen=True)
class RoundRecord:
    """Everything the events say about one round.

    ``state`` is the contract's ``state(round)`` after the events folded so far; ``timeline``
    holds one mark per state the round entered. ``submissions``, ``checks``, ``complaints``,
    ``shares`` and ``votes`` are the events themselves, in chain order. ``included_clients`` is the set fixed by
    ``ThresholdReached`` (None before), ``committee_deadline`` the deadline of the committee
    phase the round is in (aggregation, then proposal), ``result_cid`` the finalized model.
    """

    round: int
    state: RoundState = RoundState.Unopened
    model_cid: str | None = None  # the model the round trains from
    collection_deadline: int | None = None
    committee_deadline: int | None = None
    included_clients: ClientSet | None = None
    result_cid: str | None = None
    failed_in: RoundState | None = None
    timeline: tuple[TimelineMark, ...] = ()
    submissions: tuple[UpdateSubmitted, ...] = ()
    checks: tuple[ChecksSubmitted, ...] = ()
    complaints: tuple[ComplaintsSubmitted, ...] = ()
    shares: tuple[AggregateShareSubmitted, ...] = ()
    votes: tuple[ModelProposed, ...] = ()
    exclusions: tuple[RecordedExclusion, ...] = ()

    @property
    def submitted(self) -> int:
        """Updates posted: the contract's ``roundInfo.clients``."""
        return len(self.submissions)

    @property
    def participants(self) -> int | None:
        """Clients in the fixed set, once there is one."""
        return None if self.included_clients is None else len(self.included_clients)

    @property
    def is_finished(self) -> bool:
        """Finalized or failed: no event changes the round any more."""
        return self.state in _ENDED

    def mark(self, state: RoundState) -> TimelineMark | None:
        """The step at which the round entered ``state``, if it did."""
        return next((m for m in self.timeline if m.state is state), None)


# ---------------------------------------------------------------------------- one event


def _enter(record: RoundRecord, event: RoundEvent, state: RoundState, **changes: Any) -> RoundRecord:
    mark = TimelineMark(event.name, state, event.block_number, event.tx_hash)
    return replace(record, state=state, timeline=(*record.timeline, mark), **changes)


def _process_round_opened(record: RoundRecord, event: RoundOpened) -> RoundRecord:
    return _enter(record, event, RoundState.Collecting, model_cid=event.model_cid,
                  collection_deadline=event.collection_deadline)


def _process_update_submitted(record: RoundRecord, event: UpdateSubmitted) -> RoundRecord:
    return replace(record, submissions=(*record.submissions, event))


def _process_collection_closed(record: RoundRecord, event: CollectionClosed) -> RoundRecord:
    return _enter(record, event, RoundState.Aggregating, committee_deadline=event.aggregation_deadline)


def _process_checks_submitted(record: RoundRecord, event: ChecksSubmitted) -> RoundRecord:
    return replace(record, checks=(*record.checks, event))


def _process_complaints_submitted(record: RoundRecord, event: ComplaintsSubmitted) -> RoundRecord:
    return replace(record, complaints=(*record.complaints, event))


def _process_aggregate_share_submitted(record: RoundRecord, event: AggregateShareSubmitted) -> RoundRecord:
    return replace(record, shares=(*record.shares, event))


def _process_threshold_reached(record: RoundRecord, event: ThresholdReached) -> RoundRecord:
    return _enter(record, event, RoundState.Reconstructing, included_clients=event.included_clients,
                  committee_deadline=event.proposal_deadline)


def _process_model_proposed(record: RoundRecord, event: ModelProposed) -> RoundRecord:
    return replace(record, votes=(*record.votes, event))


def _process_round_finalized(record: RoundRecord, event: RoundFinalized) -> RoundRecord:
    return _enter(record, event, RoundState.Finalized, result_cid=event.model_cid)


def _process_round_failed(record: RoundRecord, event: RoundFailed) -> RoundRecord:
    return _enter(record, event, RoundState.Failed, failed_in=event.state_at_failure)


#: One step per round event class (tests check that every one has its step).
_STEPS: Mapping[type[RoundEvent], Callable[[RoundRecord, Any], RoundRecord]] = {
    RoundOpened: _process_round_opened,
    UpdateSubmitted: _process_update_submitted,
    CollectionClosed: _process_collection_closed,
    ChecksSubmitted: _process_checks_submitted,
    ComplaintsSubmitted: _process_complaints_submitted,
    AggregateShareSubmitted: _process_aggregate_share_submitted,
    ThresholdReached: _process_threshold_reached,
    ModelProposed: _process_model_proposed,
    RoundFinalized: _process_round_finalized,
    RoundFailed: _process_round_failed,
}


def apply_event(record: RoundRecord, event: RoundEvent) -> RoundRecord:
    """The round after ``event``, as a new record (``record`` itself is left as it was).

    Raises ValueError for an event of another round and TypeError for an event of no round
    (``TrainingStarted``, ``TrainingCompleted``): both are a caller's mistake.
    """
    if not isinstance(event, RoundEvent):
        raise TypeError(f"{event.name} belongs to no one round; fold_rounds skips it")
    if event.round != record.round:
        raise ValueError(f"{event.name} of round {event.round} applied to the record of round {record.round}")
    return _STEPS[type(event)](record, event)


def fold_rounds(events: Iterable[ChainEvent], rounds: Mapping[int, RoundRecord] | None = None) -> dict[int, RoundRecord]:
    """Every round after ``events`` (in chain order), continuing from the records ``rounds``.

    A round's record starts at its ``RoundOpened``: events of a round the fold did not see
    open are skipped (fold from the deploy block), and so are the training-wide events.
    ``rounds`` is not changed; folding a list in batches, each from the last batch's result,
    gives what folding it at once gives.
    """
    folded = dict(rounds or {})
    for event in events:
        if not isinstance(event, RoundEvent):
            continue
        record = folded.get(event.round)
        if record is None:
            if not isinstance(event, RoundOpened):
                continue
            record = RoundRecord(round=event.round)
        folded[event.round] = apply_event(record, event)
    return folded


# ---------------------------------------------------------------------- exclusion records


def apply_exclusions(record: RoundRecord, reports: Iterable[ExclusionReport], *, source: str) -> RoundRecord:
    """The round with the exclusions that ``reports`` (read from ``source``) record for it.

    Reports of other rounds are skipped. Each report is kept as it is, repeats included (a
    member restarted mid-round may record the same exclusion twice): showing them once is the
    reader's choice.
    """
    added = tuple(RecordedExclusion(reason=r.reason, by=r.by, source=source, client=r.client, member=r.member,
                                    member_address=r.member_address)
                  for r in reports if r.round == record.round)
    return replace(record, exclusions=(*record.exclusions, *added)) if added else record
