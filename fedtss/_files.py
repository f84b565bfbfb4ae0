"""Small file helpers for the parts of fedtss that sit at the disk's edge (private).

The local blob store, the agents' checkpoint and the key writers all write files that must
never be seen half-written (a blob announced on chain, a checkpoint read after a crash, a
keystore read by another process); the key loaders read files that may hold secrets.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from fedtss.errors import ConfigError

__all__ = ["open_private_log", "read_secret_file", "write_atomically"]


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600, temp_dir: Path | None = None,
                     exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half.

    The bytes go to a temporary file (in ``temp_dir``, which must be on the same file system,
    or else beside ``path``), are fsynced, and the file is renamed over ``path``; the folder
    is fsynced too, so the rename survives a power cut. With ``exclusive`` the temporary file
    is hard-linked to ``path`` instead, which fails with FileExistsError if ``path`` exists,
    even if it appeared a moment ago (a key file must never replace another).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent if temp_dir is None else Path(temp_dir)
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(temp_name, path)
            os.unlink(temp_name)
        else:
            os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def open_private_log(path: Path) -> BinaryIO:
    """``path`` opened for appending, readable by its owner only (0600, even if it existed).

    For a child process's output: anvil's start-up banner lists every dev account's private
    key, and a log is no place to decide what else a process may print. A symlink at
    ``path`` is refused rather than followed.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab")


def read_secret_file(path: Path, what: str) -> str:
    """The stripped text of a file holding a secret, refused if others may read it (like ssh)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the {what} file {path} is readable by other users: run `chmod 600 {path}`")
    return text.strip()


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
