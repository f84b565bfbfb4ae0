"""The keeper: the third role, which sends the transactions a contract cannot send itself.

    python -m agents.keeper --config runs/demo/nodes/keeper.toml      (or fedtss keeper --config …)

A contract never wakes up on its own. When a round's collection deadline passes without the
target number of updates, somebody must send ``closeCollection`` (enough updates) or
``failRound`` (too few); when the committee misses its aggregation or proposal deadline,
somebody must send ``failRound``; and, if the operator wants training to go on after a
failure, ``reopenRound``. The keeper is that somebody.

It runs on the agents' runtime (:mod:`agents.runtime`) like a client or a member, with one
difference: it follows no events. Every ``interval_seconds`` it hears a
:class:`~agents.runtime.Tick`; :meth:`KeeperAgent.observe` reads the latest round's
:class:`~fedtss.chain.RoundInfo` and the chain's clock, the pure :func:`on_tick` (through
:func:`decide_action`) decides, and at most one transaction goes out. The clock is the
timestamp of the block the transaction would land in (the ``pending`` block, falling back to
``latest``), never the wall clock: the contract compares deadlines with ``block.timestamp``,
so a keeper on a machine whose clock is off still acts at the right time. Several keepers at
once are harmless: whoever lands second gets a revert (wrong state, deadline not reached)
that is logged as "already done".

The configuration is a node config read by :func:`agents.config.load_node_config` with
``role="keeper"``: ``[node]`` (``rpc_url`` or ``http_url``, polled over HTTP, ws:// read as
http://; ``deployment``; ``private_key_env`` or ``keystore`` + ``password_env`` or
``password_file``; optionally ``confirmations``; an agent's other ``[node]`` keys are accepted
as they are) and an optional ``[keeper]`` table: ``interval_seconds`` (default 2.0) and
``reopen_failed`` (default false; reopening needs the operator's key).

Confirmations. With ``confirmations = k > 0`` the keeper decides on the round and the clock
as they were ``k`` blocks below the head (the state and timestamp of that block), as agents
handle only events ``k`` blocks deep: it never acts on a state a reorganization may still
take back. ``k = 0`` (the default, right for a local dev chain) reads the latest state and
the pending block's clock. Whatever it decides, the contract checks again when the
transaction lands, and a keeper whose transaction was reorganized away simply sees the round
still needing it at a later tick: it keeps no state to rewind.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from agents.config import KeeperSettings
from agents.runtime import Handler, Node, Outcome, Tick, format_fields, log, main
from fedtss.chain import ChainEvent, RoundInfo, RoundState, transaction_hash
from fedtss.errors import ConfigError, ContractRevert

__all__ = [
    "HANDLERS",
    "KeeperAction",
    "KeeperAgent",
    "KeeperView",
    "SendRoundTransaction",
    "build_keeper_agent",
    "decide_action",
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
    """The latest round as the keeper judges it: its number, its info and the clock to judge
    its deadlines by (``info`` is None before round 1, or before the block ``confirmations``
    deep holds the contract)."""

    round: int
    info: RoundInfo | None
    now: int
    min_clients: int
    reopen_failed: bool


@dataclass(frozen=True)
class SendRoundTransaction:
    """Send ``action(round)`` (``closeCollection``, ``failRound`` or ``reopenRound``)."""

    action: KeeperAction
    round: int


def decide_action(info: RoundInfo, now: int, *, min_clients: int, reopen_failed: bool) -> KeeperAction | None:
    """What the latest round needs at chain time ``now``, or None.

    Deadlines are inclusive ("last second at which ... is accepted"), so a deadline has
    passed when ``now > deadline``, exactly as the contract checks it.
    """
    if info.state is RoundState.Collecting and now > info.collection_deadline:
        return KeeperAction.CLOSE_COLLECTION if info.clients >= min_clients else KeeperAction.FAIL_ROUND
    if info.state in _LIVE_COMMITTEE_STATES and now > info.committee_deadline:
        return KeeperAction.FAIL_ROUND
    if info.state is RoundState.Failed and reopen_failed:
        return KeeperAction.REOPEN_ROUND
    return None


def on_tick(view: KeeperView, event: Tick, now: int) -> list[SendRoundTransaction]:
    """At most one transaction for the latest round, if a deadline of it has passed."""
    if view.info is None:
        return []
    action = decide_action(view.info, view.now, min_clients=view.min_clients, reopen_failed=view.reopen_failed)
    return [] if action is None else [SendRoundTransaction(action, view.round)]


HANDLERS: Mapping[type, Handler] = {Tick: on_tick}


# ------------------------------------------------------------------------ the agent


@dataclass
class KeeperAgent:
    """The keeper process: its node (no store) and how often it looks."""

    node: Node
    settings: KeeperSettings = field(default_factory=KeeperSettings)
    role: str = "keeper"
    handlers: Mapping[type, Handler] = field(default_factory=lambda: HANDLERS)

    @property
    def tick_seconds(self) -> float:
        return self.settings.interval_seconds

    def observe(self, event: Tick) -> KeeperView:
        """The latest round, its info and the clock, all as of the block ``confirmations`` deep."""
        contract, confirmations = self.node.contract, self.node.config.node.confirmations
        terms = {"min_clients": self.node.deployment.config.min_clients, "reopen_failed": self.settings.reopen_failed}
        if not confirmations:
            round_ = contract.current_round()
            info = contract.round_info(round_) if round_ else None
            return KeeperView(round_, info, contract.chain.pending_time(), **terms)
        number = contract.chain.head_number() - confirmations
        block = contract.chain.block(number) if number >= self.node.deployment.deploy_block else None
        round_ = contract.current_round(block=number) if block is not None else 0
        info = contract.round_info(round_, block=number) if round_ else None
        return KeeperView(round_, info, block.timestamp if block is not None else 0, **terms)

    def execute(self, action: SendRoundTransaction) -> Outcome:
        node = self.node
        try:
            receipt = node.contract.transact(node.account, action.action.value, action.round)
        except ContractRevert as exc:
            if exc.name not in RACE_REVERTS:
                raise
            return Outcome(note=f"{action.action}: already done ({exc.name})")
        return Outcome(tx_hash=transaction_hash(receipt), note=f"{action.action} gas={receipt['gasUsed']}")

    def is_waiting(self) -> bool:
        return True  # deadlines pass whether or not an event comes

    def resume_events(self) -> list[ChainEvent]:
        return []  # it keeps no state: the next tick looks again


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
