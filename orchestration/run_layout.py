"""Where a local run keeps its files: every path under ``runs/<name>/``, named once.

    runs/<name>/chain-state.json    anvil --state: written when anvil stops, reloaded by `fedtss node`
    runs/<name>/federation.toml     the deployment config generated for the requested sizes
    runs/<name>/deployment.json     the deployment record (fedtss.chain.deploy)
    runs/<name>/store/              LocalStore: models, manifests, sealed and aggregate shares
    runs/<name>/ipfs/host-k/        with --ipfs-hosts K: IPFS node k's repository and log (instead of store/)
    runs/<name>/data/client-i.npz   client i's part of the task's data (0-based i), from its partition()
    runs/<name>/data/test.npz       the task's held-out test set (when its partition() gives one)
    runs/<name>/nodes/<node>.toml   each agent's node config; nodes/<node>/ its state folder (checkpoint,
                                    a member's exclusions.jsonl)
    runs/<name>/logs/<node>.log     each process's output (anvil.log for the chain)
    runs/<name>/report.json         what the run measured (orchestration.report)
    runs/<name>/accuracy.png        accuracy per round beside plaintext FedAvg

Nodes are named ``client-i`` (0-based), ``member-j`` (1-based) and ``keeper``. A new run of the
same name replaces the old one (:class:`orchestration.launcher.LocalFederation` does that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunLayout"]


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run, from its folder ``runs/<name>/``."""

    run_dir: Path

    @property
    def store_dir(self) -> Path:
        return self.run_dir / "store"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def nodes_dir(self) -> Path:
        return self.run_dir / "nodes"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def ipfs_dir(self) -> Path:
        """The run's IPFS nodes, ``ipfs/host-k/`` each (with ``fedtss demo --ipfs-hosts K``)."""
        return self.run_dir / "ipfs"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "chain-state.json"

    @property
    def deployment_config(self) -> Path:
        return self.run_dir / "federation.toml"

    @property
    def deployment_path(self) -> Path:
        return self.run_dir / "deployment.json"

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.json"

    @property
    def plot_path(self) -> Path:
        return self.run_dir / "accuracy.png"

    def client_data(self, index: int) -> Path:
        """Client ``index``'s partition (0-based)."""
        return self.data_dir / f"client-{index}.npz"

    @property
    def test_data(self) -> Path:
        """The held-out test set the launcher evaluates each finalized model on."""
        return self.data_dir / "test.npz"

    def config_path(self, node: str) -> Path:
        return self.nodes_dir / f"{node}.toml"

    def state_dir(self, node: str) -> Path:
        return self.nodes_dir / node

    def log_path(self, node: str) -> Path:
        return self.logs_dir / f"{node}.log"

    def folders(self) -> tuple[Path, ...]:
        """The folders a new run creates before anything writes to them."""
        return self.store_dir, self.logs_dir, self.nodes_dir, self.data_dir
