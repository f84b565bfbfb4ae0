"""Round tracking: the launcher's live view of a run's rounds, and what it measures of each.

:class:`RoundTracker` reads the contract's new events every 0.2 s from the event follower every
agent uses (:class:`fedtss.chain.events.EventSource`, one synchronous look at a time with
:meth:`~fedtss.chain.events.EventSource.read_new`, from the deploy block on) and folds them with
:func:`fedtss.chain.rounds.fold_rounds` (the fold the explorer and the operator CLI use) into
one :class:`~fedtss.chain.rounds.RoundRecord` per round; after a reorganization the rounds are
folded again from the events the chain still has. It adds only what the launcher alone knows:
when it saw each step of a round (wall clock), the gas of each transaction, the bytes each
client stored (its manifest and every blob the manifest names, read from the store) and the
test accuracy of each finalized model. :func:`measure_round` joins them into the
:class:`~orchestration.report.RoundMeasurement` rows of the live table and ``report.json``.

Times are when the launcher saw an event (polled every 0.2 s): block timestamps have a
one-second resolution, too coarse for phases that take a second or two.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fedtss.chain import ChainEvent, RoundState, TrainingCompleted, UpdateSubmitted, load_deployment
from fedtss.chain.events import EventSource, MemoryCheckpoint
from fedtss.chain.rounds import RoundRecord, fold_rounds
from fedtss.errors import FedTSSError
from fedtss.formats import MANIFEST_MAX_BYTES, parse_manifest
from fedtss.storage import ContentStore
from orchestration.launcher import LocalFederation
from orchestration.report import ProcessExit, RoundMeasurement

__all__ = ["RoundTracker", "measure_round"]

_POLL_SECONDS = 0.2
_E = TypeVar("_E", bound=ChainEvent)
#: The report's names for the steps it times a round between (the round's opening is ``opened_at``).
_STEP_NAMES = (("closed", RoundState.Aggregating), ("threshold", RoundState.Reconstructing),
               ("end", RoundState.Finalized), ("end", RoundState.Failed))


def measure_round(record: RoundRecord, seen_at: Mapping[RoundState, float], *,
                  gas: Mapping[str, int] | None = None, accuracy: float | None = None,
                  loss: float | None = None, federated: Mapping[str, float] | None = None) -> RoundMeasurement:
    """The report's row for a round: its facts from ``record``, when the launcher saw the round
    enter each state from ``seen_at`` (``time.monotonic()`` readings), and what else it measured."""
    seen = {mark.state: seen_at[mark.state] for mark in record.timeline if mark.state in seen_at}
    return RoundMeasurement(
        round=record.round,
        opened_at=seen[RoundState.Collecting],
        state=record.state.name,
        submitted=record.submitted,
        participants=record.participants,
        model_cid=record.result_cid,
        accuracy=accuracy,
        loss=loss,
        federated=dict(federated or {}),
        failed_in=None if record.failed_in is None else record.failed_in.name,
        gas=dict(gas or {}),
        marks={name: seen[state] for name, state in _STEP_NAMES if state in seen},
    )


class RoundTracker:
    """Follows the contract's events: one folded record per round (``rounds``), measured (``records``)."""

    def __init__(self, federation: LocalFederation, *, evaluate_models: bool = True) -> None:
        self.federation = federation
        self.contract = federation.contract
        #: Each round as its events tell it, by number.
        self.rounds: dict[int, RoundRecord] = {}
        self.events: list[ChainEvent] = []
        self.completed = False
        self.evaluate_models = evaluate_models
        #: Node processes that ended since the tracker started, in the order it saw them.
        self.process_exits: list[ProcessExit] = []
        self._started = time.monotonic()
        self._noted_exits = {(n, p.pid) for n, p in federation.processes.items() if p.poll() is not None}
        deployment = load_deployment(federation.deployment_path)
        self._source = EventSource.from_deployment(self.contract.chain.rpc_url, deployment)
        self._checkpoint = MemoryCheckpoint.for_deployment(deployment, on_rewind=self._forget_after)
        self._seen_tx: set[str] = set()
        self._seen_at: dict[int, dict[RoundState, float]] = {}  # round -> state -> when it was seen
        self._gas: dict[int, dict[str, int]] = {}
        #: Round -> bytes each submitting client stored, read back from the store by measure_uploads().
        self._uploads: dict[int, dict[str, int]] = {}
        layout = deployment.model_layout
        self._update_bytes = None if layout is None else 4 * layout.size
        self._evaluations: dict[int, tuple[float | None, float | None]] = {}
        #: Round -> the federated metrics its result blob carries (of the model the round started from).
        self._carried: dict[int, dict[str, float]] = {}

    @property
    def records(self) -> dict[int, RoundMeasurement]:
        """Each round as the live table and ``report.json`` show it, oldest first."""
        return {number: self._measure(self.rounds[number]) for number in sorted(self.rounds)}

    def poll(self) -> list[ChainEvent]:
        """Read new events, fold them into the rounds; return the new events."""
        events = self._source.read_new(self._checkpoint)
        if not events:
            return []
        self._fold(events, time.monotonic())
        self._account_gas(events)
        self.events.extend(events)
        return events

    def measure_uploads(self) -> None:
        """Read back what each submitter stored (its manifest and every blob it names), for
        ``records``' upload figures. Once, after the rounds: reading a round's blobs while the next
        one ran took store and CPU time from the federation being measured (110 blobs a round in
        the default demo, each a request to an IPFS daemon with ``--ipfs-hosts``)."""
        store = self.federation.store
        submissions = [event for event in self.events if isinstance(event, UpdateSubmitted)]
        if store is None or not submissions:
            return
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="upload") as pool:
            sizes = list(pool.map(lambda event: _upload_or_none(store, event.manifest_cid), submissions))
        uploads: dict[int, dict[str, int]] = {}
        for event, size in zip(submissions, sizes, strict=True):
            if size is not None:
                uploads.setdefault(_round_of(event), {})[event.client] = size
        self._uploads = uploads

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
        latest_round = max(self.rounds, default=None)
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
        running = federation.supervisor.count_running
        if "keeper" in federation.processes and not running(["keeper"]):
            return "the keeper stopped: nothing closes collection or fails a round at its deadline"
        if running(federation.member_names) < spec.threshold:
            return (f"{running(federation.member_names)} of {spec.committee} members are running, fewer than "
                    f"t = {spec.threshold}: no round can finalize")
        if federation.running_clients() < spec.min_clients:
            return (f"{federation.running_clients()} of {spec.clients} clients are running, fewer than "
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
        return self.completed or (stop_on_failure and any(r.state is RoundState.Failed for r in self.rounds.values()))

    # ----------------------------------------------------------------------- events

    def _fold(self, events: Iterable[ChainEvent], now: float) -> None:
        """Fold the events; note ``now`` as the time of each new step, evaluate each new result."""
        events = list(events)
        self.rounds = fold_rounds(events, self.rounds)
        self.completed = self.completed or any(isinstance(e, TrainingCompleted) for e in events)
        for record in self.rounds.values():
            seen = self._seen_at.setdefault(record.round, {})
            for mark in record.timeline:
                seen.setdefault(mark.state, now)
            if self.evaluate_models and record.result_cid is not None and record.round not in self._evaluations:
                metrics = self.federation.evaluate_model(record.result_cid)
                self._evaluations[record.round] = (metrics.get("accuracy"), metrics.get("loss"))
            if record.result_cid is not None and record.round not in self._carried:
                self._carried[record.round] = self.federation.model_metrics(record.result_cid)

    def _forget_after(self, fork: int) -> None:
        """The chain replaced every block after ``fork``: fold the rounds again without their events."""
        self.events = [e for e in self.events if e.block_number <= fork]
        self.rounds = fold_rounds(self.events)
        self.completed = any(isinstance(e, TrainingCompleted) for e in self.events)
        for number in set(self._evaluations) - {r.round for r in self.rounds.values() if r.result_cid is not None}:
            del self._evaluations[number]  # its result is gone; a new one is evaluated when it comes
            self._carried.pop(number, None)

    def _measure(self, record: RoundRecord) -> RoundMeasurement:
        accuracy, loss = self._evaluations.get(record.round, (None, None))
        measured = measure_round(record, self._seen_at.get(record.round, {}), gas=self._gas.get(record.round),
                                 accuracy=accuracy, loss=loss, federated=self._federated_metrics(record))
        uploads = self._uploads.get(record.round)
        if uploads:
            measured.upload_bytes_per_client = round(sum(uploads.values()) / len(uploads))
            if self._update_bytes:
                measured.upload_ratio = round(measured.upload_bytes_per_client / self._update_bytes, 4)
        return measured

    def _federated_metrics(self, record: RoundRecord) -> dict[str, float]:
        """The clients' own evaluation of the model ``record``'s round made: carried by the result of
        the first later round that trained from it and finalized (so known one round later, or after
        a failed round was reopened; never for the last model)."""
        if record.result_cid is None:
            return {}
        for number in sorted(n for n in self.rounds if n > record.round):
            later = self.rounds[number]
            if later.model_cid == record.result_cid and number in self._carried:
                return self._carried[number]
        return {}

    def _account_gas(self, events: Sequence[ChainEvent]) -> None:
        """Gas per transaction type per round, from each new transaction's receipt and input."""
        chain = self.contract.chain
        for event in events:
            if event.tx_hash in self._seen_tx:
                continue
            self._seen_tx.add(event.tx_hash)
            round_ = _round_of(event)
            if round_ not in self.rounds:
                continue
            transaction = chain.transaction(event.tx_hash)
            function = self.contract.function_name(transaction.input) if transaction else None
            if function is None:
                continue  # an event always comes from a decodable call of ours; a vanished tx is left out
            spent = self._gas.setdefault(round_, {})
            spent[function] = spent.get(function, 0) + chain.gas_used(event.tx_hash)


def stored_upload_bytes(store: ContentStore, manifest_cid: str) -> int:
    """Bytes one client stored for a round: the manifest plus every blob it names (read back)."""
    manifest_blob = store.get(manifest_cid, max_bytes=MANIFEST_MAX_BYTES)
    return len(manifest_blob) + sum(_blob_size(store, cid) for cid in parse_manifest(manifest_blob).blob_cids)


def _upload_or_none(store: ContentStore, manifest_cid: str) -> int | None:
    """:func:`stored_upload_bytes`, or None where a blob cannot be read."""
    try:
        return stored_upload_bytes(store, manifest_cid)
    except (FedTSSError, OSError):
        return None  # a blob gone or unreadable (deleted, never stored): nothing to count


def _blob_size(store: ContentStore, cid: str) -> int:
    path_of = getattr(store, "path_of", None)  # a local store answers from the file system
    if path_of is not None:
        return path_of(cid).stat().st_size
    return len(store.get(cid, max_bytes=1 << 40))


def _round_of(event: ChainEvent) -> int:
    """The round an event belongs to (TrainingStarted's first round, TrainingCompleted's last)."""
    return event.round_number or 0
