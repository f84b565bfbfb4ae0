"""orchestration.explorer.chainview's pure rendering of contract arguments."""

from __future__ import annotations

from fedtss.chain import ClientSet, ThresholdReached, event_arguments
from orchestration.explorer.chainview import client_set_indices, render_arguments


def test_included_clients_words_render_as_their_submission_indices_across_words():
    included = ClientSet.of([0, 3, 255, 256, 700])
    event = ThresholdReached(round=1, included_clients=included, proposal_deadline=9,
                             block_number=2, tx_hash="0x" + "ab" * 32, log_index=0)
    rendered = dict(render_arguments(event_arguments(event)))
    assert rendered["includedClients (indices)"] == "[0, 3, 255, 256, 700]"
    assert client_set_indices(included.words()) == (0, 3, 255, 256, 700)


def test_a_decoded_call_s_words_render_too():
    # A decoded submitAggregateShare gives the words as a tuple of ints.
    rendered = dict(render_arguments({"round": 1, "includedClients": (0b101, 1)}))
    assert rendered["includedClients (indices)"] == "[0, 2, 256]"
