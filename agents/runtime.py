"""The small runner both agents share: load config, connect, follow events, act, checkpoint.

One event, top to bottom (:func:`handle_event`):

1. ``agent.observe(event)`` reads the chain's views the decision needs (has this account
   already submitted? what state is the round in?) into a small frozen *view*, or says
   :data:`NOTHING_TO_DECIDE` (then nothing below happens);
2. the role's handler for the event, ``on_<event>(view, event, now) -> list[Action]``,
   decides: it is pure, so tests drive it without a chain;
3. ``agent.execute(action)`` does the work at the edge (fetch, train or aggregate, store,
   send the transaction) and returns an :class:`Outcome`;
4. one log line per event handled: role, address, round, event, action, CID, tx hash,
   seconds. Never a key, a share or an update.

Restarts. :func:`run_agent` feeds events from :class:`fedtss.chain.events.EventSource`
after the checkpoint in ``state_dir``; after a crash the events of at most one block come
again (a packed client's: those handled since its checkpoint's last write, at most a second's
worth while it is busy; a SIGTERM writes it first), and step 1 makes the second delivery a no-op
(the views say "already submitted").
Agents persist nothing else. A member that was waiting for aggregate shares when it stopped
starts waiting again: :meth:`Agent.resume_events` names the events to handle once more at start.

Waiting. An agent that waits for something only time ends (a member collecting the others'
aggregate shares) says so with :meth:`Agent.is_waiting`; while it does, :func:`run_agent`
sends it a :class:`Tick` every :data:`TICK_SECONDS`, between chain events, and its
``on_tick`` handler decides whether the wait is over. No handler sleeps: chain events, and
the reorganizations they reveal, are handled while the agent waits.

Reorganizations. Events are handled once their block is ``confirmations`` deep (the node
config's ``[node] confirmations``, 0 on a local dev chain). The checkpoint remembers the
hashes of the last handled blocks; if the chain replaces them, the agent goes back to the
fork point and handles the new branch, and step 1 again makes it send only what the new
branch lacks (a share whose transaction was reorganized away is sent again; one the new
branch holds is not).

A node or store that goes away mid-event (connection refused, timeout, the node refusing a
transaction) does not stop the agent: :func:`handle_event_retrying` logs the error's class,
waits with exponential backoff and handles the same event again from step 1, for as long as
it takes, since nothing restarts an agent process and skipping the event would miss a step.
Any other error stops the process with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from agents.config import NodeConfig, Role, load_node_config
from fedtss.chain import (
    ChainEvent,
    ChainReader,
    Deployment,
    LocalAccount,
    RoundsContract,
    connect,
    load_deployment,
    redact_node_urls,
)
from fedtss.chain.checkpoint import Checkpoint
from fedtss.chain.events import Backoff, EventSource, run_handlers
from fedtss.chain.keys import load_account
from fedtss.chain.shared_events import SharedEventSource
from fedtss.errors import ChainError, ChainUnavailable, ConfigError, ContractRevert, FedTSSError, StoreUnavailable
from fedtss.storage import ContentStore, open_store

__all__ = [
    "Agent",
    "Handler",
    "NOTHING_TO_DECIDE",
    "Node",
    "Outcome",
    "Skip",
    "StepClock",
    "TICK_SECONDS",
    "Tick",
    "connect_node",
    "event_source",
    "format_fields",
    "handle_event",
    "call_retrying",
    "check_round_capacity",
    "handle_event_retrying",
    "handled_events",
    "is_transient",
    "main",
    "run_agent",
    "run_until_terminated",
]

log = logging.getLogger("fedtss.agents")

CHECKPOINT_FILE = "checkpoint.json"
#: How often an agent that :meth:`~Agent.is_waiting` hears a :class:`Tick`.
TICK_SECONDS = 0.2


@dataclass(frozen=True)
class Tick:
    """Time passed: the event of a clock, handled like a chain event by agents that wait."""

    name: ClassVar[str] = "Tick"
    round_number: ClassVar[None] = None


class _NothingToDecide:
    def __repr__(self) -> str:
        return "NOTHING_TO_DECIDE"


#: What ``observe`` returns when the event asks for no decision (a member hearing of a round it
#: does not wait in): the handler is not called, the chain's time not read, nothing logged.
NOTHING_TO_DECIDE = _NothingToDecide()


@dataclass(frozen=True)
class Skip:
    """The action of deciding to do nothing, with the reason (it is logged)."""

    round: int
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What an executed action left behind: the CID it stored, the transaction it sent, and
    (``steps``) seconds per step of it, logged as ``steps=train:0.210,protect:0.031,...`` so that
    :mod:`orchestration.latency` can say where a round's time went."""

    cid: str | None = None
    tx_hash: str | None = None
    note: str = ""
    steps: Mapping[str, float] = field(default_factory=dict)


class StepClock:
    """Seconds per named step of one action, for :attr:`Outcome.steps`: ``mark(step)`` ends the
    step that began at the previous mark (or at the clock's creation)."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, step: str) -> None:
        now = time.perf_counter()
        self.steps[step] = self.steps.get(step, 0.0) + now - self._last
        self._last = now


Handler = Callable[[Any, Any, int], list[Any]]
_E = TypeVar("_E", bound=ChainEvent)
_T = TypeVar("_T")


class Agent(Protocol):
    """A role: its node, its handlers by event class, how it observes and how it acts."""

    role: str
    node: Node
    handlers: Mapping[type[ChainEvent], Handler]

    def observe(self, event: ChainEvent) -> Any: ...

    def execute(self, action: Any) -> Outcome: ...

    def is_waiting(self) -> bool:
        """Whether the agent waits on time passing: it then hears a :class:`Tick` every ``tick_seconds``."""
        ...

    @property
    def tick_seconds(self) -> float:
        """How often a waiting agent hears a :class:`Tick` (:data:`TICK_SECONDS` unless the role says)."""
        ...

    def resume_events(self) -> list[ChainEvent]:
        """Events to handle again at start, for waits that a stop interrupted (often none)."""
        ...


@dataclass
class Node:
    """One agent's connections: the contract, its account and the content store."""

    config: NodeConfig
    deployment: Deployment
    contract: RoundsContract
    account: LocalAccount
    store: ContentStore | None  # None for the keeper, which stores nothing

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def max_blob_bytes(self) -> int:
        return self.config.node.max_blob_bytes

    def chain_time(self) -> int:
        """The latest block's timestamp: the clock the contract's deadlines are in."""
        return self.contract.chain.chain_time()

    def round_events(self, round_: int, kind: type[_E], *, to_block: int | str = "latest") -> list[_E]:
        """The contract's ``kind`` events of one round, in chain order.

        The node filters on the indexed round (from the deploy block on), so the cost is one
        round's logs however long the federation has run.
        """
        return self.contract.get_round_events(round_, kind, from_block=self.deployment.deploy_block,
                                              to_block=to_block)


def connect_node(config: NodeConfig, environ: Mapping[str, str]) -> Node:
    """Open everything a node config names; raises ConfigError/ChainError saying what to fix."""
    deployment = load_deployment(config.node.deployment)
    w3 = connect(config.node.http_url)
    chain_id = ChainReader(w3).chain_id()
    if chain_id != deployment.chain_id:
        raise ConfigError(
            f"{config.path}: the node at http_url is chain {chain_id}, the deployment "
            f"record {config.node.deployment} is for chain {deployment.chain_id}"
        )
    account = load_account(
        keystore=config.node.keystore,
        password_file=config.node.password_file,
        password_env=config.node.password_env,
        key_env=config.node.private_key_env,
        environ=environ,
    )
    return Node(
        config=config,
        deployment=deployment,
        contract=RoundsContract.from_deployment(w3, deployment),
        account=account,
        store=open_store(config.node.store, timeout=config.node.store_timeout_seconds,
                         fetch_timeout=config.node.fetch_timeout_seconds) if config.node.store else None,
    )


def check_round_capacity(node: Node) -> None:
    """Refuse a node whose ``[federation] max_clients`` is below the contract's ``target_clients``.

    ``max_clients`` sizes the quantization so that that many clients' updates sum without
    wrapping around the field (or ring); a round may aggregate up to ``target_clients``. With
    fewer, a full round's sum could wrap and every member would reconstruct the same wrong model.
    """
    target = node.deployment.config.target_clients
    allowed = node.config.federation.max_clients
    if allowed < target:
        raise ConfigError(
            f"{node.config.path}: the contract aggregates up to {target} clients a round (target_clients) but "
            f"[federation] max_clients = {allowed} sizes the quantization for at most {allowed}: set max_clients "
            f">= {target} in every node's config of this federation")


# ------------------------------------------------------------------------- one event


def handle_event(agent: Agent, event: ChainEvent | Tick) -> list[Outcome]:
    """Observe, decide, act and log for one event; returns what the actions left behind.

    A revert (another node was faster, a deadline passed) or a refused input is logged and
    the agent moves on; a lost connection to the node propagates, and
    :func:`handle_event_retrying` handles the event again (idempotently).
    """
    handler = agent.handlers.get(type(event))
    if handler is None:
        return []
    view = agent.observe(event)
    if view is NOTHING_TO_DECIDE:
        return []
    actions = handler(view, event, agent.node.chain_time())
    return [_execute(agent, event, action) for action in actions]


def is_transient(exc: BaseException) -> bool:
    """Whether handling the event again later can succeed: the node, or our own store's daemon,
    could not be reached; not the contract (a revert) and not the input.

    ``fedtss.chain`` raises :class:`ChainUnavailable` for every node and transport failure and
    the store :class:`StoreUnavailable` for a refused connection; no raw transport error reaches
    an agent. Only a refused *connection* to the store counts: a blob that is slow or cut off
    mid-way may be a client's doing, and retrying it forever would let that client stall a member.
    """
    return isinstance(exc, (ChainUnavailable, StoreUnavailable))


def handle_event_retrying(agent: Agent, event: ChainEvent | Tick, *, backoff: Backoff = Backoff(),
                          sleep: Callable[[float], None] = time.sleep,
                          rng: random.Random | None = None) -> list[Outcome]:
    """:func:`handle_event`, again after a backoff for as long as the node is unreachable.

    Each retry starts from ``observe``, so an action whose transaction went through before
    the connection dropped is seen as done and not sent twice. The log line names the
    error's class only: the messages of connection errors carry the node's URL (and the API
    key in its path).
    """
    return call_retrying(agent, lambda: handle_event(agent, event), event=event.name, round_=event.round_number,
                         backoff=backoff, sleep=sleep, rng=rng)


def call_retrying(agent: Agent, call: Callable[[], _T], *, event: str, round_: int | None = None,
                  backoff: Backoff = Backoff(), sleep: Callable[[float], None] = time.sleep,
                  rng: random.Random | None = None) -> _T:
    """``call()``, again after a backoff for as long as it fails with a transient error
    (:func:`is_transient`); each retry is logged with ``event`` and ``round_``."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            delay = backoff.delay(attempt, rng)
            cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else None
            log.warning(format_fields(role=agent.role, address=agent.node.address, round=round_,
                                      event=event, retry=attempt, error=type(exc).__name__, cause=cause,
                                      wait=round(delay, 1)))
            sleep(delay)


def _execute(agent: Agent, event: ChainEvent | Tick, action: Any) -> Outcome:
    started = time.monotonic()
    fields: dict[str, Any] = {"role": agent.role, "address": agent.node.address,
                              "round": getattr(action, "round", event.round_number), "event": event.name}
    if isinstance(action, Skip):
        log.info(format_fields(**fields, action="skip", reason=action.reason))
        return Outcome(note=action.reason)
    name = _action_name(action)
    try:
        outcome = agent.execute(action)
    except ContractRevert as exc:
        log.warning(format_fields(**fields, action=name, reverted=exc.name))
        return Outcome(note=f"reverted: {exc.name}")
    except ChainError:
        raise  # the node, not the input: handle_event_retrying decides
    except FedTSSError as exc:
        if is_transient(exc):
            raise  # our store is down: handle_event_retrying tries again
        log.error(format_fields(**fields, action=name, failed=type(exc).__name__, detail=str(exc)))
        return Outcome(note=f"failed: {type(exc).__name__}")
    seconds = round(time.monotonic() - started, 3)
    steps = ",".join(f"{step}:{value:.3f}" for step, value in outcome.steps.items()) or None
    log.info(format_fields(**fields, action=name, cid=outcome.cid, tx=outcome.tx_hash,
                           note=outcome.note or None, steps=steps, seconds=seconds))
    return outcome


def _action_name(action: Any) -> str:
    """``SubmitUpdate`` -> ``submit_update``: the name in log lines."""
    name = type(action).__name__
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


def format_fields(**fields: Any) -> str:
    """``key=value`` pairs, None left out; values with spaces are quoted (one line per event)."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value).replace("\n", " ")
        parts.append(f"{key}={text!r}" if " " in text or not text else f"{key}={text}")
    return " ".join(parts)


# ------------------------------------------------------------------------- the loop


def event_source(node: Node, **source_options: Any) -> EventSource:
    """The event stream a node config names: heads from ``rpc_url``, blocks and logs from ``http_url``
    (see :class:`~fedtss.chain.events.EventSource`), ``confirmations`` deep."""
    return EventSource.from_deployment(node.config.node.rpc_url, node.deployment,
                                       **{"confirmations": node.config.node.confirmations,
                                          "request_url": node.config.node.http_url or None, **source_options})


def handled_events(*agents: Agent) -> frozenset[str]:
    """The names of the chain events some handler of ``agents`` takes: the only ones their event
    source needs to read (:func:`run_agent` drops every other event unseen anyway)."""
    return frozenset(kind.__name__ for agent in agents for kind in agent.handlers
                     if isinstance(kind, type) and issubclass(kind, ChainEvent))


async def run_agent(agent: Agent, *, until_block: int | None = None,
                    source: EventSource | SharedEventSource | None = None,
                    checkpoint_write_interval: float = 0.0, **source_options: Any) -> None:
    """Handle every event after the checkpoint, forever (or up to ``until_block``).

    The checkpoint is the file ``checkpoint.json`` in the node's ``state_dir``, written at most
    every ``checkpoint_write_interval`` seconds (default: every block), unless the agent keeps
    its own in memory as ``agent.progress`` (the keeper, which folds every event again from the
    deploy block at each start and keeps no state folder). ``source`` is the agent's own
    :func:`event_source` unless given (a pack's :class:`SharedEventSource`).
    """
    node = agent.node
    source = source or event_source(node, **{"events": handled_events(agent), **source_options})
    checkpoint = getattr(agent, "progress", None) or Checkpoint.for_deployment(
        Path(node.config.node.state_dir) / CHECKPOINT_FILE, node.deployment,
        write_interval=checkpoint_write_interval)
    transport = source.source.transport if isinstance(source, SharedEventSource) else source.transport
    log.info(format_fields(role=agent.role, address=node.address, started=transport,
                           shared=isinstance(source, SharedEventSource) or None,
                           after_block=checkpoint.block, confirmations=node.config.node.confirmations))

    turn = asyncio.Lock()  # one event at a time, chain or clock: handlers share the agent's state
    stopping = asyncio.Event()  # set once a handler failed: nothing new starts while the agent stops

    async def handle(event: ChainEvent | Tick) -> None:
        if stopping.is_set():  # never return as if handled: the follower would checkpoint past it
            raise asyncio.CancelledError
        if type(event) not in agent.handlers:
            return  # most events (other clients' submissions) concern no handler: no thread, no wait
        # Training blocks: run it off the loop so the WebSocket stays answered.
        async with turn:
            if stopping.is_set():
                raise asyncio.CancelledError
            try:
                await asyncio.to_thread(handle_event_retrying, agent, event)
            except BaseException:
                stopping.set()
                raise

    async def tick_while_waiting() -> None:
        while True:
            await asyncio.sleep(agent.tick_seconds)
            if agent.is_waiting():
                await handle(Tick())

    for event in await asyncio.to_thread(call_retrying, agent, agent.resume_events, event="resume"):
        await handle(event)
    ticks = asyncio.create_task(tick_while_waiting())
    follow = asyncio.create_task(run_handlers(source, handle, checkpoint, until_block=until_block))
    try:
        await asyncio.wait({ticks, follow}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.set()
        ticks.cancel()
        follow.cancel()
        await asyncio.gather(ticks, follow, return_exceptions=True)  # let both finish unwinding
        try:
            checkpoint.flush()
        except OSError as exc:  # logged, so that why the agent stopped is not hidden by it
            log.warning(format_fields(role=agent.role, address=node.address, checkpoint_not_written=type(exc).__name__,
                                      detail=str(exc)))
    # Whichever ended first says why: an error while handling a tick stops the agent as one
    # while handling a chain event does.
    (ticks if ticks.done() and not ticks.cancelled() else follow).result()


def main(argv: Sequence[str] | None, *, role: Role, build: Callable[[Node], Agent],
         environ: Mapping[str, str] | None = None) -> int:
    """``python -m agents.<role> --config FILE``: returns the process exit status."""
    parser = argparse.ArgumentParser(prog=f"python -m agents.{role}", description=f"Run a fedtss {role} agent.")
    parser.add_argument("--config", type=Path, required=True, help="the node's TOML config file")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    args = parser.parse_args(argv)
    return run_logged(role, lambda: run_until_terminated(run_agent(build_agent(args.config, role=role, build=build,
                                                                      environ=environ))),
                      log_level=args.log_level)


def run_until_terminated(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run(main)``, with a SIGTERM (how the launcher stops its nodes) cancelling it, so
    that its ``finally`` blocks run (an agent writes the checkpoint it kept in memory); then the
    process ends by that SIGTERM, as it would have without this (its parent sees -15)."""
    terminated = False

    async def guarded() -> None:
        nonlocal terminated
        task, loop = asyncio.current_task(), asyncio.get_running_loop()

        def stop() -> None:
            nonlocal terminated
            terminated = True
            if task is not None:
                task.cancel()

        try:
            loop.add_signal_handler(signal.SIGTERM, stop)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            pass
        try:
            await main
        except asyncio.CancelledError:
            if not terminated:
                raise

    asyncio.run(guarded())
    if terminated:
        logging.shutdown()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def build_agent(path: Path, *, role: Role, build: Callable[[Node], Agent],
                environ: Mapping[str, str] | None = None) -> Agent:
    """The agent of the node config at ``path``, connected, as ``python -m agents.<role>`` builds it."""
    config = load_node_config(path, role=role)
    redact_node_urls(config.node.rpc_url, config.node.http_url)  # before web3 logs anything
    return build(connect_node(config, os.environ if environ is None else environ))


def run_logged(role: Role, work: Callable[[], object], *, log_level: str = "INFO") -> int:
    """Set up logging, run ``work`` and turn how it ended into the process's exit status (and a log line)."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        work()
    except FedTSSError as exc:
        log.error(format_fields(role=role, stopped=type(exc).__name__, detail=str(exc)))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug or an error of a library: logged, so its traceback is redacted
        log.error(format_fields(role=role, stopped=type(exc).__name__), exc_info=True)
        return 1
    return 0
