"""The ``ContentStore`` interface every backend implements, and the checks they share.

A blob is named by its CID (:func:`fedtss.cid.compute_cid`), so a reader never has to trust
the store: every backend re-hashes what it returns and raises :class:`CIDMismatch` if the
bytes are not the ones the CID names. Every ``get`` takes a size limit because a CID
announced on chain may point at a blob of any size; backends refuse a larger blob before
reading it whole (:class:`BlobTooLarge`).

:func:`open_store` turns a location from a config file into a backend: a directory path or a
``file://`` URL is a :class:`~fedtss.storage.local.LocalStore`; an ``http(s)://host:port``
URL is the Kubo RPC API of an IPFS daemon, a :class:`~fedtss.storage.kubo.KuboStore`.
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from fedtss.cid import compute_cid, parse_cid
from fedtss.errors import BlobTooLarge, CIDMismatch, ConfigError, FormatError, StorageError

__all__ = ["ContentStore", "open_store", "canonical_cid", "check_size_limit", "verify_blob"]


@runtime_checkable
class ContentStore(Protocol):
    """Bytes in, CID out; CID in, verified bytes out."""

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its CID (base32, CID v1)."""
        ...

    def get(self, cid: str, *, max_bytes: int, timeout: float | None = None) -> bytes:
        """Return the blob named ``cid``, verified against it.

        ``timeout``: seconds the store may spend finding the blob before it gives up with
        :class:`BlobNotFound` (``None``: the store's own default; a local store never waits).
        Raises :class:`BlobNotFound`, :class:`BlobTooLarge` (more than ``max_bytes``) or
        :class:`CIDMismatch`; all three are :class:`StorageError`.
        """
        ...

    def has(self, cid: str) -> bool:
        """Whether the store holds ``cid`` now, without waiting for it to arrive."""
        ...


def canonical_cid(cid: str) -> str:
    """Return the base32 form of ``cid``, or raise :class:`StorageError` if it is not one of ours.

    Callers may hold a CID in any multibase (js-ipfs answers in base58btc); backends key
    blobs by one spelling so that the same blob is found whatever spelling is asked for.
    """
    try:
        return parse_cid(cid)
    except FormatError as error:
        raise StorageError(f"cannot look up {cid!r:.80}: {error}") from error


def check_size_limit(max_bytes: int) -> None:
    """Refuse a size limit that is not a non-negative int: a typo here would disable the check."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ConfigError(f"max_bytes must be a non-negative int, got {max_bytes!r}")


def verify_blob(cid: str, data: bytes, *, source: str) -> None:
    """Raise :class:`CIDMismatch` unless ``data`` hashes to ``cid`` (both compared decoded)."""
    actual = compute_cid(data)
    if actual != canonical_cid(cid):
        raise CIDMismatch(
            f"blob {cid} from {source} does not match its CID: its {len(data)} bytes hash to "
            f"{actual} (tampered, truncated or corrupted); it was not used"
        )


def too_large(cid: str, size: int | None, max_bytes: int, *, source: str) -> BlobTooLarge:
    """The error for a blob over the caller's limit; ``size`` is None when only a lower bound is known."""
    found = f"{size} bytes" if size is not None else "more bytes"
    return BlobTooLarge(f"blob {cid} from {source} has {found}, over the limit of {max_bytes} bytes "
                        f"set for it; raise max_bytes if such a blob is expected")


def open_store(location: str | os.PathLike[str], *, timeout: float | None = None,
               fetch_timeout: float | None = None) -> ContentStore:
    """Open the store at ``location``: a directory path, ``file://`` URL, or Kubo RPC URL.

    ``timeout`` and ``fetch_timeout`` (seconds, see :class:`~fedtss.storage.kubo.KuboStore`)
    apply to a Kubo RPC store only; ``None`` keeps its default.
    """
    from fedtss.storage.kubo import KuboStore
    from fedtss.storage.local import LocalStore

    text = os.fspath(location)
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme in ("http", "https"):
        limits = {"timeout": timeout, "fetch_timeout": fetch_timeout}
        return KuboStore(text, **{name: value for name, value in limits.items() if value is not None})
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"a file:// store must be on this machine, not on {parts.netloc!r} ({text})")
        return LocalStore(unquote(parts.path))
    if scheme:
        raise ConfigError(f"unknown store location {text!r}: give a directory, file://PATH or "
                          f"http://HOST:PORT (the Kubo RPC API)")
    if not text:
        raise ConfigError("the store location is empty: give a directory, file://PATH or http://HOST:PORT")
    return LocalStore(text)
