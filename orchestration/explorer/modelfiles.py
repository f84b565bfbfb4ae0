"""What the explorer reads from a run's model blobs: the federated evaluation each one carries,
and the blobs themselves as downloads (raw, or a PyTorch state dict made with the task).

Federated metrics. A finalized model's header may carry the round's federated evaluation: the
clients' example-weighted mean metrics, on their own data, of the model that round *started
from*, secret-shared with their updates (:func:`fedtss.formats.decode_model_metrics`). So round
k's model is evaluated by the clients of the next round that trains from it, and its numbers are
known one round later: :func:`federated_evaluations` lines them up with the model they
evaluate, as the launcher's report does (``orchestration.tracker``). When a round failed in
between, the round reopened from the same model carries them.

Downloads. :class:`ModelFiles` reads blobs from the run's store only after the caller checked
that the CID is a model of this federation (:meth:`FederationView.model_cids`), bounded by
:data:`MODEL_MAX_BYTES`; a state dict is written as ``fedtss model export`` writes it
(:func:`orchestration.models.export_model`: the deployment's layout is checked, the task loaded).
Every failure is a :class:`ModelUnavailable` with the HTTP status and a sentence for the page.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.config import read_config_document
from fedtss.errors import BlobNotFound, BlobTooLarge, ConfigError, FedTSSError, StorageError
from fedtss.formats import ModelLayout, decode_model_metrics
from fedtss.storage import LocalStore
from orchestration.run_layout import RunLayout

__all__ = ["MODEL_MAX_BYTES", "Evaluation", "ModelFiles", "ModelUnavailable", "federated_evaluations",
           "format_metric", "task_from_run"]

#: The largest model blob the explorer reads or serves (256 MiB: 64 million float32 values);
#: ``fedtss model export`` takes larger ones.
MODEL_MAX_BYTES = 256 * 1024 * 1024
_MAX_METRIC_NAME = 200
_TASK_LOOKUP_SECONDS = 5.0  # how often a run folder that names no task is looked at again


class ModelUnavailable(Exception):
    """A model the explorer cannot serve: ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Evaluation:
    """The clients' federated evaluation of one round's model."""

    metrics: dict[str, float]
    carried_by: int | None  # the round whose result blob carries it; None: read from report.json


def federated_evaluations(rounds: Sequence[Any], carried: Mapping[int, Mapping[str, float]]) -> dict[int, Evaluation]:
    """``{k: evaluation of round k's result}``.

    ``rounds`` are round summaries (``round``, ``model_cid``, ``result_cid``); ``carried[j]`` is
    what round j's result blob carries: the evaluation of the model round j trained from. Round
    k's result is evaluated by the first later round that trained from it and finalized with
    metrics (normally k + 1; after a failed round, the reopened one). Pure.
    """
    ordered = sorted(rounds, key=lambda s: s.round)
    found: dict[int, Evaluation] = {}
    for summary in ordered:
        if summary.result_cid is None:
            continue
        for later in ordered:
            if later.round > summary.round and later.model_cid == summary.result_cid and carried.get(later.round):
                found[summary.round] = Evaluation(dict(carried[later.round]), later.round)
                break
    return found


def report_evaluations(report: Mapping[str, Any] | None) -> dict[int, Evaluation]:
    """``{k: evaluation of round k's model}`` from a report.json's ``rounds[*].federated`` (the
    launcher lines them up the same way); rounds without one, and values that are no finite
    numbers, are left out."""
    found: dict[int, Evaluation] = {}
    rows = report.get("rounds") if isinstance(report, Mapping) else None
    for row in rows if isinstance(rows, list) else ():
        if not isinstance(row, Mapping) or not isinstance(row.get("round"), int):
            continue
        metrics = _clean_metrics(row.get("federated"))
        if metrics:
            found[row["round"]] = Evaluation(metrics, None)
    return found


def _clean_metrics(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    return {name: float(number) for name, number in value.items()
            if isinstance(name, str) and 0 < len(name) <= _MAX_METRIC_NAME
            and isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number)}


def format_metric(name: str, value: float) -> str:
    """An accuracy (a fraction) in percent, anything else with four decimals."""
    return f"{100 * value:.2f}%" if "accuracy" in name.lower() else f"{value:.4f}"


def task_from_run(run_dir: Path | None) -> str | None:
    """The task a run's clients train (``[client] task`` of ``nodes/client-0.toml``, else of the
    first ``nodes/client-*.toml``), or None when the run folder names none."""
    if run_dir is None:
        return None
    nodes = RunLayout(run_dir).nodes_dir
    candidates = [nodes / "client-0.toml"] + sorted(nodes.glob("client-*.toml"))
    for path in candidates:
        if not path.is_file():
            continue
        try:
            client = read_config_document(path).get("client")
        except ConfigError:
            continue
        if isinstance(client, dict) and isinstance(client.get("task"), str) and client["task"].strip():
            return client["task"].strip()
        if isinstance(client, dict):  # a client config without task = ... trains the default task
            from agents.learning.task import DEFAULT_TASK

            return DEFAULT_TASK
    return None


class ModelFiles:
    """The run's model blobs: their federated metrics (cached by CID: a CID names fixed bytes),
    raw bytes, and state dicts. Only reads the store; a state dict is built in a temporary folder."""

    def __init__(self, store: LocalStore | None, *, task: str | None, run_dir: Path | None,
                 fixed: ModelLayout | None, max_bytes: int = MODEL_MAX_BYTES) -> None:
        self.store, self.fixed, self.max_bytes = store, fixed, max_bytes
        self._task, self._run_dir = task, run_dir
        self._task_looked_at = -math.inf
        self._metrics: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    @property
    def task(self) -> str | None:
        """The task given to the explorer, else the one the run folder's client config names
        (looked up again, every few seconds, until one is found: a run being launched writes it soon)."""
        if self._task is None and self._run_dir is not None \
                and time.monotonic() - self._task_looked_at >= _TASK_LOOKUP_SECONDS:
            self._task_looked_at = time.monotonic()
            self._task = task_from_run(self._run_dir)
        return self._task

    def has(self, cid: str) -> bool:
        return self.store is not None and self.store.has(cid)

    def metrics(self, cid: str) -> dict[str, float]:
        """The federated metrics the blob ``cid`` carries; {} when it carries none, is not in the
        store (yet) or is not a model."""
        if cid in self._metrics:
            return self._metrics[cid]
        if not self.has(cid):
            return {}
        try:
            found = _clean_metrics(decode_model_metrics(self.store.get(cid, max_bytes=self.max_bytes),
                                                        max_bytes=self.max_bytes))
        except FedTSSError:
            found = {}  # too large, or not a model: the same bytes never change
        with self._lock:
            self._metrics[cid] = found
        return found

    def blob(self, cid: str) -> bytes:
        """The bytes of model ``cid`` (checked against its CID by the store)."""
        if self.store is None:
            raise ModelUnavailable(404, f"model {cid} cannot be downloaded here: this explorer has no store "
                                        "(open it on a run folder: fedtss explorer runs/<name>)")
        try:
            return self.store.get(cid, max_bytes=self.max_bytes)
        except BlobNotFound:
            raise ModelUnavailable(404, f"model {cid} is not in this run's store") from None
        except BlobTooLarge:
            raise ModelUnavailable(413, f"model {cid} is larger than the {self.max_bytes:,} bytes this explorer "
                                        "serves; use fedtss model export") from None
        except StorageError as exc:
            raise ModelUnavailable(404, f"model {cid} cannot be read from this run's store: {exc}") from None

    def state_dict(self, cid: str) -> bytes:
        """Model ``cid`` as ``torch.save`` of the task's ``model_from(tensors).state_dict()``,
        made by :func:`orchestration.models.export_model` (layouts checked first)."""
        task = self.task
        if task is None:
            raise ModelUnavailable(404, "the explorer does not know this federation's task, so it cannot make a "
                                        "state dict (start it with --task, or on a run folder whose "
                                        "nodes/client-0.toml names one); the raw blob is at "
                                        f"/model/{cid}")
        blob = self.blob(cid)
        from orchestration.models import export_model

        with tempfile.TemporaryDirectory(prefix="fedtss-explorer-") as folder:
            out = Path(folder) / "model.pt"
            try:
                export_model(blob, task, out, fixed=self.fixed)
            except FedTSSError as exc:  # TaskError, a layout that differs, a blob that is no model
                raise ModelUnavailable(409, f"model {cid} cannot be exported with task {task}: {exc}") from None
            return out.read_bytes()
