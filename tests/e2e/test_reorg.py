"""End to end on anvil, one OS process per agent: a round survives a reorganization of its
``CollectionClosed``.

The round first finalizes as usual. Then ``anvil_reorg`` replaces every block from the one
holding ``CollectionClosed`` on by another branch that re-mines only the closing update: the
aggregate shares, the votes and the finalization are gone, and the round is back in
Aggregating at the same head height. Every member's checkpoint names a block the chain no
longer has, so each goes back to the fork point, handles the re-mined ``CollectionClosed``
and the round finalizes again, to the same model (the inputs are the same).
"""

from __future__ import annotations

import time

import pytest

from fedtss.chain import CollectionClosed, RoundState
from orchestration.tracker import RoundTracker
from tests.fixtures.reorg import reorganize_from

from .conftest import ROUND_TIMEOUT

pytestmark = pytest.mark.slow


def test_a_round_whose_collection_closed_was_reorganized_away_finalizes_on_the_new_branch(small_federation) -> None:
    federation, tracker = small_federation(rounds=1)
    tracker.wait_until(lambda t: t.completed, timeout=ROUND_TIMEOUT)
    # Every member must have handled the block that will be lost (it logs the event it handled):
    # a member still behind it when the branch changes has nothing to rewind (under load the third
    # member can lag the t that finalize).
    _wait_until_every_member_logged(federation, "round=1 event=CollectionClosed")
    first_model = tracker.records[1].model_cid
    (closed,) = tracker.round_events(1, CollectionClosed)

    reorganize_from(federation.chain.w3, closed.block_number)
    assert federation.contract.round_info(1).state is RoundState.Aggregating
    assert federation.contract.round_info(1).shares == 0

    again = RoundTracker(federation, evaluate_models=False)  # reads the new branch from the deploy block
    again.wait_until(lambda t: t.completed, timeout=ROUND_TIMEOUT)
    record = again.records[1]
    assert record.state == "Finalized" and record.participants == 3
    assert record.model_cid == first_model
    (reclosed,) = again.round_events(1, CollectionClosed)
    assert reclosed.block_number == closed.block_number and reclosed.tx_hash == closed.tx_hash
    # t of the 3 members finalize the round; the third may notice the new branch a moment later
    # (a reorganization at the same height wakes a subscriber only with the next block).
    _wait_until_every_member_logged(federation, "the chain reorganized")


def _wait_until_every_member_logged(federation, text: str) -> None:
    """Wait (up to ROUND_TIMEOUT) until every member's log holds ``text``; fail naming those without it."""

    def missing() -> list[str]:
        return [name for name in federation.member_names
                if text not in federation.log_path(name).read_text(encoding="utf-8")]

    deadline = time.monotonic() + ROUND_TIMEOUT
    while missing() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not missing(), f"{missing()} never logged {text!r}"
