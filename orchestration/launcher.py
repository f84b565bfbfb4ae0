"""A whole federation on one machine: anvil, the local store, N clients, n members and a keeper.

:class:`LocalFederation` sets a run up under ``runs/<name>/`` and starts and stops its
processes; :class:`RoundTracker` follows the contract's events and measures each round;
:func:`run_demo` ties them together for ``fedtss demo``. The end-to-end tests drive the same
two classes, so the demo and the tests run one code path.

Layout of a run (a new run of the same name replaces the old one)::

    runs/<name>/chain-state.json    anvil --state: written when anvil stops, reloaded by `fedtss node`
    runs/<name>/federation.toml     the deployment config generated for the requested sizes
    runs/<name>/deployment.json     the deployment record (deploy.py)
    runs/<name>/store/              LocalStore: models, manifests, sealed and aggregate shares
    runs/<name>/data/client-i.npz   client i's partition of the digits (0-based i)
    runs/<name>/nodes/<node>.toml   each agent's node config; nodes/<node>/ its checkpoint
    runs/<name>/logs/<node>.log     each process's output (anvil.log for the chain)
    runs/<name>/report.json         what the run measured (orchestration.report)
    runs/<name>/accuracy.png        accuracy per round beside plaintext FedAvg

Accounts are anvil's public dev accounts: 0 is the operator (deployer, startTraining, and
the keeper, so that it may reopen a failed round), 1..n the committee, n+1..n+N the clients.
Members' X25519 keys are the dev keys of :func:`fedtss.chain.dev_sealing_keypair`. Keys
reach each process through its environment (``FEDTSS_PRIVATE_KEY``, ``FEDTSS_SEALING_KEY``),
never its command line, and no file of the run holds one where other users may read it: the
logs are 0600 (anvil's start-up banner lists every dev key). Every process runs in its own
process group (its own session), so a Ctrl-C reaches the launcher alone, which then stops the
agents, the keeper and last anvil (whose SIGTERM writes the chain state).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import numpy as np
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.markup import escape  # error messages name TOML tables: [rounds]
from rich.live import Live

from agents.config import NodeSettings, parse_node_config
from agents.learning import (
    DEFAULT_CLIP_NORM,
    DataConfig,
    Federation,
    ModelConfig,
    TrainConfig,
    evaluate,
    initial_tensors,
    make_federation,
    plaintext_fedavg,
)
from fedtss._files import open_private_log
from fedtss.chain import (
    ChainEvent,
    CollectionClosed,
    RoundFailed,
    RoundFinalized,
    RoundOpened,
    RoundsContract,
    ThresholdReached,
    TrainingCompleted,
    UpdateSubmitted,
    committee_warning,
    dev_sealing_keypair,
    load_deployment,
)
from fedtss.chain.deploy import deploy as deploy_contract
from fedtss.chain.devnode import DevNode, dev_accounts
from fedtss.errors import ConfigError, FedTSSError
from fedtss.formats import decode_model, encode_model
from fedtss.storage import LocalStore
from orchestration.keeper import KeeperConfig, parse_keeper_config
from orchestration.node import start_local_chain
from orchestration.report import ProcessExit, RoundRecord, build_report, plot_accuracy, render_table, write_report

__all__ = ["PROJECT_ROOT", "FederationSpec", "LocalFederation", "RoundTracker", "run_demo"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MODEL_MAX_BYTES = 64 * 1024 * 1024
_STOP_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.2
_READY = re.compile(r"\bstarted=|\bevent=started\b")
_CHILD_ENV_DROP = ("FEDTSS_PRIVATE_KEY", "FEDTSS_SEALING_KEY", "FEDTSS_KEYSTORE_PASSWORD")
_E = TypeVar("_E", bound=ChainEvent)


@dataclass(frozen=True)
class FederationSpec:
    """Sizes, periods, seeds and training settings of one local federation.

    The defaults are the issue's default federation: 10 clients, a committee of 5 with
    t = 3, 10 rounds. ``collection_period`` leaves room for the agents' start-up (each
    process imports PyTorch); collection closes as soon as every client has submitted.
    """

    name: str = "demo"
    clients: int = 10
    committee: int = 5
    threshold: int = 3
    rounds: int = 10
    min_clients: int = 3
    collection_period: int = 120
    aggregation_period: int = 60
    seed: int = 0
    alpha: float = 0.5
    hidden: int = 64
    clip_norm: float = DEFAULT_CLIP_NORM
    fractional_bits: int = 16
    train: TrainConfig = field(default_factory=TrainConfig)
    share_wait_seconds: float = 1.0
    keeper_interval: float = 1.0
    reopen_failed: bool = False
    runs_dir: Path = Path("runs")

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"name: {self.name!r} must be 1-64 letters, digits, '.', '_' or '-' "
                              "(it names a folder under runs/)")
        if not 2 <= self.committee <= 255:
            raise ConfigError(f"committee: needs 2 to 255 members, got {self.committee}")
        if not 2 <= self.threshold <= self.committee:
            raise ConfigError(f"threshold: needs 2 <= t <= committee ({self.committee}), got {self.threshold}")
        if not 2 <= self.clients <= 256:
            raise ConfigError(f"clients: needs 2 to 256 clients (one round aggregates at most 256), "
                              f"got {self.clients}")
        if not 2 <= self.min_clients <= self.clients:
            raise ConfigError(f"min_clients: needs 2 <= min_clients <= clients ({self.clients}), "
                              f"got {self.min_clients}")
        if self.rounds < 1:
            raise ConfigError(f"rounds: must be at least 1, got {self.rounds}")

    @property
    def run_dir(self) -> Path:
        return (self.runs_dir / self.name).resolve()

    @property
    def accounts(self) -> int:
        return 1 + self.committee + self.clients

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["runs_dir"] = str(self.runs_dir)
        data["train"] = asdict(self.train)
        return data


class LocalFederation:
    """One run's chain, store, data, configs and processes; a context manager that stops them."""

    def __init__(self, spec: FederationSpec) -> None:
        self.spec = spec
        self.run_dir = spec.run_dir
        self.store_dir = self.run_dir / "store"
        self.logs_dir = self.run_dir / "logs"
        self.nodes_dir = self.run_dir / "nodes"
        self.deployment_path = self.run_dir / "deployment.json"
        self.state_file = self.run_dir / "chain-state.json"
        accounts = dev_accounts(spec.accounts)
        self.operator: LocalAccount = accounts[0]
        self.members: tuple[LocalAccount, ...] = accounts[1 : 1 + spec.committee]
        self.clients: tuple[LocalAccount, ...] = accounts[1 + spec.committee :]
        self.chain: DevNode | None = None
        self.contract: RoundsContract | None = None
        self.store: LocalStore | None = None
        self.data: Federation | None = None
        self.initial_model_cid: str | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------------- names

    @property
    def client_names(self) -> list[str]:
        return [f"client-{i}" for i in range(self.spec.clients)]

    @property
    def member_names(self) -> list[str]:
        return [f"member-{j}" for j in range(1, self.spec.committee + 1)]

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def config_path(self, name: str) -> Path:
        return self.nodes_dir / f"{name}.toml"

    # ------------------------------------------------------------------------ set-up

    def prepare(self) -> None:
        """Replace the run folder, start anvil, deploy, write data and configs, store model 0."""
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        for folder in (self.store_dir, self.logs_dir, self.nodes_dir, self.run_dir / "data"):
            folder.mkdir(parents=True, exist_ok=True)
        self.chain = start_local_chain(self.state_file, accounts=self.spec.accounts,
                                       log_path=self.log_path("anvil"))
        self._deploy()
        self.store = LocalStore(self.store_dir)
        self.data = make_federation(DataConfig(num_clients=self.spec.clients, alpha=self.spec.alpha,
                                               seed=self.spec.seed))
        for index, part in enumerate(self.data.clients):
            np.savez(self.run_dir / "data" / f"client-{index}.npz", x=part.x, y=part.y)
        self._write_node_configs()
        model = initial_tensors(ModelConfig(hidden=self.spec.hidden), seed=self.spec.seed)
        self.initial_model_cid = self.store.put(encode_model(model))

    def _deploy(self) -> None:
        """Generate the deployment config for the requested sizes and deploy it (fedtss.chain.deploy)."""
        config_path = self.run_dir / "federation.toml"
        config_path.write_text(self._deployment_toml(), encoding="utf-8")
        deployment = deploy_contract(self.chain.url, config_path, self.deployment_path,
                                     environ={"FEDTSS_PRIVATE_KEY": _hex_key(self.operator)})
        self.contract = RoundsContract.from_deployment(self.chain.w3, deployment)

    def _deployment_toml(self) -> str:
        spec = self.spec
        lines = [
            "# Generated by fedtss demo for this run: anvil's dev accounts, public dev sealing keys.",
            "# The deployer key is not here: deploying takes it from FEDTSS_PRIVATE_KEY.",
            "[rounds]",
            f"threshold = {spec.threshold}",
            f"min_clients = {spec.min_clients}",
            f"target_clients = {spec.clients}",
            f"collection_period = {spec.collection_period}",
            f"aggregation_period = {spec.aggregation_period}",
            "clients = [" + ", ".join(f'"{c.address}"' for c in self.clients) + "]",
        ]
        for member in self.members:
            public = dev_sealing_keypair(member.address)[1]
            lines += ["", "[[rounds.committee]]", f'address = "{member.address}"', f'sealing_key = "0x{public.hex()}"']
        return "\n".join(lines) + "\n"

    def _write_node_configs(self) -> None:
        """One TOML per agent and the keeper's, each validated with its process's own loader.

        ``confirmations`` (and, for agents, the store timeouts) are written out at their
        defaults, so that whoever copies a generated file for a real network sees the knobs.
        """
        for index, name in enumerate(self.client_names):
            self._write_agent_config(name, "client", {
                "data": str(self.run_dir / "data" / f"client-{index}.npz"),
                "index": index,
                "epochs": self.spec.train.epochs,
                "batch_size": self.spec.train.batch_size,
                "learning_rate": self.spec.train.lr,
                "momentum": self.spec.train.momentum,
            })
        for name in self.member_names:
            self._write_agent_config(name, "aggregator", {"share_wait_seconds": self.spec.share_wait_seconds})
        keeper = {
            "node": {"rpc_url": self.chain.url, "deployment": str(self.deployment_path),
                     "confirmations": KeeperConfig.confirmations},
            "keeper": {"interval_seconds": self.spec.keeper_interval, "reopen_failed": self.spec.reopen_failed},
        }
        path = self.config_path("keeper")
        parse_keeper_config(keeper, path=path)
        path.write_text(_toml(keeper), encoding="utf-8")

    def _write_agent_config(self, name: str, role: str, section: dict[str, Any]) -> None:
        document = {
            "node": {
                "rpc_url": self.chain.url.replace("http://", "ws://", 1),
                "http_url": self.chain.url,
                "deployment": str(self.deployment_path),
                "store": str(self.store_dir),
                "state_dir": str(self.nodes_dir / name),
                "store_timeout_seconds": NodeSettings.store_timeout_seconds,
                "fetch_timeout_seconds": NodeSettings.fetch_timeout_seconds,
                "confirmations": NodeSettings.confirmations,
            },
            "federation": {
                "seed": self.spec.seed,
                "fractional_bits": self.spec.fractional_bits,
                "clip_norm": self.spec.clip_norm,
                "hidden": self.spec.hidden,
            },
            role: section,
        }
        path = self.config_path(name)
        parse_node_config(document, role=role, path=path)  # type: ignore[arg-type]
        path.write_text(_toml(document), encoding="utf-8")

    # --------------------------------------------------------------------- processes

    def start_agents(self, *, skip: Iterable[str] = (), keeper: bool = True) -> None:
        """Start every client and member (but those in ``skip``) and the keeper."""
        skipped = set(skip)
        for name in [*self.member_names, *self.client_names, *(["keeper"] if keeper else [])]:
            if name not in skipped:
                self.start(name)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start (or restart) one node's process, its key in its environment."""
        if name in self.processes and self.processes[name].poll() is None:
            raise FedTSSError(f"{name} is already running (pid {self.processes[name].pid})")
        module, secrets = self._process_of(name)
        environment = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROP}
        environment.update(secrets, PYTHONUNBUFFERED="1")
        with open_private_log(self.log_path(name)) as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", module, "--config", str(self.config_path(name))],
                cwd=PROJECT_ROOT, env=environment, stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.processes[name] = process
        return process

    def _process_of(self, name: str) -> tuple[str, dict[str, str]]:
        role, _, number = name.partition("-")
        if name == "keeper":
            return "orchestration.keeper", {"FEDTSS_PRIVATE_KEY": _hex_key(self.operator)}
        if role == "client" and name in self.client_names:
            return "agents.client", {"FEDTSS_PRIVATE_KEY": _hex_key(self.clients[int(number)])}
        if role == "member" and name in self.member_names:
            member = self.members[int(number) - 1]
            sealing_private = dev_sealing_keypair(member.address)[0]
            return "agents.aggregator", {"FEDTSS_PRIVATE_KEY": _hex_key(member),
                                         "FEDTSS_SEALING_KEY": sealing_private.hex()}
        raise ConfigError(f"no node named {name!r}: expected keeper, client-0..client-{self.spec.clients - 1} "
                          f"or member-1..member-{self.spec.committee}")

    def wait_until_ready(self, names: Iterable[str] | None = None, *, timeout: float = 120.0) -> None:
        """Wait until each named process (default: all started) logged that it follows the chain.

        Agents log ``started=<transport>`` once their event source is up, the keeper
        ``event=started``: opening a round before that would spend its collection period on
        Python start-up (PyTorch and web3 take seconds to import on a busy machine).
        """
        pending = set(self.processes if names is None else names)
        deadline = time.monotonic() + timeout
        while pending:
            for name in list(pending):
                process = self.processes[name]
                if process.poll() is not None:
                    raise FedTSSError(f"{name} exited with code {process.returncode} during start-up; the end "
                                      f"of {self.log_path(name)}:\n{self.log_tail(name)}")
                if _READY.search(self.log_path(name).read_text(errors="replace")):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise FedTSSError(f"{sorted(pending)} did not start within {timeout:.0f} s; see {self.logs_dir}")
            time.sleep(_POLL_SECONDS)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one node's process group and wait for it to exit."""
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        _signal_group(process, sig)
        try:
            process.wait(timeout=_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()

    def exited(self) -> dict[str, int]:
        """Nodes whose process has exited, with their exit codes."""
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def stop_processes(self) -> None:
        """SIGTERM every node's process group, then SIGKILL what is left after a grace period."""
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()

    def close(self) -> None:
        """Stop the agents and the keeper, then anvil (which writes chain-state.json)."""
        try:
            self.stop_processes()
        finally:
            if self.chain is not None:
                self.chain.stop()
                self.chain = None

    def __enter__(self) -> LocalFederation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------ chain

    def start_training(self) -> dict:
        """The operator opens round 1 from the initial model, for ``spec.rounds`` rounds."""
        return self.contract.start_training(self.operator, self.initial_model_cid, self.spec.rounds)

    def load_model(self, cid: str) -> dict[str, np.ndarray]:
        return decode_model(self.store.get(cid, max_bytes=_MODEL_MAX_BYTES), max_bytes=_MODEL_MAX_BYTES)

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class RoundTracker:
    """Follows the contract's events and keeps one :class:`RoundRecord` per round.

    Times are when the launcher saw an event (polled every 0.2 s): block timestamps have a
    one-second resolution, too coarse for phases that take a second or two.
    """

    def __init__(self, federation: LocalFederation, *, evaluate_models: bool = True) -> None:
        self.federation = federation
        self.contract = federation.contract
        self.records: dict[int, RoundRecord] = {}
        self.events: list[ChainEvent] = []
        self.completed = False
        self.evaluate_models = evaluate_models
        #: Node processes that ended since the tracker started, in the order it saw them.
        self.process_exits: list[ProcessExit] = []
        self._started = time.monotonic()
        self._noted_exits = {(n, p.pid) for n, p in federation.processes.items() if p.poll() is not None}
        self._next_block = load_deployment(federation.deployment_path).deploy_block
        self._seen_tx: set[str] = set()

    def poll(self) -> list[ChainEvent]:
        """Read new events, update the records; return the new events."""
        latest = self.contract.w3.eth.block_number
        if latest < self._next_block:
            return []
        events = self.contract.get_events(self._next_block, latest)
        self._next_block = latest + 1
        now = time.monotonic()
        for event in events:
            self._apply(event, now)
        self._account_gas(events)
        self.events.extend(events)
        return events

    def wait_until(self, condition: Callable[[RoundTracker], bool], *, timeout: float,
                   on_poll: Callable[[], None] | None = None, watch_processes: bool = True) -> None:
        """Poll until ``condition(self)``; raise with the logs of a process that died, or on timeout."""
        deadline = time.monotonic() + timeout
        expected_running = {n for n, p in self.federation.processes.items() if p.poll() is None}
        while True:
            self.poll()
            if on_poll is not None:
                on_poll()
            if condition(self):
                return
            if watch_processes:
                self._check_processes(expected_running)
            if time.monotonic() > deadline:
                raise FedTSSError(f"timed out after {timeout:.0f} s waiting for the federation; rounds: "
                                  f"{[r.to_json() for r in self.records.values()]}")
            time.sleep(_POLL_SECONDS)

    def note_exits(self) -> list[ProcessExit]:
        """Record each node process that ended since the last look: which one, how, when, in which round.

        A restarted node is a new process (a new pid), so its next exit is recorded too.
        """
        seconds = time.monotonic() - self._started
        latest_round = max(self.records, default=None)
        new = [ProcessExit(name, process.returncode, seconds, latest_round)
               for name, process in self.federation.processes.items()
               if process.poll() is not None and (name, process.pid) not in self._noted_exits]
        self._noted_exits.update((e.name, self.federation.processes[e.name].pid) for e in new)
        self.process_exits += new
        return new

    def stalled_by_exits(self) -> str | None:
        """Why the processes still running cannot finish the training, or None while they can.

        The keeper is needed to close collection short of the target and to fail stalled
        rounds; a round needs t members and min_clients clients.
        """
        federation, spec = self.federation, self.federation.spec

        def running(names: Iterable[str]) -> int:
            return sum(1 for n in names if n in federation.processes and federation.processes[n].poll() is None)

        if "keeper" in federation.processes and not running(["keeper"]):
            return "the keeper stopped: nothing closes collection or fails a round at its deadline"
        if running(federation.member_names) < spec.threshold:
            return (f"{running(federation.member_names)} of {spec.committee} members are running, fewer than "
                    f"t = {spec.threshold}: no round can finalize")
        if running(federation.client_names) < spec.min_clients:
            return (f"{running(federation.client_names)} of {spec.clients} clients are running, fewer than "
                    f"min_clients = {spec.min_clients}: no round can close its collection")
        return None

    def _check_processes(self, expected_running: set[str]) -> None:
        # Restarted or killed-on-purpose processes are tracked by the caller through federation.processes.
        for name in expected_running:
            process = self.federation.processes.get(name)
            if process is not None and process.poll() is not None and process.returncode not in (-9, -15):
                raise FedTSSError(f"{name} exited with code {process.returncode}; the end of "
                                  f"{self.federation.log_path(name)}:\n{self.federation.log_tail(name)}")

    def round_events(self, round_: int, kind: type[_E] | None = None) -> list[_E]:
        """The events of round ``round_`` seen so far (only those of class ``kind`` if given)."""
        return [e for e in self.events if _round_of(e) == round_ and (kind is None or isinstance(e, kind))]

    def finished(self, *, stop_on_failure: bool) -> bool:
        """Training completed, or (if failures are not reopened) a round failed."""
        return self.completed or (stop_on_failure and any(r.state == "Failed" for r in self.records.values()))

    # ----------------------------------------------------------------------- events

    def _apply(self, event: ChainEvent, now: float) -> None:
        if isinstance(event, TrainingCompleted):
            self.completed = True
            return
        round_ = _round_of(event)
        if isinstance(event, RoundOpened):
            self.records[round_] = RoundRecord(round=round_, opened_at=now)
            return
        record = self.records.get(round_)
        if record is None:
            return
        if isinstance(event, UpdateSubmitted):
            record.submitted += 1
        elif isinstance(event, CollectionClosed):
            record.marks["closed"] = now
            record.state = "Aggregating"
        elif isinstance(event, ThresholdReached):
            record.marks["threshold"] = now
            record.participants = len(event.included_clients)
            record.state = "Reconstructing"
        elif isinstance(event, RoundFinalized):
            record.state, record.marks["end"] = "Finalized", now
            record.model_cid = event.model_cid
            if self.evaluate_models:
                self._evaluate(record)
        elif isinstance(event, RoundFailed):
            record.state, record.marks["end"] = "Failed", now
            record.failed_in = str(event.state_at_failure)

    def _evaluate(self, record: RoundRecord) -> None:
        test = self.federation.data.test
        record.accuracy, record.loss = evaluate(self.federation.load_model(record.model_cid), test.x, test.y)

    def _account_gas(self, events: Sequence[ChainEvent]) -> None:
        """Gas per transaction type per round, from each new transaction's receipt and input."""
        w3 = self.contract.w3
        for event in events:
            if event.tx_hash in self._seen_tx:
                continue
            self._seen_tx.add(event.tx_hash)
            round_ = _round_of(event)
            record = self.records.get(round_)
            if record is None:
                continue
            transaction = w3.eth.get_transaction(event.tx_hash)
            function, _ = self.contract.contract.decode_function_input(transaction["input"])
            gas = w3.eth.get_transaction_receipt(event.tx_hash)["gasUsed"]
            record.gas[function.fn_name] = record.gas.get(function.fn_name, 0) + gas


def _round_of(event: ChainEvent) -> int:
    """The round an event belongs to (TrainingStarted's first round, TrainingCompleted's last)."""
    return event.round_number or 0


# ------------------------------------------------------------------------------- demo


def run_demo(spec: FederationSpec, *, console: Console | None = None) -> int:
    """Run the whole demo; write report.json and accuracy.png; 0 if every round finalized."""
    console = console or Console()
    started = time.monotonic()
    _raise_on_sigterm()
    federation_seconds: float | None = None
    setup_seconds: float | None = None
    records: list[RoundRecord] = []
    with LocalFederation(spec) as federation:
        console.print(f"[bold]fedtss demo[/bold] {spec.clients} clients, committee {spec.committee} "
                      f"(t = {spec.threshold}), {spec.rounds} rounds -> {federation.run_dir}")
        caution = committee_warning(spec.committee, spec.threshold)
        if caution is not None:
            console.print(f"[yellow]warning:[/yellow] {escape(caution)}", highlight=False)
        federation.prepare()
        console.print(f"anvil at {federation.chain.url}, contract {federation.contract.address}, "
                      f"store {federation.store_dir}")
        federation.start_agents()
        federation.wait_until_ready()
        console.print(f"{len(federation.processes)} agent processes ready after "
                      f"{time.monotonic() - started:.1f} s; opening training")
        tracker = RoundTracker(federation)
        federation.start_training()
        training_started = time.monotonic()
        setup_seconds = training_started - started
        timeout = spec.rounds * (spec.collection_period + 2 * spec.aggregation_period) + 60
        try:
            with Live(render_table([]), console=console, refresh_per_second=4) as live:

                def refresh() -> None:
                    tracker.note_exits()
                    live.update(render_table(list(tracker.records.values()), process_exits=tracker.process_exits))

                # A node that dies is named in the table, and the run goes on while the others can finish it.
                tracker.wait_until(
                    lambda t: t.finished(stop_on_failure=not spec.reopen_failed) or t.stalled_by_exits() is not None,
                    timeout=timeout, on_poll=refresh, watch_processes=False,
                )
            console.print()
            stalled = tracker.stalled_by_exits()
            if stalled is not None and not tracker.completed:
                console.print(f"[red]fedtss demo: stopping early: {escape(stalled)}[/red]", highlight=False)
        except FedTSSError as exc:
            console.print()
            # Timed out, or the chain stopped answering: report what was measured, then fail.
            console.print(f"[red]fedtss demo: {escape(str(exc))}[/red]", highlight=False)
        finally:
            records = [tracker.records[r] for r in sorted(tracker.records)]
            federation_seconds = time.monotonic() - training_started
            for exit_ in tracker.process_exits:
                console.print(f"[red]{escape(exit_.describe())}[/red]; the end of {federation.log_path(exit_.name)}:",
                              highlight=False)
                console.print(escape(federation.log_tail(exit_.name, lines=8)), highlight=False)
            federation.stop_processes()
        data = federation.data
    console.print("plaintext FedAvg baseline on the same partition, model and seeds ...")
    baseline = plaintext_fedavg(
        initial_tensors(ModelConfig(hidden=spec.hidden), seed=spec.seed), data.clients, rounds=spec.rounds,
        train_config=spec.train, clip_norm=spec.clip_norm, seed=spec.seed, test=data.test,
    )
    report = build_report(spec.to_json(), records, [r.accuracy for r in baseline], [r.loss for r in baseline],
                          total_seconds=time.monotonic() - started, federation_seconds=federation_seconds,
                          setup_seconds=setup_seconds, process_exits=tracker.process_exits)
    write_report(report, spec.run_dir / "report.json")
    plot_accuracy(report, spec.run_dir / "accuracy.png")
    _print_summary(console, report, spec)
    all_finalized = len(records) == spec.rounds and all(r.state == "Finalized" for r in records)
    return 0 if all_finalized and tracker.completed else 1


def _print_summary(console: Console, report: dict[str, Any], spec: FederationSpec) -> None:
    rounds = report["rounds"]
    last = next((r for r in reversed(rounds) if r["accuracy"] is not None), None)
    baseline = report["plaintext_fedavg"]["accuracy"]
    if last is not None and len(baseline) >= last["round"]:
        plain = baseline[last["round"] - 1]
        console.print(f"round {last['round']}: fedtss {100 * last['accuracy']:.2f}%  plaintext FedAvg "
                      f"{100 * plain:.2f}%  difference {100 * (last['accuracy'] - plain):+.2f} points")
    failed = [r["round"] for r in rounds if r["state"] == "Failed"]
    if failed:
        console.print(f"[red]failed rounds: {failed}[/red]; see {spec.run_dir / 'logs'}")
    console.print(f"total {report['total_seconds']:.1f} s (set-up {report['setup_seconds']:.1f} s, federation "
                  f"{report['federation_seconds']:.1f} s); "
                  f"report {spec.run_dir / 'report.json'}, plot {spec.run_dir / 'accuracy.png'}")


# -------------------------------------------------------------------------- helpers


def _hex_key(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the child leads its own session, so its group id is its pid
    except ProcessLookupError:
        pass


def _raise_on_sigterm() -> None:
    """A SIGTERM stops the demo like a Ctrl-C: every process is stopped on the way out."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _toml(document: Mapping[str, Mapping[str, Any]]) -> str:
    """A flat two-level TOML document (tables of scalars); strings are JSON-escaped (valid TOML)."""
    lines: list[str] = []
    for table, values in document.items():
        lines.append(f"[{table}]")
        for key, value in values.items():
            if isinstance(value, bool):
                rendered = "true" if value else "false"
            elif isinstance(value, (int, float)):
                rendered = repr(value)
            elif isinstance(value, str):
                rendered = json.dumps(value)
            else:
                raise ConfigError(f"cannot write {table}.{key} of type {type(value).__name__} to TOML")
            lines.append(f"{key} = {rendered}")
        lines.append("")
    return "\n".join(lines)
