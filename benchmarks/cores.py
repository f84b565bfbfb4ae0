"""How the default demo's round time falls with cores, and how many its 0.5 s target would take
(issue 14, item 6).

    .venv/bin/python -m benchmarks.cores [--pairs 2] [--rounds 6]

Runs ``fedtss demo --rounds R`` pinned to one CPU (``taskset``) and on every available CPU,
interleaved ``pairs`` times, both with the same shape (``--clients-per-process`` fixed to what the
launcher picks for all the cores, so the one-CPU run does the same work in the same processes).
From the medians it fits Amdahl's law, T(k) = T(1) (s + (1 - s) / k): ``s`` is the share of a
one-core round that more cores do not shorten (waits, one process's sequential steps), the rest
is CPU work the cores share. It then says how many such cores the target would take, or that
no number of cores reaches it: an extrapolation, since two points fix ``s`` but cannot test the law
itself. Writes ``benchmarks/results/cores.json`` and asserts nothing. About 40 s a run here; a
machine with one CPU has nothing to compare: it says so and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.latency import TARGET_SECONDS, run_demo
from orchestration.launcher import FederationSpec, auto_clients_per_process, available_cores

__all__ = ["amdahl_serial_share", "cores_for", "measure", "predicted_seconds", "main"]

RESULTS = Path(__file__).resolve().parent / "results" / "cores.json"

#: (run name, rounds, demo options, CPUs or None for all) -> the run's summary (:func:`run_demo`'s).
PinnedDemo = Callable[[str, int, Sequence[str], Sequence[int] | None], dict[str, Any]]


def amdahl_serial_share(one_core: float, many_cores: float, cores: int) -> float:
    """The serial share ``s`` of Amdahl's law from a round's seconds on 1 and on ``cores`` cores,
    kept within [0, 1] (noise can put a measurement past either end)."""
    if cores < 2 or one_core <= 0:
        raise ValueError(f"need a one-core time > 0 and at least 2 cores, got {one_core} s and {cores}")
    share = (many_cores / one_core - 1 / cores) / (1 - 1 / cores)
    return min(1.0, max(0.0, share))


def predicted_seconds(one_core: float, serial: float, cores: float) -> float:
    """Amdahl's law: a round's seconds on ``cores`` cores."""
    return one_core * (serial + (1 - serial) / cores)


def cores_for(target: float, one_core: float, serial: float) -> float | None:
    """Cores (of this machine's speed) for a round of ``target`` seconds; None when even
    infinitely many would not do (the serial part alone is longer)."""
    if target >= one_core:
        return 1.0
    if target <= one_core * serial:
        return None
    return (1 - serial) / (target / one_core - serial)


def measure(*, pairs: int, rounds: int, demo: PinnedDemo | None = None, cores: int | None = None) -> dict[str, Any]:
    """Run the demo on one CPU and on all, interleaved; the medians and the fit. ``cores`` (at
    least 2): the available CPUs, as :func:`~orchestration.launcher.available_cores` counts them."""
    cores = available_cores() if cores is None else cores
    one_cpu = (min(os.sched_getaffinity(0)),)  # the first CPU this process may use, not always CPU 0
    shape = ("--clients-per-process", str(auto_clients_per_process(FederationSpec().clients, cores)))
    run = demo or (lambda name, rounds_, options, cpus: run_demo(name, rounds_, options, cpus=cpus))
    runs: dict[str, list[dict[str, Any]]] = {"one": [], "all": []}
    for k in range(pairs):
        for setting in (("one", "all") if k % 2 == 0 else ("all", "one")):
            cpus = one_cpu if setting == "one" else None
            runs[setting].append(run(f"bench-cores-{setting}-{k}", rounds, shape, cpus))

    def median_of(key: str, setting: str) -> float | None:
        values = [r[key] for r in runs[setting] if r.get(key) is not None]
        return round(statistics.median(values), 3) if values else None

    summary = {setting: {key: median_of(key, setting) for key in ("median_critical_path_s", "cpu_seconds_per_round",
                                                                   "busy_cores")} for setting in runs}
    one, many = summary["one"]["median_critical_path_s"], summary["all"]["median_critical_path_s"]
    fit: dict[str, Any] | None = None
    if one and many:
        serial = amdahl_serial_share(one, many, cores)
        needed = cores_for(TARGET_SECONDS, one, serial)
        fit = {"serial_share": round(serial, 3), "serial_seconds": round(one * serial, 3),
               "predicted_s": {str(k): round(predicted_seconds(one, serial, k), 3) for k in (1, 2, 4, 8, 16)},
               "cores_for_target": None if needed is None else round(needed, 1)}
    return {"rounds": rounds, "pairs": pairs, "cores": cores, "shape": list(shape), "target_s": TARGET_SECONDS,
            "by_cpus": summary, "amdahl": fit, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    if available_cores() < 2:
        print("benchmarks.cores: this process may use one CPU only; there is nothing to compare it with")
        return 0
    result = measure(pairs=args.pairs, rounds=args.rounds)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for setting, summary in result["by_cpus"].items():
        label = "1 CPU " if setting == "one" else f"{result['cores']} CPUs"
        print(f"{label}: median critical path {summary['median_critical_path_s']} s, "
              f"{summary['cpu_seconds_per_round']} CPU-s a round on {summary['busy_cores']} busy cores")
    fit = result["amdahl"]
    if fit:
        needed = fit["cores_for_target"]
        print(f"Amdahl: serial share {fit['serial_share']} ({fit['serial_seconds']} s of a one-core round); "
              f"predicted {fit['predicted_s']}; the {TARGET_SECONDS} s target takes "
              + (f"{needed} cores" if needed is not None else "more than any number of cores"))
    print(f"written to {RESULTS}")
    failed = [r for setting_runs in result["runs"].values() for r in setting_runs if r["exit_code"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
