"""benchmarks.federation's process-tree memory sampling, on real processes (the 1,000-client run
itself is a benchmark, not a test)."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.federation import MemorySampler, descendants, process_kind, pss_bytes


def test_descendants_finds_a_child_and_its_grandchild_and_pss_reads_a_living_process():
    script = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(30)'])"
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(100):
            tree = descendants(child.pid)
            if len(tree) == 2:
                break
            subprocess.run(["sleep", "0.05"])
        assert tree[0] == child.pid and len(tree) == 2
        assert all(pss_bytes(pid) > 1024 * 1024 for pid in tree)
        assert os.getpid() not in tree  # only what is under the root
    finally:
        for pid in descendants(child.pid)[::-1]:
            os.kill(pid, 9)
        child.wait()


def test_pss_of_an_ended_process_is_zero_and_kinds_come_from_the_command_line():
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert pss_bytes(ended.pid) == 0
    assert process_kind(ended.pid) == "ended"
    assert process_kind(os.getpid()) in {"other", "demo"}  # pytest, not an agent


def test_the_sampler_keeps_the_peak_of_a_process_tree_by_kind():
    child = subprocess.Popen([sys.executable, "-c", "b = bytearray(64 * 1024 * 1024); import time; time.sleep(2)"])
    with MemorySampler(child.pid) as sampler:
        child.wait()
    summary = sampler.summary()
    assert summary["samples"] >= 2
    assert summary["peak_total_mib"] >= 64  # the 64 MiB it wrote
    assert summary["by_kind"]["other"]["processes"] == 1
