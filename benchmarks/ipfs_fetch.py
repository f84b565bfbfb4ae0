"""How long one IPFS node takes to fetch a blob another node holds (bitswap on loopback).

Two js-ipfs nodes (``orchestration.ipfs_node.start_peered_nodes``), peered with each other
only. Per blob size: ``put_ms``, the median of adding a blob on node A through the Kubo RPC
API (``KuboStore.put``); ``local_get_ms``, reading it back from A; ``remote_get_ms``, the median
of fetching a fresh blob from node B, one after another, so every fetch is one bitswap exchange.
Sizes: 100 B, 40 KB (a demo share), 1 MB. Writes ``benchmarks/results/ipfs_fetch.json``.

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


def measure(sizes: tuple[int, ...] = SIZES, repeats: int = 7) -> dict[str, object]:
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
        finally:
            for node in nodes:
                node.stop()
    return {"nodes": "2 js-ipfs 0.66.1 on loopback, peered with each other only", "repeats": repeats,
            "loadavg_1min": round(os.getloadavg()[0], 2), "records": records}


def main() -> int:
    figures = measure()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    for record in figures["records"]:  # type: ignore[union-attr]
        print(f"{record['bytes']:>9,} B: put {record['put_ms']} ms, local get {record['local_get_ms']} ms, "
              f"remote get {record['remote_get_ms']} ms")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
