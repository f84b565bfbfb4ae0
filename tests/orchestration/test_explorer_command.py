"""`fedtss explorer runs/<name>` as a user runs it: a separate process that reopens the saved
chain read-only, serves the pages, and stops its anvil when it is stopped."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch

from agents.learning import load_task
from fedtss.chain.devnode import dev_accounts
from orchestration.explorer.command import find_run_files
from orchestration.node import free_port, start_local_chain
from tests.fixtures.anvil import AnvilNode
from tests.fixtures.federation import deploy_federation, run_two_rounds

ROOT = Path(__file__).resolve().parents[2]
LINEAR_TASK = ROOT / "tests" / "fixtures" / "linear_task.py"  # the fixture's model layout


def _children(pid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(status.parent.name)
            found |= {child} | _children(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _start_explorer(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    """``fedtss explorer ARGS`` as a separate process on a free port."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "explorer", *args, "--port", str(port)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "COLUMNS": "200"})
    return process, port


def _page_once_up(process: subprocess.Popen[bytes], url: str) -> httpx.Response:
    """The page at ``url`` as soon as the explorer answers (it starts in seconds, not minutes)."""
    deadline, page = time.monotonic() + 60, None
    while page is None and time.monotonic() < deadline and process.poll() is None:
        try:
            page = httpx.get(url, timeout=5)
        except httpx.TransportError:
            time.sleep(0.2)
    assert page is not None, process.stderr.read().decode() if process.poll() is not None else "no answer"
    return page


def test_explorer_command_reopens_a_finished_run_and_stops_its_anvil_on_sigterm(rounds_artifact, tmp_path) -> None:
    """Also passes --task: the finalized models download as state dicts that task's model() loads."""
    run_dir = tmp_path / "runs" / "demo"
    node = start_local_chain(run_dir / "chain-state.json", accounts=10)
    try:
        fed = run_two_rounds(deploy_federation(AnvilNode(node, dev_accounts(10)), rounds_artifact, run_dir))
    finally:
        node.stop()  # writes chain-state.json, as the launcher's anvil does
    saved = (run_dir / "chain-state.json").read_bytes()
    process, port = _start_explorer(str(run_dir), "--task", str(LINEAR_TASK))
    try:
        page = _page_once_up(process, f"http://127.0.0.1:{port}/rounds")
        assert page.status_code == 200 and page.text.count("state-finalized") == 2
        exported = httpx.get(f"http://127.0.0.1:{port}/model/{fed.models[2]}.pt", timeout=60)
        assert exported.status_code == 200
        load_task(str(LINEAR_TASK)).module.model().load_state_dict(torch.load(io.BytesIO(exported.content)))
        anvils = _children(process.pid)
        assert anvils, "the explorer started no anvil"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    deadline = time.monotonic() + 15
    while _alive(anvils) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftover = _alive(anvils)
    for pid in leftover:  # never leave a stray anvil behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not leftover, "anvil outlived the explorer"
    assert (run_dir / "chain-state.json").read_bytes() == saved


def test_explorer_command_refuses_confirmations_out_of_range(tmp_path) -> None:
    answer = subprocess.run([sys.executable, "-m", "orchestration.cli", "explorer", "--confirmations", "-1",
                             "--rpc-url", "http://127.0.0.1:9", "--deployment", str(tmp_path / "d.json")],
                            cwd=ROOT, capture_output=True, env={**os.environ, "COLUMNS": "200"}, timeout=60)
    assert answer.returncode == 2 and b"Invalid value for '--confirmations'" in answer.stderr


def test_a_folder_without_a_deployment_record_is_refused_with_what_to_do(tmp_path) -> None:
    from fedtss.errors import ConfigError

    with pytest.raises(ConfigError, match="fedtss demo"):
        find_run_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="deployment.json"):
        find_run_files(tmp_path / "empty")


def test_explorer_command_attaches_to_a_running_node_and_starts_no_chain_of_its_own(rounds_artifact, tmp_path) -> None:
    """Also passes --confirmations: the pages say so and count only blocks that deep."""
    run_dir = tmp_path / "live"
    node = start_local_chain(tmp_path / "chain-state.json", accounts=10)
    try:
        fed = deploy_federation(AnvilNode(node, dev_accounts(10)), rounds_artifact, run_dir)
        run_two_rounds(fed)
        node.w3.provider.make_request("evm_mine", [])  # the vote that finalized round 2 is now 1 block deep
        blocks_before = node.w3.eth.block_number
        process, port = _start_explorer("--rpc-url", node.url, "--deployment", str(run_dir / "deployment.json"),
                                        "--confirmations", "1")
        try:
            page = _page_once_up(process, f"http://127.0.0.1:{port}/rounds/2")
            assert page.status_code == 200 and "state-finalized" in page.text
            assert "1 confirmation: rounds count blocks up to head − 1" in page.text
            latest = httpx.get(f"http://127.0.0.1:{port}/blocks/{blocks_before}").text
            assert 'class="unconfirmed"' in latest
            assert _children(process.pid) == set(), "attaching must not start an anvil"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
        assert node.w3.eth.block_number == blocks_before  # read-only: it sent nothing
    finally:
        node.stop()
