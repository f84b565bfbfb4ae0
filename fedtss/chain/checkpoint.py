"""The last blocks an agent fully handled, persisted so a restarted agent resumes after them.

One small JSON file per agent::

    {"version": 2, "deployment": "31337:0x5FbD...:0x9a3c...", "block": 1234,
     "recent": [[1201, "0x5e1f..."], ..., [1234, "0x77ab..."]]}

``block`` is the last block whose events were *all* handled; an agent that starts again
reads it and catches up from ``block + 1`` (or from the contract's deploy block if there is
no file yet). ``deployment`` names the contract the number belongs to (chain id, address,
deploy transaction): a checkpoint left over from another deployment is refused instead of
silently skipping the new contract's early events. Every save is atomic (temp file, fsync,
rename), so a crash leaves the previous checkpoint or the new one, never a torn file.

A save costs two fsyncs (0.8 ms here). An agent that handles nothing in most blocks (a client
in a pack, hearing every other client's submission) may write at most every ``write_interval``
seconds instead: the newest position is then kept in memory and written by the next save past
the interval or by :meth:`Checkpoint.flush` (at a stop, a SIGTERM included). A crash then
re-delivers every event handled since the last write (while the chain is busy, about
``write_interval`` seconds of them; after a quiet spell, those since the last save that was
written), which idempotent handlers already allow; a rewind is always written at once.

``recent`` holds the number and hash of the newest handled blocks (at most
:data:`RECENT_BLOCKS`, oldest first; the last one is ``block``). A number alone cannot say
which branch of a reorganized chain was handled; the hash can. When the chain no longer has
the last handled block, :func:`compute_fork_point` finds the newest remembered block it still
has, and the agent rewinds there (:meth:`Checkpoint.rewind`) and handles the new branch. A
version 1 file (no ``recent``) still loads; its block is trusted as it is until the first
save records a hash.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedtss._files import write_atomically
from fedtss.chain.contract import Deployment
from fedtss.errors import ConfigError

__all__ = ["BlockRef", "Checkpoint", "compute_fork_point", "deployment_key", "remember_blocks"]

CHECKPOINT_VERSION = 2
READABLE_VERSIONS = frozenset({1, 2})
MAX_CHECKPOINT_BYTES = 16384
#: Handled blocks remembered by hash: a reorganization at most this many handled blocks deep
#: rewinds to the fork point; a deeper one rewinds to the deploy block (handlers are idempotent).
RECENT_BLOCKS = 64


@dataclass(frozen=True)
class BlockRef:
    """A block by number and hash: the hash says which branch the number was on."""

    number: int
    hash: str


def remember_blocks(recent: Sequence[BlockRef], new: Iterable[BlockRef], *,
                    keep: int = RECENT_BLOCKS) -> tuple[BlockRef, ...]:
    """``recent`` followed by ``new`` (both oldest first), the newest ``keep`` of them.

    A remembered block at or after a new one's number was on a branch the new one replaced,
    so it is dropped.
    """
    blocks = list(recent)
    for block in new:
        while blocks and blocks[-1].number >= block.number:
            blocks.pop()
        blocks.append(block)
    return tuple(blocks[-keep:])


def compute_fork_point(recent: Sequence[BlockRef], canonical: Mapping[int, str | None], *, floor: int) -> int:
    """The newest block of ``recent`` that the chain still has, else ``floor``.

    ``canonical`` maps block numbers to the chain's hash at that number now (None: the chain
    is shorter); numbers it lacks count as unknown. A block hash commits to every ancestor, so
    everything at or below the returned block is what was handled, and only later blocks
    must be handled again.
    """
    for block in reversed(recent):
        if canonical.get(block.number) == block.hash:
            return block.number
    return floor


def deployment_key(deployment: Deployment) -> str:
    """``chain_id:address:deploy tx``: what a checkpoint's block number is relative to."""
    return f"{deployment.chain_id}:{deployment.address}:{deployment.tx_hash}"


class Checkpoint:
    """The persisted progress of one agent over one deployment.

    ``block`` starts at ``start_block - 1`` (the :attr:`floor`) when there is no file, so
    that catch-up begins at ``start_block`` (the deploy block: nothing of this contract
    happened before it).
    """

    def __init__(self, path: Path, *, deployment: str, start_block: int, write_interval: float = 0.0) -> None:
        self.path = Path(path)
        self.deployment = deployment
        self.floor = start_block - 1
        self.write_interval = write_interval
        self._block, self._recent = self._read()
        self._written_at = float("-inf")
        self._unwritten = False

    @classmethod
    def for_deployment(cls, path: Path, deployment: Deployment, *, write_interval: float = 0.0) -> Checkpoint:
        return cls(path, deployment=deployment_key(deployment), start_block=deployment.deploy_block,
                   write_interval=write_interval)

    @property
    def block(self) -> int:
        """The last block whose events were all handled."""
        return self._block

    @property
    def recent(self) -> tuple[BlockRef, ...]:
        """The newest handled blocks with their hashes, oldest first."""
        return self._recent

    def save(self, block: int, block_hash: str | None = None) -> None:
        """Record that every event up to and including ``block`` (whose hash is ``block_hash``)
        was handled.

        A number at or below the current one is ignored: progress goes backwards only
        through :meth:`rewind`. Without a hash, a later reorganization of this block cannot
        be noticed.
        """
        if block <= self._block:
            return
        recent = remember_blocks(self._recent, [BlockRef(block, block_hash)]) if block_hash else self._recent
        if time.monotonic() - self._written_at >= self.write_interval:
            self._write(block, recent)
        else:  # written by a later save or flush (see the module doc)
            self._block, self._recent, self._unwritten = block, recent, True

    def flush(self) -> None:
        """Write the position a save kept in memory (``write_interval``), if any."""
        if self._unwritten:
            self._write(self._block, self._recent)

    def rewind(self, block: int) -> None:
        """Forget every block after ``block`` (the chain replaced them): they are handled again."""
        block = max(block, self.floor)
        if block >= self._block:
            return
        self._write(block, tuple(b for b in self._recent if b.number <= block))

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, block={self._block})"

    def _write(self, block: int, recent: tuple[BlockRef, ...]) -> None:
        record = {"version": CHECKPOINT_VERSION, "deployment": self.deployment, "block": block,
                  "recent": [[b.number, b.hash] for b in recent]}
        write_atomically(self.path, (json.dumps(record) + "\n").encode(), mode=0o644)
        self._block, self._recent = block, recent
        self._written_at, self._unwritten = time.monotonic(), False

    def _read(self) -> tuple[int, tuple[BlockRef, ...]]:
        try:
            text = self.path.read_bytes()[:MAX_CHECKPOINT_BYTES]
        except FileNotFoundError:
            return self.floor, ()
        except OSError as exc:
            raise ConfigError(f"cannot read the checkpoint {self.path}: {exc.strerror}") from exc
        try:
            record = json.loads(text)
            version, deployment, block = record["version"], record["deployment"], record["block"]
            recent = _parse_recent(record.get("recent", []))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"the checkpoint {self.path} is not a checkpoint file: delete it to start over") from None
        if version not in READABLE_VERSIONS or not _is_block_number(block):
            raise ConfigError(f"the checkpoint {self.path} has an unknown version or a bad block number: delete it")
        if deployment != self.deployment:
            raise ConfigError(
                f"the checkpoint {self.path} belongs to another deployment ({deployment}, not "
                f"{self.deployment}): delete it, or point the agent at its own state folder"
            )
        if block < self.floor:
            return self.floor, ()
        return block, tuple(b for b in recent if b.number <= block)


def _is_block_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_recent(entries: Any) -> tuple[BlockRef, ...]:
    """``[[number, "0x…"], …]`` oldest first; anything else raises ValueError."""
    if not isinstance(entries, list) or len(entries) > RECENT_BLOCKS:
        raise ValueError("recent: expected a short list")
    blocks = []
    for number, block_hash in entries:
        if not _is_block_number(number) or not isinstance(block_hash, str) or not block_hash.startswith("0x"):
            raise ValueError("recent: expected [block number, 0x-hash] pairs")
        if blocks and number <= blocks[-1].number:
            raise ValueError("recent: block numbers must increase")
        blocks.append(BlockRef(number, block_hash))
    return tuple(blocks)
