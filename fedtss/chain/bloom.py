"""A block header's logs bloom: which addresses and topics its logs may hold (yellow paper, 4.3.1).

Every log of a block sets three of the 2,048 bits of its header's ``logsBloom`` for its address
and three for each of its topics. A bit that is clear proves that no log of the block has that
address or topic; all three set only says that one may. An event follower uses it to skip the
``eth_getLogs`` of a block that cannot hold an event it handles (:class:`~fedtss.chain.events.EventSource`):
a pack's clients handle one event a round out of about 25 blocks, and every skipped block is
one request, its answer and its decoding fewer, on a machine whose cores are what bounds a round.
"""

from __future__ import annotations

from collections.abc import Iterable

from eth_utils import keccak

__all__ = ["BLOOM_BYTES", "bloom_bits", "may_contain", "may_contain_any"]

#: The size of a header's ``logsBloom``.
BLOOM_BYTES = 256


def bloom_bits(item: bytes) -> tuple[int, int, int]:
    """The three bit positions (0..2047) an address (20 bytes) or a topic (32 bytes) sets: the
    low 11 bits of the first three byte pairs of its Keccak-256 hash."""
    digest = keccak(item)
    return tuple(((digest[i] << 8) | digest[i + 1]) & 2047 for i in (0, 2, 4))  # type: ignore[return-value]


def may_contain(bloom: bytes, bits: tuple[int, int, int]) -> bool:
    """Whether ``bloom`` has every bit of ``bits`` set (bit k is bit k % 8 of byte 255 - k // 8:
    the bloom is one big-endian 2,048-bit number). False proves the item is in no log."""
    if len(bloom) != BLOOM_BYTES:
        raise ValueError(f"a logs bloom has {BLOOM_BYTES} bytes, got {len(bloom)}")
    return all(bloom[BLOOM_BYTES - 1 - bit // 8] >> (bit % 8) & 1 for bit in bits)


def may_contain_any(bloom: bytes, items: Iterable[tuple[int, int, int]]) -> bool:
    """Whether ``bloom`` may hold at least one of ``items`` (each given by its :func:`bloom_bits`)."""
    return any(may_contain(bloom, bits) for bits in items)
