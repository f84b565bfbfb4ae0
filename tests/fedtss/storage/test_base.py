"""open_store picks the backend a location names, and refuses locations it cannot use."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedtss.errors import ConfigError
from fedtss.storage import ContentStore, KuboStore, LocalStore, open_store


def test_a_directory_path_opens_a_local_store(tmp_path: Path) -> None:
    store = open_store(tmp_path / "blobs")
    assert isinstance(store, LocalStore)
    assert isinstance(store, ContentStore)
    assert store.root == tmp_path / "blobs"


def test_a_file_url_opens_a_local_store_at_its_path(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/with%20space")
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "with space"


def test_an_http_url_opens_a_kubo_store_on_the_rpc_api() -> None:
    store = open_store("http://127.0.0.1:5001/api/v0/", timeout=3.0)
    assert isinstance(store, KuboStore)
    assert isinstance(store, ContentStore)
    assert store.api_url == "http://127.0.0.1:5001"
    store.close()


@pytest.mark.parametrize("location", ["ftp://example.org/blobs", "file://otherhost/blobs", ""])
def test_a_location_no_backend_serves_is_a_config_error(location: str) -> None:
    with pytest.raises(ConfigError):
        open_store(location)
