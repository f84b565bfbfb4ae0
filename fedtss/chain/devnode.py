"""A local anvil node for tests, benchmarks and one-machine runs, and its well-known accounts.

:func:`start_anvil` runs the anvil npm installed (on a free port unless one is given)
and returns once it answers; :meth:`DevNode.stop` ends it. The accounts come from anvil's
public test mnemonic: they are for local chains only.

With ``state=FILE`` (``anvil --state``) the chain outlives the process: anvil loads ``FILE``
at start if it exists and writes the whole chain (state, blocks, receipts, logs) back to it
when it exits on SIGTERM or SIGINT, which :meth:`DevNode.stop` sends (SIGKILL, its fallback
after 30 s, writes nothing). Started again with the same ``state`` and ``port``, the node
answers at the same URL with the same chain, so clients reconnect to it unchanged.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import Web3Exception

from fedtss._files import open_private_log
from fedtss.chain.reader import ChainReader
from fedtss.errors import ChainError, ConfigError

__all__ = ["ANVIL", "ANVIL_MNEMONIC", "DevNode", "anvil_executable", "dev_accounts", "free_port", "start_anvil"]

ANVIL = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "anvil"
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


def anvil_executable() -> Path:
    """The anvil binary npm installed for this platform (``@foundry-rs/anvil-<os>-<arch>/bin/anvil``),
    else :data:`ANVIL`, npm's Node.js wrapper. The binary is run directly because the wrapper, on
    SIGTERM, passes the signal on and exits at once: :meth:`DevNode.stop` then returned while anvil
    was still writing ``--state``, and a reader of the file saw it cut short."""
    found = sorted(ANVIL.parents[1].glob("@foundry-rs/anvil-*/bin/anvil"))
    return found[0] if len(found) == 1 and found[0].is_file() else ANVIL


@dataclass
class DevNode:
    """A running anvil: its URL, a Web3 on it and the process (stop it with :meth:`stop`)."""

    url: str
    w3: Web3
    process: subprocess.Popen

    @property
    def ws_url(self) -> str:
        """The same node over WebSocket (anvil serves both on one port)."""
        return "ws" + self.url.removeprefix("http")

    def increase_time(self, seconds: int) -> None:
        """Move the chain clock forward and mine a block, so the next tx sees the new time."""
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])

    def snapshot(self) -> str:
        return self.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snapshot_id: str) -> None:
        if not self.w3.provider.make_request("evm_revert", [snapshot_id])["result"]:
            raise ChainError(f"anvil could not revert to snapshot {snapshot_id}")

    @property
    def chain(self) -> ChainReader:
        """Blocks, receipts and the chain's clock of this node, in plain values."""
        return ChainReader(self.w3, self.url)

    def timestamp(self) -> int:
        """The chain's clock: the latest block's timestamp."""
        return self.chain.chain_time()

    def stop(self) -> None:
        """Stop anvil and wait for it; with ``--state`` it writes the chain on the way out, which
        takes seconds on a loaded machine, so it is killed only after 30 s."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def dev_accounts(count: int) -> tuple[LocalAccount, ...]:
    """anvil's well-known accounts 0..count-1 (public mnemonic, m/44'/60'/0'/0/i)."""
    Account.enable_unaudited_hdwallet_features()
    return tuple(Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count))


def start_anvil(
    *,
    accounts: int = 30,
    port: int | None = None,
    state: Path | None = None,
    load_state: Path | None = None,
    log_path: Path | None = None,
    new_session: bool = False,
    timeout: float = 30.0,
    block_time: float | None = None,
) -> DevNode:
    """Start anvil with ``accounts`` funded dev accounts; return once it answers.

    ``port``: a fixed port (default: a free one), so a restarted node keeps its URL.
    ``state``: ``anvil --state FILE`` (see the module doc). ``load_state``: ``anvil
    --load-state FILE``, which only reads it (the file is never written back), to reopen a
    saved chain read-only; give at most one of the two. ``log_path``: anvil's output is
    appended there instead of discarded. ``new_session``: anvil gets its own session, so a
    Ctrl-C in the terminal reaches only the caller, which can then stop anvil last, in order.
    ``block_time``: seconds between blocks (``anvil --block-time``, interval mining, as on a
    real network); None mines each transaction at once.
    The log is private (0600): anvil's start-up banner prints every dev account's private key.
    """
    if not ANVIL.is_file():
        raise ConfigError(f"anvil is not installed at {ANVIL}: run `npm ci` in the repository")
    if state is not None and load_state is not None:
        raise ConfigError("give start_anvil either state= (read and write back) or load_state= (read only), not both")
    if load_state is not None and (not Path(load_state).is_file() or Path(load_state).stat().st_size == 0):
        raise ConfigError(f"{load_state}: no saved chain state to load")
    fixed_port = port is not None
    port = port if fixed_port else free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(anvil_executable()), "--port", str(port), "--accounts", str(accounts), "--mnemonic", ANVIL_MNEMONIC]
    if state is not None:
        Path(state).parent.mkdir(parents=True, exist_ok=True)
        command += ["--state", str(state)]
    if load_state is not None:
        command += ["--load-state", str(load_state)]
    if block_time is not None:
        if not 0 < block_time <= 3600:
            raise ConfigError(f"block_time must be in (0, 3600] seconds, got {block_time}")
        command += ["--block-time", f"{block_time:g}"]
    process = _spawn(command, log_path, new_session=new_session)
    node = DevNode(url=url, w3=Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30})), process=process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            hints = (f"; see {log_path}" if log_path else "") + (f" (is port {port} in use?)" if fixed_port else "")
            raise ChainError(f"anvil exited with code {process.returncode} before answering at {url}{hints}")
        try:
            node.w3.eth.chain_id
            return node
        except (Web3Exception, OSError):
            time.sleep(0.05)
    node.stop()
    raise ChainError(f"anvil did not answer at {url} within {timeout} s")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(command: list[str], log_path: Path | None, *, new_session: bool) -> subprocess.Popen:
    if log_path is None:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=new_session)
    with open_private_log(log_path) as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=new_session)
