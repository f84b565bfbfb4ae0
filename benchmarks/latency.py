"""Round latency of the default demo, by how its clients are packed (issue 14, item 6).

    .venv/bin/python -m benchmarks.latency [--pairs 3] [--rounds 6]

Runs ``fedtss demo --rounds R`` as a child process in two shapes, interleaved ``pairs`` times so
that a slow spell of this machine hits both alike: ``packs`` (the launcher's default,
ceil(clients / cores) clients per process) and ``alone`` (``--clients-per-process 1``, one process
per client, the default until 2026-12-02). From each run's ``report.json`` it keeps the median
critical path of the rounds (``breakdown_median``, see the README's "Where a round's time goes"),
its steps, the set-up and total seconds, and the CPU seconds all its processes spent per round
while the rounds ran (:class:`TreeCPU`); per shape, the medians over the runs. Writes
``benchmarks/results/latency.json`` beside the issue's target (0.5 s per round) and asserts
nothing. About 40-60 s a run on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestration.launcher import available_cores

__all__ = ["SHAPES", "TARGET_SECONDS", "TreeCPU", "measure", "pinned", "process_kind", "run_demo", "main"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "latency.json"
#: Shape -> the `fedtss demo` options that make it.
SHAPES: dict[str, tuple[str, ...]] = {"packs": (), "alone": ("--clients-per-process", "1")}
#: Issue 14, item 6: seconds per round of the default demo.
TARGET_SECONDS = 0.5

Demo = Callable[[str, int, Sequence[str]], dict[str, Any]]


class TreeCPU:
    """The CPU seconds of a process and of every process under it, by kind, read from ``/proc``
    every ``interval`` seconds in a thread (Linux only; elsewhere :meth:`between` gives None).

    The demo's round is bound by this machine's cores (README, "The cores bound it"): the CPU
    seconds a round costs, all processes together, say more than its wall seconds, which swing
    with whatever else the machine does. A process that ends keeps the CPU last read for it; one
    that starts and ends between two reads is not counted (a demo's processes live for the run).
    """

    def __init__(self, root_pid: int, *, interval: float = 0.25) -> None:
        self.root_pid = root_pid
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-cpu", daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __enter__(self) -> TreeCPU:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> dict[str, float] | None:
        """CPU seconds by kind spent from Unix time ``start`` to ``end`` (the nearest samples)."""
        if not self.samples:
            return None
        first = min(self.samples, key=lambda sample: abs(sample[0] - start))[1]
        last = min(self.samples, key=lambda sample: abs(sample[0] - end))[1]
        return {kind: round(cpu - first.get(kind, 0.0), 3) for kind, cpu in last.items()}

    def _run(self) -> None:
        proc = Path("/proc")
        while proc.is_dir():
            self._sample(proc)
            if self._stop.wait(self.interval):
                self._sample(proc)
                return

    def _sample(self, proc: Path) -> None:
        table: dict[int, tuple[int, str, float]] = {}
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_bytes().decode(errors="replace")
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                fields = stat[stat.rfind(")") + 2:].split()
                table[int(entry.name)] = (int(fields[1]), command, (int(fields[11]) + int(fields[12])) / self._tick)
            except (OSError, ValueError, IndexError):
                continue  # ended meanwhile (or a line this reader does not know)
        family, grew = {self.root_pid}, True
        while grew:
            grew = False
            for pid, (parent, _, _) in table.items():
                if parent in family and pid not in family:
                    family.add(pid)
                    grew = True
        for pid in family & table.keys():
            kind = process_kind(table[pid][1], root=pid == self.root_pid)
            if kind == "other" and pid in self._last:
                kind = self._last[pid][0]  # an ended process (a zombie) has no command line left
            self._last[pid] = (kind, table[pid][2])
        totals: dict[str, float] = {}
        for kind, cpu in self._last.values():
            totals[kind] = totals.get(kind, 0.0) + cpu
        self.samples.append((time.time(), totals))


def process_kind(command: str, *, root: bool = False) -> str:
    """Which part of a local federation a command line is."""
    if root:
        return "launcher"
    for marker, kind in (("agents.aggregator", "members"), ("agents.pack", "clients"), ("agents.client", "clients"),
                         ("agents.keeper", "keeper"), ("anvil", "node")):
        if marker in command:
            return kind
    return "other"


def pinned(command: Sequence[str], cpus: Sequence[int] | None) -> list[str]:
    """``command`` run on the CPUs ``cpus`` only (``taskset``; its children inherit the affinity),
    or as it is when ``cpus`` is None."""
    if cpus is None:
        return list(command)
    return ["taskset", "--cpu-list", ",".join(str(cpu) for cpu in cpus), *command]


def run_demo(name: str, rounds: int, options: Sequence[str], *, cwd: Path = ROOT,
             cpus: Sequence[int] | None = None) -> dict[str, Any]:
    """One ``fedtss demo`` run under ``cwd`` (its run folder removed after), summarized from its report.

    ``cpus``: run the demo and every process it starts on these CPUs only (all the available
    ones when None)."""
    command = [sys.executable, "-m", "orchestration.cli", "demo", "--name", name, "--rounds", str(rounds), *options]
    started = time.monotonic()
    process = subprocess.Popen(pinned(command, cpus), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    with TreeCPU(process.pid) as cpu:
        _, stderr = process.communicate()
    done = subprocess.CompletedProcess(command, process.returncode, None, stderr)
    run_dir = cwd / "runs" / name
    try:
        report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RuntimeError(f"`fedtss demo --name {name}` wrote no report (exit {done.returncode}): "
                           f"{done.stderr[-2000:]}") from None
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    median = report.get("breakdown_median") or {}
    finalized = sum(record["state"] == "Finalized" for record in report["rounds"])
    window = report.get("federation_window_unix")
    spent = cpu.between(*window) if window else None
    return {
        "command": "fedtss " + " ".join(command[3:]),
        "cpus": None if cpus is None else list(cpus),
        "exit_code": done.returncode,
        "finalized": finalized,
        "clients_per_process": report["config"].get("clients_per_process"),
        "median_critical_path_s": median.get("total"),
        "breakdown_median": median,
        "round_seconds": [record["seconds"]["total"] for record in report["rounds"]],
        "setup_seconds": report["setup_seconds"],
        "total_seconds": report["total_seconds"],
        "wall_seconds": round(time.monotonic() - started, 1),
        # While the rounds ran: CPU seconds by kind of process, per finalized round, and the
        # cores kept busy on average (of the machine's available_cores()).
        "cpu_seconds_by_kind": spent,
        "cpu_seconds_per_round": round(sum(spent.values()) / finalized, 3) if spent and finalized else None,
        "busy_cores": round(sum(spent.values()) / (window[1] - window[0]), 2) if spent and window[1] > window[0]
        else None,
    }


def measure(*, pairs: int, rounds: int, shapes: Mapping[str, Sequence[str]] = SHAPES,
            demo: Demo = run_demo) -> dict[str, Any]:
    """Run every shape ``pairs`` times, each pair in the other order than the last; medians per shape."""
    runs: dict[str, list[dict[str, Any]]] = {shape: [] for shape in shapes}
    for k in range(pairs):
        order = list(shapes) if k % 2 == 0 else list(shapes)[::-1]
        for shape in order:
            runs[shape].append(demo(f"bench-latency-{shape}-{k}", rounds, shapes[shape]))

    def median_of(key: str, shape: str) -> float | None:
        values = [run[key] for run in runs[shape] if run[key] is not None]
        return round(statistics.median(values), 3) if values else None

    by_shape = {shape: {key: median_of(key, shape) for key in ("median_critical_path_s", "cpu_seconds_per_round",
                                                                "busy_cores", "setup_seconds", "total_seconds")}
                for shape in shapes}
    return {"rounds": rounds, "pairs": pairs, "cores": available_cores(), "target_s": TARGET_SECONDS,
            "by_shape": by_shape, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    result = measure(pairs=args.pairs, rounds=args.rounds)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for shape, summary in result["by_shape"].items():
        print(f"{shape:6} median critical path {summary['median_critical_path_s']} s, "
              f"{summary['cpu_seconds_per_round']} CPU-s a round on {summary['busy_cores']} busy cores, set-up "
              f"{summary['setup_seconds']} s, whole run {summary['total_seconds']} s (target {TARGET_SECONDS} s)")
    print(f"written to {RESULTS}")
    failed = [run for shape_runs in result["runs"].values() for run in shape_runs if run["exit_code"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
