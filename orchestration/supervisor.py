"""Process supervision: one OS process per node of a run, started, watched and stopped by name.

Each process runs in its own session (its own process group): a Ctrl-C in the terminal reaches
the launcher alone, which then stops the nodes in order, and a signal sent to a node reaches
everything that node started. Keys reach a process through its environment, never its command
line, and the launcher's own key variables are not inherited. A process's output goes to its
log, which is private (0600): a traceback or a banner may print what others must not read.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from fedtss._files import open_private_log
from fedtss.errors import FedTSSError

__all__ = ["Supervisor"]

_STOP_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.2
#: What a node logs once it follows the chain: agents ``started=<transport>``, the keeper ``event=started``.
_READY = re.compile(r"\bstarted=|\bevent=started\b")
_CHILD_ENV_DROP = ("FEDTSS_PRIVATE_KEY", "FEDTSS_SEALING_KEY", "FEDTSS_KEYSTORE_PASSWORD")


class Supervisor:
    """The node processes of one run, by name; ``log_path(name)`` is where each one writes."""

    def __init__(self, log_path: Callable[[str], Path], *, cwd: Path) -> None:
        self.log_path = log_path
        self.cwd = cwd
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: Sequence[str], secrets: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start (or restart) ``name``'s process; ``secrets`` are added to its environment."""
        if self.is_running(name):
            raise FedTSSError(f"{name} is already running (pid {self.processes[name].pid})")
        environment = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROP}
        environment.update(secrets, PYTHONUNBUFFERED="1")
        with open_private_log(self.log_path(name)) as log_file:
            process = subprocess.Popen(
                list(command), cwd=self.cwd, env=environment, stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.processes[name] = process
        return process

    def is_running(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def count_running(self, names: Iterable[str]) -> int:
        return sum(1 for name in names if self.is_running(name))

    def exited(self) -> dict[str, int]:
        """Nodes whose process has exited, with their exit codes."""
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def wait_until_ready(self, names: Iterable[str] | None = None, *, timeout: float = 120.0) -> None:
        """Wait until each named process (default: all started) logged that it follows the chain.

        Agents log ``started=<transport>`` once their event source is up, the keeper
        ``event=started``: opening a round before that would spend its collection period on
        Python start-up (PyTorch and web3 take seconds to import on a busy machine).
        """
        pending = set(self.processes if names is None else names)
        deadline = time.monotonic() + timeout
        while pending:
            for name in list(pending):
                process = self.processes[name]
                if process.poll() is not None:
                    raise FedTSSError(f"{name} exited with code {process.returncode} during start-up; the end "
                                      f"of {self.log_path(name)}:\n{self.log_tail(name)}")
                if _READY.search(self.log_path(name).read_text(errors="replace")):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise FedTSSError(f"{sorted(pending)} did not start within {timeout:.0f} s; see "
                                  f"{self.log_path(sorted(pending)[0]).parent}")
            time.sleep(_POLL_SECONDS)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one node's process group and wait for it to exit."""
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        _signal_group(process, sig)
        try:
            process.wait(timeout=_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()

    def stop_all(self) -> None:
        """SIGTERM every node's process group, then SIGKILL what is left after a grace period."""
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the child leads its own session, so its group id is its pid
    except ProcessLookupError:
        pass
