"""A local chain that keeps its state on disk: anvil with ``--state``, for one-machine runs.

``anvil --state FILE`` loads ``FILE`` at start if it exists and writes the whole chain (state,
blocks, receipts and logs) back to it when anvil exits on SIGINT or SIGTERM (checked with
anvil 1.7.1: both signals write the file; SIGKILL writes nothing). So a finished run can be
reopened and inspected with the same deployment record, and :meth:`DevNode.stop` (SIGTERM,
then SIGKILL after 10 s) saves it.

anvil runs in its own session: a Ctrl-C in the terminal reaches only our process, which then
stops anvil in order (after the agents), instead of anvil dying first under their feet.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from web3 import Web3
from web3.exceptions import Web3Exception

from fedtss.chain.devnode import ANVIL, ANVIL_MNEMONIC, DevNode
from fedtss.errors import ChainError, ConfigError

__all__ = ["free_port", "start_local_chain"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_local_chain(state_file: Path, *, accounts: int, port: int | None = None, log_path: Path | None = None,
                      timeout: float = 30.0) -> DevNode:
    """Start anvil on ``state_file`` (created on exit, reloaded if present); return once it answers."""
    if not ANVIL.is_file():
        raise ConfigError(f"anvil is not installed at {ANVIL}: run `make install` (npm ci)")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    state_file.parent.mkdir(parents=True, exist_ok=True)
    command = [str(ANVIL), "--port", str(port), "--accounts", str(accounts), "--mnemonic", ANVIL_MNEMONIC,
               "--state", str(state_file)]
    output = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    finally:
        if log_path is not None:
            output.close()
    node = DevNode(url=url, w3=Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30})), process=process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            where = f"; see {log_path}" if log_path else ""
            raise ChainError(f"anvil exited with code {process.returncode} before answering at {url}{where}"
                             f" (is port {port} in use?)")
        try:
            node.w3.eth.chain_id
            return node
        except (Web3Exception, OSError):
            time.sleep(0.05)
    node.stop()
    raise ChainError(f"anvil did not answer at {url} within {timeout} s")


def chain_state_exists(state_file: Path) -> bool:
    """Whether a saved chain is there to reopen."""
    return state_file.is_file() and os.path.getsize(state_file) > 0
