"""``fedtss demo``: set a federation up, run its rounds with a live table, and report.

:func:`run_demo` prepares a :class:`~orchestration.launcher.LocalFederation`, starts its
processes, opens training and follows the rounds with a
:class:`~orchestration.tracker.RoundTracker` until training completes (or a round fails, or
the processes left cannot finish it). Then it runs plaintext FedAvg with the same task, partition,
initial model and seeds, and writes ``report.json`` and ``accuracy.png`` (``orchestration.report``).
"""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape  # error messages name TOML tables: [rounds]

from agents.learning import plaintext_fedavg
from fedtss.chain import committee_warning
from fedtss.errors import FedTSSError
from orchestration.launcher import FederationSpec, LocalFederation
from orchestration.latency import breakdowns, read_actions
from orchestration.report import RoundMeasurement, build_report, plot_accuracy, render_table, write_report
from orchestration.run_layout import RunLayout
from orchestration.tracker import RoundTracker

__all__ = ["run_demo"]


def run_demo(spec: FederationSpec, *, console: Console | None = None) -> int:
    """Run the whole demo; write report.json and accuracy.png; 0 if every round finalized."""
    console = console or Console()
    started = time.monotonic()
    _raise_on_sigterm()
    federation_seconds: float | None = None
    federation_window: tuple[float, float] | None = None
    setup_seconds: float | None = None
    records: list[RoundMeasurement] = []
    layout = RunLayout(spec.run_dir)
    with LocalFederation(spec) as federation:
        console.print(f"[bold]fedtss demo[/bold] {spec.clients} clients, committee {spec.committee} "
                      f"(t = {spec.threshold}), {spec.rounds} rounds of task {spec.task} -> {layout.run_dir}")
        for caution in (committee_warning(spec.committee, spec.threshold), spec.checks_warning,
                        spec.norm_check_note, spec.norm_dodge_note):
            if caution is not None:
                console.print(f"[yellow]warning:[/yellow] {escape(caution)}", highlight=False)
        federation.prepare()
        stores = (", ".join(f"host {i + 1} {node.api_url}" for i, node in enumerate(federation.ipfs_nodes))
                  if federation.ipfs_nodes else str(layout.store_dir))
        console.print(f"anvil at {federation.chain.url}, contract {federation.contract.address}, "
                      f"store {stores}")
        federation.start_agents()
        federation.wait_until_ready()
        console.print(f"{len(federation.processes)} agent processes ready after "
                      f"{time.monotonic() - started:.1f} s; opening training")
        tracker = RoundTracker(federation)
        federation.start_training()
        training_started, training_started_unix = time.monotonic(), time.time()
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
            federation_seconds = time.monotonic() - training_started
            federation_window = (training_started_unix, time.time())
            for exit_ in tracker.process_exits:
                console.print(f"[red]{escape(exit_.describe())}[/red]; the end of {federation.log_path(exit_.name)}:",
                              highlight=False)
                console.print(escape(federation.log_tail(exit_.name, lines=8)), highlight=False)
            federation.stop_processes()
        records = _records_with_uploads(console, tracker)
        task = federation.task
        clients = [task.load_data(source) for source in federation.client_sources]
        test = None if federation.test_source is None else task.load_data(federation.test_source)
        initial = task.initial_tensors(spec.seed)
    console.print("plaintext FedAvg baseline on the same task, partition, model and seeds ...")
    baseline = plaintext_fedavg(task, initial, clients, rounds=spec.rounds, settings=spec.training,
                                clip_norm=spec.clip_norm, seed=spec.seed, test=test)
    report = build_report(spec.to_json(), records, [r.accuracy for r in baseline], [r.loss for r in baseline],
                          total_seconds=time.monotonic() - started, federation_seconds=federation_seconds,
                          setup_seconds=setup_seconds, process_exits=tracker.process_exits,
                          breakdown=breakdowns(read_actions(layout.logs_dir), [r.round for r in records],
                                               spec.threshold), federation_window=federation_window)
    write_report(report, layout.report_path)
    plot_accuracy(report, layout.plot_path)
    _print_summary(console, report, layout)
    all_finalized = len(records) == spec.rounds and all(r.state == "Finalized" for r in records)
    return 0 if all_finalized and tracker.completed else 1


def _records_with_uploads(console: Console, tracker: RoundTracker) -> list[RoundMeasurement]:
    """The rounds as measured, with what each client uploaded read back from the store now that the
    agents have stopped (reading every blob while rounds ran took time from them); a store that
    cannot be read costs the report its upload figures, not the report."""
    try:
        tracker.measure_uploads()
    except Exception as exc:  # any failure here costs one figure of the report
        console.print(f"[yellow]fedtss demo: uploads not measured: {escape(str(exc) or type(exc).__name__)}[/yellow]",
                      highlight=False)
    return list(tracker.records.values())


def _print_summary(console: Console, report: dict[str, Any], layout: RunLayout) -> None:
    rounds = report["rounds"]
    last = next((r for r in reversed(rounds) if r["accuracy"] is not None), None)
    baseline = report["plaintext_fedavg"]["accuracy"]
    if last is not None and len(baseline) >= last["round"]:
        plain = baseline[last["round"] - 1]
        console.print(f"round {last['round']}: fedtss {100 * last['accuracy']:.2f}%  plaintext FedAvg "
                      f"{100 * plain:.2f}%  difference {100 * (last['accuracy'] - plain):+.2f} points")
    path = report.get("breakdown_median")
    if path:
        console.print("median critical path per round (s): "
                      + ", ".join(f"{name} {value:.2f}" for name, value in path.items()), highlight=False)
    failed = [r["round"] for r in rounds if r["state"] == "Failed"]
    if failed:
        console.print(f"[red]failed rounds: {failed}[/red]; see {layout.logs_dir}")
    console.print(f"total {report['total_seconds']:.1f} s (set-up {report['setup_seconds']:.1f} s, federation "
                  f"{report['federation_seconds']:.1f} s); "
                  f"report {layout.report_path}, plot {layout.plot_path}")


def _raise_on_sigterm() -> None:
    """A SIGTERM stops the demo like a Ctrl-C: every process is stopped on the way out."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
