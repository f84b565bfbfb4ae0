"""How long one IPFS node takes to fetch a blob another node holds (bitswap on loopback).

Two js-ipfs nodes (``orchestration.ipfs_node.start_peered_nodes``), peered with each other
only. Per blob size: ``put_ms``, the median of adding a blob on node A through the Kubo RPC
API (``KuboStore.put``); ``local_get_ms``, reading it back from A; ``remote_get_ms``, the median
of fetching a fresh blob from node B, one after another, so every fetch is one bitswap exchange.
Sizes: 100 B, 40 KB (a demo share), 1 MB.

``daemon_cpu``: the CPU milliseconds the daemons spend per blob when many move at once, as in a
round (40 KB blobs, 8 adds and 16 fetches in flight, as agents do): ``add_ms`` on the node that
adds, ``remote_get_fetcher_ms`` and ``remote_get_holder_ms`` on the two ends of a bitswap fetch,
read from ``/proc`` (Linux). A round on several nodes costs at least these per blob on top of the
one-folder round: the README's "Several machines" works out the bound. Writes
``benchmarks/results/ipfs_fetch.json``.

    .venv/bin/python -m benchmarks.ipfs_fetch
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fedtss.storage import KuboStore
from orchestration.ipfs_node import start_peered_nodes

RESULTS = Path(__file__).resolve().parent / "results" / "ipfs_fetch.json"
SIZES = (100, 40_000, 1_000_000)


def _median_ms(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 1)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/PID/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_cpu(holder: KuboStore, fetcher: KuboStore, holder_pid: int, fetcher_pid: int, *,
               size: int = 40_000, count: int = 200) -> dict[str, float]:
    """CPU milliseconds per blob: adding ``count`` blobs on the holder (8 at once), then fetching
    them all from the other node (16 at once)."""
    blobs = [os.urandom(size) for _ in range(count)]
    before = process_cpu_seconds(holder_pid)
    with ThreadPoolExecutor(8) as pool:
        cids = list(pool.map(holder.put, blobs))
    add = process_cpu_seconds(holder_pid) - before
    before_holder, before_fetcher = process_cpu_seconds(holder_pid), process_cpu_seconds(fetcher_pid)
    with ThreadPoolExecutor(16) as pool:
        fetched = list(pool.map(lambda cid: fetcher.get(cid, max_bytes=size), cids))
    if fetched != blobs:
        raise RuntimeError("a fetched blob differs from the one added")
    served = process_cpu_seconds(holder_pid) - before_holder
    got = process_cpu_seconds(fetcher_pid) - before_fetcher
    return {"bytes": size, "blobs": count, "add_ms": round(1000 * add / count, 1),
            "remote_get_fetcher_ms": round(1000 * got / count, 1),
            "remote_get_holder_ms": round(1000 * served / count, 1)}


def measure(sizes: tuple[int, ...] = SIZES, repeats: int = 7, cpu_blobs: int = 200) -> dict[str, object]:
    """Start two peered nodes, time put, local get and remote get per size, stop the nodes."""
    with tempfile.TemporaryDirectory(prefix="ipfs-fetch-") as folder:
        nodes = start_peered_nodes(Path(folder), 2)
        try:
            holder, fetcher = KuboStore(nodes[0].api_url), KuboStore(nodes[1].api_url, fetch_timeout=60.0)
            records = []
            for size in sizes:
                cids = iter([holder.put(os.urandom(size)) for _ in range(repeats)])  # fresh to B: not cached
                one = holder.put(os.urandom(size))
                records.append({
                    "bytes": size,
                    "put_ms": _median_ms(lambda: holder.put(os.urandom(size)), repeats),  # noqa: B023
                    "local_get_ms": _median_ms(lambda: holder.get(one, max_bytes=size), repeats),  # noqa: B023
                    "remote_get_ms": _median_ms(lambda: fetcher.get(next(cids), max_bytes=size), repeats),  # noqa: B023
                })
            pids = [node.process.pid for node in nodes if node.process is not None]
            cpu = daemon_cpu(holder, fetcher, *pids, count=cpu_blobs) if len(pids) == 2 else None
        finally:
            for node in nodes:
                node.stop()
    return {"nodes": "2 js-ipfs 0.66.1 on loopback, peered with each other only", "repeats": repeats,
            "loadavg_1min": round(os.getloadavg()[0], 2), "records": records, "daemon_cpu": cpu}


def main() -> int:
    figures = measure()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    for record in figures["records"]:  # type: ignore[union-attr]
        print(f"{record['bytes']:>9,} B: put {record['put_ms']} ms, local get {record['local_get_ms']} ms, "
              f"remote get {record['remote_get_ms']} ms")
    cpu: dict[str, float] | None = figures["daemon_cpu"]  # type: ignore[assignment]
    if cpu:
        print(f"daemon CPU per {cpu['bytes']:,} B blob: add {cpu['add_ms']} ms; remote get "
              f"{cpu['remote_get_fetcher_ms']} ms fetching + {cpu['remote_get_holder_ms']} ms serving")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
