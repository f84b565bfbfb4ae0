"""End to end across IPFS nodes: no shared store, every blob a member reads comes by bitswap.

Three js-ipfs nodes on loopback stand for three hosts, peered with each other and with no one
else: the clients store on host 1, members 1 and 3 on host 2, member 2 on host 3. A member's
node holds a client's sealed share only if it fetched it from host 1, so finding every client's
shares in the members' nodes' local blocks shows the round ran on content that moved between
nodes (js-ipfs keeps no bitswap statistics to read instead).
"""

from __future__ import annotations

import json

import httpx
import pytest

from fedtss.chain import UpdateSubmitted
from fedtss.cid import cid_to_parts
from fedtss.formats import parse_manifest

from .conftest import ROUND_TIMEOUT

pytestmark = pytest.mark.slow


def _local_blocks(api_url: str) -> set[bytes]:
    """The digests of every block a node holds (``/api/v0/refs/local`` names them as raw CIDs)."""
    response = httpx.post(f"{api_url}/api/v0/refs/local", timeout=30)
    response.raise_for_status()
    return {cid_to_parts(json.loads(line)["Ref"])[1] for line in response.text.splitlines() if line.strip()}


def test_two_rounds_finalize_across_three_ipfs_hosts_with_every_share_moved_by_bitswap(small_federation) -> None:
    federation, tracker = small_federation(ipfs_hosts=3, rounds=2)
    tracker.wait_until(lambda t: t.completed, timeout=3 * ROUND_TIMEOUT)
    assert [r.state for r in tracker.records.values()] == ["Finalized", "Finalized"]
    assert [federation.host_of(n) for n in ("client-0", "member-1", "member-2", "member-3")] == [0, 1, 2, 1]
    for name in federation.member_names + federation.client_names:
        assert federation.store_location(name) == federation.ipfs_nodes[federation.host_of(name)].api_url

    host_blocks = [_local_blocks(node.api_url) for node in federation.ipfs_nodes]
    for round_ in (1, 2):
        for event in tracker.round_events(round_, UpdateSubmitted):
            manifest = parse_manifest(federation.store.get(event.manifest_cid, max_bytes=1 << 20))
            for member, share_cid in enumerate(manifest.share_cids, start=1):
                host = federation.host_of(f"member-{member}")
                assert cid_to_parts(share_cid)[1] in host_blocks[host], (round_, event.client, member)
