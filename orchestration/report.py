"""What a run measured: per-round measurements, the live table, ``report.json`` and the accuracy plot.

``report.json`` keys (the issue's list, plus a few extras marked *)::

    config            the federation's sizes, periods, seeds and training settings
    rounds            per round: round, state ("Finalized" | "Failed"), model_cid, participants
                      (clients in the aggregated set), accuracy, loss (held-out test set),
                      federated* (the clients' own sample-weighted evaluation of this round's
                      model, reconstructed in the next round; {} for the last one),
                      gas (per transaction type, summed over the round's transactions),
                      seconds (per phase: collecting, aggregating, reconstructing, total),
                      submitted*, failed_in*, breakdown* (the round's critical path in
                      seconds, from the agents' logs: :mod:`orchestration.latency`; None if
                      the round did not finalize)
    breakdown_median* each breakdown row's median over the rounds
    plaintext_fedavg  {"accuracy": [...], "loss"*: [...]}: plaintext FedAvg on the same
                      partition, model and seeds, computed in the launcher's own process
    total_seconds     the whole command, set-up included
    setup_seconds*    run folder, anvil, deploy, data, agents started and ready
    federation_seconds*  from startTraining to the last round's end
    federation_window_unix*  the same span as two Unix times, to line it up with other
                      measurements (benchmarks.latency reads the processes' CPU time in it)
    process_exits*    agent or keeper processes that ended while the federation ran: name,
                      exit code (negative: killed by that signal), seconds into training, round

Gas is read from the receipts of the transactions that emitted events; a transaction that
reverted on chain (a vote mined after the round finalized) emits none and is not counted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from orchestration.latency import median_breakdown

__all__ = ["PHASES", "ProcessExit", "RoundMeasurement", "build_report", "plot_accuracy", "render_table", "write_report"]

#: Phases of a round, each timed from the event that starts it to the one that ends it.
PHASES = ("collecting", "aggregating", "reconstructing")


@dataclass
class RoundMeasurement:
    """One round as the launcher measured it: a row of the live table and of ``report.json``.

    The round's facts (state, updates, the aggregated set, the result) come from the fold of
    its events (:func:`orchestration.tracker.measure_round`); times are ``time.monotonic()``
    readings of when the launcher saw each step.
    """

    round: int
    opened_at: float
    state: str = "Collecting"
    submitted: int = 0
    participants: int | None = None
    model_cid: str | None = None
    accuracy: float | None = None
    loss: float | None = None
    #: The clients' own evaluation of this round's model (secret-shared, weighted by their examples).
    federated: dict[str, float] = field(default_factory=dict)
    failed_in: str | None = None
    gas: dict[str, int] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    #: Mean bytes a submitting client stored (manifest and the blobs it names), read from the store,
    #: and that as a multiple of its float32 update (4 bytes per model parameter).
    upload_bytes_per_client: int | None = None
    upload_ratio: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("Finalized", "Failed")

    def seconds(self) -> dict[str, float]:
        """Seconds per phase that has both ends observed, and ``total`` once the round ended."""
        points = [("collecting", self.opened_at), ("aggregating", self.marks.get("closed")),
                  ("reconstructing", self.marks.get("threshold")), ("end", self.marks.get("end"))]
        result: dict[str, float] = {}
        for (phase, start), (_, stop) in zip(points, points[1:]):
            if start is not None and stop is not None:
                result[phase] = round(stop - start, 2)
        if "end" in self.marks:
            result["total"] = round(self.marks["end"] - self.opened_at, 2)
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "state": self.state,
            "model_cid": self.model_cid,
            "participants": self.participants,
            "submitted": self.submitted,
            "accuracy": self.accuracy,
            "loss": self.loss,
            "federated": dict(sorted(self.federated.items())),
            "gas": dict(sorted(self.gas.items())),
            "upload_bytes_per_client": self.upload_bytes_per_client,
            "upload_ratio": self.upload_ratio,
            "seconds": self.seconds(),
            "failed_in": self.failed_in,
        }


@dataclass(frozen=True)
class ProcessExit:
    """A node's process that ended while the federation ran: which one, how, and when.

    ``code`` is the process's exit status, negative for the signal that killed it;
    ``seconds`` counts from the start of training; ``round`` is the latest round opened then.
    """

    name: str
    code: int
    seconds: float
    round: int | None

    def describe(self) -> str:
        how = f"killed by signal {-self.code}" if self.code < 0 else f"exited with code {self.code}"
        when = f"round {self.round}" if self.round else "before round 1"
        return f"{self.name} {how} {self.seconds:.1f} s into training, {when}"  # fits the table's width

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "code": self.code, "seconds": round(self.seconds, 2), "round": self.round}


def build_report(config: dict[str, Any], records: Sequence[RoundMeasurement], plaintext_accuracy: Sequence[float],
                 plaintext_loss: Sequence[float], *, total_seconds: float,
                 federation_seconds: float | None, setup_seconds: float | None = None,
                 process_exits: Sequence[ProcessExit] = (),
                 breakdown: Mapping[int, dict[str, float]] | None = None,
                 federation_window: tuple[float, float] | None = None) -> dict[str, Any]:
    """The ``report.json`` document; ``breakdown``: each finalized round's critical path
    (:func:`orchestration.latency.round_breakdown`)."""
    breakdown = breakdown or {}
    return {
        "config": config,
        "rounds": [record.to_json() | {"breakdown": breakdown.get(record.round)} for record in records],
        "breakdown_median": median_breakdown(breakdown) if breakdown else None,
        "plaintext_fedavg": {"accuracy": list(plaintext_accuracy), "loss": list(plaintext_loss)},
        "total_seconds": round(total_seconds, 2),
        "setup_seconds": None if setup_seconds is None else round(setup_seconds, 2),
        "federation_seconds": None if federation_seconds is None else round(federation_seconds, 2),
        "federation_window_unix": None if federation_window is None else [round(t, 3) for t in federation_window],
        "process_exits": [exit_.to_json() for exit_ in process_exits],
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def plot_accuracy(report: dict[str, Any], path: Path) -> None:
    """A PNG of accuracy per round: the committee's model on the test set beside plaintext FedAvg,
    and the clients' federated evaluation of it when there is one."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    from matplotlib import pyplot as plt

    rounds = [r for r in report["rounds"] if r["accuracy"] is not None]
    baseline = report["plaintext_fedavg"]["accuracy"]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    # The two curves usually coincide: hollow squares under small filled dots keep both visible.
    if baseline:
        axes.plot(range(1, len(baseline) + 1), [100 * a for a in baseline], "s--", color="tab:orange",
                  markerfacecolor="none", markersize=9, label="plaintext FedAvg", zorder=2)
    axes.plot([r["round"] for r in rounds], [100 * r["accuracy"] for r in rounds], "o-", color="tab:blue",
              markersize=4, label="fedtss (threshold-shared FedAvg)", zorder=3)
    federated = [r for r in report["rounds"] if "accuracy" in (r.get("federated") or {})]
    if federated:
        axes.plot([r["round"] for r in federated], [100 * r["federated"]["accuracy"] for r in federated], "^:",
                  color="tab:green", markersize=4, label="fedtss, clients' own data (federated)", zorder=3)
    axes.set_xlabel("round")
    axes.set_ylabel("accuracy (%)")
    config = report["config"]
    axes.set_title(f"{config.get('clients')} clients, committee {config.get('committee')}, "
                   f"t = {config.get('threshold')}")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


#: Short names of the phases, for the live table's headers and a failed round's state.
_SHORT = {"collecting": "collect", "aggregating": "aggr", "reconstructing": "recon"}


def render_table(records: Sequence[RoundMeasurement], *, title: str = "fedtss rounds",
                 process_exits: Sequence[ProcessExit] = ()) -> Table:
    """The live per-round table: round, state, clients (aggregated/submitted), test and federated
    accuracy, gas, seconds per phase.

    Narrow on purpose: it fits in 80 columns, the width rich assumes when the output is not a
    terminal (CI logs, ``| tee``), where a wider table was cut into "Final…" and "89.1…". The
    loss is left to report.json for the same reason. A process that ended is named below the
    rows, with when and in which round, as soon as the launcher sees it.
    """
    caption = Text("clients: aggregated/submitted; fed: on clients' own data; seconds per phase")
    for exit_ in process_exits:
        caption.append("\n" + exit_.describe(), style="red")
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True,
                  pad_edge=False, padding=(0, 0))
    for column in ("round", "state", "clients", "acc %", "fed %", "gas", *_SHORT.values(), "total"):
        table.add_column(column, justify="left" if column == "state" else "right", no_wrap=True)
    for record in records:
        seconds = record.seconds()
        participants = (f"{record.participants}/{record.submitted}" if record.participants is not None
                        else f"-/{record.submitted}")
        failed_in = _SHORT.get(str(record.failed_in).lower(), record.failed_in)
        table.add_row(
            str(record.round),
            record.state + (f" ({failed_in})" if record.failed_in else ""),
            participants,
            "-" if record.accuracy is None else f"{100 * record.accuracy:.2f}",
            f"{100 * record.federated['accuracy']:.2f}" if "accuracy" in record.federated else "-",
            f"{sum(record.gas.values()):,}" if record.gas else "-",
            *(f"{seconds[p]:.1f}" if p in seconds else "-" for p in PHASES),
            f"{seconds['total']:.1f}" if "total" in seconds else "-",
        )
    return table
