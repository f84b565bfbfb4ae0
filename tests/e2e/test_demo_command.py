"""``fedtss demo`` as a user runs it: a child process in its own folder, then Ctrl-C.

The launcher's pieces are tested elsewhere; this checks the command itself: exit status,
report.json with the issue's keys, the plot, the saved chain, and that no process it started
outlives it, whether it finishes or is interrupted.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SMALL = ["--clients", "3", "--committee", "3", "--threshold", "2", "--min-clients", "2"]


def _fedtss(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("fedtss")), *args]


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that name ``text`` (the run folder is in every child's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def test_demo_command_writes_the_report_plot_and_chain_and_leaves_no_process(tmp_path) -> None:
    packed = ("--clients-per-process", "2")  # as the default packs them on two cores, on any machine
    done = subprocess.run(_fedtss("demo", "--name", "small", "--rounds", "2", *SMALL, *packed), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = tmp_path / "runs" / "small"
    report = json.loads((run / "report.json").read_text())
    assert {"config", "rounds", "plaintext_fedavg", "total_seconds"} <= report.keys()
    assert report["config"]["clients_per_process"] == 2 and "6 agent processes ready" in done.stdout  # 2 + 3 + keeper
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    for record in report["rounds"]:
        assert record["state"] == "Finalized" and record["participants"] == 3
        assert record["model_cid"].startswith("bafk") and 0 < record["accuracy"] <= 1
        assert {"loss", "gas", "seconds"} <= record.keys() and record["gas"]["submitUpdate"] > 0
        # Read back after the rounds: n sealed shares of 8-byte values (2n x the float32 update and a
        # little), the manifest, and n proof shares of about 12 KB, which alone take it past 2n + 1.
        assert record["upload_ratio"] > 2 * report["config"]["committee"] + 1
    assert len(report["plaintext_fedavg"]["accuracy"]) == 2
    assert (run / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "chain-state.json").stat().st_size > 0
    assert "round 2: fedtss" in done.stdout
    assert _processes_mentioning(str(tmp_path)) == []


def test_demo_in_the_masked_mode_records_the_mode_and_uploads_about_once_the_update(tmp_path) -> None:
    done = subprocess.run(_fedtss("demo", "--name", "masked", "--rounds", "1", *SMALL, "--aggregation", "masked",
                                  "--modulus-bits", "32", "--fractional-bits", "11"),
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "runs" / "masked" / "report.json").read_text())
    assert (report["config"]["aggregation"], report["config"]["modulus_bits"]) == ("masked", 32)
    (record,) = report["rounds"]
    assert record["state"] == "Finalized" and record["participants"] == 3
    # 4 bytes per value, plus 3 sealed seed rows and the manifest (about 1.3 KB for this small model).
    assert 1.0 < record["upload_ratio"] < 1.1
    assert abs(record["accuracy"] - report["plaintext_fedavg"]["accuracy"][0]) <= 1 / 360  # one test image


def test_ctrl_c_stops_the_demo_and_every_process_it_started(tmp_path) -> None:
    alone = ("--clients-per-process", "1")  # one process per client: the most processes to stop
    demo = subprocess.Popen(_fedtss("demo", "--name", "stopped", "--rounds", "50", *SMALL, *alone), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = ""
        deadline = time.monotonic() + 300
        while "opening training" not in seen:  # every agent is up: the most there is to stop
            assert time.monotonic() < deadline and demo.poll() is None, seen
            if select.select([demo.stdout], [], [], 1.0)[0]:  # never block past the deadline
                seen += demo.stdout.readline()
        assert len(_processes_mentioning(str(tmp_path))) >= 3 + 3 + 2  # agents, keeper, anvil
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode != 0
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(str(tmp_path)) == []
