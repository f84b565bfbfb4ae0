"""LocalStore on a real temporary directory: round trips, tampering, limits, concurrency."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from multiformats import CID

from fedtss.cid import compute_cid
from fedtss.errors import BlobNotFound, BlobTooLarge, CIDMismatch, ConfigError, StorageError
from fedtss.storage import LocalStore

MB = 1_000_000


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.mark.parametrize("size", [0, 1, 1000, 262_144, 262_145, MB])
def test_put_then_get_returns_the_same_bytes_under_the_kubo_cid(store: LocalStore, size: int) -> None:
    data = os.urandom(size)
    cid = store.put(data)
    assert cid == compute_cid(data)
    assert store.get(cid, max_bytes=size) == data
    assert store.has(cid)


def test_get_finds_a_blob_by_any_spelling_of_its_cid(store: LocalStore) -> None:
    cid = store.put(b"spelled differently")
    base58 = CID.decode(cid).set(base="base58btc").encode()
    assert base58 != cid
    assert store.get(base58, max_bytes=100) == b"spelled differently"


def test_get_refuses_a_blob_edited_on_disk(store: LocalStore) -> None:
    cid = store.put(b"an honest blob")
    store.path_of(cid).write_bytes(b"a forged blob!")  # same length, other bytes
    with pytest.raises(CIDMismatch, match=cid):
        store.get(cid, max_bytes=100)


def test_get_refuses_a_truncated_blob(store: LocalStore) -> None:
    data = os.urandom(300_000)
    cid = store.put(data)
    store.path_of(cid).write_bytes(data[:-1])
    with pytest.raises(CIDMismatch):
        store.get(cid, max_bytes=len(data))


def test_get_refuses_a_blob_over_the_limit_from_its_size_without_reading_it(store: LocalStore) -> None:
    cid = store.put(b"small")
    os.truncate(store.path_of(cid), 2**40)  # a sparse 1 TiB file: reading it would never finish
    with pytest.raises(BlobTooLarge, match="1099511627776 bytes"):
        store.get(cid, max_bytes=MB)


def test_get_accepts_a_blob_exactly_at_the_limit_and_refuses_one_byte_over(store: LocalStore) -> None:
    cid = store.put(b"x" * 100)
    assert store.get(cid, max_bytes=100) == b"x" * 100
    with pytest.raises(BlobTooLarge):
        store.get(cid, max_bytes=99)


@pytest.mark.parametrize("bad_limit", [-1, 1.5, None, True])
def test_get_rejects_a_size_limit_that_is_not_a_non_negative_int(store: LocalStore, bad_limit: object) -> None:
    cid = store.put(b"data")
    with pytest.raises(ConfigError, match="max_bytes"):
        store.get(cid, max_bytes=bad_limit)  # type: ignore[arg-type]


def test_missing_blob_raises_blob_not_found(store: LocalStore) -> None:
    absent = compute_cid(b"never stored")
    assert not store.has(absent)
    with pytest.raises(BlobNotFound, match=absent):
        store.get(absent, max_bytes=100)


def test_a_malformed_cid_is_a_storage_error_that_quotes_it(store: LocalStore) -> None:
    with pytest.raises(StorageError, match="not-a-cid"):
        store.get("not-a-cid", max_bytes=100)


def test_put_leaves_no_temporary_files(store: LocalStore) -> None:
    for index in range(5):
        store.put(index.to_bytes(4, "big"))
    assert list((store.root / "tmp").iterdir()) == []


def test_put_of_a_stored_blob_repairs_a_tampered_copy(store: LocalStore) -> None:
    cid = store.put(b"original")
    store.path_of(cid).write_bytes(b"tampered")
    assert store.put(b"original") == cid
    assert store.get(cid, max_bytes=100) == b"original"


def test_concurrent_writers_of_the_same_blob_and_readers_never_see_a_partial_blob(tmp_path: Path) -> None:
    """Writers race to store one multi-chunk blob while readers read it: every read is whole."""
    data = os.urandom(600_000)
    cid = LocalStore(tmp_path).put(data)
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        store = LocalStore(tmp_path)  # each agent opens the shared directory itself
        try:
            for _ in range(15):
                assert store.put(data) == cid
        except BaseException as error:  # noqa: BLE001 - reported to the main thread below
            errors.append(error)

    def read() -> None:
        store = LocalStore(tmp_path)
        try:
            while not stop.is_set():
                assert store.get(cid, max_bytes=len(data)) == data
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    writers = [threading.Thread(target=write) for _ in range(4)]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in writers + readers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert list((tmp_path / "tmp").iterdir()) == []
    assert LocalStore(tmp_path).get(cid, max_bytes=len(data)) == data


# ---------------------------------------------------------------- only regular files are served

def _get_within(store: LocalStore, cid: str, seconds: float = 5.0) -> BaseException | bytes:
    """``store.get`` in a daemon thread: a read that blocks (on a FIFO) fails the test, not hangs it."""
    outcome: list[BaseException | bytes] = []

    def read() -> None:
        try:
            outcome.append(store.get(cid, max_bytes=MB))
        except BaseException as error:  # noqa: BLE001 - returned to the test
            outcome.append(error)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"get({cid}) was still blocked after {seconds} s")
    return outcome[0]


def _planted(store: LocalStore, data: bytes) -> tuple[str, Path]:
    """The CID of ``data`` and the (empty) place where its blob would live."""
    cid = compute_cid(data)
    path = store.path_of(cid)
    path.parent.mkdir(parents=True, exist_ok=True)
    return cid, path


def test_get_refuses_a_symlink_even_to_the_right_bytes(store: LocalStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"the right bytes, outside the store")
    cid, path = _planted(store, outside.read_bytes())
    path.symlink_to(outside)
    outcome = _get_within(store, cid)
    assert isinstance(outcome, StorageError) and not isinstance(outcome, BlobNotFound)
    assert "symlink" in str(outcome)
    assert not store.has(cid)


def test_get_refuses_a_blob_under_a_symlinked_shard_folder(store: LocalStore, tmp_path: Path) -> None:
    data = b"reached through a symlinked folder"
    cid, path = _planted(store, data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / path.name).write_bytes(data)
    path.parent.rmdir()
    path.parent.symlink_to(elsewhere, target_is_directory=True)
    outcome = _get_within(store, cid)
    assert isinstance(outcome, StorageError) and not isinstance(outcome, BlobNotFound)
    assert not store.has(cid)


def test_get_refuses_a_fifo_at_once_instead_of_blocking(store: LocalStore) -> None:
    cid, path = _planted(store, b"a FIFO sits where this blob should be")
    os.mkfifo(path)
    outcome = _get_within(store, cid)
    assert isinstance(outcome, StorageError) and "FIFO" in str(outcome)
    assert not store.has(cid)


def test_get_refuses_a_device(store: LocalStore) -> None:
    cid, path = _planted(store, b"a device sits where this blob should be")
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    outcome = _get_within(store, cid)
    assert isinstance(outcome, StorageError) and "character device" in str(outcome)
    assert not store.has(cid)


def test_get_refuses_a_folder_where_a_blob_should_be(store: LocalStore) -> None:
    cid, path = _planted(store, b"a folder sits where this blob should be")
    path.mkdir()
    outcome = _get_within(store, cid)
    assert isinstance(outcome, StorageError) and "not a regular file (a folder)" in str(outcome)
    assert not store.has(cid)
