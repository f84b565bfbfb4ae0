"""The local anvil: a fixed port and --state let a stopped node come back with its chain."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from fedtss.chain.devnode import anvil_executable, dev_accounts, free_port, start_anvil
from fedtss.errors import ChainError, ConfigError


def test_a_node_restarted_on_its_state_file_and_port_keeps_its_chain_and_url(tmp_path):
    state, port = tmp_path / "chain" / "state.json", free_port()
    sender, receiver = dev_accounts(2)
    node = start_anvil(accounts=2, port=port, state=state)
    try:
        tx = node.w3.eth.send_transaction({"from": sender.address, "to": receiver.address, "value": 12345})
        block = node.w3.eth.wait_for_transaction_receipt(tx)["blockNumber"]
    finally:
        node.stop()  # SIGTERM: anvil writes the chain to the state file
    assert state.is_file()
    again = start_anvil(accounts=2, port=port, state=state)
    try:
        assert again.url == node.url and again.ws_url == f"ws://127.0.0.1:{port}"
        assert again.w3.eth.block_number == block
        assert again.w3.eth.get_transaction(tx)["value"] == 12345
    finally:
        again.stop()
    saved = (state.stat().st_mtime_ns, state.read_bytes())
    reopened = start_anvil(load_state=state)  # read-only: loads the chain, never writes it back
    try:
        assert reopened.w3.eth.get_transaction(tx)["value"] == 12345
        reopened.w3.eth.send_transaction({"from": sender.address, "to": receiver.address, "value": 1})
    finally:
        reopened.stop()
    assert (state.stat().st_mtime_ns, state.read_bytes()) == saved


def test_stop_returns_once_anvil_itself_has_written_its_state_and_exited(tmp_path):
    """npm's Node.js wrapper exits on SIGTERM without waiting for anvil: stop() then returned while
    anvil still wrote --state, and a reader right after saw a file cut short (a CI run caught it)."""
    state = tmp_path / "state.json"
    sender, receiver = dev_accounts(2)
    node = start_anvil(accounts=2, state=state)
    pid = node.process.pid
    try:
        executable = Path(f"/proc/{pid}/exe").resolve()
        assert executable == anvil_executable() and executable.name == "anvil"  # anvil itself, not node
        for value in range(1, 21):  # a chain with some history: a longer write
            node.w3.eth.wait_for_transaction_receipt(
                node.w3.eth.send_transaction({"from": sender.address, "to": receiver.address, "value": value}))
    finally:
        node.stop()
    assert not Path(f"/proc/{pid}").exists()  # nothing of it left running
    assert json.loads(state.read_text(encoding="utf-8"))["block"]["number"] == hex(20)  # whole, last block in


def test_load_state_refuses_a_missing_file_and_a_second_state_option(tmp_path):
    with pytest.raises(ConfigError, match="no saved chain state"):
        start_anvil(load_state=tmp_path / "absent.json")
    (tmp_path / "s.json").write_text("{}")
    with pytest.raises(ConfigError, match="not both"):
        start_anvil(state=tmp_path / "s.json", load_state=tmp_path / "s.json")


def test_a_fixed_port_already_taken_is_named_in_the_error(tmp_path):
    with socket.socket() as holder:  # bound, not listening: anvil cannot bind, nothing answers
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with pytest.raises(ChainError, match=f"is port {port} in use"):
            start_anvil(accounts=1, port=port, log_path=tmp_path / "anvil.log")
    assert (tmp_path / "anvil.log").stat().st_size > 0  # anvil's own reason is kept there
