"""A whole federation on one machine: anvil, the local store, N clients, n members and a keeper.

:class:`FederationSpec` is what a run asks for; :class:`LocalFederation` sets the run up under
``runs/<name>/`` (anvil, the contract, data, node configs, model 0) and starts and stops its
processes. The other jobs of a run each have their module: where its files are
(:mod:`orchestration.run_layout`), the processes (:mod:`orchestration.supervisor`), following its
rounds (:mod:`orchestration.tracker`) and ``fedtss demo`` (:mod:`orchestration.demo`). The
end-to-end tests drive the same classes, so the demo and the tests run one code path.

Accounts are anvil's public dev accounts: 0 is the operator (deployer, startTraining, and
the keeper, so that it may reopen a failed round), 1..n the committee, n+1..n+N the clients.
Members' X25519 keys are the dev keys of :func:`fedtss.chain.dev_sealing_keypair`. Keys
reach each process through its environment (``FEDTSS_PRIVATE_KEY``, ``FEDTSS_SEALING_KEY``),
never its command line, and no file of the run holds one where other users may read it: the
logs are 0600 (anvil's start-up banner lists every dev key). In the masked mode
(``FederationSpec.aggregation = "masked"``) each client also gets a fresh random X25519 masking
key: its public half is registered in the deployment (``[aggregation] client_keys``), its private
half is written to ``nodes/client-i.masking.key`` (0600), which the client's node config names
(``[client] masking_key_file``); the Shamir mode writes no such key. Every process runs in its own
process group (its own session), so a Ctrl-C reaches the launcher alone, which then stops the
agents, the keeper and last anvil (whose SIGTERM writes the chain state).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.config import FederationSettings, NodeSettings, parse_node_config
from agents.learning import (
    DEFAULT_CLIP_NORM,
    DEFAULT_TASK,
    LoadedTask,
    compute_client_update,
    load_task,
    round_settings,
)
from fedtss.chain import (
    DEFAULT_MODULUS_BITS,
    LocalAccount,
    ModelTerms,
    RoundsConfig,
    RoundsContract,
    dev_sealing_keypair,
    parse_rounds_config,
)
from fedtss.chain.deploy import deploy as deploy_contract
from fedtss.chain.devnode import DevNode, dev_accounts
from fedtss.chain.keys import MaskingKey, new_x25519_private_key, write_masking_key
from fedtss.errors import ConfigError
from fedtss.formats import decode_model, decode_model_metrics, encode_model
from fedtss.quantize import QuantizationConfig, check_capacity
from fedtss.sealing import public_key_from_private
from fedtss.task import Settings
from fedtss.storage import ContentStore, KuboStore, LocalStore
from fedtss.validation import committee_decides_norms, committee_excludes_unchecked_norms
from fedtss.wraparound import WrapBounds
from orchestration.ipfs_node import JsIpfsNode, start_peered_nodes
from orchestration.models import layout_toml, task_model_terms
from orchestration.node import start_local_chain
from orchestration.run_layout import RunLayout
from orchestration.supervisor import Supervisor

__all__ = ["PROJECT_ROOT", "FederationSpec", "LocalFederation"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MODEL_MAX_BYTES = 64 * 1024 * 1024
#: A valid X25519 public key for FederationSpec's check, where a member's dev key will be.
_STAND_IN_SEALING_KEY = bytes(31) + b"\x01"


#: The most clients the launcher packs into one process by default (agents.pack): 100 clients,
#: committee 10, then peak at 2.7 GiB of memory (PSS) in all, against 4.1 GiB with packs of 16
#: and about 265 MB per client alone.
AUTO_PACK_SIZE = 50
#: Seconds members have for their share checks, and again for complaints, in a Shamir-mode
#: demo (agents.client_checks). Honest rounds never wait for it: the verdict comes when the n-th
#: member's checks are mined; it bounds the wait for a member that is down or a silent liar.
DEFAULT_CHECK_PERIOD = 10
#: Shares the whole committee opens per second on a 2-core machine running the whole federation,
#: halved for margin: 1,000 clients with a committee of 10 opened 114-329 shares per member in a
#: 9 s window (about 220 a second in all), so a 10 s window excluded most clients by time-out.
LOCAL_SHARES_OPENED_PER_SECOND = 100


@functools.cache
def available_cores() -> int:
    """The cores this process may use: its CPU affinity, or fewer where a cgroup (v2) CPU quota
    caps it (a container run with ``--cpus 2`` on a larger host). Read once per process."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, _cgroup_cpu_quota() or cores))


def _cgroup_cpu_quota(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """Cores a cgroup v2 quota allows ("quota period", rounded up), None where there is none."""
    try:
        quota, period = path.read_text(encoding="ascii").split()[:2]
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):  # no cgroup v2 file, or "max" (no quota)
        return None


def auto_clients_per_process(clients: int, cores: int) -> int:
    """Clients per process by default: ceil(clients / cores), so that there are no more client
    processes than cores, and at most :data:`AUTO_PACK_SIZE`.

    More client processes than cores only contend: with 10 clients alone on 2 cores (16 agent
    processes and anvil) a round's critical path took 2.35-2.60 s, with two packs of 5 1.61-1.95 s,
    and the whole demo 53-59 s against 30-34 s (set-up halves: PyTorch and web3 load twice, not
    ten times). With no more clients than cores each runs alone, as a real deployment does.
    """
    if clients <= cores:
        return 1
    return min(AUTO_PACK_SIZE, math.ceil(clients / cores))


@dataclass(frozen=True)
class FederationSpec:
    """Sizes, periods, seeds and training settings of one local federation.

    The defaults are the issue's default federation: 10 clients, a committee of 5 with
    t = 3, 10 rounds. ``collection_period`` leaves room for the agents' start-up (each
    process imports PyTorch); collection closes as soon as every client has submitted.
    ``clients`` is both the deployment's ``target_clients`` and the size of its allowlist.
    """

    name: str = "demo"
    clients: int = 10
    committee: int = 5
    threshold: int = 3
    rounds: int = 10
    min_clients: int = 3
    collection_period: int = 120
    aggregation_period: int = 60
    #: Seconds members have to post share checks after collection closes, and again complaints
    #: (the Shamir mode only; 0: off; None: :data:`DEFAULT_CHECK_PERIOD` in the Shamir mode, or
    #: more for clients x committee above 1,000 (:data:`LOCAL_SHARES_OPENED_PER_SECOND`), if the
    #: aggregation period leaves room for two, else off).
    check_period: int | None = None
    seed: int = 0
    #: The task (a .py file or a module name, see fedtss.task) and how every client trains it.
    task: str = DEFAULT_TASK
    training: Settings = field(default_factory=Settings)
    clip_norm: float = DEFAULT_CLIP_NORM
    fractional_bits: int = 16
    #: The most samples one client's update may weigh (a bound for the capacity check; the
    #: masked mode's 32-bit ring needs it low). The most clients is the allowlist's size.
    max_samples: int = 10_000
    share_wait_seconds: float = 1.0
    #: 0: every agent uses one shared store directory. K > 0: K IPFS nodes (js-ipfs, online on
    #: loopback, peered with each other), clients on the first, members spread over the others,
    #: so that every blob a member reads comes over bitswap from another node.
    ipfs_hosts: int = 0
    keeper_interval: float = 1.0
    #: Client agents per OS process (agents.pack): 1 runs each client alone, as a real deployment
    #: does; more share one copy of PyTorch, web3 and numba. None: ceil(clients / cores), at most
    #: :data:`AUTO_PACK_SIZE` (:func:`auto_clients_per_process`).
    clients_per_process: int | None = None
    reopen_failed: bool = False
    runs_dir: Path = Path("runs")
    #: The deployment's aggregation mode: "shamir" (n sealed Shamir shares per client) or
    #: "masked" (one masked vector per client, fedtss.masking), and the masked mode's ring
    #: (None: the deployment config's default, 48 bits; refused in the Shamir mode).
    aggregation: str = "shamir"
    modulus_bits: int | None = None
    #: Seconds between blocks on the local chain (anvil --block-time, as a real network mines);
    #: None: anvil mines each transaction at once.
    block_time: float | None = None

    @property
    def resolved_clients_per_process(self) -> int:
        """Client agents per process: as given, or :func:`auto_clients_per_process` on this machine's cores."""
        if self.clients_per_process is not None:
            return self.clients_per_process
        return auto_clients_per_process(self.clients, available_cores())

    @property
    def resolved_check_period(self) -> int:
        """The deployment's ``check_period``: as given, or the default for the mode."""
        if self.check_period is not None:
            return self.check_period
        if self.aggregation == "masked":
            return 0
        # Each member opens every client's share inside the checks' window, all members at once on
        # this machine: the window grows with clients x committee past the default.
        period = self.scaled_check_period
        return period if 2 * period < self.aggregation_period else 0

    @property
    def members_weight_updates(self) -> bool:
        """Whether clients share unweighted updates that the members weight by each manifest's
        sample count (the Shamir mode with checks on; :mod:`fedtss.quantize`)."""
        return self.aggregation == "shamir" and bool(self.resolved_check_period)

    @property
    def scaled_check_period(self) -> int:
        """The checks' window this federation's size needs on one machine (see :attr:`resolved_check_period`)."""
        return max(DEFAULT_CHECK_PERIOD, math.ceil(self.clients * self.committee / LOCAL_SHARES_OPENED_PER_SECOND))

    @property
    def checks_warning(self) -> str | None:
        """Why the default turned the committee's checks off, or None if it did not."""
        if self.check_period is not None or self.aggregation == "masked" or self.resolved_check_period:
            return None
        return (f"client checks are off: {self.clients} clients x {self.committee} members need a "
                f"{self.scaled_check_period} s checks' window, which needs an aggregation period above "
                f"{2 * self.scaled_check_period} s (--aggregation-period; it is {self.aggregation_period} s)")

    @property
    def norm_check_note(self) -> str | None:
        """What the committee's checks leave out of the norm check, or None: all of it with too few
        members to decide a norm. (A clip bound too large for the wrap-around check, which comes
        with the norm check, is refused when the spec is made.)"""
        if not self.resolved_check_period:
            return None
        if not committee_decides_norms(self.committee, self.threshold):
            return (f"the committee checks shares and sample counts but not update norms: a norm needs "
                    f"2t - 1 = {2 * self.threshold - 1} members to check it (--committee "
                    f"{2 * self.threshold - 1}, or a lower --threshold); see the README, \"The norm check\"")
        return None

    @property
    def norm_dodge_note(self) -> str | None:
        """What this committee does with a client whose norm it cannot check, or None where norms
        are not checked: below 3t - 2 a client can keep its norm unchecked (kept, and named by every
        member); from 3t - 2 such a client is excluded, and so is an honest client once more than
        n - 2t + 1 members are down or silent (:func:`committee_excludes_unchecked_norms`)."""
        if not self.resolved_check_period or not committee_decides_norms(self.committee, self.threshold):
            return None
        n, t = self.committee, self.threshold
        if committee_excludes_unchecked_norms(n, t):
            spare = n - 2 * t + 1
            return (f"with {n} members and t = {t}, a client whose norm cannot be checked is excluded: with more "
                    f"than {spare} member{'s' if spare != 1 else ''} down or silent, honest clients are excluded "
                    f"too; see the README, \"The norm check\"")
        off = n - 2 * t + 2
        ways = f"withholding the shares of {off} member{'s' if off > 1 else ''}"
        if n <= 3 * t - 4:
            ways += " or corrupting them"
        return (f"with {n} members and t = {t}, a client can keep its norm unchecked by {ways} (every member then "
                f"names it norm_unchecked); --committee {3 * t - 2} excludes such a client; see the README, "
                f"\"The norm check\"")

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"name: {self.name!r} must be 1-64 letters, digits, '.', '_' or '-' "
                              "(it names a folder under runs/)")
        if self.rounds < 1:
            raise ConfigError(f"rounds: must be at least 1, got {self.rounds}")
        if self.block_time is not None and not 0 < self.block_time <= 3600:
            raise ConfigError(f"block_time: must be more than 0 and at most 3600 seconds, got {self.block_time}")
        if self.clients_per_process is not None and self.clients_per_process < 1:
            raise ConfigError(f"clients_per_process: must be at least 1, got {self.clients_per_process}")
        if not 0 <= self.ipfs_hosts <= 16:
            raise ConfigError(f"ipfs_hosts: must be 0 (one shared store directory) to 16, got {self.ipfs_hosts}")
        # Sizes and periods are the deployment's: the deployment config's own validator checks them,
        # before anything starts. Stand-in accounts take the place of the dev accounts, which are
        # valid and distinct by construction but take ~10 ms each to derive.
        committee = [(f"0x{j:040x}", _STAND_IN_SEALING_KEY) for j in range(1, self.committee + 1)]
        clients = [f"0x{self.committee + i:040x}" for i in range(1, self.clients + 1)]
        masked = self.aggregation == "masked"
        config = parse_rounds_config(self.rounds_table(committee, clients,
                                                       [_STAND_IN_SEALING_KEY] * len(clients) if masked else ()))
        if config.aggregation.is_masked:
            # The sum of max_clients quantized updates must not wrap around the ring.
            check_capacity(self.quantization, modulus_bits=config.aggregation.modulus_bits)
        elif self.resolved_check_period and committee_decides_norms(self.committee, self.threshold):
            # Norms are checked, and so are wraps: their projections' range must stay far below p
            # (for any model up to 2^30 parameters, whose sqrt(d) / 2 of rounding widens it a little).
            WrapBounds.of(self.quantization, update=2**30)

    @property
    def run_dir(self) -> Path:
        return (self.runs_dir / self.name).resolve()

    @property
    def accounts(self) -> int:
        return 1 + self.committee + self.clients

    @property
    def quantization(self) -> QuantizationConfig:
        """The quantization every agent of the run uses (its node configs' ``[federation]``)."""
        return self.federation_settings.quantization

    @property
    def federation_settings(self) -> FederationSettings:
        """Every node config's ``[federation]``: no more clients can ever submit than the allowlist holds."""
        return FederationSettings(seed=self.seed, fractional_bits=self.fractional_bits, clip_norm=self.clip_norm,
                                  max_clients=self.clients, max_samples=self.max_samples)

    def rounds_table(self, committee: Sequence[tuple[str, bytes]], clients: Sequence[str],
                     client_keys: Sequence[bytes] = ()) -> dict[str, Any]:
        """The deployment config's ``[rounds]`` table for this spec, with these accounts: an
        (address, sealing public key) pair per member and an address per client; its
        ``aggregation`` entry is the ``[aggregation]`` table, with ``client_keys`` (the clients'
        masking public keys, masked mode only)."""
        aggregation: dict[str, Any] = {"mode": self.aggregation}
        if self.modulus_bits is not None:
            aggregation["modulus_bits"] = self.modulus_bits
        if client_keys:
            aggregation["client_keys"] = ["0x" + key.hex() for key in client_keys]
        return {
            "threshold": self.threshold,
            "min_clients": self.min_clients,
            "target_clients": self.clients,
            "collection_period": self.collection_period,
            "aggregation_period": self.aggregation_period,
            "check_period": self.resolved_check_period,
            "clients": list(clients),
            "committee": [{"address": address, "sealing_key": "0x" + key.hex()} for address, key in committee],
            "aggregation": aggregation,
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["runs_dir"] = str(self.runs_dir)
        data["training"] = self.training.to_json()
        if self.aggregation == "masked" and self.modulus_bits is None:
            data["modulus_bits"] = DEFAULT_MODULUS_BITS  # what the deployment used
        data["max_clients"] = self.federation_settings.max_clients
        data["clients_per_process"] = self.resolved_clients_per_process  # what the run used on this machine
        return data


class LocalFederation:
    """One run's chain, store, data, configs and processes; a context manager that stops them."""

    def __init__(self, spec: FederationSpec) -> None:
        self.spec = spec
        self.layout = RunLayout(spec.run_dir)
        accounts = dev_accounts(spec.accounts)
        self.operator: LocalAccount = accounts[0]
        self.members: tuple[LocalAccount, ...] = accounts[1 : 1 + spec.committee]
        self.clients: tuple[LocalAccount, ...] = accounts[1 + spec.committee :]
        #: Each client's X25519 masking key (masked mode; none in the Shamir mode), fresh for this
        #: run: :meth:`prepare` writes the private halves to the clients' key files.
        self.masking_keys: tuple[MaskingKey, ...] = tuple(
            _new_masking_key() for _ in self.clients) if spec.aggregation == "masked" else ()
        #: The deployment this run makes, checked by the deployment config's validator.
        self.rounds_config: RoundsConfig = parse_rounds_config(spec.rounds_table(
            [(m.address, dev_sealing_keypair(m.address)[1]) for m in self.members], [c.address for c in self.clients],
            [key.public_key for key in self.masking_keys]))
        self.supervisor = Supervisor(self.layout.log_path, cwd=PROJECT_ROOT)
        self.chain: DevNode | None = None
        self.contract: RoundsContract | None = None
        self.store: ContentStore | None = None
        #: The run's IPFS nodes (``spec.ipfs_hosts`` of them), host 1 first.
        self.ipfs_nodes: list[JsIpfsNode] = []
        self.task: LoadedTask | None = None
        #: What each client's load_data gets (its .npz), by client index; the test set's, if any.
        self.client_sources: list[str] = []
        self.test_source: str | None = None
        self.initial_model_cid: str | None = None
        self._test_data: Any = None

    # ------------------------------------------------------------------------- names

    @property
    def run_dir(self) -> Path:
        return self.layout.run_dir

    @property
    def deployment_path(self) -> Path:
        return self.layout.deployment_path

    @property
    def client_names(self) -> list[str]:
        return [f"client-{i}" for i in range(self.spec.clients)]

    @property
    def client_processes(self) -> dict[str, list[str]]:
        """Process name -> the clients it runs: ``client-i`` alone, or ``clients-k`` packs (agents.pack)."""
        size = self.spec.resolved_clients_per_process
        names = self.client_names
        if size == 1:
            return {name: [name] for name in names}
        return {f"clients-{k}": names[start : start + size] for k, start in enumerate(range(0, len(names), size))}

    def running_clients(self) -> int:
        """Clients whose process is running (a pack counts all its clients)."""
        return sum(len(clients) for name, clients in self.client_processes.items()
                   if self.supervisor.count_running([name]))

    @property
    def member_names(self) -> list[str]:
        return [f"member-{j}" for j in range(1, self.spec.committee + 1)]

    def log_path(self, name: str) -> Path:
        return self.layout.log_path(name)

    def config_path(self, name: str) -> Path:
        return self.layout.config_path(name)

    def masking_key_path(self, name: str) -> Path:
        """Where client ``name``'s X25519 masking key is (masked mode only), beside its node config."""
        return self.layout.nodes_dir / f"{name}.masking.key"

    # ------------------------------------------------------------------------ set-up

    def prepare(self) -> None:
        """Load the task, replace the run folder, write data, start anvil, deploy, write configs, store model 0.

        The task is loaded and its data partitioned first: a task that cannot be used stops the
        run with its one-line error before any process starts.
        """
        spec, layout = self.spec, self.layout
        self.task = load_task(spec.task)
        parts, test = self.task.partition(spec.clients, spec.seed, spec.training)
        if layout.run_dir.exists():
            shutil.rmtree(layout.run_dir)
        for folder in layout.folders():
            folder.mkdir(parents=True, exist_ok=True)
        self._write_masking_keys()
        for index, part in enumerate(parts):
            np.savez(layout.client_data(index), **part)
            self.client_sources.append(str(layout.client_data(index)))
        if test is not None:
            np.savez(layout.test_data, **test)
            self.test_source = str(layout.test_data)
        # The task reads back what its partition gave; its evaluate() names the federated metrics.
        model = task_model_terms(self.task, self.client_sources[0])
        self.chain = start_local_chain(layout.state_file, accounts=spec.accounts, log_path=layout.log_path("anvil"),
                                       block_time=spec.block_time)
        self._deploy(model)
        self.store = self._start_stores()
        self._write_node_configs()
        self.initial_model_cid = self.store.put(encode_model(self.task.initial_tensors(spec.seed)))

    def _deploy(self, model: ModelTerms) -> None:
        """Write the deployment config for the requested sizes and model, and deploy it (fedtss.chain.deploy)."""
        config_path = self.layout.deployment_config
        config_path.write_text(_deployment_toml(self.rounds_config, model, self.task.name), encoding="utf-8")
        deployment = deploy_contract(self.chain.url, config_path, self.deployment_path,
                                     environ={"FEDTSS_PRIVATE_KEY": _hex_key(self.operator)},
                                     quantization=self.spec.quantization)
        self.contract = RoundsContract.at(self.chain.url, deployment)

    def _write_masking_keys(self) -> None:
        """Each client's masking key to its 0600 key file (masked mode; nothing in the Shamir mode)."""
        for name, key in zip(self.client_names, self.masking_keys, strict=False):
            write_masking_key(self.masking_key_path(name), key.private_key, overwrite=False)

    def _start_stores(self) -> ContentStore:
        """The run's shared store directory, or its IPFS nodes (peered); the launcher's own store.

        With IPFS hosts the launcher puts the initial model on host 1, where the clients are, and
        reads results through host 1 too: like any other node, it gets a member's blob by bitswap.
        """
        if not self.spec.ipfs_hosts:
            return LocalStore(self.layout.store_dir)
        self.ipfs_nodes = start_peered_nodes(self.layout.ipfs_dir, self.spec.ipfs_hosts)
        return KuboStore(self.ipfs_nodes[0].api_url)

    def store_location(self, name: str) -> str:
        """Where node ``name``'s agent stores and fetches blobs (its host's RPC API, or the shared folder)."""
        if not self.ipfs_nodes:
            return str(self.layout.store_dir)
        return self.ipfs_nodes[self.host_of(name)].api_url

    def host_of(self, name: str) -> int:
        """The 0-based IPFS host of node ``name``: clients on the first, members round-robin on the others."""
        hosts = len(self.ipfs_nodes) or 1
        if name.startswith("client-") or hosts == 1:
            return 0
        if name.startswith("member-"):
            return 1 + (int(name.removeprefix("member-")) - 1) % (hosts - 1)
        return hosts - 1

    def _write_node_configs(self) -> None:
        """One TOML per agent and the keeper's, each validated with its process's own loader.

        ``confirmations`` (and, for agents, the store timeouts) are written out at their
        defaults, so that whoever copies a generated file for a real network sees the knobs.
        """
        for index, name in enumerate(self.client_names):
            self._write_agent_config(name, "client", self.client_section(index))
        for name in self.member_names:
            self._write_agent_config(name, "aggregator", {"share_wait_seconds": self.spec.share_wait_seconds})
        keeper = {
            "node": {"rpc_url": self.chain.url, "deployment": str(self.deployment_path),
                     "confirmations": NodeSettings.confirmations},
            "keeper": {"interval_seconds": self.spec.keeper_interval, "reopen_failed": self.spec.reopen_failed},
        }
        path = self.config_path("keeper")
        parse_node_config(keeper, role="keeper", path=path)
        path.write_text(_toml(keeper), encoding="utf-8")

    def client_section(self, index: int) -> dict[str, Any]:
        """The ``[client]`` table of client ``index``'s node config (after :meth:`prepare` loaded the
        task and wrote the data); in the masked mode it names the client's masking key file."""
        training = self.spec.training
        section: dict[str, Any] = {
            "task": self.task.location,
            "data": self.client_sources[index],
            "index": index,
            "epochs": training.epochs,
            "batch_size": training.batch_size,
            "learning_rate": training.lr,
            "options": dict(training.options),
        }
        if self.masking_keys:
            section["masking_key_file"] = str(self.masking_key_path(self.client_names[index]))
        return section

    def _write_agent_config(self, name: str, role: str, section: dict[str, Any]) -> None:
        packed = role == "client" and self.spec.resolved_clients_per_process > 1
        document = {
            "node": {
                # In a pack each client reads its own key from its own variable (agents.pack).
                **({"private_key_env": _packed_key_env(name)} if packed else {}),
                "rpc_url": self.chain.url.replace("http://", "ws://", 1),
                "http_url": self.chain.url,
                "deployment": str(self.deployment_path),
                "store": self.store_location(name),
                "state_dir": str(self.layout.state_dir(name)),
                "store_timeout_seconds": NodeSettings.store_timeout_seconds,
                "fetch_timeout_seconds": NodeSettings.fetch_timeout_seconds,
                "confirmations": NodeSettings.confirmations,
            },
            "federation": {
                "seed": self.spec.seed,
                "fractional_bits": self.spec.fractional_bits,
                "clip_norm": self.spec.clip_norm,
                "max_clients": self.spec.federation_settings.max_clients,
                "max_samples": self.spec.max_samples,
            },
            role: section,
        }
        path = self.config_path(name)
        parse_node_config(document, role=role, path=path)  # type: ignore[arg-type]
        path.write_text(_toml(document), encoding="utf-8")

    # --------------------------------------------------------------------- processes

    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """Every node process started so far, by node name (the latest one of a restarted node)."""
        return self.supervisor.processes

    def start_agents(self, *, skip: Iterable[str] = (), keeper: bool = True) -> None:
        """Start every client process and member (but those in ``skip``, process names) and the keeper."""
        skipped = set(skip)
        names = [*self.member_names, *self.client_processes, *(["keeper"] if keeper else [])]
        for name in sorted(skipped - set(names)):
            self._process_of(name)  # says what to name instead (a packed client: its pack)
        for name in names:
            if name not in skipped:
                self.start(name)

    def start(self, name: str, *, module: str | None = None) -> subprocess.Popen[bytes]:
        """Start (or restart) one node's process, its key in its environment. ``module`` runs another
        module than the role's with the same config and keys (the end-to-end tests run a hostile
        member this way)."""
        role_module, secrets = self._process_of(name)
        configs = self.client_processes.get(name, [name])
        command = [sys.executable, "-m", module or role_module,
                   *(arg for config in configs for arg in ("--config", str(self.config_path(config))))]
        return self.supervisor.start(name, command, secrets)

    def _process_of(self, name: str) -> tuple[str, dict[str, str]]:
        role, _, number = name.partition("-")
        if name == "keeper":
            return "agents.keeper", {"FEDTSS_PRIVATE_KEY": _hex_key(self.operator)}
        if role == "client" and name in self.client_names:
            pack = next(process for process, clients in self.client_processes.items() if name in clients)
            if pack != name:
                raise ConfigError(f"{name} runs in the process {pack} with {len(self.client_processes[pack])} "
                                  f"clients: start or stop {pack}, or set clients_per_process=1 to run each "
                                  "client alone")
            return "agents.client", {"FEDTSS_PRIVATE_KEY": _hex_key(self.clients[int(number)])}
        if role == "clients" and name in self.client_processes:
            return "agents.pack", {_packed_key_env(client): _hex_key(self.clients[int(client.removeprefix("client-"))])
                                   for client in self.client_processes[name]}
        if role == "member" and name in self.member_names:
            member = self.members[int(number) - 1]
            sealing_private = dev_sealing_keypair(member.address)[0]
            return "agents.aggregator", {"FEDTSS_PRIVATE_KEY": _hex_key(member),
                                         "FEDTSS_SEALING_KEY": sealing_private.hex()}
        processes = list(self.client_processes)
        raise ConfigError(f"no node named {name!r}: expected keeper, {processes[0]}..{processes[-1]} "
                          f"or member-1..member-{self.spec.committee}")

    def wait_until_ready(self, names: Iterable[str] | None = None, *, timeout: float | None = None) -> None:
        """Wait until each named process (default: all started) logged that it follows the chain;
        by default for :func:`ready_timeout` of the federation's clients."""
        self.supervisor.wait_until_ready(names, timeout=ready_timeout(self.spec.clients) if timeout is None else timeout)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one node's process group and wait for it to exit (a packed client: its pack)."""
        self._process_of(name)  # a name that is no process is a mistake, not a no-op
        self.supervisor.kill(name, sig)

    def exited(self) -> dict[str, int]:
        """Nodes whose process has exited, with their exit codes."""
        return self.supervisor.exited()

    def stop_processes(self) -> None:
        """SIGTERM every node's process group, then SIGKILL what is left after a grace period."""
        self.supervisor.stop_all()

    def log_tail(self, name: str, lines: int = 15) -> str:
        return self.supervisor.log_tail(name, lines)

    def close(self) -> None:
        """Stop the agents and the keeper, then anvil (which writes chain-state.json)."""
        try:
            self.stop_processes()
        finally:
            try:
                for node in self.ipfs_nodes:
                    node.stop()
            finally:
                if self.chain is not None:
                    self.chain.stop()
                    self.chain = None

    def __enter__(self) -> LocalFederation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------ chain

    def start_training(self) -> dict:
        """The operator opens round 1 from the initial model, for ``spec.rounds`` rounds."""
        return self.contract.start_training(self.operator, self.initial_model_cid, self.spec.rounds)

    def load_model(self, cid: str) -> dict[str, np.ndarray]:
        return decode_model(self.store.get(cid, max_bytes=_MODEL_MAX_BYTES), max_bytes=_MODEL_MAX_BYTES)

    def model_metrics(self, cid: str) -> dict[str, float]:
        """The federated metrics model ``cid``'s blob carries ({} for the initial model)."""
        return decode_model_metrics(self.store.get(cid, max_bytes=_MODEL_MAX_BYTES), max_bytes=_MODEL_MAX_BYTES)

    def client_update(self, index: int, round_: int, model: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
        """Client ``index``'s (delta, examples) from ``model`` in round ``round_``, computed as its agent
        does (same task, data, settings and seed): what the plaintext checks of the tests compare with."""
        settings = round_settings(self.spec.training, federation_seed=self.spec.seed, round_number=round_,
                                  client_index=index)
        return compute_client_update(self.task, model, self.task.load_data(self.client_sources[index]), settings)

    def evaluate_model(self, cid: str) -> dict[str, float]:
        """The task's metrics of model ``cid`` on the held-out test set ({} without one)."""
        if self.test_source is None:
            return {}
        if self._test_data is None:
            self._test_data = self.task.load_data(self.test_source)
        return self.task.evaluate(self.task.model_from(self.load_model(cid)), self._test_data)


# -------------------------------------------------------------------------- helpers


def _hex_key(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


def _new_masking_key() -> MaskingKey:
    private = new_x25519_private_key()
    return MaskingKey(private_key=private, public_key=public_key_from_private(private))


def ready_timeout(clients: int) -> float:
    """Seconds the launcher waits for every agent to follow the chain: 120, plus 0.2 per client
    (every packed client reads its data, key and checkpoint on 2 shared cores: 1,000 clients in
    20 packs were ready after 115 s once, and 8 packs were not after 120 s the next time)."""
    return 120.0 + 0.2 * clients


def _packed_key_env(client: str) -> str:
    """The environment variable a packed client's key is in: ``FEDTSS_PRIVATE_KEY_CLIENT_7``."""
    return "FEDTSS_PRIVATE_KEY_" + client.upper().replace("-", "_")


def _deployment_toml(config: RoundsConfig, model: ModelTerms, task_name: str) -> str:
    """The deployment config file of a run: its ``[rounds]``, ``[aggregation]`` and ``[model]`` tables,
    as ``load_config`` and ``load_model_terms`` read them."""
    lines = [
        "# Generated by fedtss demo for this run: anvil's dev accounts, public dev sealing keys.",
        "# The deployer key is not here: deploying takes it from FEDTSS_PRIVATE_KEY.",
        "[rounds]",
        f"threshold = {config.threshold}",
        f"min_clients = {config.min_clients}",
        f"target_clients = {config.target_clients}",
        f"collection_period = {config.collection_period}",
        f"aggregation_period = {config.aggregation_period}",
        f"check_period = {config.check_period}",
        "clients = [" + ", ".join(f'"{address}"' for address in config.clients) + "]",
    ]
    for member in config.committee:
        lines += ["", "[[rounds.committee]]", f'address = "{member.address}"',
                  f'sealing_key = "0x{member.sealing_key.hex()}"']
    lines += ["", "[aggregation]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in config.aggregation_table().items()]
    return "\n".join(lines) + "\n\n" + layout_toml(model, task_name)


def _toml(document: Mapping[str, Mapping[str, Any]]) -> str:
    """A TOML document of tables of scalars, and of sub-tables of scalars (``[client.options]``);
    strings are JSON-escaped (valid TOML)."""
    lines: list[str] = []
    for table, values in document.items():
        lines.append(f"[{table}]")
        subtables = {key: value for key, value in values.items() if isinstance(value, Mapping)}
        for key, value in values.items():
            if key not in subtables:
                lines.append(f"{key} = {_toml_value(f'{table}.{key}', value)}")
        lines.append("")
        for key, subtable in subtables.items():
            lines.append(f"[{table}.{key}]")
            lines += [f"{json.dumps(k)} = {_toml_value(f'{table}.{key}.{k}', v)}" for k, v in subtable.items()]
            lines.append("")
    return "\n".join(lines)


def _toml_value(where: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise ConfigError(f"cannot write {where} of type {type(value).__name__} to TOML")
