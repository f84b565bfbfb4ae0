"""The embedded store: a directory of blobs named by their CIDs, shared by one machine's agents.

Layout, like kubo's flatfs ``next-to-last/2`` sharding so no directory grows huge::

    <root>/blobs/<2 characters before the CID's last>/<base32 CID>
    <root>/tmp/                       partial writes, renamed into blobs/ when complete

A write goes to a unique temporary file, is fsynced, then renamed onto its final name, so a
reader sees either no blob or the whole blob, never part of one. Two agents writing the
same blob at once both rename identical bytes onto the same name: whichever lands last
wins and nothing is lost. The directory is not trusted: every read checks the size limit
from the file's size before reading, then re-hashes the bytes and refuses a blob that does
not match its CID. Only CIDs and sizes are logged, never contents.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fedtss._files import write_atomically
from fedtss.cid import compute_cid
from fedtss.errors import BlobNotFound, ConfigError, StorageError
from fedtss.storage.base import canonical_cid, check_size_limit, too_large, verify_blob

__all__ = ["LocalStore"]

log = logging.getLogger(__name__)

_FILE_MODE = 0o644
"""Blobs are public, content-addressed bytes (shares are sealed before they are stored)."""


class LocalStore:
    """A :class:`~fedtss.storage.base.ContentStore` on a local directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs"
        self._tmp = self.root / "tmp"
        try:
            self._blobs.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"cannot use {self.root} as a blob store: {error}") from error

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path_of(self, cid: str) -> Path:
        """Where the blob named ``cid`` lives (whether or not it is there)."""
        name = canonical_cid(cid)
        return self._blobs / name[-3:-1] / name

    def put(self, data: bytes) -> str:
        """Store ``data`` atomically and return its CID."""
        cid = compute_cid(data)
        path = self.path_of(cid)
        try:
            write_atomically(path, data, mode=_FILE_MODE, temp_dir=self._tmp)
        except OSError as error:
            raise StorageError(f"cannot write blob {cid} ({len(data)} bytes) in {self.root}: {error}") \
                from error
        log.debug("stored blob %s (%d bytes) in %s", cid, len(data), self.root)
        return cid

    def get(self, cid: str, *, max_bytes: int) -> bytes:
        """Return the blob named ``cid`` after checking its size, then its hash."""
        check_size_limit(max_bytes)
        path = self.path_of(cid)
        source = f"local store {self.root}"
        try:
            with open(path, "rb") as blob:
                size = os.fstat(blob.fileno()).st_size
                if size > max_bytes:
                    raise too_large(cid, size, max_bytes, source=source)
                data = blob.read(max_bytes + 1)  # the file may have grown since fstat
        except FileNotFoundError as error:
            raise BlobNotFound(f"blob {cid} is not in the local store {self.root}") from error
        except OSError as error:
            raise StorageError(f"cannot read blob {cid} from {path}: {error}") from error
        if len(data) > max_bytes:
            raise too_large(cid, None, max_bytes, source=source)
        verify_blob(cid, data, source=source)
        log.debug("read blob %s (%d bytes) from %s", cid, len(data), self.root)
        return data

    def has(self, cid: str) -> bool:
        """Whether a file for ``cid`` exists (its content is checked only by :meth:`get`)."""
        return self.path_of(cid).is_file()
