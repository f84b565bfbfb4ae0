"""Where an agent's keys come from: an encrypted keystore file or an environment variable.

Two keys per agent at most:

- the **Ethereum account** that signs its transactions: an eth-account keystore (v3 JSON,
  scrypt) whose password is in a file or an environment variable, or the raw private key in
  ``FEDTSS_PRIVATE_KEY`` (the variable's name is configurable);
- for a committee member, the **X25519 sealing key** that opens the shares clients seal to
  it: 32 bytes as hex, in ``FEDTSS_SEALING_KEY`` or in a file;
- for a client of a deployment in the masked mode (``IFedTSSRounds.AggregationMode.MaskedSum``),
  the **X25519 masking key** whose public half is registered in the contract and from which its
  pairwise masks are derived: 32 bytes as hex, in a file or in ``FEDTSS_MASKING_KEY``.

Never from a command-line argument (any user can read another's ``argv`` in ``ps``), and
never in a log line: errors name the file or variable to fix, not its content, and no
object here shows a key in its ``repr``. Setting both sources of one key is an error rather
than a silent choice, so an exported variable cannot override a node's configured keystore.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedtss._files import read_secret_file, write_atomically
from fedtss.errors import ConfigError
from fedtss.sealing import public_key_from_private

__all__ = [
    "DEFAULT_KEY_ENV",
    "DEFAULT_PASSWORD_ENV",
    "DEFAULT_MASKING_KEY_ENV",
    "DEFAULT_SEALING_KEY_ENV",
    "MaskingKey",
    "SealingKey",
    "X25519KeyPair",
    "account_from_key",
    "load_account",
    "load_masking_key",
    "load_sealing_key",
    "new_account_key",
    "new_x25519_private_key",
    "write_keystore",
    "write_masking_key",
    "write_sealing_key",
]

DEFAULT_KEY_ENV = "FEDTSS_PRIVATE_KEY"
DEFAULT_PASSWORD_ENV = "FEDTSS_KEYSTORE_PASSWORD"
DEFAULT_SEALING_KEY_ENV = "FEDTSS_SEALING_KEY"
DEFAULT_MASKING_KEY_ENV = "FEDTSS_MASKING_KEY"
#: eth-account's default scrypt cost (2**18): about a second to decrypt, on purpose.
DEFAULT_SCRYPT_N = 2**18


@dataclass(frozen=True)
class X25519KeyPair:
    """An X25519 key pair; ``repr`` shows the public key only."""

    private_key: bytes = field(repr=False)
    public_key: bytes

    def __repr__(self) -> str:
        return f"{type(self).__name__}(public_key=0x{self.public_key.hex()})"


class SealingKey(X25519KeyPair):
    """A committee member's X25519 key pair: clients seal its shares to the public key."""


class MaskingKey(X25519KeyPair):
    """A client's X25519 key pair in the masked mode: the public key is registered in the
    contract (``clientKeys``), and every pair of clients derives its pairwise mask seed from it."""


def load_account(
    *,
    keystore: Path | None = None,
    password_file: Path | None = None,
    password_env: str = DEFAULT_PASSWORD_ENV,
    key_env: str = DEFAULT_KEY_ENV,
    environ: Mapping[str, str] | None = None,
) -> LocalAccount:
    """The signing account: decrypted from ``keystore``, or from the variable ``key_env``.

    The keystore's password comes from ``password_file`` if given, else from the variable
    ``password_env``.
    """
    environ = os.environ if environ is None else environ
    raw_key = environ.get(key_env)
    if keystore is not None and raw_key:
        raise ConfigError(f"both the keystore {keystore} and the variable {key_env} are set: unset {key_env}")
    if keystore is not None:
        return _decrypt_keystore(Path(keystore), _keystore_password(password_file, password_env, environ))
    if raw_key:
        return account_from_key(raw_key, f"the variable {key_env}")
    raise ConfigError(f"no account key: name a keystore file in the node config, or set {key_env}")


def new_account_key() -> bytes:
    """A fresh random Ethereum private key (32 bytes, from the OS's CSPRNG): for
    :func:`write_keystore`, never to be printed or logged."""
    return bytes(Account.create().key)


def write_keystore(path: Path, private_key: bytes | str, password: str, *, scrypt_n: int = DEFAULT_SCRYPT_N,
                   overwrite: bool = True) -> str:
    """Encrypt ``private_key`` into a keystore file at ``path`` (mode 0600); return its address.

    ``scrypt_n`` below the default is only for tests: it makes the password cheap to guess.
    With ``overwrite=False`` an existing file (even one created meanwhile) raises ConfigError.
    """
    if not password:
        raise ConfigError(f"refusing to write the keystore {path} with an empty password")
    account = account_from_key(private_key, "the private key to store")
    keyfile = Account.encrypt(account.key, password, kdf="scrypt", iterations=scrypt_n)
    _write_key_file(Path(path), json.dumps(keyfile).encode(), overwrite)
    return account.address


def load_sealing_key(
    *,
    key_file: Path | None = None,
    key_env: str = DEFAULT_SEALING_KEY_ENV,
    environ: Mapping[str, str] | None = None,
) -> SealingKey:
    """The member's X25519 key pair from ``key_file`` (hex, mode 0600) or the variable ``key_env``."""
    return _load_x25519(SealingKey, "sealing key", key_file, key_env, os.environ if environ is None else environ)


def write_sealing_key(path: Path, private_key: bytes, *, overwrite: bool = True) -> SealingKey:
    """Write a 32-byte X25519 private key as hex to ``path`` (mode 0600); return the key pair.

    With ``overwrite=False`` an existing file (even one created meanwhile) raises ConfigError.
    """
    return _write_x25519(SealingKey, "sealing key", Path(path), private_key, overwrite)


def load_masking_key(
    *,
    key_file: Path | None = None,
    key_env: str = DEFAULT_MASKING_KEY_ENV,
    environ: Mapping[str, str] | None = None,
) -> MaskingKey:
    """The client's X25519 masking key pair from ``key_file`` (hex, mode 0600) or the variable ``key_env``."""
    return _load_x25519(MaskingKey, "masking key", key_file, key_env, os.environ if environ is None else environ)


def write_masking_key(path: Path, private_key: bytes, *, overwrite: bool = True) -> MaskingKey:
    """Write a client's 32-byte X25519 masking key as hex to ``path`` (mode 0600); return the key pair.

    With ``overwrite=False`` an existing file (even one created meanwhile) raises ConfigError.
    """
    return _write_x25519(MaskingKey, "masking key", Path(path), private_key, overwrite)


def new_x25519_private_key() -> bytes:
    """A fresh random X25519 private key (32 bytes from the OS's CSPRNG): for
    :func:`write_masking_key` or :func:`write_sealing_key`, never to be printed or logged."""
    return os.urandom(32)


def account_from_key(key: bytes | str, source: str) -> LocalAccount:
    """The account of a raw private key (hex or bytes); ``source`` names where it came from
    in the error, which never echoes the key."""
    try:
        return Account.from_key(key.strip() if isinstance(key, str) else key)
    except (ValueError, TypeError):
        # The library's message can echo key material: never chain it into ours.
        raise ConfigError(f"{source} is not a 32-byte hex private key") from None


# ------------------------------------------------------------------------------ internals


def _write_key_file(path: Path, data: bytes, overwrite: bool) -> None:
    try:
        write_atomically(path, data, exclusive=not overwrite)
    except OSError as exc:
        if isinstance(exc, FileExistsError) and path.exists():
            raise ConfigError(f"{path} exists: a key file is never overwritten (move it away first)") from None
        raise ConfigError(f"cannot write the key file {path}: {exc.strerror}") from None


def _keystore_password(password_file: Path | None, password_env: str, environ: Mapping[str, str]) -> str:
    if password_file is not None:
        return read_secret_file(Path(password_file), "keystore password")
    password = environ.get(password_env)
    if not password:
        raise ConfigError(f"the keystore needs a password: set {password_env} or name a password file")
    return password


def _decrypt_keystore(path: Path, password: str) -> LocalAccount:
    try:
        keyfile = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the keystore file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"the keystore file {path} is not JSON") from exc
    try:
        return Account.from_key(Account.decrypt(keyfile, password))
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"the keystore file {path} is not an Ethereum keystore (v3 JSON)") from exc
    except ValueError as exc:
        # eth-keyfile says "MAC mismatch" for a wrong password; nothing key-derived is echoed.
        raise ConfigError(f"cannot decrypt the keystore file {path}: wrong password? ({exc})") from exc


_Pair = TypeVar("_Pair", bound=X25519KeyPair)


def _load_x25519(kind: type[_Pair], what: str, key_file: Path | None, key_env: str,
                 environ: Mapping[str, str]) -> _Pair:
    raw = environ.get(key_env)
    if key_file is not None and raw:
        raise ConfigError(f"both the {what} file {key_file} and the variable {key_env} are set: unset {key_env}")
    if key_file is not None:
        return _x25519_from_hex(kind, read_secret_file(Path(key_file), what), f"the file {key_file}")
    if raw:
        return _x25519_from_hex(kind, raw, f"the variable {key_env}")
    raise ConfigError(f"no {what}: name a {what} file in the node config, or set {key_env}")


def _write_x25519(kind: type[_Pair], what: str, path: Path, private_key: bytes, overwrite: bool) -> _Pair:
    key = _x25519_from_bytes(kind, private_key, f"the {what} to store")
    _write_key_file(path, (key.private_key.hex() + "\n").encode(), overwrite)
    return key


def _x25519_from_hex(kind: type[_Pair], text: str, source: str) -> _Pair:
    try:
        raw = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        raise ConfigError(f"{source} is not hex (expected 64 hex digits, an X25519 private key)") from None
    return _x25519_from_bytes(kind, raw, source)


def _x25519_from_bytes(kind: type[_Pair], raw: bytes, source: str) -> _Pair:
    if len(raw) != 32 or raw == bytes(32):
        raise ConfigError(f"{source} must hold 32 non-zero bytes (64 hex digits), got {len(raw)} bytes")
    return kind(private_key=bytes(raw), public_key=public_key_from_private(raw))
