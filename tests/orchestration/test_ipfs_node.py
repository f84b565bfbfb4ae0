"""The js-ipfs node launcher: one daemon per repository, restartable after a crash."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from fedtss.cid import cid_to_parts
from fedtss.errors import ConfigError, StorageError
from fedtss.storage import KuboStore
from orchestration.ipfs_node import IpfsNode, JsIpfsNode, start_peered_nodes


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


# ------------------------------------------------------------------ online, peered nodes


def test_peered_nodes_move_a_blob_by_bitswap_and_dial_only_each_other(tmp_path: Path) -> None:
    """Two online nodes on loopback: a blob added to one is fetched from the other within seconds,
    and neither is connected to anything but the other."""
    nodes = start_peered_nodes(tmp_path, 2)
    try:
        blob = os.urandom(1 << 20)
        with KuboStore(nodes[0].api_url) as first, KuboStore(nodes[1].api_url, fetch_timeout=30.0) as second:
            cid = first.put(blob)
            assert second.get(cid, max_bytes=2 << 20) == blob
        for node, other in ((nodes[0], nodes[1]), (nodes[1], nodes[0])):
            peers = httpx.post(f"{node.api_url}/api/v0/swarm/peers", timeout=10).json().get("Peers") or []
            assert {p["Peer"] for p in peers} == {other.identity()[0]}
            config = httpx.post(f"{node.api_url}/api/v0/config/show", timeout=10).json()
            assert all(a.startswith("/ip4/127.0.0.1/") for a in config["Addresses"]["Swarm"])
        # The second node holds the blob's blocks now, and only bitswap could have brought them
        # (js-ipfs keeps no bitswap statistics: its counters stay at zero).
        # refs/local names blocks by multihash (as raw CIDs), so compare digests.
        local = httpx.post(f"{nodes[1].api_url}/api/v0/refs/local", timeout=10).text.splitlines()
        assert cid_to_parts(cid)[1] in {cid_to_parts(json.loads(line)["Ref"])[1] for line in local if line}
    finally:
        for node in nodes:
            node.stop()


def test_a_swarm_port_outside_the_tcp_range_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="swarm port"):
        JsIpfsNode(tmp_path, swarm_port=70000)


def test_a_node_that_cannot_listen_fails_at_once_with_libp2ps_error_not_a_timeout(tmp_path: Path) -> None:
    """js-ipfs prints a fatal libp2p error and then neither exits nor serves: start() must say so."""

    class UnreachableSwarm(JsIpfsNode):
        def _offline_config(self, config: dict[str, object]) -> dict[str, object]:
            patched = super()._offline_config(config)
            patched["Addresses"] = {**patched["Addresses"], "Swarm": ["/ip4/192.0.2.1/tcp/4001"]}  # not ours
            return patched

    node = UnreachableSwarm(tmp_path, swarm_port=0, startup_timeout=60.0)
    started = time.monotonic()
    with pytest.raises(StorageError, match="failed to start: .*listen"):
        node.start()
    assert time.monotonic() - started < 30
    assert node._process is None  # stopped, its repo lock released


def test_a_swarm_host_that_is_not_an_ipv4_address_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="swarm host"):
        JsIpfsNode(tmp_path, swarm_port=0, swarm_host="/ip4/0.0.0.0")
