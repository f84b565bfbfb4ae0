"""The shared runner with the real event source: catch up, act, checkpoint, restart without resending."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from agents.client import build_client_agent
from agents.runtime import CHECKPOINT_FILE, format_fields, main, run_agent
from tests.agents.conftest import Federation

ROOT = Path(__file__).resolve().parents[2]


def _run_until_head(agent, fed: Federation) -> int:
    head = fed.chain.w3.eth.block_number
    asyncio.run(run_agent(agent, until_block=head, poll_interval=0.05))
    return head


@pytest.mark.parametrize("scheme", ["http", "ws"])
def test_an_agent_catches_up_from_its_checkpoint_and_a_restart_sends_nothing(
    make_federation_in, caplog, scheme: str
) -> None:
    caplog.set_level(logging.INFO, logger="fedtss.agents")
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2)
    client = fed.clients[0]
    settings = client.node.config.node
    url = scheme + settings.rpc_url.removeprefix("http")
    client.node.config = replace(client.node.config, node=replace(settings, rpc_url=url))
    me = client.node.address
    checkpoint = Path(client.node.config.node.state_dir) / CHECKPOINT_FILE

    head = _run_until_head(client, fed)
    assert fed.contract.has_submitted(1, me)
    assert f'"block": {head}' in checkpoint.read_text()
    nonce = fed.chain.w3.eth.get_transaction_count(me)

    _run_until_head(client, fed)  # resumes after the checkpoint: only its own UpdateSubmitted is new
    checkpoint.unlink()  # lost state: every event since the deployment comes again
    _run_until_head(client, fed)

    assert fed.chain.w3.eth.get_transaction_count(me) == nonce
    lines = [r.getMessage() for r in caplog.records if "event=RoundOpened" in r.getMessage()]
    assert len(lines) == 2 and "action=train_and_submit" in lines[0] and "already submitted" in lines[1]


def test_main_exits_with_status_1_naming_the_bad_field(tmp_path: Path, caplog) -> None:
    config = tmp_path / "client.toml"
    config.write_text("[node]\nrpc_url = 'ftp://x'\n", encoding="utf-8")
    assert main(["--config", str(config)], role="client", build=build_client_agent, environ={}) == 1
    assert any("rpc_url" in r.getMessage() and "ConfigError" in r.getMessage() for r in caplog.records)


def test_the_agents_run_as_modules() -> None:
    for module in ("agents.client", "agents.aggregator"):
        result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0 and "--config" in result.stdout


def test_log_fields_are_one_line_and_leave_out_empty_values() -> None:
    line = format_fields(role="client", round=3, cid=None, reason="deadline\npassed", note="")
    assert line == "role=client round=3 reason='deadline passed' note=''"
