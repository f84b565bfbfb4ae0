"""Secret-sharing benchmark: `python -m benchmarks.secret_sharing [--quick]`.

For d in {10^5, 10^6, 10^7} and (n, t) in {(5, 3), (10, 6), (20, 11)} it measures, on this
machine and in this run:

* ``share_seconds``: :func:`fedtss.shamir.share_vector` (CSPRNG coefficients included);
* ``reconstruct_seconds``: :func:`fedtss.shamir.reconstruct_at_zero` from t shares;
* ``checked_reconstruct_seconds``: :func:`fedtss.shamir.reconstruct_checked` from all n
  (random projection + Reed-Solomon decoding + Lagrange from t);
* ``floor_seconds``: numpy writing a fresh (n, d) uint64 array once (``np.full``), the
  memory-bound floor for producing the shares; ``share_to_floor`` and
  ``reconstruct_to_floor`` are the ratios to it;
* ``seal_mb_per_s``: encoding one share as a field-vector blob and sealing it to one member
  (:mod:`fedtss.formats`, :mod:`fedtss.sealing`), in MB (10^6 bytes) of share per second;
* ``upload_bytes_per_client``: the n sealed share blobs plus the client's manifest, what one
  client stores per round, against ``float32_update_bytes`` = 4·d;
* ``peak_bytes``: the most memory (tracemalloc, numpy buffers included) allocated while
  sharing or checked-reconstructing, beyond the inputs; ``peak_to_output`` divides it by the
  (n, d) output's size.

Times are the best of k runs after one warm-up call. The figures are written to
``benchmarks/results/secret_sharing.json`` (a list of records, one per case) and never
asserted in tests. The machine is shared, so ``loadavg_1min`` records how busy it was.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from fedtss import formats, sealing, shamir
from fedtss.cid import compute_cid
from fedtss.field import MODULUS
from fedtss.quantize import QuantizationConfig

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "secret_sharing.json"
DIMENSIONS = (10**5, 10**6, 10**7)
HOLDERS_AND_THRESHOLDS = ((5, 3), (10, 6), (20, 11))
_CONTRACT = "0x" + "11" * 20
_CLIENT = "0x" + "22" * 20


def best_of(function: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up; results are dropped at once."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def peak_allocated(function: Callable[[], object]) -> int:
    """Peak bytes allocated (beyond what exists already) while ``function`` runs."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def repeats_for(d: int) -> int:
    return 5 if d >= 10**7 else 9 if d >= 10**6 else 15


def measure_case(d: int, n: int, t: int) -> dict[str, object]:
    """All figures for one (d, n, t); holds at most two (n, d) arrays at a time."""
    repeats = repeats_for(d)
    secret = np.random.default_rng(d + n).integers(0, MODULUS, size=d, dtype=np.uint64)
    key = os.urandom(32)

    def share() -> np.ndarray:
        return shamir.share_vector(secret, threshold=t, holders=n, key=key)

    share_seconds = best_of(share, repeats)
    floor_seconds = best_of(lambda: np.full((n, d), 1, dtype=np.uint64), repeats)
    shares = share()
    first_t = {j: shares[j - 1] for j in range(1, t + 1)}
    everyone = {j: shares[j - 1] for j in range(1, n + 1)}
    reconstruct_seconds = best_of(lambda: shamir.reconstruct_at_zero(first_t), repeats)
    checked = lambda: shamir.reconstruct_checked(everyone, threshold=t, key=key)  # noqa: E731
    checked_seconds = best_of(checked, repeats)
    if not np.array_equal(checked().secret, secret):
        raise RuntimeError(f"reconstruction is wrong for d={d} n={n} t={t}")
    peak = max(peak_allocated(share), peak_allocated(checked))
    seal_seconds, upload_bytes = measure_sealing(shares, t, repeats)
    output_bytes = shares.nbytes
    return {
        "d": d,
        "n": n,
        "t": t,
        "share_seconds": share_seconds,
        "reconstruct_seconds": reconstruct_seconds,
        "checked_reconstruct_seconds": checked_seconds,
        "floor_seconds": floor_seconds,
        "share_to_floor": share_seconds / floor_seconds,
        "reconstruct_to_floor": reconstruct_seconds / floor_seconds,
        "seal_mb_per_s": 8 * d / 1e6 / seal_seconds,
        "peak_bytes": peak,
        "output_bytes": output_bytes,
        "peak_to_output": peak / output_bytes,
        "upload_bytes_per_client": upload_bytes,
        "float32_update_bytes": 4 * d,
        "upload_to_float32": upload_bytes / (4 * d),
        "repeats": repeats,
        "loadavg_1min": os.getloadavg()[0],
    }


def measure_sealing(shares: np.ndarray, t: int, repeats: int) -> tuple[float, int]:
    """Best time to encode + seal one share, and the bytes one client stores per round."""
    n, d = shares.shape
    public_keys = [sealing.keypair_from_seed(os.urandom(32))[1] for _ in range(n)]

    def seal(member: int) -> bytes:
        context = sealing.ShareContext(1, _CONTRACT, 1, _CLIENT, member)
        blob = formats.encode_field_vector(shares[member - 1], kind=formats.VectorKind.SHARE)
        return sealing.seal_share(blob, public_keys[member - 1], context, ephemeral_seed=os.urandom(32))

    seal_seconds = best_of(lambda: seal(1), min(repeats, 5))
    stored = 0
    cids = []
    for member in range(1, n + 1):
        sealed = seal(member)
        stored += len(sealed)
        cids.append(compute_cid(sealed))
        del sealed
    manifest = formats.Manifest(
        chain_id=1, contract=_CONTRACT, round=1, client=_CLIENT, n=n, t=t, vector_length=d,
        quantization=QuantizationConfig(clip_norm=1.0), share_cids=tuple(cids),
    )
    return seal_seconds, stored + len(formats.encode_manifest(manifest))


_FIRST_CALL = """
import time
import numpy as np
start = time.perf_counter()
from fedtss import shamir
shares = shamir.share_vector(np.arange(9, dtype=np.uint64), threshold=3, holders=5, key=bytes(32))
shamir.reconstruct_checked({j: shares[j - 1] for j in range(1, 6)}, threshold=3, key=bytes(32))
print(time.perf_counter() - start)
"""


def measure_first_call() -> dict[str, float]:
    """Import + first share/reconstruct in a fresh process: compiling, and loading the cache."""
    def run(env: dict[str, str]) -> float:
        out = subprocess.run([sys.executable, "-c", _FIRST_CALL], env={**os.environ, **env},
                             check=True, capture_output=True, text=True)
        return float(out.stdout.strip())

    with tempfile.TemporaryDirectory() as cold_cache:
        compile_seconds = run({"NUMBA_CACHE_DIR": cold_cache})
        cached_seconds = run({"NUMBA_CACHE_DIR": cold_cache})
    return {"first_call_compile_seconds": compile_seconds, "first_call_cached_seconds": cached_seconds}


def render(records: list[dict[str, object]], first_call: dict[str, float]) -> Table:
    table = Table(title="Shamir sharing over p = 2^61 - 1 (times: best of k, ms)")
    for column in ("d", "n", "t", "share", "recon t", "checked n", "floor", "share/floor",
                   "recon/floor", "seal MB/s", "peak/output", "upload / 4d"):
        table.add_column(column, justify="right")
    for r in records:
        table.add_row(
            f"{r['d']:.0e}", str(r["n"]), str(r["t"]),
            f"{1e3 * r['share_seconds']:.1f}", f"{1e3 * r['reconstruct_seconds']:.1f}",
            f"{1e3 * r['checked_reconstruct_seconds']:.1f}", f"{1e3 * r['floor_seconds']:.1f}",
            f"{r['share_to_floor']:.2f}", f"{r['reconstruct_to_floor']:.2f}",
            f"{r['seal_mb_per_s']:.0f}", f"{r['peak_to_output']:.2f}",
            f"{r['upload_to_float32']:.2f}",
        )
    table.caption = (
        f"first call in a fresh process (import + JIT): {first_call['first_call_compile_seconds']:.1f} s"
        f" compiling, {first_call['first_call_cached_seconds']:.1f} s from numba's cache"
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only d = 10^5 and 10^6")
    args = parser.parse_args(argv)
    dimensions = DIMENSIONS[:2] if args.quick else DIMENSIONS
    first_call = measure_first_call()
    records = []
    for d in dimensions:
        for n, t in HOLDERS_AND_THRESHOLDS:
            record = measure_case(d, n, t)
            record.update(first_call)
            records.append(record)
    console = Console(width=160)
    console.print(render(records, first_call))
    if not args.quick:
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_PATH.write_text(json.dumps(records, indent=1) + "\n")
        console.print(f"wrote {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
