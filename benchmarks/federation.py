"""A local federation at scale, measured from outside: seconds per phase, gas, memory (issue 14).

``.venv/bin/python -m benchmarks.federation --clients 1000 --committee 10 --threshold 6 --rounds 2``
runs ``fedtss demo`` with the synthetic task (``examples/synthetic.py``: any number of clients) as a
child process, samples the proportional set size (PSS, ``/proc/<pid>/smaps_rollup``) of every
process under it every half second, and writes ``benchmarks/results/federation_<clients>.json``:
the demo's own report (set-up seconds; per round its state, participants, seconds per phase and
gas by call) beside the peak memory of all processes together and of each kind of process.

PSS divides shared pages among the processes that map them, so the per-process figures add up
to the total; a sample is one instant, so the peak of the sum is not the sum of the peaks.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SAMPLE_SECONDS = 0.5

__all__ = ["MemorySampler", "descendants", "main", "process_kind", "pss_bytes"]


def descendants(root: int) -> list[int]:
    """``root`` and every process under it, from each process's parent in ``/proc/<pid>/stat``."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended while we looked
            continue
        # The command name (field 2) is in parentheses and may hold spaces: the parent follows ")".
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children[parent].append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def pss_bytes(pid: int) -> int:
    """The process's PSS in bytes (0 if it ended or cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def process_kind(pid: int) -> str:
    """What a process of the run is, from its command line."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "ended"
    for marker, kind in (("agents.pack", "client pack"), ("agents.client", "client"),
                         ("agents.aggregator", "member"), ("agents.keeper", "keeper"), ("anvil", "anvil"),
                         ("ipfs", "ipfs node"), ("orchestration.cli", "demo")):
        if marker in command:
            return kind
    return "other"


class MemorySampler:
    """Samples the PSS of a process tree in a thread until stopped; keeps the peaks."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_total = 0
        self.peak_by_process: dict[int, tuple[str, int]] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            total = 0
            for pid in descendants(self.root):
                size = pss_bytes(pid)
                total += size
                kind, peak = self.peak_by_process.get(pid, (None, 0))
                if size > peak:
                    self.peak_by_process[pid] = (kind or process_kind(pid), size)
            self.peak_total = max(self.peak_total, total)
            self.samples += 1

    def summary(self) -> dict:
        """Peak of the total, and per kind of process: how many, the largest one, their peaks' sum."""
        kinds: dict[str, list[int]] = defaultdict(list)
        for kind, peak in self.peak_by_process.values():
            kinds[kind].append(peak)
        mib = 1024 * 1024
        return {
            "samples": self.samples,
            "peak_total_mib": round(self.peak_total / mib, 1),
            "by_kind": {kind: {"processes": len(peaks), "largest_mib": round(max(peaks) / mib, 1),
                               "sum_of_peaks_mib": round(sum(peaks) / mib, 1)}
                        for kind, peaks in sorted(kinds.items())},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--committee", type=int, default=10)
    parser.add_argument("--threshold", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--collection-period", type=int, default=900)
    parser.add_argument("--aggregation-period", type=int, default=300)
    parser.add_argument("--task", default="examples/synthetic.py")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `fedtss demo` options")
    args = parser.parse_args(argv)
    name = f"scale-{args.clients}"
    command = [sys.executable, "-m", "orchestration.cli", "demo", "--name", name, "--task", args.task,
               "--clients", str(args.clients), "--committee", str(args.committee),
               "--threshold", str(args.threshold), "--rounds", str(args.rounds),
               "--collection-period", str(args.collection_period),
               "--aggregation-period", str(args.aggregation_period), *args.extra]
    print(" ".join(command[1:]), flush=True)
    started = time.monotonic()
    demo = subprocess.Popen(command, cwd=ROOT)
    with MemorySampler(demo.pid) as sampler:
        code = demo.wait()
    report_path = ROOT / "runs" / name / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    result = {
        "command": "fedtss " + " ".join(command[3:]),
        "exit_code": code,
        "wall_seconds": round(time.monotonic() - started, 1),
        "memory": sampler.summary(),
        "report": report and {key: report[key] for key in ("setup_seconds", "federation_seconds", "rounds",
                                                           "process_exits")},
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"federation_{args.clients}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("exit_code", "wall_seconds", "memory")}, indent=2))
    print(f"written to {out}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
