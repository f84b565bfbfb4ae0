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

Only regular files are served. Anyone who can write under the root could plant a symlink (to
a file outside it, or a loop), a FIFO (whose open or read blocks until a writer comes) or a
device where a blob should be, so :meth:`LocalStore.get` walks ``blobs/<shard>/<name>`` one
component at a time without following symlinks, opens the blob non-blocking, and checks the
*opened* descriptor is a regular file before reading: what was checked is what is read.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
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

    def get(self, cid: str, *, max_bytes: int, timeout: float | None = None) -> bytes:
        """Return the blob named ``cid`` after checking its size, then its hash.

        ``timeout`` is accepted for the :class:`ContentStore` interface: a local read never
        waits for a blob to arrive.
        """
        check_size_limit(max_bytes)
        path = self.path_of(cid)
        source = f"local store {self.root}"
        try:
            with os.fdopen(self._open_blob(cid, path), "rb") as blob:
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
        """Whether a regular file for ``cid`` exists (its content is checked only by :meth:`get`)."""
        path = self.path_of(cid)
        try:
            return stat.S_ISDIR(os.lstat(path.parent).st_mode) and stat.S_ISREG(os.lstat(path).st_mode)
        except OSError:
            return False

    def _open_blob(self, cid: str, path: Path) -> int:
        """A descriptor on the regular file at ``path``, reached without following any symlink.

        Each component below ``blobs/`` is opened relative to the descriptor of the one above
        with ``O_NOFOLLOW``, so nothing can be swapped in between a check and the open; the
        blob is opened ``O_NONBLOCK`` (a FIFO then opens at once instead of waiting for a
        writer) and its type is checked on the open descriptor.
        """
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptors: list[int] = []
        try:
            descriptors.append(os.open(self._blobs, flags | os.O_DIRECTORY))
            descriptors.append(os.open(path.parent.name, flags | os.O_DIRECTORY, dir_fd=descriptors[-1]))
            blob = os.open(path.name, flags | os.O_NONBLOCK, dir_fd=descriptors[-1])
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):  # a symlink, or a file where a folder should be
                raise StorageError(f"refusing blob {cid}: {path} or a folder above it in the local store "
                                   f"is a symlink or not a folder") from error
            raise
        finally:
            for descriptor in descriptors:
                os.close(descriptor)
        try:
            mode = os.fstat(blob).st_mode
            if not stat.S_ISREG(mode):
                raise StorageError(f"refusing blob {cid}: {path} is not a regular file "
                                   f"({_describe_file_type(mode)})")
            os.set_blocking(blob, True)
        except BaseException:
            os.close(blob)
            raise
        return blob


def _describe_file_type(mode: int) -> str:
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
             stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a folder"}
    return next((name for is_kind, name in kinds.items() if is_kind(mode)), f"file type {stat.S_IFMT(mode):o}")
