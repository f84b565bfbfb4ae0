"""A million-parameter model through the whole local federation: time, bytes and memory.

    python -m benchmarks.million            (about 2-4 minutes on 2 cores)

Runs ``examples/million.py`` (1,000,140 float32 parameters) for 2 rounds with 10 clients, a
committee of 5 and t = 3, one local epoch per round, as ``fedtss demo --task ... --clients-per-process 1``
runs it: one OS process per agent, anvil, the local store. Measures, per round, the seconds of each phase
(as the launcher's live table: collecting = from RoundOpened to CollectionClosed, which includes the
clients' fetching, training, sharing, sealing and storing), the bytes each client stored (its n
sealed shares and its manifest, read back from the store by the CIDs its manifest names), and each
process's peak resident memory (``VmHWM`` from ``/proc``, read just before the processes stop).
Writes ``benchmarks/results/million.json`` and prints a summary; asserts nothing.

The upload is not optimized here: each client stores n = 5 sealed shares of d + 1 + m field
elements (8 bytes each), about 2 x n = 10 times the float32 update (the next issue's work).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from agents.learning import EXAMPLES_DIR
from fedtss.chain import UpdateSubmitted
from fedtss.task import Settings
from orchestration.launcher import FederationSpec, LocalFederation
from orchestration.tracker import RoundTracker, stored_upload_bytes

__all__ = ["main", "measure"]

RESULTS = Path(__file__).resolve().parent / "results" / "million.json"
SPEC = FederationSpec(name="bench-million", clients=10, committee=5, threshold=3, rounds=2, min_clients=3,
                      task=str(EXAMPLES_DIR / "million.py"), training=Settings(epochs=1),
                      collection_period=600, aggregation_period=300, share_wait_seconds=3.0,
                      clients_per_process=1)  # one process per client: the memory per client it reports


def _peak_memory_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) in MiB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _client_bytes(federation: LocalFederation, event: UpdateSubmitted) -> int:
    """What one client stored for one round: its manifest and every blob it names."""
    return stored_upload_bytes(federation.store, event.manifest_cid)


def measure(spec: FederationSpec = SPEC) -> dict:
    """Run the federation and return the figures (see the module docstring)."""
    started = time.monotonic()
    with LocalFederation(spec) as federation:
        federation.prepare()
        federation.start_agents()
        federation.wait_until_ready(timeout=600)
        setup_seconds = time.monotonic() - started
        tracker = RoundTracker(federation)
        federation.start_training()
        tracker.wait_until(lambda t: t.finished(stop_on_failure=True), timeout=2 * (600 + 2 * 300))
        memory = {name: _peak_memory_mib(process.pid) for name, process in federation.processes.items()}
        records = tracker.records
        uploads = {round_: [_client_bytes(federation, e) for e in tracker.round_events(round_, UpdateSubmitted)]
                   for round_ in records}
        parameters = sum(int(a.size) for a in federation.load_model(federation.initial_model_cid).values())
    by_role = {role: [m for name, m in memory.items() if name.startswith(role) and m is not None]
               for role in ("client", "member", "keeper")}
    return {
        "task": Path(spec.task).name,
        "parameters": parameters,
        "float32_update_bytes": 4 * parameters,
        "clients": spec.clients, "committee": spec.committee, "threshold": spec.threshold,
        "setup_seconds": round(setup_seconds, 1),
        "rounds": [{**records[r].to_json(), "client_upload_bytes": {
            "median": statistics.median(uploads[r]) if uploads[r] else None, "max": max(uploads[r], default=None),
            "times_float32_update": round(statistics.median(uploads[r]) / (4 * parameters), 2) if uploads[r] else None,
        }} for r in sorted(records)],
        "peak_memory_mib": {role: {"max": round(max(values), 1), "median": round(statistics.median(values), 1)}
                            for role, values in by_role.items() if values},
        "note": "seconds per phase as the launcher saw them (polled every 0.2 s); memory is VmHWM per process",
    }


def main() -> None:
    figures = measure(replace(SPEC, runs_dir=Path("runs")))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    for round_ in figures["rounds"]:
        print(f"round {round_['round']}: {round_['state']}, seconds {round_['seconds']}, upload per client "
              f"{round_['client_upload_bytes']['median']:,} B ({round_['client_upload_bytes']['times_float32_update']}x "
              f"the float32 update), test accuracy {round_['accuracy']}")
    print(f"peak memory (MiB): {figures['peak_memory_mib']}; set-up {figures['setup_seconds']} s")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
