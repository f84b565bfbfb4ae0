"""The deployment configuration of the round contract: one typed place, validated at load.

A TOML file (``config/local.toml`` is the local default) is parsed by :func:`load_config`,
which refuses a bad value before any transaction is sent, with a :class:`ConfigError` that
names the field. :class:`RoundsConfig` mirrors the contract's ``IFedTSSRounds.Config``.

The file's tables: ``[deployer]`` (where the deployer key comes from), ``[rounds]`` (committee,
allowlist, limits, periods, and the optional ``check_period``: seconds members have to post
share checks after collection closes, and again complaints; 0, the default, turns them off;
Shamir mode only, below half the aggregation period), ``[aggregation]`` (the mode, fixed for the deployment's life; the
table may be left out for the default Shamir mode) and ``[model]`` (:func:`load_model_terms`)::

    [aggregation]
    mode = "masked"              # "shamir" (default): n sealed Shamir shares per client
                                 # "masked": one masked vector per client (fedtss.masking)
    modulus_bits = 48            # masked only: the ring Z_(2^b), b in 32, 40, 48, 56, 64 (default 48)
    client_keys = ["0x…", …]     # masked only: each client's X25519 public key, in [rounds] clients order
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from eth_utils import is_hex_address, to_checksum_address

from fedtss.errors import ConfigError, FormatError
from fedtss.formats import ModelLayout
from fedtss.masking import MODULUS_BITS_CHOICES
from fedtss.sealing import keypair_from_seed

__all__ = [
    "AGGREGATION_MODES",
    "DEFAULT_MODULUS_BITS",
    "DEV_SEALING_KEY_DOMAIN",
    "Aggregation",
    "AggregationModeName",
    "DeployerSettings",
    "Member",
    "RoundsConfig",
    "committee_warning",
    "dev_sealing_keypair",
    "load_config",
    "load_model_terms",
    "ModelTerms",
    "parse_rounds_config",
]

#: Dev-only rule for members' X25519 keys on a local chain:
#: private = sha256(DEV_SEALING_KEY_DOMAIN + 20 address bytes). Anyone can recompute these.
DEV_SEALING_KEY_DOMAIN = b"fedtss-dev-x25519:"
MAX_COMMITTEE = 255
MAX_TARGET_CLIENTS = 4096
MAX_ALLOWLIST = 2**16 - 1
#: Longest time limit, as in the contract: every deadline (block timestamp + period) must fit
#: in a uint64, or the contract could be deployed and then never start a round.
MAX_PERIOD = 2**32 - 1
_SEALING_KEY = re.compile(r"0x[0-9a-fA-F]{64}")
AggregationModeName = Literal["shamir", "masked"]
#: The names of ``IFedTSSRounds.AggregationMode`` in the config and the record, by enum value:
#: 0 ``ShamirShares`` is "shamir", 1 ``MaskedSum`` is "masked".
AGGREGATION_MODES: tuple[AggregationModeName, ...] = ("shamir", "masked")
#: The masked mode's ring when ``[aggregation]`` names none: 48 bits hold the default
#: federation's sums (fedtss.quantize.check_capacity) at 6 bytes a value.
DEFAULT_MODULUS_BITS = 48
_AGGREGATION_KEYS = ("mode", "modulus_bits", "client_keys")
_METRIC_NAME = re.compile(r"[A-Za-z0-9_.:/\-]{1,200}")


@dataclass(frozen=True)
class Member:
    """A committee member: its account and the X25519 public key clients seal its shares to."""

    address: str
    sealing_key: bytes


@dataclass(frozen=True)
class Aggregation:
    """How a deployment's clients hide their updates: ``IFedTSSRounds.AggregationMode`` and its ring.

    ``mode`` is "shamir" (n sealed Shamir shares per client, ``modulus_bits`` 0) or "masked"
    (one masked vector in Z_(2^modulus_bits) per client, see :mod:`fedtss.masking`).
    """

    mode: AggregationModeName = "shamir"
    modulus_bits: int = 0

    def __post_init__(self) -> None:
        if self.mode not in AGGREGATION_MODES:
            raise ConfigError(f"aggregation mode: must be {_choices(AGGREGATION_MODES)}, got {self.mode!r}")
        allowed = MODULUS_BITS_CHOICES if self.is_masked else (0,)
        if isinstance(self.modulus_bits, bool) or self.modulus_bits not in allowed:
            raise ConfigError(f"aggregation modulus_bits: must be {_choices(allowed)} in the {self.mode} mode, "
                              f"got {self.modulus_bits!r}")

    @property
    def is_masked(self) -> bool:
        return self.mode == "masked"

    @property
    def mode_index(self) -> int:
        """The ``IFedTSSRounds.AggregationMode`` value."""
        return AGGREGATION_MODES.index(self.mode)

    @classmethod
    def from_contract(cls, mode: int, modulus_bits: int) -> Aggregation:
        """The value of the contract's ``aggregation()`` view."""
        if not 0 <= mode < len(AGGREGATION_MODES):
            raise ConfigError(f"aggregation mode: the contract answers {mode}, which this version does not know")
        return cls(AGGREGATION_MODES[mode], modulus_bits)


@dataclass(frozen=True)
class RoundsConfig:
    """The contract's constructor configuration (``IFedTSSRounds.Config``).

    ``client_keys`` are the clients' X25519 public masking keys in allowlist order: one per
    client in the masked mode, none in the Shamir mode. ``check_period`` is the seconds members
    have to post share checks after collection closes, and again complaints (0: no checks).
    """

    committee: tuple[Member, ...]
    threshold: int
    clients: tuple[str, ...]
    min_clients: int
    target_clients: int
    collection_period: int
    aggregation_period: int
    aggregation: Aggregation = Aggregation()
    client_keys: tuple[bytes, ...] = ()
    check_period: int = 0

    def check_window(self, aggregation_deadline: int) -> tuple[int, int] | None:
        """The last seconds for checks and complaints of a round whose ``CollectionClosed`` named
        ``aggregation_deadline`` (what the contract's ``checkWindow`` answers while the round is
        Aggregating, and for any round after); None when the deployment has no checks."""
        if self.check_period == 0:
            return None
        closed_at = aggregation_deadline - self.aggregation_period
        return closed_at + self.check_period, closed_at + 2 * self.check_period

    def constructor_arg(self) -> tuple[Any, ...]:
        """The ``Config`` struct as web3 encodes it."""
        return (
            [m.address for m in self.committee],
            [m.sealing_key for m in self.committee],
            self.threshold,
            list(self.clients),
            self.min_clients,
            self.target_clients,
            self.collection_period,
            self.aggregation_period,
            self.aggregation.mode_index,
            self.aggregation.modulus_bits,
            list(self.client_keys),
            self.check_period,
        )

    def to_json(self) -> dict[str, Any]:
        """The form stored in the deployment record (and read back by :func:`parse_rounds_config`)."""
        return {
            "committee": [
                {"address": m.address, "sealing_key": "0x" + m.sealing_key.hex()} for m in self.committee
            ],
            "threshold": self.threshold,
            "clients": list(self.clients),
            "min_clients": self.min_clients,
            "target_clients": self.target_clients,
            "collection_period": self.collection_period,
            "aggregation_period": self.aggregation_period,
            "check_period": self.check_period,
            "aggregation": self.aggregation_table(),
        }

    def aggregation_table(self) -> dict[str, Any]:
        """The ``[aggregation]`` table of this config (the record's ``config.aggregation``)."""
        if not self.aggregation.is_masked:
            return {"mode": self.aggregation.mode}
        return {"mode": self.aggregation.mode, "modulus_bits": self.aggregation.modulus_bits,
                "client_keys": ["0x" + key.hex() for key in self.client_keys]}


@dataclass(frozen=True)
class DeployerSettings:
    """Where the deployer key comes from when ``FEDTSS_PRIVATE_KEY`` is not set."""

    keystore: Path | None = None
    dev_private_key: str | None = None


def dev_sealing_keypair(address: str) -> tuple[bytes, bytes]:
    """The dev-only X25519 key pair of ``address`` (see :data:`DEV_SEALING_KEY_DOMAIN`)."""
    seed = hashlib.sha256(DEV_SEALING_KEY_DOMAIN + bytes.fromhex(_address(address, "address")[2:])).digest()
    return keypair_from_seed(seed)


def committee_warning(committee_size: int, threshold: int) -> str | None:
    """What a committee of n members with threshold t cannot survive, when n < t + 2; else None.

    Members reconstruct from m >= t shares with error correction, which locates
    floor((m - t) / 2) wrong shares: correcting one wrong member needs n >= t + 2 shares.
    The deployment is still valid (the contract accepts any 2 <= t <= n); this says what it risks.
    """
    n, t = committee_size, threshold
    if n >= t + 2:
        return None
    if n == t:
        consequence = ("every member's share is needed, so one member offline stalls every round, and one "
                       "wrong share cannot even be detected: all members reconstruct the same wrong model")
    else:
        consequence = ("a wrong share is detected but cannot be told from the right ones, so the round "
                       "fails when one member posts a wrong share (reopen it with `fedtss reopen`)")
    return (f"a committee of n={n} with threshold t={t} cannot correct a single wrong member "
            f"(that needs n >= t + 2 = {t + 2}): {consequence}; add members or lower t")


def load_config(path: Path) -> tuple[RoundsConfig, DeployerSettings]:
    """Parse and validate a deployment TOML file."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no deployment config at {path}: pass --config FILE (config/local.toml is the "
                          "local example)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read deployment config {path}: {exc}") from exc
    rounds = data.get("rounds")
    if not isinstance(rounds, dict):
        raise ConfigError(f"{path}: missing the [rounds] table")
    if "aggregation" in rounds:
        raise ConfigError("rounds.aggregation: the aggregation mode is a top-level [aggregation] table, "
                          "not part of [rounds]")
    if "aggregation" in data:
        rounds = {**rounds, "aggregation": data["aggregation"]}
    return parse_rounds_config(rounds), _deployer_settings(data.get("deployer", {}), Path(path))


@dataclass(frozen=True)
class ModelTerms:
    """What a deployment fixes about the model: its layout, and the metrics clients evaluate it by
    (their federated evaluation is shared with the update; none when ``metrics`` is empty)."""

    layout: ModelLayout
    metrics: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"tensors": self.layout.to_json(), "metrics": list(self.metrics)}

    @classmethod
    def from_json(cls, table: object, where: str) -> ModelTerms:
        """Parse a deployment config's ``[model]`` table or a record's ``model`` (ConfigError naming ``where``)."""
        if not isinstance(table, dict) or "tensors" not in table or not set(table) <= {"tensors", "metrics"}:
            raise ConfigError(f"{where}: [model] must hold tensors = [{{ name = ..., shape = [...] }}, ...] and "
                              "optionally metrics = [...] (`fedtss task layout TASK` prints it)")
        metrics = table.get("metrics", [])
        if (not isinstance(metrics, list) or len(set(metrics)) != len(metrics)
                or not all(isinstance(m, str) and _METRIC_NAME.fullmatch(m) for m in metrics)):
            raise ConfigError(f"{where}: [model] metrics must be a list of distinct names of 1-200 characters of "
                              f"[A-Za-z0-9_.:/-], got {metrics!r:.80}")
        try:
            return cls(ModelLayout.from_json(table["tensors"]), tuple(sorted(metrics)))
        except FormatError as exc:
            raise ConfigError(f"{where}: [model] tensors: {exc}") from exc


def load_model_terms(path: Path) -> ModelTerms | None:
    """The ``[model]`` table of a deployment TOML, or None when it has none::

        [model]
        tensors = [{ name = "0.weight", shape = [64, 64] }, ...]   # the layout every agent checks
        metrics = ["accuracy", "loss"]                             # federated evaluation (optional)
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read deployment config {path}: {exc}") from exc
    return None if "model" not in data else ModelTerms.from_json(data["model"], str(path))


def _deployer_settings(deployer: Any, path: Path) -> DeployerSettings:
    if not isinstance(deployer, dict):
        raise ConfigError(f"{path}: deployer must be a table ([deployer]), got a {type(deployer).__name__}")
    for field in ("keystore", "dev_private_key"):
        value = deployer.get(field)
        if value is not None and (not isinstance(value, str) or not value):
            # The value may be a key: name the field and its type, never the value.
            raise ConfigError(f"deployer.{field}: expected a non-empty string, got {type(value).__name__}")
    keystore = deployer.get("keystore")
    return DeployerSettings(
        keystore=(path.parent / keystore) if keystore else None,
        dev_private_key=deployer.get("dev_private_key"),
    )


def parse_rounds_config(data: dict[str, Any]) -> RoundsConfig:
    """Check every field of a ``[rounds]`` table (or a record's ``config``) and build the config.

    Its ``aggregation`` entry, if any, is the ``[aggregation]`` table (:func:`load_config` puts
    it there; a record keeps it there); without one the deployment is in the Shamir mode.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"rounds: expected a table of settings, got {type(data).__name__}")
    committee = tuple(_member(entry, i) for i, entry in enumerate(_list(data, "committee")))
    aggregation, client_keys = _aggregation(data.get("aggregation", {}))
    config = RoundsConfig(
        committee=committee,
        threshold=_int(data, "threshold"),
        clients=tuple(_address(a, f"clients[{i}]") for i, a in enumerate(_list(data, "clients"))),
        min_clients=_int(data, "min_clients"),
        target_clients=_int(data, "target_clients"),
        collection_period=_int(data, "collection_period"),
        aggregation_period=_int(data, "aggregation_period"),
        aggregation=aggregation,
        client_keys=client_keys,
        check_period=_int(data, "check_period") if "check_period" in data else 0,
    )
    _check_committee(config)
    _check_clients(config)
    if aggregation.is_masked and len(client_keys) != len(config.clients):
        raise ConfigError(f"aggregation.client_keys: the masked mode needs one X25519 public key per client of "
                          f"rounds.clients, in that order: {len(config.clients)} clients, {len(client_keys)} keys")
    for name in ("collection_period", "aggregation_period"):
        if not 0 < getattr(config, name) <= MAX_PERIOD:
            raise ConfigError(f"{name}: must be 1 to {MAX_PERIOD} seconds, got {getattr(config, name)}")
    _check_check_period(config)
    return config


def _check_check_period(config: RoundsConfig) -> None:
    """As the contract's constructor: 0, or in the Shamir mode less than half the aggregation period."""
    period = config.check_period
    if period < 0:
        raise ConfigError(f"check_period: must be 0 (no checks) or a positive number of seconds, got {period}")
    if period and config.aggregation.is_masked:
        raise ConfigError(f"check_period: must be 0 in the masked mode (checks are for Shamir shares), got {period}")
    if period and 2 * period >= config.aggregation_period:
        raise ConfigError(f"check_period: checks and then complaints must end before aggregation does "
                          f"(2 * check_period < aggregation_period={config.aggregation_period}), got {period}")


def _check_committee(config: RoundsConfig) -> None:
    n = len(config.committee)
    if not 2 <= n <= MAX_COMMITTEE:
        raise ConfigError(f"committee: needs 2 to {MAX_COMMITTEE} members, got {n}")
    if config.threshold < 2:
        raise ConfigError(f"threshold: must be at least 2 (one member alone would see the sum), got {config.threshold}")
    if config.threshold > n:
        raise ConfigError(f"threshold: t={config.threshold} exceeds the committee size n={n}")
    _require_unique([m.address for m in config.committee], "committee")


def _check_clients(config: RoundsConfig) -> None:
    if config.min_clients < 2:
        raise ConfigError(
            f"min_clients: must be at least 2 (an aggregate of one client is its update), got {config.min_clients}"
        )
    if config.min_clients > config.target_clients:
        raise ConfigError(f"min_clients: {config.min_clients} exceeds target_clients {config.target_clients}")
    if config.target_clients > MAX_TARGET_CLIENTS:
        raise ConfigError(f"target_clients: at most {MAX_TARGET_CLIENTS}, got {config.target_clients}")
    if not config.min_clients <= len(config.clients) <= MAX_ALLOWLIST:
        raise ConfigError(
            f"clients: the allowlist has {len(config.clients)} entries; it needs at least "
            f"min_clients={config.min_clients} and at most {MAX_ALLOWLIST}"
        )
    _require_unique(config.clients, "clients")


def _require_unique(addresses: list[str] | tuple[str, ...], field: str) -> None:
    seen: set[str] = set()
    for i, address in enumerate(addresses):
        if address in seen:
            raise ConfigError(f"{field}[{i}]: duplicate address {address}")
        seen.add(address)


def _aggregation(table: Any) -> tuple[Aggregation, tuple[bytes, ...]]:
    """The ``[aggregation]`` table: the mode, and in the masked mode its ring and the clients' keys."""
    if not isinstance(table, dict):
        raise ConfigError(f"aggregation: expected a table ([aggregation]), got {type(table).__name__}")
    unknown = sorted(set(table) - set(_AGGREGATION_KEYS))
    if unknown:
        raise ConfigError(f"aggregation: unknown key(s) {unknown}; the table reads {_choices(_AGGREGATION_KEYS)}")
    mode = table.get("mode", "shamir")
    if mode not in AGGREGATION_MODES:
        raise ConfigError(f"aggregation.mode: must be {_choices(AGGREGATION_MODES)}, got {mode!r}")
    if mode != "masked":
        for key in ("modulus_bits", "client_keys"):
            if key in table:
                raise ConfigError(f"aggregation.{key}: only for mode = \"masked\" (the Shamir mode has no ring and "
                                  f"no client keys); remove it or set mode = \"masked\"")
        return Aggregation(), ()
    bits = table.get("modulus_bits", DEFAULT_MODULUS_BITS)
    if isinstance(bits, bool) or bits not in MODULUS_BITS_CHOICES:
        raise ConfigError(f"aggregation.modulus_bits: must be {_choices(MODULUS_BITS_CHOICES)}, got {bits!r}")
    keys = table.get("client_keys")
    if not isinstance(keys, list):
        raise ConfigError("aggregation.client_keys: the masked mode needs a list of one X25519 public key "
                          f"(0x-prefixed hex) per client of rounds.clients, got {keys!r:.80}")
    return Aggregation("masked", bits), tuple(_x25519_key(key, f"aggregation.client_keys[{i}]")
                                             for i, key in enumerate(keys))


def _choices(values: tuple[object, ...]) -> str:
    """``"a", "b" or "c"`` (strings quoted as in TOML)."""
    shown = [f'"{v}"' if isinstance(v, str) else str(v) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _member(entry: Any, i: int) -> Member:
    field = f"committee[{i}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{field}: expected a table with address and sealing_key")
    address = _address(entry.get("address"), f"{field}.address")
    return Member(address=address, sealing_key=_x25519_key(entry.get("sealing_key"), f"{field}.sealing_key"))


def _x25519_key(key: Any, field: str) -> bytes:
    """A 0x-prefixed 32-byte non-zero X25519 public key (a member's sealing key, a client's masking key)."""
    if not isinstance(key, str):
        raise ConfigError(f"{field}: missing (a 0x-prefixed 32-byte X25519 public key)")
    raw = bytes.fromhex(key[2:]) if _SEALING_KEY.fullmatch(key) else b""
    if raw == b"" or raw == bytes(32):
        raise ConfigError(f"{field}: must be 32 non-zero bytes as 0x-prefixed hex, got {key!r}")
    if _is_low_order(raw):
        raise ConfigError(f"{field}: {key} is a low-order X25519 point: every key exchange with it gives "
                          "zero, so no share could be sealed or seed derived with it; generate a real key "
                          "(fedtss keys sealing / fedtss keys masking)")
    return raw


def _is_low_order(public_key: bytes) -> bool:
    """Whether X25519 with ``public_key`` gives the all-zero secret for any private key (the
    scalar is clamped to a multiple of the cofactor, so one exchange tells), which
    ``cryptography`` refuses: clients would fail at every round."""
    try:
        X25519PrivateKey.from_private_bytes(bytes([9]) * 32).exchange(X25519PublicKey.from_public_bytes(public_key))
    except ValueError:
        return True
    return False


def _address(value: Any, field: str) -> str:
    if not isinstance(value, str) or not is_hex_address(value):
        raise ConfigError(f"{field}: not a 20-byte hex address: {value!r}")
    if int(value, 16) == 0:
        raise ConfigError(f"{field}: the zero address is not allowed")
    digits = value[-40:]
    if digits not in (digits.lower(), digits.upper()) and to_checksum_address(value)[-40:] != digits:
        # Mixed case is an EIP-55 checksum; a wrong one is a typo that would lock the account out.
        raise ConfigError(f"{field}: {value} fails its EIP-55 checksum (mixed-case hex), so it is probably "
                          "mistyped: copy the address again (all-lowercase hex skips the check)")
    return to_checksum_address(value)


def _int(data: dict[str, Any], field: str) -> int:
    value = data.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{field}: expected an integer, got {value!r}")
    return value


def _list(data: dict[str, Any], field: str) -> list[Any]:
    value = data.get(field)
    if not isinstance(value, list):
        raise ConfigError(f"{field}: expected a list, got {value!r}")
    return value
