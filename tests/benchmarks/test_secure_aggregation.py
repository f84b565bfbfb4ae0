"""The secure-aggregation benchmark measures what it says, on tiny rounds.

Shape and byte counts only: the timings are measured by ``python -m
benchmarks.secure_aggregation`` and never asserted here (noise on a shared two-core machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import secure_aggregation as bench
from fedtss.cid import compute_cid
from fedtss.formats import Manifest, encode_manifest, field_vector_bytes
from fedtss.masking import LIMBS_PER_SEED, ring_vector_bytes
from fedtss.quantize import check_capacity
from fedtss.sealing import OVERHEAD

REPO = Path(__file__).resolve().parents[2]
REQUIRED_KEYS = {
    "mode", "modulus_bits", "d", "n", "t", "clients", "client_seconds", "member_seconds",
    "upload_bytes_per_client", "upload_ratio", "member_download_bytes", "store_bytes_per_round",
    "member_peak_bytes", "clients_run", "replayed", "loadavg_1min", "checked",
}
D, CLIENTS, N, T = 1000, 4, 5, 3


def manifest_bytes(case: bench.Case) -> int:
    """The encoded manifest's length for this case (CIDs all have one length)."""
    cid = compute_cid(b"any blob")
    manifest = Manifest(chain_id=bench._CHAIN_ID, contract=bench._CONTRACT, round=bench._ROUND,
                        client=bench.client_address(0), n=case.n, t=case.t, vector_length=case.d + 1,
                        quantization=case.quantization, share_cids=(cid,) * case.n,
                        masked_cid=None if case.bits is None else cid, modulus_bits=case.bits)
    return len(encode_manifest(manifest))


@pytest.fixture(scope="module")
def records() -> dict[str, dict[str, object]]:
    return {mode: bench.measure_case(bench.make_case(mode, D, CLIENTS, N, T))
            for mode in ("shamir", "masked", "masked-32")}


def test_every_mode_runs_every_client_checks_the_sum_and_reports_every_key(records) -> None:
    for mode, record in records.items():
        assert REQUIRED_KEYS <= record.keys()
        assert record["mode"] == mode
        assert (record["d"], record["clients"], record["n"], record["t"]) == (D, CLIENTS, N, T)
        assert (record["clients_run"], record["replayed"]) == (CLIENTS, 0)
        assert record["checked"] is True
        assert record["member_peak_bytes"] > 0
    assert [records[m]["modulus_bits"] for m in ("shamir", "masked", "masked-32")] == [None, 48, 32]


def test_the_masked_upload_is_a_fraction_of_the_shamir_upload_at_the_same_n(records) -> None:
    assert records["masked"]["upload_ratio"] < records["shamir"]["upload_ratio"]
    assert records["masked-32"]["upload_ratio"] < records["masked"]["upload_ratio"]
    assert records["masked"]["store_bytes_per_round"] < records["shamir"]["store_bytes_per_round"]


def test_the_shamir_bytes_are_the_sealed_shares_manifests_and_aggregate_shares(records) -> None:
    record, case = records["shamir"], bench.make_case("shamir", D, CLIENTS, N, T)
    sealed_share = OVERHEAD + field_vector_bytes(D + 1)
    upload = N * sealed_share + manifest_bytes(case)
    assert record["upload_bytes_per_client"] == upload
    assert record["upload_ratio"] == upload / (4 * D)
    aggregate_share = field_vector_bytes(D + 1)
    assert record["member_download_bytes"] == CLIENTS * (manifest_bytes(case) + sealed_share) + (N - 1) * aggregate_share
    assert record["store_bytes_per_round"] == CLIENTS * upload + N * aggregate_share


@pytest.mark.parametrize("mode", ["masked", "masked-32"])
def test_the_masked_bytes_are_the_vector_seed_rows_manifests_and_reveals(records, mode) -> None:
    record, case = records[mode], bench.make_case(mode, D, CLIENTS, N, T)
    masked_vector = ring_vector_bytes(D + 1, case.bits)
    sealed_row = OVERHEAD + field_vector_bytes(LIMBS_PER_SEED * CLIENTS)  # self seed + one per other client
    upload = masked_vector + N * sealed_row + manifest_bytes(case)
    assert record["upload_bytes_per_client"] == upload
    reveal = field_vector_bytes(LIMBS_PER_SEED * CLIENTS)  # everyone included: one self seed per client
    assert record["member_download_bytes"] == (CLIENTS * (manifest_bytes(case) + masked_vector + sealed_row)
                                               + (N - 1) * reveal)
    assert record["store_bytes_per_round"] == CLIENTS * upload + N * reveal


def test_above_the_work_limit_three_clients_are_run_and_replayed(monkeypatch) -> None:
    monkeypatch.setattr(bench, "REAL_WORK_LIMIT", 5 * D - 1)
    shamir = bench.measure_case(bench.make_case("shamir", D, 5, 3, 2), peak=False)
    masked = bench.measure_case(bench.make_case("masked", D, 5, 3, 2), peak=False)
    for record in (shamir, masked):
        assert (record["clients_run"], record["replayed"]) == (3, 2)
        assert record["member_peak_bytes"] is None
    assert shamir["checked"] is True  # a sharing of the replayed vectors' sum, still checked
    assert masked["checked"] is False  # the replayed copies' pairwise masks do not cancel
    # The replayed clients' uploads count as much as the real ones'.
    assert masked["store_bytes_per_round"] > 5 * masked["upload_bytes_per_client"]


def test_the_32_bit_config_fits_32_bits_and_shrinks_with_the_federation() -> None:
    small, large = bench.small_ring_quantization(10), bench.small_ring_quantization(100)
    check_capacity(small, modulus_bits=32)
    check_capacity(large, modulus_bits=32)
    assert (small.max_clients, small.max_samples) == (10, 200)
    assert large.max_clients == 100 and large.max_samples < 200


def test_quick_mode_writes_records_with_every_key_to_the_given_path(tmp_path) -> None:
    output = tmp_path / "quick.json"
    subprocess.run([sys.executable, "-m", "benchmarks.secure_aggregation", "--quick", "--output", str(output)],
                   cwd=REPO, check=True, capture_output=True, text=True, timeout=600)
    records = json.loads(output.read_text())
    assert {(r["mode"], r["n"], r["t"]) for r in records} == {
        (mode, n, t) for mode in ("shamir", "masked", "masked-32") for n, t in bench.HOLDERS_AND_THRESHOLDS}
    for record in records:
        assert REQUIRED_KEYS <= record.keys()
        assert (record["d"], record["clients"], record["checked"]) == (10**5, 10, True)
