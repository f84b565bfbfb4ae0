"""The keeper: sends the transactions a contract cannot send itself.

A contract never wakes up on its own. When a round's collection deadline passes without the
target number of updates, somebody must send ``closeCollection`` (enough updates) or
``failRound`` (too few); when the committee misses its aggregation or proposal deadline,
somebody must send ``failRound``; and, if the operator wants training to go on after a
failure, ``reopenRound``. The keeper is that somebody.

Every few seconds it reads the latest round's :class:`~fedtss.chain.RoundInfo` and the
chain's clock, decides with the pure :func:`decide_action`, and sends at most one
transaction. The clock is the timestamp of the block the transaction would land in (the
``pending`` block, falling back to ``latest``), never the wall clock: the contract compares
deadlines with ``block.timestamp``, so a keeper on a machine whose clock is off still acts
at the right time. Several keepers at once are harmless: whoever lands second gets a revert
(wrong state, deadline not reached) that is logged as "already done" and ignored.

    fedtss keeper --config keeper.toml       (or python -m orchestration.keeper --config ...)

The configuration is a node config (``[node]``: ``rpc_url`` or ``http_url`` (the keeper
polls over HTTP; ws:// becomes http:// as for agents), ``deployment``,
and ``private_key_env`` or ``keystore`` + ``password_env``, optionally ``confirmations``)
plus an optional ``[keeper]`` table: ``interval_seconds`` (default 2.0) and
``reopen_failed`` (default false; reopening needs the operator's key). It is read with the
agents' machinery (:class:`agents.config.ConfigTables`): an unknown table or key is refused
(the ``[node]`` keys only agents use, such as ``store``, are accepted and left alone), and a
file with several problems gets one ConfigError listing all of them.

Confirmations. With ``confirmations = k > 0`` the keeper decides on the round and the clock
as they were ``k`` blocks below the head (the state and timestamp of that block), as agents
handle only events ``k`` blocks deep: it never acts on a state a reorganization may still
take back. ``k = 0`` (the default, right for a local dev chain) reads the latest state and
the pending block's clock. Whatever it decides, the contract checks again when the
transaction lands, and a keeper whose transaction was reorganized away simply sees the round
still needing it at a later tick: it keeps no state to rewind.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler

from agents.config import (
    MAX_CONFIRMATIONS, REQUIRED, ConfigTable, ConfigTables, NodeSettings, read_config_document,
)
from fedtss.chain import (
    LocalAccount, RoundInfo, RoundsContract, RoundState, display_url, load_deployment, redact_node_urls,
)
from fedtss.chain.keys import DEFAULT_KEY_ENV, DEFAULT_PASSWORD_ENV, load_account
from fedtss.errors import ChainError, ChainUnavailable, ConfigError, ContractRevert

__all__ = [
    "KeeperAction",
    "KeeperConfig",
    "Keeper",
    "decide_action",
    "load_keeper_config",
    "main",
    "parse_keeper_config",
    "run_keeper",
]

log = logging.getLogger("fedtss.keeper")

#: Reverts that mean "someone else already moved this round on": expected with several keepers.
_RACE_REVERTS = frozenset(
    {"RoundWrongState", "RoundDeadlineNotReached", "RoundHasEnoughClients", "RoundNotEnoughClients",
     "RoundNotLatest"}
)
_LIVE_COMMITTEE_STATES = (RoundState.Aggregating, RoundState.Reconstructing)


class KeeperAction(StrEnum):
    """The transactions a keeper may send, named as in the contract."""

    CLOSE_COLLECTION = "closeCollection"
    FAIL_ROUND = "failRound"
    REOPEN_ROUND = "reopenRound"


@dataclass(frozen=True)
class KeeperConfig:
    """Where the chain is, which contract, whose key, and how often to look."""

    rpc_url: str
    deployment: Path
    private_key_env: str = DEFAULT_KEY_ENV
    keystore: Path | None = None
    password_env: str = DEFAULT_PASSWORD_ENV
    password_file: Path | None = None
    interval_seconds: float = 2.0
    reopen_failed: bool = False
    confirmations: int = 0


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


class Keeper:
    """One keeper on one deployment; :meth:`tick` looks once and acts at most once.

    ``confirmations``: how deep the block it decides on is (see the module doc);
    ``deploy_block``: before it, there is no contract to read.
    """

    def __init__(self, contract: RoundsContract, account: LocalAccount, *, min_clients: int,
                 reopen_failed: bool = False, confirmations: int = 0, deploy_block: int = 0) -> None:
        self.contract = contract
        self.account = account
        self.min_clients = min_clients
        self.reopen_failed = reopen_failed
        self.confirmations = confirmations
        self.deploy_block = deploy_block

    def chain_time(self) -> int:
        """The timestamp the next transaction would see: the pending block's, else the latest's."""
        return self.contract.chain.pending_time()

    def tick(self) -> KeeperAction | None:
        """Read the latest round and send what it needs; return the action sent, if any.

        Never raises for a chain that is briefly unreachable or a race lost to another
        keeper: both are logged and the next tick tries again.
        """
        try:
            looked = self._look()
            if looked is None:
                return None
            round_, info, now = looked
            action = decide_action(info, now, min_clients=self.min_clients, reopen_failed=self.reopen_failed)
            if action is None:
                return None
            return self._send(action, round_)
        except ChainUnavailable as exc:
            log.warning("role=keeper event=node_unreachable error=%s", exc)
        except ChainError as exc:
            log.warning("role=keeper event=chain_error error=%s", exc)
        return None

    def _look(self) -> tuple[int, RoundInfo, int] | None:
        """The latest round, its info and the clock to judge it by; None before round 1.

        With confirmations, all three come from the block ``confirmations`` below the head,
        so that they describe one state; the views are read at that block.
        """
        if not self.confirmations:
            round_ = self.contract.current_round()
            return (round_, self.contract.round_info(round_), self.chain_time()) if round_ else None
        chain = self.contract.chain
        number = chain.head_number() - self.confirmations
        if number < self.deploy_block:
            return None
        round_ = self.contract.current_round(block=number)
        if round_ == 0:
            return None
        block = chain.block(number)
        if block is None:  # the chain got shorter since: look again at the next tick
            return None
        return round_, self.contract.round_info(round_, block=number), block.timestamp

    def _send(self, action: KeeperAction, round_: int) -> KeeperAction | None:
        try:
            receipt = self.contract.transact(self.account, action.value, round_)
        except ContractRevert as exc:
            if exc.name not in _RACE_REVERTS:
                raise
            log.info("role=keeper address=%s round=%d action=%s event=already_done revert=%s",
                     self.account.address, round_, action, exc.name)
            return None
        log.info("role=keeper address=%s round=%d action=%s tx=0x%s gas=%d", self.account.address,
                 round_, action, bytes(receipt["transactionHash"]).hex(), receipt["gasUsed"])
        return action


def load_keeper_config(path: Path) -> KeeperConfig:
    """Read ``[node]`` and ``[keeper]`` from a TOML file; every bad or unknown field is named,
    all of them in one ConfigError (the agents' config machinery, :class:`ConfigTables`)."""
    path = Path(path)
    return parse_keeper_config(read_config_document(path, "keeper config"), path=path)


def parse_keeper_config(document: Mapping[str, Any], *, path: Path) -> KeeperConfig:
    """Validate an already-parsed keeper config: ``[node]`` and ``[keeper]`` only, and in
    them only the keys a node config has (a misspelt ``confirmation`` is refused, not ignored)."""
    tables = ConfigTables(document, path)
    tables.only({"node", "keeper"})
    node = tables.parse("node", _node_fields)
    keeper = tables.parse("keeper", _keeper_fields, required=False)
    tables.raise_problems()
    return KeeperConfig(**node, **keeper)


def _node_fields(table: ConfigTable) -> dict[str, Any]:
    """``[node]``: the keeper polls over HTTP, so ``http_url`` if given, else ``rpc_url``,
    with ws(s):// read as http(s):// as agents do (one port serves both on anvil and geth)."""
    rpc_url = table.text("rpc_url", None if "http_url" in table.values else REQUIRED)
    rpc_url, http_url = _polled_url(table, "rpc_url", rpc_url), _polled_url(table, "http_url", table.text("http_url"))
    settings = {
        "rpc_url": http_url or rpc_url,
        "deployment": table.path("deployment", REQUIRED),
        "private_key_env": table.text("private_key_env", DEFAULT_KEY_ENV),
        "keystore": table.path("keystore"),
        "password_env": table.text("password_env", DEFAULT_PASSWORD_ENV),
        "password_file": table.path("password_file"),
        "confirmations": table.integer("confirmations", 0, 0, MAX_CONFIRMATIONS),
    }
    table.done(unused=_AGENT_NODE_KEYS)
    return settings


#: Every key agents read in ``[node]``. Those the keeper has no use for (it has no store and no
#: checkpoint) are accepted and left alone, so a client's or member's ``[node]`` serves it as it is.
_AGENT_NODE_KEYS = frozenset(field.name for field in fields(NodeSettings))


def _polled_url(table: ConfigTable, key: str, url: str | None) -> str:
    """``url`` as http(s)://, or "" when it is absent or reported."""
    if not url:
        return ""
    if url.startswith(("ws://", "wss://")):
        return "http" + url[2:]
    if not url.startswith(("http://", "https://")):
        table.report(key, "must start with http://, https://, ws:// or wss://")
        return ""
    return url


def _keeper_fields(table: ConfigTable) -> dict[str, Any]:
    """``[keeper]``: how often to look, and whether to reopen failed rounds."""
    interval = table.get("interval_seconds", 2.0, _is_interval, "a number of seconds in [0.1, 3600]")
    settings = {"interval_seconds": float(interval), "reopen_failed": table.flag("reopen_failed", False)}
    table.done()
    return settings


def _is_interval(value: Any) -> bool:
    return isinstance(value, (int, float)) and 0.1 <= value <= 3600


def build_keeper(config: KeeperConfig) -> Keeper:
    """Connect, load the deployment and the key, and return a ready keeper."""
    deployment = load_deployment(config.deployment)
    contract = RoundsContract.at(config.rpc_url, deployment)
    chain_id = contract.chain.chain_id()
    if chain_id != deployment.chain_id:
        raise ConfigError(f"the node at {display_url(config.rpc_url)} is chain {chain_id}, but the deployment "
                          f"record {config.deployment} is for chain {deployment.chain_id}")
    account = load_account(keystore=config.keystore, password_file=config.password_file,
                           password_env=config.password_env, key_env=config.private_key_env)
    return Keeper(contract, account,
                  min_clients=deployment.config.min_clients, reopen_failed=config.reopen_failed,
                  confirmations=config.confirmations, deploy_block=deployment.deploy_block)


def run_keeper(config: KeeperConfig) -> None:
    """Tick every ``interval_seconds`` until SIGINT or SIGTERM."""
    keeper = build_keeper(config)
    scheduler = BlockingScheduler()
    scheduler.add_job(keeper.tick, "interval", seconds=config.interval_seconds, max_instances=1,
                      coalesce=True, id="keeper-tick")
    _stop_on_signals(lambda: scheduler.shutdown(wait=False))
    log.info("role=keeper address=%s contract=%s event=started interval=%.1fs reopen_failed=%s confirmations=%d",
             keeper.account.address, keeper.contract.address, config.interval_seconds, config.reopen_failed,
             config.confirmations)
    keeper.tick()
    scheduler.start()
    log.info("role=keeper event=stopped")


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def configure_logging(level: int = logging.INFO) -> None:
    """One line per event, key=value, to stderr."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedtss keeper", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="node config with [node] and [keeper]")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        config = load_keeper_config(args.config)
        redact_node_urls(config.rpc_url)
        run_keeper(config)
    except (ConfigError, ChainError) as exc:
        print(f"fedtss keeper: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
