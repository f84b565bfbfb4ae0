"""A local chain that keeps its state on disk: anvil with ``--state``, for one-machine runs.

``anvil --state FILE`` loads ``FILE`` at start if it exists and writes the whole chain (state,
blocks, receipts and logs) back to it when anvil exits on SIGINT or SIGTERM (checked with
anvil 1.7.1: both signals write the file; SIGKILL writes nothing). So a finished run can be
reopened and inspected with the same deployment record, and :meth:`DevNode.stop` (SIGTERM,
then SIGKILL after 10 s) saves it.

anvil runs in its own session: a Ctrl-C in the terminal reaches only our process, which then
stops anvil in order (after the agents), instead of anvil dying first under their feet.
The process handling itself is :func:`fedtss.chain.devnode.start_anvil`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

from fedtss.chain.devnode import DevNode, free_port, start_anvil

__all__ = ["chain_state_exists", "free_port", "start_local_chain"]


def start_local_chain(state_file: Path, *, accounts: int, port: int | None = None, log_path: Path | None = None,
                      timeout: float = 30.0, block_time: float | None = None) -> DevNode:
    """Start anvil on ``state_file`` (created on exit, reloaded if present); return once it answers.
    ``block_time``: seconds between blocks (None: a block per transaction)."""
    return start_anvil(accounts=accounts, port=port or None, state=state_file, log_path=log_path, new_session=True,
                       timeout=timeout, block_time=block_time)


def chain_state_exists(state_file: Path) -> bool:
    """Whether a saved chain is there to reopen."""
    return state_file.is_file() and os.path.getsize(state_file) > 0
