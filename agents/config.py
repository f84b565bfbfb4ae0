"""A node's configuration: one TOML file per agent process, loaded into frozen dataclasses.

    python -m agents.client --config runs/demo/nodes/client-3.toml
    python -m agents.aggregator --config runs/demo/nodes/member-2.toml

Every value is checked at load, and a bad one raises :class:`ConfigError` naming the file
and the field (``client-3.toml: [client] epochs: …``), so a process never starts half-set-up.
A file with several problems gets one error listing all of them, so it is fixed in one go.
The file holds no secret: keys come from environment variables or an encrypted keystore
named here. Relative paths are taken relative to the directory the process runs in (the
launcher runs every agent from the repository root), not to the config file::

    [node]
    rpc_url = "ws://127.0.0.1:8545"          # ws:// -> subscription, http:// -> polling
    deployment = "runs/demo/deployment.json"  # record written by deploy.py
    store = "runs/demo/store"                 # a directory (LocalStore) or http://host:port (Kubo RPC)
    state_dir = "runs/demo/nodes/client-3"    # checkpoint (last handled block), nothing secret
    private_key_env = "FEDTSS_PRIVATE_KEY"    # or keystore = "file.json" + password_env / password_file
    # http_url = "http://127.0.0.1:8545"      # transactions and views (default: rpc_url, ws -> http)
    max_blob_bytes = 268435456                # size limit on every get
    store_timeout_seconds = 30.0              # Kubo RPC: to connect, send, or wait between bytes
    fetch_timeout_seconds = 60.0              # Kubo RPC: to find and send one blob (members: also
                                              # at most half the time left to the aggregation deadline)
    confirmations = 0                         # handle a block's events once it is this deep (0: at once)

    [federation]                              # identical for every node of one federation
    seed = 7
    fractional_bits = 16
    clip_norm = 10.0
    max_clients = 1000
    max_samples = 10000

    [client]                                  # only in a client's file
    task = "examples/digits_mlp.py"           # a .py file or a module name (fedtss.task); default: this one
    data = "runs/demo/data/client-3.npz"      # what the task's load_data(source) gets: a path or URI
    index = 3                                 # 0-based; seeds local training per round
    epochs = 5
    batch_size = 16
    learning_rate = 0.05
    masking_key_file = "nodes/client-3.masking.key"  # masked deployments only (or masking_key_env)

    [client.options]                          # the task's own settings (settings.get("momentum", 0.9))
    momentum = 0.9

    [aggregator]                              # only in a committee member's file
    sealing_key_env = "FEDTSS_SEALING_KEY"    # X25519 private key hex, or sealing_key_file = "…"
    share_wait_seconds = 3.0                  # for every member's share after ThresholdReached (longer with only t in)

Training defaults are those of :class:`fedtss.task.Settings` (they reach the demo's target);
``clip_norm`` defaults to :data:`agents.learning.DEFAULT_CLIP_NORM`. The client's task is loaded
(and its model's layout checked against the deployment's) when the client starts.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agents.learning import DEFAULT_CLIP_NORM, DEFAULT_TASK
from fedtss.chain.keys import DEFAULT_KEY_ENV, DEFAULT_MASKING_KEY_ENV, DEFAULT_PASSWORD_ENV, DEFAULT_SEALING_KEY_ENV
from fedtss.errors import ConfigError
from fedtss.quantize import QuantizationConfig, check_capacity
from fedtss.task import Settings

__all__ = [
    "AggregatorSettings",
    "ClientSettings",
    "ConfigTable",
    "ConfigTables",
    "FederationSettings",
    "KeeperSettings",
    "NodeConfig",
    "NodeSettings",
    "REQUIRED",
    "Role",
    "load_node_config",
    "parse_node_config",
    "read_config_document",
]

Role = Literal["client", "aggregator", "keeper"]

DEFAULT_MAX_BLOB_BYTES = 256 * 1024 * 1024
DEFAULT_STORE_TIMEOUT_SECONDS = 30.0
DEFAULT_FETCH_TIMEOUT_SECONDS = 60.0
MAX_CONFIRMATIONS = 1000
_TRAIN_DEFAULTS = Settings()


@dataclass(frozen=True)
class NodeSettings:
    """``[node]``: where the chain, the deployment record, the store and the checkpoint are.

    ``rpc_url`` feeds the event source (ws:// subscribes to new heads, http:// polls);
    transactions, views and the event source's block and log requests go over HTTP to
    ``http_url``, which defaults to ``rpc_url`` with ws -> http (one port serves both on anvil
    and geth). The account key comes from the variable
    ``private_key_env``, or from ``keystore`` decrypted with the password in
    ``password_file`` or the variable ``password_env`` (:func:`fedtss.chain.keys.load_account`).
    """

    rpc_url: str
    deployment: Path
    store: str = ""  # required of clients and members; the keeper stores nothing
    state_dir: Path | None = None  # required of clients and members; the keeper keeps its progress in memory
    http_url: str = ""
    private_key_env: str = DEFAULT_KEY_ENV
    keystore: Path | None = None
    password_env: str = DEFAULT_PASSWORD_ENV
    password_file: Path | None = None
    max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES
    #: Kubo RPC store only: seconds to connect, send, or wait between received bytes.
    store_timeout_seconds: float = DEFAULT_STORE_TIMEOUT_SECONDS
    #: Kubo RPC store only: seconds the daemon may look for and send one blob, so a CID
    #: nobody serves costs at most this long.
    fetch_timeout_seconds: float = DEFAULT_FETCH_TIMEOUT_SECONDS
    #: Blocks an event's block must have on top of it before the agent handles it (0: at the
    #: head, right for a local dev chain; see the README for real networks).
    confirmations: int = 0


@dataclass(frozen=True)
class FederationSettings:
    """``[federation]``: what every node of one federation must agree on."""

    seed: int = 0
    fractional_bits: int = 16
    clip_norm: float = DEFAULT_CLIP_NORM
    max_clients: int = 1000
    max_samples: int = 10_000

    @property
    def quantization(self) -> QuantizationConfig:
        return QuantizationConfig(
            clip_norm=self.clip_norm,
            fractional_bits=self.fractional_bits,
            max_clients=self.max_clients,
            max_samples=self.max_samples,
        )


@dataclass(frozen=True)
class ClientSettings:
    """``[client]``: the client's task, its own data, how it trains, and (in a masked deployment)
    where its X25519 masking key is."""

    data: str
    index: int
    task: str = DEFAULT_TASK
    epochs: int = _TRAIN_DEFAULTS.epochs
    batch_size: int = _TRAIN_DEFAULTS.batch_size
    learning_rate: float = _TRAIN_DEFAULTS.lr
    options: Mapping[str, str] = field(default_factory=dict)
    masking_key_env: str = DEFAULT_MASKING_KEY_ENV
    masking_key_file: Path | None = None

    @property
    def training(self) -> Settings:
        """The settings ``train`` gets, before the round's seed is filled in."""
        return Settings(epochs=self.epochs, lr=self.learning_rate, batch_size=self.batch_size,
                        options=dict(self.options))


@dataclass(frozen=True)
class AggregatorSettings:
    """``[aggregator]``: where the member's X25519 key is and how long it waits for shares."""

    sealing_key_env: str = DEFAULT_SEALING_KEY_ENV
    sealing_key_file: Path | None = None
    share_wait_seconds: float = 3.0


@dataclass(frozen=True)
class KeeperSettings:
    """``[keeper]``: how often the keeper looks at the latest round, and whether it reopens a
    failed one (which needs the operator's key)."""

    interval_seconds: float = 2.0
    reopen_failed: bool = False


@dataclass(frozen=True)
class NodeConfig:
    """One agent's whole configuration; ``client``, ``aggregator`` or ``keeper`` is set, per ``role``."""

    path: Path
    role: Role
    node: NodeSettings
    federation: FederationSettings
    client: ClientSettings | None = None
    aggregator: AggregatorSettings | None = None
    keeper: KeeperSettings | None = None


def load_node_config(path: str | Path, *, role: Role) -> NodeConfig:
    """Read and validate the TOML file at ``path`` for an agent of ``role``."""
    path = Path(path)
    return parse_node_config(read_config_document(path), role=role, path=path)


def read_config_document(path: Path, what: str = "node config") -> dict[str, Any]:
    """The TOML document at ``path``; a file that cannot be read or parsed is one ConfigError."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def parse_node_config(document: Mapping[str, Any], *, role: Role, path: Path) -> NodeConfig:
    """Validate an already-parsed config document (the launcher builds these in memory too)."""
    if role not in ("client", "aggregator", "keeper"):
        raise ConfigError(f"{path}: unknown role {role!r}; expected 'client', 'aggregator' or 'keeper'")
    tables = ConfigTables(document, path)
    if role == "keeper":  # events, a clock and a key: no store, no checkpoint on disk, no federation settings
        tables.only({"node", "keeper"})
        config = NodeConfig(path=path, role=role, node=tables.parse("node", _keeper_node_settings),
                            federation=FederationSettings(),
                            keeper=tables.parse("keeper", _keeper_settings, required=False) or KeeperSettings())
        tables.raise_problems()
        return config
    tables.only({"node", "federation", role})
    config = NodeConfig(
        path=path,
        role=role,
        node=tables.parse("node", _node_settings),
        federation=tables.parse("federation", _federation_settings, required=False),
        client=tables.parse("client", _client_settings) if role == "client" else None,
        aggregator=tables.parse("aggregator", _aggregator_settings, required=False)
        if role == "aggregator"
        else None,
    )
    tables.raise_problems()
    return config


def check_ring_capacity(config: NodeConfig, modulus_bits: int) -> None:
    """Refuse, naming the file, a ``[federation]`` whose sums could wrap a masked deployment's
    2^modulus_bits ring: an agent checks it at start, not mid-round."""
    try:
        check_capacity(config.federation.quantization, modulus_bits=modulus_bits)
    except ConfigError as exc:
        raise ConfigError(f"{config.path}: [federation]: {exc}") from None


# ------------------------------------------------------------------------------ tables


class ConfigTables:
    """The top-level tables of one file, for error messages that name file and table.

    Every config file of the project is read through these (the keeper's too), so all of them
    refuse unknown tables and keys and report every problem at once.

    Problems are collected, not raised one by one: :meth:`raise_problems` reports every bad
    field of the file in one :class:`ConfigError` (a bad field reads as its default, or None,
    meanwhile, so the other fields are still checked).
    """

    def __init__(self, document: Mapping[str, Any], path: Path) -> None:
        self.document, self.path = document, path
        self.problems: list[str] = []

    def only(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.document) - allowed)
        if unknown:
            self.problems.append(f"unknown table(s) {unknown}; this role reads {sorted(allowed)}")

    def table(self, name: str, *, required: bool = True) -> ConfigTable | None:
        value = self.document.get(name)
        if value is None and not required:
            value = {}
        if not isinstance(value, dict):
            self.problems.append(f"missing the [{name}] table")
            return None
        return ConfigTable(value, self.path, name, self.problems)

    def parse(self, name: str, settings: Callable[[ConfigTable], Any], *, required: bool = True) -> Any:
        """``settings(table)``; a check that still raises is collected like the others."""
        table = self.table(name, required=required)
        if table is None:
            return None
        try:
            return settings(table)
        except ConfigError as exc:
            self.problems.append(str(exc).removeprefix(f"{self.path}: "))
            return None

    def raise_problems(self) -> None:
        if len(self.problems) == 1:
            raise ConfigError(f"{self.path}: {self.problems[0]}")
        if self.problems:
            raise ConfigError(f"{self.path}: {len(self.problems)} problems:\n"
                              + "\n".join(f"  {problem}" for problem in self.problems))


class ConfigTable:
    """Typed reads from one table; every read names the field on failure; unknown keys refused."""

    def __init__(self, values: dict[str, Any], path: Path, name: str, problems: list[str]) -> None:
        self.values, self.name, self.read, self.problems = values, f"[{name}]", set(), problems
        self.where = f"{path}: {self.name}"

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where} {key}: {message}")

    def report(self, key: str, message: str) -> None:
        """Record a bad field; the error listing all of them is raised once the file is read."""
        self.problems.append(f"{self.name} {key}: {message}")

    def get(self, key: str, default: Any, check: Callable[[Any], bool], expected: str) -> Any:
        """The value of ``key``; a missing or bad one is reported and reads as its default (or None)."""
        self.read.add(key)
        fallback = None if default is REQUIRED else default
        if key not in self.values:
            if default is REQUIRED:
                self.report(key, f"missing; expected {expected}")
            return fallback
        value = self.values[key]
        if isinstance(value, bool) or not check(value):
            self.report(key, f"expected {expected}, got {value!r:.80}")
            return fallback
        return value

    def text(self, key: str, default: Any = None) -> str | None:
        return self.get(key, default, lambda v: isinstance(v, str) and v != "", "a non-empty string")

    def path(self, key: str, default: Any = None) -> Path | None:
        value = self.text(key, default)
        return Path(value) if isinstance(value, str) else value

    def flag(self, key: str, default: bool) -> bool:
        """``true`` or ``false``; :meth:`get` refuses booleans, which TOML would let pass as numbers."""
        self.read.add(key)
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            self.report(key, f"expected true or false, got {value!r:.80}")
            return default
        return value

    def integer(self, key: str, default: Any, low: int, high: int) -> int:
        return self.get(key, default, lambda v: isinstance(v, int) and low <= v <= high, f"an integer in [{low}, {high}]")

    def number(self, key: str, default: Any, *, low: float = 0.0, low_inclusive: bool = False) -> float:
        def ok(v: Any) -> bool:
            return isinstance(v, (int, float)) and math.isfinite(v) and (v >= low if low_inclusive else v > low)

        bound = f">= {low}" if low_inclusive else f"> {low}"
        return float(self.get(key, default, ok, f"a finite number {bound}"))

    def done(self, *, unused: Iterable[str] = ()) -> None:
        """Refuse every key nothing read; ``unused`` keys are known, with no use to this reader."""
        unknown = sorted(set(self.values) - self.read - set(unused))
        if unknown:
            self.problems.append(f"{self.name}: unknown key(s) {unknown}; check their spelling")


#: A default that makes a key required: missing, it is reported.
REQUIRED = object()


# ---------------------------------------------------------------------------- sections


def _node_settings(table: ConfigTable) -> NodeSettings:
    """``[node]`` of a client or member: it follows events at ``rpc_url`` and keeps a store and a checkpoint."""
    rpc_url = _url(table, "rpc_url", table.text("rpc_url", REQUIRED), ("ws", "wss", "http", "https"))
    default_http = "http" + rpc_url[2:] if rpc_url.startswith("ws") else rpc_url
    http_url = _url(table, "http_url", table.text("http_url", default_http), ("http", "https"))
    return _common_node_settings(table, rpc_url=rpc_url, http_url=http_url,
                                 store=table.text("store", REQUIRED), state_dir=table.path("state_dir", REQUIRED))


def _keeper_node_settings(table: ConfigTable) -> NodeSettings:
    """``[node]`` of the keeper: it only polls, so ``http_url`` if given, else ``rpc_url``, with
    ws(s):// read as http(s):// (one port serves both on anvil and geth); it needs no store and
    no state folder, and accepts an agent's ``[node]`` as it is."""
    rpc_url = _polled_url(table, "rpc_url", table.text("rpc_url", None if "http_url" in table.values else REQUIRED))
    url = _polled_url(table, "http_url", table.text("http_url")) or rpc_url
    return _common_node_settings(table, rpc_url=url, http_url=url,
                                 store=table.text("store", ""), state_dir=table.path("state_dir"))


def _polled_url(table: ConfigTable, key: str, url: str | None) -> str:
    """``url`` as http(s)://, or "" when it is absent or reported."""
    if not url:
        return ""
    if url.startswith(("ws://", "wss://")):
        return "http" + url[2:]
    if not url.startswith(("http://", "https://")):
        table.report(key, "must start with http://, https://, ws:// or wss://")
        return ""
    return url


def _common_node_settings(table: ConfigTable, *, rpc_url: str, http_url: str, store: str,
                          state_dir: Path | None) -> NodeSettings:
    settings = NodeSettings(
        rpc_url=rpc_url,
        deployment=table.path("deployment", REQUIRED),
        store=store,
        state_dir=state_dir,
        http_url=http_url,
        private_key_env=table.text("private_key_env", DEFAULT_KEY_ENV),
        keystore=table.path("keystore"),
        password_env=table.text("password_env", DEFAULT_PASSWORD_ENV),
        password_file=table.path("password_file"),
        max_blob_bytes=table.integer("max_blob_bytes", DEFAULT_MAX_BLOB_BYTES, 1024, 2**40),
        store_timeout_seconds=table.number("store_timeout_seconds", DEFAULT_STORE_TIMEOUT_SECONDS),
        fetch_timeout_seconds=table.number("fetch_timeout_seconds", DEFAULT_FETCH_TIMEOUT_SECONDS),
        confirmations=table.integer("confirmations", 0, 0, MAX_CONFIRMATIONS),
    )
    table.done()
    return settings


def _url(table: ConfigTable, key: str, url: str | None, schemes: tuple[str, ...]) -> str:
    """``url``, or "" once it is reported (so http_url's default does not report it twice)."""
    if url and not url.startswith(tuple(f"{scheme}://" for scheme in schemes)):
        table.report(key, f"must start with {' or '.join(s + '://' for s in schemes)}")
        return ""
    return url or ""


def _federation_settings(table: ConfigTable) -> FederationSettings:
    defaults = FederationSettings()
    settings = FederationSettings(
        seed=table.integer("seed", defaults.seed, -(2**63), 2**63 - 1),
        fractional_bits=table.integer("fractional_bits", defaults.fractional_bits, 0, 60),
        clip_norm=table.number("clip_norm", defaults.clip_norm),
        max_clients=table.integer("max_clients", defaults.max_clients, 1, 2**40),
        max_samples=table.integer("max_samples", defaults.max_samples, 1, 2**40),
    )
    table.done()
    try:
        settings.quantization  # noqa: B018 - checks that sums cannot wrap around the field
    except ConfigError as exc:
        raise ConfigError(f"{table.where}: {exc}") from exc
    return settings


def _client_settings(table: ConfigTable) -> ClientSettings:
    d = _TRAIN_DEFAULTS
    settings = ClientSettings(
        task=table.text("task", DEFAULT_TASK),
        data=table.text("data", REQUIRED),
        index=table.integer("index", REQUIRED, 0, 2**31),
        epochs=table.integer("epochs", d.epochs, 1, 10_000),
        batch_size=table.integer("batch_size", d.batch_size, 1, 2**20),
        learning_rate=table.number("learning_rate", d.lr),
        options=_task_options(table),
        masking_key_env=table.text("masking_key_env", DEFAULT_MASKING_KEY_ENV),
        masking_key_file=table.path("masking_key_file"),
    )
    table.done()
    return settings


def _task_options(table: ConfigTable) -> dict[str, str]:
    """``[client.options]``: the task's own settings, each a string, number or boolean (read as text)."""
    options = table.get("options", {}, lambda v: isinstance(v, dict), "a table of key = value task settings")
    texts = {}
    for key, value in (options or {}).items():
        if isinstance(value, bool):
            texts[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            texts[key] = str(value)
        else:
            table.report(f"options.{key}", f"expected a string, number or boolean, got {value!r:.80}")
    return texts


def _keeper_settings(table: ConfigTable) -> KeeperSettings:
    """``[keeper]``: how often to look, and whether to reopen failed rounds."""
    interval = table.get("interval_seconds", 2.0, _is_interval, "a number of seconds in [0.1, 3600]")
    settings = KeeperSettings(interval_seconds=float(interval), reopen_failed=table.flag("reopen_failed", False))
    table.done()
    return settings


def _is_interval(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.1 <= value <= 3600


def _aggregator_settings(table: ConfigTable) -> AggregatorSettings:
    settings = AggregatorSettings(
        sealing_key_env=table.text("sealing_key_env", DEFAULT_SEALING_KEY_ENV),
        sealing_key_file=table.path("sealing_key_file"),
        share_wait_seconds=table.number("share_wait_seconds", 3.0, low_inclusive=True),
    )
    table.done()
    return settings
