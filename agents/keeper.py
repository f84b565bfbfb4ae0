"""The keeper: the third role, which sends the transactions a contract cannot send itself.

    python -m agents.keeper --config runs/demo/nodes/keeper.toml      (or fedtss keeper --config …)

A contract never wakes up on its own. When a round's collection deadline passes without the
target number of updates, somebody must send ``closeCollection`` (enough updates) or
``failRound`` (too few); when the committee misses its aggregation or proposal deadline,
somebody must send ``failRound``; and, if the operator wants training to go on after a
failure, ``reopenRound``. The keeper is that somebody.

It runs on the agents' runtime (:mod:`agents.runtime`) like a client or a member. It follows
the contract's events through the runtime's event follower, ``confirmations`` deep as they do,
and folds them with :func:`fedtss.chain.rounds.fold_rounds` (the fold every reader of rounds
shares) into one :class:`~fedtss.chain.rounds.RoundRecord` per round, kept in memory. Every
``interval_seconds`` it hears a :class:`~agents.runtime.Tick`; :meth:`KeeperAgent.observe`
gives the latest round's record and the chain's clock, the pure :func:`on_tick` (through
:func:`decide_action`) decides, and at most one transaction goes out. The clock is the
timestamp of the block the transaction would land in (the ``pending`` block, falling back to
``latest``), never the wall clock: the contract compares deadlines with ``block.timestamp``,
so a keeper on a machine whose clock is off still acts at the right time. Several keepers at
once are harmless: whoever lands second gets a revert (wrong state, deadline not reached)
that is logged as "already done".

It keeps nothing on disk: at every start it folds the events again from the deploy block
(:class:`~fedtss.chain.events.MemoryCheckpoint`), and it decides nothing until it has caught up
with the head it saw at its first tick. After a transaction of its own it waits until its fold
has reached the transaction's block, so that it never acts twice on a round it already moved on.

The configuration is a node config read by :func:`agents.config.load_node_config` with
``role="keeper"``: ``[node]`` (``rpc_url`` or ``http_url``, polled over HTTP, ws:// read as
http://; ``deployment``; ``private_key_env`` or ``keystore`` + ``password_env`` or
``password_file``; optionally ``confirmations``; an agent's other ``[node]`` keys are accepted
as they are) and an optional ``[keeper]`` table: ``interval_seconds`` (default 2.0) and
``reopen_failed`` (default false; reopening needs the operator's key).

Confirmations. With ``confirmations = k > 0`` the keeper folds only events ``k`` blocks deep
and judges deadlines by the timestamp of the last block it folded: it never acts on a state a
reorganization may still take back. ``k = 0`` (the default, right for a local dev chain) folds
events as soon as they are mined and reads the pending block's clock. A deeper reorganization
is followed: the runtime's follower goes back to the fork point, and the keeper folds its
rounds again without the events of the lost branch. Whatever it decides, the contract checks
again when the transaction lands, and a keeper whose transaction was reorganized away simply
sees the round still needing it at a later tick.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from agents.config import KeeperSettings
from agents.runtime import Handler, Node, Outcome, Tick, format_fields, log, main
from fedtss.chain import (
    AggregateShareSubmitted,
    ChecksSubmitted,
    ChainEvent,
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
    transaction_hash,
)
from fedtss.chain.events import MemoryCheckpoint
from fedtss.chain.rounds import RoundRecord, fold_rounds
from fedtss.errors import ConfigError, ContractRevert

__all__ = [
    "HANDLERS",
    "KeeperAction",
    "KeeperAgent",
    "KeeperView",
    "KeepRound",
    "SendRoundTransaction",
    "build_keeper_agent",
    "decide_action",
    "on_round_event",
    "on_tick",
]

#: Reverts that mean "someone else already moved this round on": expected with several keepers.
RACE_REVERTS = frozenset(
    {"RoundWrongState", "RoundDeadlineNotReached", "RoundHasEnoughClients", "RoundNotEnoughClients",
     "RoundNotLatest"}
)
_LIVE_COMMITTEE_STATES = (RoundState.Aggregating, RoundState.Reconstructing)


# ------------------------------------------------------------------------ decide


class KeeperAction(StrEnum):
    """The transactions a keeper may send, named as in the contract."""

    CLOSE_COLLECTION = "closeCollection"
    FAIL_ROUND = "failRound"
    REOPEN_ROUND = "reopenRound"


@dataclass(frozen=True)
class KeeperView:
    """The latest round as the keeper judges it: its record, folded from the events, and the
    clock to judge its deadlines by. ``record`` is None before round 1 (or before the block
    ``confirmations`` deep holds the contract); ``caught_up`` is False while the fold is behind
    what the keeper must know first (the head at start, its own last transaction)."""

    record: RoundRecord | None
    now: int
    min_clients: int
    reopen_failed: bool
    caught_up: bool = True

    @property
    def round(self) -> int:
        """The latest round's number (0 before round 1)."""
        return 0 if self.record is None else self.record.round


@dataclass(frozen=True)
class SendRoundTransaction:
    """Send ``action(round)`` (``closeCollection``, ``failRound`` or ``reopenRound``)."""

    action: KeeperAction
    round: int


@dataclass(frozen=True)
class KeepRound:
    """Keep ``record``, the round after ``event``, in the keeper's memory."""

    record: RoundRecord
    event: RoundEvent

    @property
    def round(self) -> int:
        return self.record.round


def decide_action(record: RoundRecord, now: int, *, min_clients: int, reopen_failed: bool) -> KeeperAction | None:
    """What the latest round, as its events tell it, needs at chain time ``now``, or None.

    Deadlines are inclusive ("last second at which ... is accepted"), so a deadline has
    passed when ``now > deadline``, exactly as the contract checks it.
    """
    if record.state is RoundState.Collecting and record.collection_deadline is not None \
            and now > record.collection_deadline:
        return KeeperAction.CLOSE_COLLECTION if record.submitted >= min_clients else KeeperAction.FAIL_ROUND
    if record.state in _LIVE_COMMITTEE_STATES and record.committee_deadline is not None \
            and now > record.committee_deadline:
        return KeeperAction.FAIL_ROUND
    if record.state is RoundState.Failed and reopen_failed:
        return KeeperAction.REOPEN_ROUND
    return None


def on_tick(view: KeeperView, event: Tick, now: int) -> list[SendRoundTransaction]:
    """At most one transaction for the latest round, if a deadline of it has passed."""
    if view.record is None or not view.caught_up:
        return []
    action = decide_action(view.record, view.now, min_clients=view.min_clients, reopen_failed=view.reopen_failed)
    return [] if action is None else [SendRoundTransaction(action, view.round)]


def on_round_event(record: RoundRecord | None, event: RoundEvent, now: int) -> list[KeepRound]:
    """The round after ``event`` (``record`` is the round before it, None if not seen opened)."""
    folded = fold_rounds([event], {} if record is None else {event.round: record})
    return [KeepRound(folded[event.round], event)] if event.round in folded else []


#: The events that change a round: every one the fold has a step for.
ROUND_EVENTS: tuple[type[RoundEvent], ...] = (
    RoundOpened, UpdateSubmitted, CollectionClosed, ChecksSubmitted, ComplaintsSubmitted, AggregateShareSubmitted,
    ThresholdReached, ModelProposed, RoundFinalized, RoundFailed,
)
HANDLERS: Mapping[type, Handler] = {Tick: on_tick, **{kind: on_round_event for kind in ROUND_EVENTS}}


# ------------------------------------------------------------------------ the agent


@dataclass
class KeeperAgent:
    """The keeper process: its node (no store), how often it looks, and the rounds it folded."""

    node: Node
    settings: KeeperSettings = field(default_factory=KeeperSettings)
    role: str = "keeper"
    handlers: Mapping[type, Handler] = field(default_factory=lambda: HANDLERS)
    #: Each round as the events folded so far tell it, by number.
    rounds: dict[int, RoundRecord] = field(default_factory=dict)
    #: The round events folded so far, in chain order (folded again after a reorganization).
    events: list[RoundEvent] = field(default_factory=list)
    #: Where the fold is: the runtime's event follower advances it (and rewinds it on a reorganization).
    progress: MemoryCheckpoint = field(init=False)
    #: The block the fold must reach before the keeper decides again (None until the first tick).
    _wait_for: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.progress = MemoryCheckpoint.for_deployment(self.node.deployment, on_rewind=self._forget_after)

    @property
    def tick_seconds(self) -> float:
        return self.settings.interval_seconds

    def observe(self, event: ChainEvent | Tick) -> KeeperView | RoundRecord | None:
        """For a tick: the latest round and the clock. For a round event: that round's record."""
        if not isinstance(event, Tick):
            return self.rounds.get(event.round) if isinstance(event, RoundEvent) else None
        chain, confirmations = self.node.contract.chain, self.node.config.node.confirmations
        terms = {"min_clients": self.node.deployment.config.min_clients, "reopen_failed": self.settings.reopen_failed}
        if self._wait_for is None:  # first tick: first catch up with the chain as it is now
            self._wait_for = chain.head_number() - confirmations
        folded = self.progress.block
        record = self.rounds[max(self.rounds)] if self.rounds else None
        if record is None:
            return KeeperView(None, 0, **terms)
        if not confirmations:
            now = chain.pending_time()
        else:  # the clock of the last block folded, as the state is that block's
            block = chain.block(folded)
            now = block.timestamp if block is not None else 0
        return KeeperView(record, now, caught_up=folded >= self._wait_for, **terms)

    def execute(self, action: SendRoundTransaction | KeepRound) -> Outcome:
        if isinstance(action, KeepRound):
            self.rounds[action.record.round] = action.record
            self.events.append(action.event)
            return Outcome(note=f"{action.record.state.name} submitted={action.record.submitted}")
        node = self.node
        try:
            receipt = node.contract.transact(node.account, action.action.value, action.round)
        except ContractRevert as exc:
            if exc.name not in RACE_REVERTS:
                raise
            return Outcome(note=f"{action.action}: already done ({exc.name})")
        # Decide again only once the fold has seen what this transaction did.
        self._wait_for = max(self._wait_for or 0, receipt["blockNumber"])
        return Outcome(tx_hash=transaction_hash(receipt), note=f"{action.action} gas={receipt['gasUsed']}")

    def is_waiting(self) -> bool:
        return True  # deadlines pass whether or not an event comes

    def resume_events(self) -> list[ChainEvent]:
        return []  # nothing to resume: the fold starts again from the deploy block

    def _forget_after(self, fork: int) -> None:
        """The chain replaced every block after ``fork``: fold the rounds again without their events."""
        self.events = [e for e in self.events if e.block_number <= fork]
        self.rounds = fold_rounds(self.events)
        if self._wait_for is not None:  # a transaction of the lost branch may never be mined again
            self._wait_for = min(self._wait_for, fork)


def build_keeper_agent(node: Node) -> KeeperAgent:
    """The keeper of ``node``'s config."""
    if node.config.keeper is None:
        raise ConfigError(f"{node.config.path}: a keeper needs role 'keeper'")
    agent = KeeperAgent(node=node, settings=node.config.keeper)
    log.info(format_fields(role=agent.role, address=node.address, contract=node.contract.address,
                           interval=agent.tick_seconds, reopen_failed=agent.settings.reopen_failed))
    return agent


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], role="keeper", build=build_keeper_agent))
