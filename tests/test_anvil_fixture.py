"""The session chain's clock: anvil's evm_revert winds it back, and the `chain` fixture moves it up again."""

from __future__ import annotations

import time

from tests.fixtures.anvil import AnvilNode, keep_up_with_the_wall_clock


def _pending_lag(anvil: AnvilNode) -> int:
    return int(anvil.w3.eth.get_block("pending")["timestamp"]) - int(time.time())


def test_after_a_revert_the_fixture_puts_the_session_chain_back_on_the_wall_clock(anvil: AnvilNode) -> None:
    # Earlier tests may have moved the session chain ahead (increase_time outside a snapshot).
    keep_up_with_the_wall_clock(anvil.node)
    before = _pending_lag(anvil)
    snapshot = anvil.node.snapshot()
    time.sleep(3)
    anvil.node.revert(snapshot)
    assert _pending_lag(anvil) <= before - 2  # what anvil does: its clock goes back with the state
    keep_up_with_the_wall_clock(anvil.node)
    assert _pending_lag(anvil) >= -1  # never behind the wall clock again
