"""report.json has the issue's keys, seconds per phase come from observed events, the plot is a PNG."""

from __future__ import annotations

import json

from orchestration.report import ProcessExit, RoundMeasurement, build_report, plot_accuracy, render_table, write_report
from rich.console import Console


def _finished_round() -> RoundMeasurement:
    record = RoundMeasurement(round=1, opened_at=100.0, submitted=3, participants=3, state="Finalized",
                         model_cid="bafkreiabc", accuracy=0.9, loss=0.3, gas={"submitUpdate": 3, "proposeModel": 2})
    record.marks.update(closed=102.5, threshold=103.0, end=104.25)
    return record


def test_seconds_are_measured_per_phase_between_the_events_that_bound_it() -> None:
    assert _finished_round().seconds() == {"collecting": 2.5, "aggregating": 0.5, "reconstructing": 1.25,
                                           "total": 4.25}


def test_a_failed_round_has_only_the_phases_it_reached() -> None:
    record = RoundMeasurement(round=2, opened_at=10.0, state="Failed", failed_in="Collecting")
    record.marks["end"] = 16.0
    assert record.seconds() == {"total": 6.0}


def test_report_json_has_the_keys_the_issue_lists(tmp_path) -> None:
    report = build_report({"clients": 3, "committee": 3, "threshold": 2}, [_finished_round()], [0.91], [0.28],
                          total_seconds=12.345, federation_seconds=4.0)
    write_report(report, tmp_path / "report.json")
    loaded = json.loads((tmp_path / "report.json").read_text())
    assert set(loaded) >= {"config", "rounds", "plaintext_fedavg", "total_seconds"}
    assert set(loaded["rounds"][0]) >= {"round", "state", "model_cid", "participants", "accuracy", "loss", "gas",
                                        "seconds"}
    assert loaded["plaintext_fedavg"]["accuracy"] == [0.91]
    assert loaded["total_seconds"] == 12.35


def test_the_plot_is_written_as_a_png(tmp_path) -> None:
    report = build_report({"clients": 3, "committee": 3, "threshold": 2}, [_finished_round()], [0.91], [0.28],
                          total_seconds=1.0, federation_seconds=1.0)
    plot_accuracy(report, tmp_path / "accuracy.png")
    assert (tmp_path / "accuracy.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_table_shows_accuracy_participants_and_gas() -> None:
    console = Console(width=160, record=True)
    console.print(render_table([_finished_round()]))
    text = console.export_text()
    assert "90.00" in text and "3/3" in text and "Finalized" in text and "5" in text


def test_the_table_is_not_cut_at_80_columns_the_width_of_a_log_or_pipe() -> None:
    big = _finished_round()
    big.submitted, big.participants, big.gas = 100, 100, {"submitUpdate": 12_345_678}
    big.marks.update(closed=220.0, threshold=280.0, end=340.0)
    failed = RoundMeasurement(round=12, opened_at=0.0, submitted=100, state="Failed", failed_in="Reconstructing")
    failed.marks["end"] = 400.0
    console = Console(width=80, record=True)
    console.print(render_table([big, failed]))
    text = console.export_text()
    assert "\u2026" not in text  # rich marks a cut cell with an ellipsis
    assert "Finalized" in text and "100/100" in text and "12,345,678" in text and "Failed (recon)" in text


def test_the_table_names_a_process_that_ended_with_when_and_in_which_round() -> None:
    exits = [ProcessExit("member-2", 1, 34.25, 3), ProcessExit("client-0", -9, 2.0, None)]
    console = Console(width=80, record=True)
    console.print(render_table([_finished_round()], process_exits=exits))
    text = console.export_text()
    assert "member-2 exited with code 1 34.2 s into training, round 3" in text
    assert "client-0 killed by signal 9 2.0 s into training, before round 1" in text


def test_report_json_records_the_processes_that_ended() -> None:
    report = build_report({}, [_finished_round()], [0.9], [0.3], total_seconds=1.0, federation_seconds=1.0,
                          process_exits=[ProcessExit("keeper", 2, 5.555, 1)])
    assert report["process_exits"] == [{"name": "keeper", "code": 2, "seconds": 5.55, "round": 1}]
