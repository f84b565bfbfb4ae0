"""End to end: clients packed several to a process (agents.pack) run a round as separate processes do."""

from __future__ import annotations

import pytest

from agents.config import load_node_config

from .conftest import ROUND_TIMEOUT
from .test_client_set import _assert_is_plaintext_fedavg_of

pytestmark = pytest.mark.slow


def test_clients_packed_two_to_a_process_each_submit_with_their_own_key_and_the_round_is_fedavg(
        small_federation) -> None:
    federation, tracker = small_federation(rounds=1, clients_per_process=2)
    assert sorted(federation.processes) == ["clients-0", "clients-1", "keeper", "member-1", "member-2", "member-3"]
    keys = {load_node_config(federation.config_path(name), role="client").node.private_key_env
            for name in federation.client_names}
    assert keys == {"FEDTSS_PRIVATE_KEY_CLIENT_0", "FEDTSS_PRIVATE_KEY_CLIENT_1", "FEDTSS_PRIVATE_KEY_CLIENT_2"}

    tracker.wait_until(lambda t: t.completed, timeout=ROUND_TIMEOUT)
    record = tracker.records[1]
    assert record.state == "Finalized" and record.submitted == 3 and record.participants == 3
    _assert_is_plaintext_fedavg_of(federation, [0, 1, 2], record.model_cid)
    pack_log = federation.log_path("clients-0").read_text(errors="replace")
    for client in federation.clients[:2]:
        assert f"role=client address={client.address} round=1 event=RoundOpened action=train_and_submit" in pack_log
    assert federation.running_clients() == 3
    assert not federation.exited()
