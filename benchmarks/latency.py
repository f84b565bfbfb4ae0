"""Round latency of the default demo, by how its clients are packed (issue 14, item 6).

    .venv/bin/python -m benchmarks.latency [--pairs 3] [--rounds 6]

Runs ``fedtss demo --rounds R`` as a child process in two shapes, interleaved ``pairs`` times so
that a slow spell of this machine hits both alike: ``packs`` (the launcher's default,
ceil(clients / cores) clients per process) and ``alone`` (``--clients-per-process 1``, one process
per client, the default until 2026-12-02). From each run's ``report.json`` it keeps the median
critical path of the rounds (``breakdown_median``, see the README's "Where a round's time goes"),
its steps, the set-up and total seconds; per shape, the medians over the runs. Writes
``benchmarks/results/latency.json`` beside the issue's target (0.5 s per round) and asserts
nothing. About 40-60 s a run on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestration.launcher import available_cores

__all__ = ["SHAPES", "TARGET_SECONDS", "measure", "run_demo", "main"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "latency.json"
#: Shape -> the `fedtss demo` options that make it.
SHAPES: dict[str, tuple[str, ...]] = {"packs": (), "alone": ("--clients-per-process", "1")}
#: Issue 14, item 6: seconds per round of the default demo.
TARGET_SECONDS = 0.5

Demo = Callable[[str, int, Sequence[str]], dict[str, Any]]


def run_demo(name: str, rounds: int, options: Sequence[str], *, cwd: Path = ROOT) -> dict[str, Any]:
    """One ``fedtss demo`` run under ``cwd`` (its run folder removed after), summarized from its report."""
    command = [sys.executable, "-m", "orchestration.cli", "demo", "--name", name, "--rounds", str(rounds), *options]
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_dir = cwd / "runs" / name
    try:
        report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RuntimeError(f"`fedtss demo --name {name}` wrote no report (exit {done.returncode}): "
                           f"{done.stderr[-2000:]}") from None
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    median = report.get("breakdown_median") or {}
    return {
        "command": "fedtss " + " ".join(command[3:]),
        "exit_code": done.returncode,
        "finalized": sum(record["state"] == "Finalized" for record in report["rounds"]),
        "clients_per_process": report["config"].get("clients_per_process"),
        "median_critical_path_s": median.get("total"),
        "breakdown_median": median,
        "round_seconds": [record["seconds"]["total"] for record in report["rounds"]],
        "setup_seconds": report["setup_seconds"],
        "total_seconds": report["total_seconds"],
        "wall_seconds": round(time.monotonic() - started, 1),
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

    by_shape = {shape: {key: median_of(key, shape) for key in ("median_critical_path_s", "setup_seconds",
                                                                "total_seconds")}
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
        print(f"{shape:6} median critical path {summary['median_critical_path_s']} s, set-up "
              f"{summary['setup_seconds']} s, whole run {summary['total_seconds']} s (target {TARGET_SECONDS} s)")
    print(f"written to {RESULTS}")
    failed = [run for shape_runs in result["runs"].values() for run in shape_runs if run["exit_code"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
