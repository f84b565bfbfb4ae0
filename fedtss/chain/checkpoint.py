"""The last block an agent fully handled, persisted so a restarted agent resumes after it.

One small JSON file per agent::

    {"version": 1, "deployment": "31337:0x5FbD...:0x9a3c...", "block": 1234}

``block`` is the last block whose events were *all* handled; an agent that starts again
reads it and catches up from ``block + 1`` (or from the contract's deploy block if there is
no file yet). ``deployment`` names the contract the number belongs to (chain id, address,
deploy transaction): a checkpoint left over from another deployment is refused instead of
silently skipping the new contract's early events. Every save is atomic (temp file, fsync,
rename), so a crash leaves the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
from pathlib import Path

from fedtss._files import write_atomically
from fedtss.chain.contract import Deployment
from fedtss.errors import ConfigError

__all__ = ["Checkpoint", "deployment_key"]

CHECKPOINT_VERSION = 1
MAX_CHECKPOINT_BYTES = 4096


def deployment_key(deployment: Deployment) -> str:
    """``chain_id:address:deploy tx``: what a checkpoint's block number is relative to."""
    return f"{deployment.chain_id}:{deployment.address}:{deployment.tx_hash}"


class Checkpoint:
    """The persisted progress of one agent over one deployment.

    ``block`` starts at ``start_block - 1`` when there is no file, so that catch-up begins
    at ``start_block`` (the deploy block: nothing of this contract happened before it).
    """

    def __init__(self, path: Path, *, deployment: str, start_block: int) -> None:
        self.path = Path(path)
        self.deployment = deployment
        self._block = self._read(start_block - 1)

    @classmethod
    def for_deployment(cls, path: Path, deployment: Deployment) -> Checkpoint:
        return cls(path, deployment=deployment_key(deployment), start_block=deployment.deploy_block)

    @property
    def block(self) -> int:
        """The last block whose events were all handled."""
        return self._block

    def save(self, block: int) -> None:
        """Record that every event up to and including ``block`` was handled.

        A number at or below the current one is ignored: progress never goes backwards.
        """
        if block <= self._block:
            return
        record = {"version": CHECKPOINT_VERSION, "deployment": self.deployment, "block": block}
        write_atomically(self.path, (json.dumps(record) + "\n").encode(), mode=0o644)
        self._block = block

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, block={self._block})"

    def _read(self, default: int) -> int:
        try:
            text = self.path.read_bytes()[:MAX_CHECKPOINT_BYTES]
        except FileNotFoundError:
            return default
        except OSError as exc:
            raise ConfigError(f"cannot read the checkpoint {self.path}: {exc.strerror}") from exc
        try:
            record = json.loads(text)
            version, deployment, block = record["version"], record["deployment"], record["block"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"the checkpoint {self.path} is not a checkpoint file: delete it to start over") from None
        if version != CHECKPOINT_VERSION or not isinstance(block, int) or isinstance(block, bool) or block < 0:
            raise ConfigError(f"the checkpoint {self.path} has an unknown version or a bad block number: delete it")
        if deployment != self.deployment:
            raise ConfigError(
                f"the checkpoint {self.path} belongs to another deployment ({deployment}, not "
                f"{self.deployment}): delete it, or point the agent at its own state folder"
            )
        return max(block, default)
