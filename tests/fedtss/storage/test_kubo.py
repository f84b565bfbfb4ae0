"""KuboStore against real daemons: js-ipfs always, kubo when `ipfs` is on PATH.

Three tests at the end plug a lying daemon in as an httpx MockTransport: a real daemon
cannot be made to serve wrong bytes, an endless blob, or a wrong CID, so those cases are
mocked, and only those.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from multiformats import CID

from fedtss.cid import compute_cid
from fedtss.errors import BlobNotFound, BlobTooLarge, CIDMismatch, StorageError, StoreUnavailable
from fedtss.storage import KuboStore, LocalStore
from fedtss.storage.kubo import IMPORT_PARAMS

MB = 1_000_000


@pytest.fixture
def store(ipfs_api_url: str) -> Iterator[KuboStore]:
    with KuboStore(ipfs_api_url, fetch_timeout=0.5, lookup_timeout=0.3) as kubo_store:
        yield kubo_store


@pytest.mark.parametrize("size", [0, 100, MB])
def test_put_then_get_returns_the_same_bytes_under_the_local_cid(store: KuboStore, size: int) -> None:
    data = os.urandom(size)
    cid = store.put(data)
    assert cid == compute_cid(data)
    assert store.get(cid, max_bytes=size) == data


def test_a_multi_chunk_blob_gets_the_cid_the_daemon_itself_reports(ipfs_api_url: str) -> None:
    """Ask the daemon directly, in its own multibase, and compare decoded CIDs."""
    data = os.urandom(MB)
    params = {key: value for key, value in IMPORT_PARAMS.items() if key != "cid-base"}
    answer = httpx.post(f"{ipfs_api_url}/api/v0/add", params=params, timeout=30,
                        files={"file": ("blob", data, "application/octet-stream")}).json()
    reported = CID.decode(answer["Hash"])
    assert reported == CID.decode(compute_cid(data))
    assert reported.codec.name == "dag-pb"  # four 256 KiB leaves under one UnixFS node


def test_get_stops_at_the_size_limit(store: KuboStore) -> None:
    cid = store.put(os.urandom(MB))
    with pytest.raises(BlobTooLarge, match=cid):
        store.get(cid, max_bytes=MB - 1)
    assert len(store.get(cid, max_bytes=MB)) == MB  # the connection pool still works after


def test_missing_cid_raises_blob_not_found_within_the_fetch_timeout(store: KuboStore) -> None:
    absent = compute_cid(b"no daemon holds this " + os.urandom(16))
    started = time.monotonic()
    with pytest.raises(BlobNotFound, match=absent):
        store.get(absent, max_bytes=100)
    assert time.monotonic() - started < 5.0


def test_has_answers_from_local_blocks_without_waiting(store: KuboStore) -> None:
    cid = store.put(b"present")
    absent = compute_cid(b"absent " + os.urandom(16))
    started = time.monotonic()
    assert store.has(cid)
    assert not store.has(absent)
    assert time.monotonic() - started < 5.0


def test_pin_keeps_a_stored_blob_and_refuses_a_missing_one(store: KuboStore) -> None:
    cid = store.put(os.urandom(300_000))
    store.pin(cid)
    with pytest.raises(BlobNotFound):
        store.pin(compute_cid(b"absent " + os.urandom(16)))


def test_a_blob_put_via_kubo_has_the_same_cid_as_in_the_local_store(store: KuboStore, tmp_path: Path) -> None:
    data = os.urandom(700_000)
    local = LocalStore(tmp_path)
    kubo_cid = store.put(data)
    fetched = store.get(kubo_cid, max_bytes=len(data))
    assert local.put(fetched) == kubo_cid
    assert local.get(kubo_cid, max_bytes=len(data)) == data


def test_an_unreachable_daemon_is_a_storage_error_naming_its_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    url = f"http://127.0.0.1:{port}"
    with KuboStore(url, timeout=2.0) as unreachable:
        with pytest.raises(StorageError, match=url):
            unreachable.put(b"data")
        with pytest.raises(StorageError, match=url):
            unreachable.get(compute_cid(b"data"), max_bytes=10)


def test_a_refused_connection_is_store_unavailable_but_a_slow_answer_is_not() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    with KuboStore(f"http://127.0.0.1:{port}", timeout=2.0) as refused:
        with pytest.raises(StoreUnavailable, match="is the daemon running"):
            refused.get(compute_cid(b"data"), max_bytes=10)

    def too_slow(request: httpx.Request) -> httpx.Response:  # a real daemon cannot be made slow on demand
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(StorageError, match="in time") as slow:
        _lying_daemon(httpx.MockTransport(too_slow)).get(compute_cid(b"data"), max_bytes=10)
    assert not isinstance(slow.value, StoreUnavailable)


# --- a lying daemon (httpx MockTransport): cases a real daemon cannot be made to produce ---

def _lying_daemon(handler: httpx.MockTransport) -> KuboStore:
    return KuboStore("http://daemon.invalid:5001", transport=handler)


def test_bytes_that_do_not_match_their_cid_are_refused() -> None:
    cid = compute_cid(b"the real blob")
    store = _lying_daemon(httpx.MockTransport(lambda request: httpx.Response(200, content=b"a fake blob!!")))
    with pytest.raises(CIDMismatch, match=cid):
        store.get(cid, max_bytes=100)


def test_an_oversized_blob_is_cut_off_while_streaming() -> None:
    sent: list[int] = []

    def endless() -> Iterator[bytes]:  # 13 MB: "endless" next to the 1 MB limit, finite if ignored
        for _ in range(200):
            sent.append(1)
            yield b"\0" * 65_536

    store = _lying_daemon(httpx.MockTransport(lambda request: httpx.Response(200, content=endless())))
    with pytest.raises(BlobTooLarge):
        store.get(compute_cid(b"anything"), max_bytes=MB)
    assert len(sent) <= MB // 65_536 + 2  # it stopped reading right after the limit


def test_a_daemon_that_reports_another_cid_on_add_is_refused() -> None:
    wrong = compute_cid(b"something else")
    answer = httpx.MockTransport(lambda request: httpx.Response(200, json={"Name": "blob", "Hash": wrong}))
    with pytest.raises(StorageError, match="did not import with"):
        _lying_daemon(answer).put(b"our blob")
