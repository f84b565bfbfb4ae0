"""The js-ipfs node launcher: one daemon per repository, restartable after a crash."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from fedtss.errors import ConfigError, StorageError
from fedtss.storage import KuboStore
from orchestration.ipfs_node import IpfsNode, JsIpfsNode


def test_the_node_listens_on_loopback_and_dials_no_one(jsipfs_node: IpfsNode) -> None:
    assert jsipfs_node.api_url.startswith("http://127.0.0.1:")
    peers = httpx.post(f"{jsipfs_node.api_url}/api/v0/swarm/peers", timeout=10).json()
    assert not peers.get("Peers")
    config = httpx.post(f"{jsipfs_node.api_url}/api/v0/config/show", timeout=10).json()
    assert config["Bootstrap"] == []
    assert config["Addresses"]["Swarm"] == []
    assert config["Addresses"]["Delegates"] == []


def test_a_second_node_on_a_served_repository_is_refused(jsipfs_node: IpfsNode) -> None:
    with pytest.raises(StorageError, match="already serves"):
        JsIpfsNode(jsipfs_node.state_dir).start()
    assert httpx.post(f"{jsipfs_node.api_url}/api/v0/version", timeout=10).status_code == 200


def test_a_port_outside_the_tcp_range_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="port"):
        JsIpfsNode(tmp_path, port=70000)


def test_a_killed_node_restarts_on_its_repository_with_its_blobs(tmp_path: Path) -> None:
    """SIGKILL leaves js-ipfs's lock and api file behind; start() clears them and the blob survives."""
    node = JsIpfsNode(tmp_path)
    with KuboStore(node.start()) as store:
        cid = store.put(b"kept across a crash")
    os.kill(node._process.pid, signal.SIGKILL)  # type: ignore[union-attr]
    node._process.wait()  # type: ignore[union-attr]
    assert (node.repo_dir / "repo.lock").exists()
    node._process = None
    try:
        with KuboStore(node.start(), fetch_timeout=5.0) as store:
            assert store.get(cid, max_bytes=100) == b"kept across a crash"
    finally:
        node.stop()
    assert not (node.repo_dir / "api").exists()
