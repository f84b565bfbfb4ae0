"""The benchmarks still run and write the records the README and the issues quote.

Shape only, on tiny inputs: the figures themselves are measured by ``make bench`` and never
asserted here (a timing assertion on a shared two-core machine would be noise).
"""

from __future__ import annotations

from benchmarks import gas, latency, secret_sharing
from fedtss.formats import field_vector_bytes

SECRET_SHARING_KEYS = {
    "d", "n", "t", "share_seconds", "reconstruct_seconds", "checked_reconstruct_seconds", "floor_seconds",
    "seal_mb_per_s", "peak_bytes", "upload_bytes_per_client", "float32_update_bytes",
}


def test_the_secret_sharing_benchmark_measures_one_case_with_every_reported_key() -> None:
    record = secret_sharing.measure_case(4099, 5, 3)
    assert SECRET_SHARING_KEYS <= record.keys()
    assert (record["d"], record["n"], record["t"]) == (4099, 5, 3)
    assert all(record[k] > 0 for k in ("share_seconds", "reconstruct_seconds", "floor_seconds", "peak_bytes"))
    # Five sealed shares of 8 bytes per coordinate, plus headers and the manifest.
    assert record["upload_bytes_per_client"] > 5 * 8 * 4099
    table = secret_sharing.render([record], {"first_call_compile_seconds": 1.0, "first_call_cached_seconds": 0.1})
    assert table.row_count == 1


def test_the_gas_benchmark_runs_one_round_and_reports_every_transaction_of_it() -> None:
    result = gas.measure_round()
    counts = {name: stats["count"] for name, stats in result["calls"].items()}
    assert counts == {"startTraining": 1, "submitUpdate": gas.CLIENTS, "submitAggregateShare": gas.COMMITTEE,
                      "proposeModel": gas.THRESHOLD - 1, "proposeModel:finalizing": 1}
    assert all(stats["median"] <= stats["max"] for stats in result["calls"].values())
    calls = result["calls"].values()
    assert sum(s["max"] for s in calls) <= result["round_total"] <= sum(s["max"] * s["count"] for s in calls)
    assert "proposeModel:finalizing" in gas.format_table(result)


def test_the_million_parameter_benchmark_reports_phases_uploads_and_memory_on_a_small_federation(tmp_path) -> None:
    """The same measurement on the default task with 3 clients and 1 round (tens of seconds)."""
    from dataclasses import replace

    from agents.learning import DEFAULT_TASK
    from benchmarks import million

    spec = replace(million.SPEC, name="bench-small", clients=3, committee=3, threshold=2, min_clients=2, rounds=1,
                   task=DEFAULT_TASK, runs_dir=tmp_path / "runs")
    figures = million.measure(spec)
    assert figures["parameters"] == 4810 and figures["float32_update_bytes"] == 4 * 4810
    (round_,) = figures["rounds"]
    assert round_["state"] == "Finalized" and {"collecting", "aggregating", "reconstructing"} <= round_["seconds"].keys()
    # Three sealed shares of 8 bytes per coordinate (d + 1 + 2 metrics), plus headers and the manifest.
    assert round_["client_upload_bytes"]["median"] > 3 * 8 * (4810 + 3)
    assert {"client", "member", "keeper"} <= figures["peak_memory_mib"].keys()


def test_the_ipfs_fetch_benchmark_times_put_and_both_gets_for_each_size() -> None:
    from benchmarks import ipfs_fetch

    figures = ipfs_fetch.measure(sizes=(100, 5000), repeats=2, cpu_blobs=20)
    assert [r["bytes"] for r in figures["records"]] == [100, 5000]
    assert all(r[key] > 0 for r in figures["records"] for key in ("put_ms", "local_get_ms", "remote_get_ms"))
    # Both daemons' CPU per blob, while 20 blobs are added and fetched (a fetched blob is checked).
    cpu = figures["daemon_cpu"]
    assert cpu["blobs"] == 20
    assert all(cpu[key] > 0 for key in ("add_ms", "remote_get_fetcher_ms", "remote_get_holder_ms"))


def test_process_cpu_seconds_reads_a_processs_own_cpu_time() -> None:
    import os
    import time

    from benchmarks import ipfs_fetch

    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    assert abs(ipfs_fetch.process_cpu_seconds(os.getpid()) - time.process_time()) < 0.05


def test_the_validation_benchmark_measures_member_time_gas_and_upload_on_a_small_case() -> None:
    from benchmarks import validation

    record = validation.measure(validation.Case(d=2000, clients=4, n=5, t=3))
    assert record["member_seconds_with_checks"] > 0 and record["member_seconds_without_checks"] > 0
    # t - 1 = 2 norm masks and the pad, and the 5 / 3 committee checks norms: 5 claims in the manifest
    assert record["norms_checked"] and record["manifest_claims_bytes"] == 5 * 22 and record["client_claim_seconds"] > 0
    assert record["upload_increase"] == 3 / 2001 + (5 * 22 + 24) / (5 * field_vector_bytes(2001))  # claims, count
    assert record["checks_bytes_per_member_on_chain"] == 96
    assert 20_000 < record["submitChecks_median"] <= record["submitChecks_max"] < 100_000
    assert record["submitComplaints_one_proof"] > record["submitComplaints_one"] > 21_000
    assert "submitChecks gas" in validation.render(record)


def test_the_validation_benchmark_measures_the_wrap_around_proof_and_checks_the_member_reads_the_claim() -> None:
    from benchmarks import validation

    wrap = validation.measure_wraparound(validation.Case(d=2000, clients=4, n=5, t=3))
    assert wrap["client_prove_seconds"] > 0 and wrap["member_seconds_per_client"] > 0
    # 63 projections x 24 bits and t - 1 = 2 masks, as a sealed field vector (16-byte header, 16-byte tag)
    assert wrap["bits_per_projection"] == 24 and wrap["proof_bytes_per_member"] == 16 + 8 * (63 * 24 + 2) + 16
    assert wrap["upload_increase"] == wrap["proof_bytes_per_member"] / (field_vector_bytes(2000 + 1 + 3) + 53)


def test_the_gas_benchmark_writes_a_submit_update_curve_by_client_count() -> None:
    curve = gas.submit_update_curve((3, 4))
    assert set(curve) == {"3", "4"}
    assert all(0 < c["median"] <= c["max"] < c["round_total"] for c in curve.values())


def test_the_latency_benchmark_interleaves_the_shapes_and_takes_the_median_of_each() -> None:
    calls: list[str] = []

    def fake_demo(name, rounds, options):
        calls.append(name)
        path = {"packs": 1.5, "alone": 2.5}[name.split("-")[2]] + int(name.rsplit("-", 1)[1]) / 10
        return {"median_critical_path_s": path, "setup_seconds": 15.0, "total_seconds": 35.0, "exit_code": 0,
                "cpu_seconds_per_round": path * 1.8, "busy_cores": None}

    result = latency.measure(pairs=3, rounds=2, demo=fake_demo)
    assert calls == ["bench-latency-packs-0", "bench-latency-alone-0", "bench-latency-alone-1",
                     "bench-latency-packs-1", "bench-latency-packs-2", "bench-latency-alone-2"]
    assert result["by_shape"]["packs"]["median_critical_path_s"] == 1.6  # 1.5, 1.6, 1.7
    assert result["by_shape"]["alone"]["median_critical_path_s"] == 2.6
    assert result["by_shape"]["packs"]["cpu_seconds_per_round"] == 2.88 and result["by_shape"]["packs"]["busy_cores"] is None
    assert (result["target_s"], result["rounds"], result["pairs"]) == (0.5, 2, 3) and result["cores"] >= 1


def test_the_latency_benchmark_reads_a_real_demo_report_and_removes_its_run(tmp_path) -> None:
    small = ("--clients", "3", "--committee", "3", "--threshold", "2", "--min-clients", "2")
    # Two rounds: round 1's path has no total (it starts with the agents' start-up).
    run = latency.run_demo("bench-latency-test", 2, (*small, *latency.SHAPES["alone"]), cwd=tmp_path)
    assert run["exit_code"] == 0 and run["finalized"] == 2 and run["clients_per_process"] == 1
    assert run["median_critical_path_s"] > 0 and {"client_train", "member_send"} <= run["breakdown_median"].keys()
    assert len(run["round_seconds"]) == 2 and run["setup_seconds"] > 0
    assert not (tmp_path / "runs" / "bench-latency-test").exists()
    # The processes' CPU while the rounds ran, by kind: the members, the clients and the node worked.
    spent = run["cpu_seconds_by_kind"]
    assert spent["members"] > 0 and spent["clients"] > 0 and spent["node"] > 0
    assert run["cpu_seconds_per_round"] == round(sum(spent.values()) / 2, 3) and 0 < run["busy_cores"] <= 64


def test_tree_cpu_counts_a_grandchilds_cpu_after_it_ended_as_the_grandchild_counted_it(tmp_path) -> None:
    import subprocess
    import sys
    import time

    # A child that starts a grandchild burning about 0.6 s of CPU, which reports its own CPU time.
    burn = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\nprint(time.process_time())"
    child = f"import subprocess, sys; print(subprocess.run([sys.executable, '-c', {burn!r}], capture_output=True, text=True).stdout)"
    started = time.time()
    process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    with latency.TreeCPU(process.pid, interval=0.05) as cpu:
        reported = float(process.communicate()[0].split()[0])
    spent = cpu.between(started - 1, time.time() + 1)
    assert spent is not None and abs(spent["other"] - reported) < 0.15  # the grandchild, ended, still counted
    assert latency.process_kind("python -m agents.aggregator --config m.toml") == "members"
    assert latency.process_kind("/x/anvil --port 1") == "node" and latency.process_kind("x", root=True) == "launcher"


def test_tree_cpu_keeps_the_kind_of_a_process_whose_command_line_is_gone_when_it_ended(tmp_path) -> None:
    def process(pid: int, parent: int, command: bytes, ticks: int) -> None:
        folder = tmp_path / str(pid)
        folder.mkdir(exist_ok=True)
        # pid (comm) state ppid ... utime stime: fields 14 and 15 of /proc/PID/stat
        (folder / "stat").write_text(f"{pid} (py thon) S {parent} 0 0 0 0 0 0 0 0 0 {ticks} 0 0 0\n")
        (folder / "cmdline").write_bytes(command)

    cpu = latency.TreeCPU(10)
    process(10, 1, b"python\0-m\0orchestration.cli\0demo", 100)
    process(11, 10, b"python\0-m\0agents.aggregator\0--config\0m.toml", 200)
    cpu._sample(tmp_path)
    process(11, 10, b"", 300)  # a zombie: its command line reads empty
    cpu._sample(tmp_path)
    spent = cpu.between(0, 1e12)
    assert spent["members"] == round(100 / cpu._tick, 3) and "other" not in spent and spent["launcher"] == 0


def test_pinned_runs_a_command_and_its_children_on_the_given_cpus_only() -> None:
    import os
    import subprocess
    import sys

    # A child reports its grandchild's affinity: taskset's pinning is inherited.
    cpu = min(os.sched_getaffinity(0))
    grandchild = "import os; print(sorted(os.sched_getaffinity(0)))"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    command = latency.pinned([sys.executable, "-c", child], (cpu,))
    assert subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip() == f"[{cpu}]"
    assert latency.pinned(["x", "y"], None) == ["x", "y"]


def test_the_amdahl_fit_recovers_the_serial_share_and_the_cores_a_target_takes() -> None:
    from benchmarks import cores

    # A round of 2.0 s on one core whose 0.25 share does not shrink: 1.25 s on 2 cores.
    assert abs(cores.amdahl_serial_share(2.0, 1.25, 2) - 0.25) < 1e-9
    assert abs(cores.predicted_seconds(2.0, 0.25, 4) - 0.875) < 1e-9
    assert abs(cores.cores_for(0.875, 2.0, 0.25) - 4) < 1e-9  # the inverse of predicted_seconds
    assert cores.cores_for(0.5, 2.0, 0.25) is None  # the serial 0.5 s alone: no number of cores
    assert cores.cores_for(3.0, 2.0, 0.25) == 1.0
    # Noise past either end is clipped: no negative serial share, none above 1.
    assert cores.amdahl_serial_share(2.0, 0.9, 2) == 0.0 and cores.amdahl_serial_share(2.0, 2.2, 2) == 1.0


def test_the_cores_benchmark_interleaves_one_cpu_and_all_with_the_same_shape_and_fits_them() -> None:
    import os
    from collections.abc import Sequence
    from typing import Any

    from benchmarks import cores

    calls: list[tuple[str, tuple[str, ...], object]] = []
    one = (min(os.sched_getaffinity(0)),)

    # A stand-in for four real demos (minutes): what the benchmark asks for, and made-up medians.
    def fake_demo(name: str, rounds: int, options: Sequence[str], cpus: Sequence[int] | None) -> dict[str, Any]:
        calls.append((name, tuple(options), cpus))
        seconds = 1.9 if cpus == one else 1.07
        return {"median_critical_path_s": seconds, "cpu_seconds_per_round": 1.9, "busy_cores": None, "exit_code": 0}

    result = cores.measure(pairs=2, rounds=3, demo=fake_demo, cores=2)
    assert [(name, cpus) for name, _, cpus in calls] == [("bench-cores-one-0", one), ("bench-cores-all-0", None),
                                                         ("bench-cores-all-1", None), ("bench-cores-one-1", one)]
    assert {options for _, options, _ in calls} == {("--clients-per-process", "5")}
    fit = result["amdahl"]
    assert fit["serial_share"] == round(2 * 1.07 / 1.9 - 1, 3) and fit["predicted_s"]["2"] == 1.07
    assert 6 <= fit["cores_for_target"] <= 7  # (1 - s) / (0.5 / 1.9 - s) with s = 0.126
