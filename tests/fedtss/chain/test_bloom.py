"""The logs bloom against anvil's: every address and topic of a block's logs is in its header's
bloom (the property an event source relies on to skip a block), and items of no log mostly are not."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedtss.chain.bloom import BLOOM_BYTES, bloom_bits, may_contain, may_contain_any


def bloom_of(items: list[bytes]) -> bytes:
    """A bloom built bit by bit as the yellow paper says, for the property test below."""
    value = 0
    for item in items:
        for bit in bloom_bits(item):
            value |= 1 << bit
    return value.to_bytes(BLOOM_BYTES, "big")


def test_every_address_and_topic_of_a_blocks_logs_is_in_the_bloom_anvil_computed(chain, deployed):
    deployed.start_training()
    block_number = deployed.submit(0)
    block = chain.w3.eth.get_block(block_number)
    logs = chain.w3.eth.get_logs({"blockHash": block["hash"]})
    assert logs, "the block should hold the submission's log"
    bloom = bytes(block["logsBloom"])
    for log in logs:
        assert may_contain(bloom, bloom_bits(bytes.fromhex(log["address"][2:])))
        for topic in log["topics"]:
            assert may_contain(bloom, bloom_bits(bytes(topic)))
    # Topics of the contract's other events are (with this block's few logs) not in it.
    absent = [t for name, t in deployed.rounds.event_topics.items() if name not in ("UpdateSubmitted",)]
    assert not may_contain_any(bloom, [bloom_bits(bytes.fromhex(t[2:])) for t in absent])


@given(st.lists(st.binary(min_size=20, max_size=32), min_size=1, max_size=20), st.binary(min_size=32, max_size=32))
def test_a_bloom_holds_each_item_it_was_built_from_and_an_empty_bloom_holds_none(items, other):
    bloom = bloom_of(items)
    assert all(may_contain(bloom, bloom_bits(item)) for item in items)
    assert not may_contain(bytes(BLOOM_BYTES), bloom_bits(other))
    assert may_contain_any(bloom, [bloom_bits(other), bloom_bits(items[0])])


def test_the_bit_positions_are_those_of_the_yellow_paper():
    # keccak256(b"") = c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470:
    # byte pairs c5d2, 4601, 86f7, low 11 bits each.
    assert bloom_bits(b"") == (0xc5d2 & 2047, 0x4601 & 2047, 0x86f7 & 2047)
    bloom = bloom_of([b""])
    assert bloom[BLOOM_BYTES - 1 - (0xc5d2 & 2047) // 8] == 1 << ((0xc5d2 & 2047) % 8)


def test_a_bloom_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="256 bytes, got 255"):
        may_contain(bytes(255), bloom_bits(os.urandom(20)))
