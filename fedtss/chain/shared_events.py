"""One event follower for the many agents of one process (a pack of clients).

Each agent follows the contract from its own checkpoint (:func:`~fedtss.chain.events.run_handlers`).
N agents that each run an :class:`~fedtss.chain.events.EventSource` hold N connections, hear
every new head N times and read every block's logs N times: on a chain that mines a block per
transaction, a round of N clients costs about N^2 ``eth_getLogs`` (a million at 1,000 clients,
which is what bounded the 1,000-client run). A :class:`SharedEventSource` reads each block once
and hands the same :class:`~fedtss.chain.events.EventBatch` to every agent::

    shared = SharedEventSource(EventSource.from_deployment(url, deployment), subscribers=len(agents))
    await asyncio.gather(*(run_handlers(shared, handle_of[a], checkpoint_of[a]) for a in agents))

It has :meth:`EventSource.batches`'s interface, so :func:`run_handlers` and everything it
guarantees (order, per-block checkpoints, rewinds after a reorganization) are unchanged.

Sharing never changes what an agent is delivered, only how often the node is asked:

- The one upstream stream starts once ``subscribers`` agents have asked for batches (those that
  go alone from the start count too), from the oldest checkpoint of those that wait for it, and
  with that checkpoint's remembered blocks (so it notices a reorganization of them, as the agent
  alone would).
- An agent whose checkpoint is the stream's start, with the same hash, is delivered every batch.
  One whose checkpoint is further on (a pack restarted after its agents had got to different
  blocks) waits until the stream reaches its block: if the stream saw the same hash there, the
  agent's handled past is the stream's and it is delivered from the next block on; otherwise (a
  different hash, no hash to compare, the stream went back to a fork point first, or the chain
  ends before the agent's block: it got shorter) it *goes alone*, following the chain with its
  own stream from its own checkpoint, exactly as without sharing.
- An agent that asks after the stream started, or asks for batches only up to a block
  (``until_block``), goes alone from the start.
- An error that ends the upstream stream (anything but a lost connection, which the stream
  survives itself) ends every agent's stream with that error.

Each agent has its own unbounded queue: one that is busy (training) falls behind without
holding up the others; the batches are small (the events of a few blocks). When the stream goes
back to a fork point, what an agent still has queued past it is dropped before the new branch is
queued, so a busy agent is never handed blocks the stream already knows are gone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from fedtss.chain.checkpoint import BlockRef
from fedtss.chain.events import EventBatch, EventSource

__all__ = ["SharedEventSource"]


class _GoAlone:
    """The queue item that tells a subscriber to follow the chain with its own stream."""


_GO_ALONE = _GoAlone()
_Item = EventBatch | _GoAlone | BaseException


def _hash_at(recent: Sequence[BlockRef], block: int) -> str | None:
    return next((b.hash for b in recent if b.number == block), None)


def _through(batch: EventBatch, block: int) -> EventBatch:
    """The part of ``batch`` up to ``block`` (still on the chain after a rewind to ``block``)."""
    return EventBatch(tuple(e for e in batch.events if e.block_number <= block), batch.first_block, block,
                      {n: h for n, h in batch.block_hashes.items() if n <= block})


def _after(batch: EventBatch, block: int) -> EventBatch:
    """The part of ``batch`` after ``block``."""
    return EventBatch(tuple(e for e in batch.events if e.block_number > block), block + 1, batch.last_block,
                      {n: h for n, h in batch.block_hashes.items() if n > block}, at_head=batch.at_head)


@dataclass
class _Subscriber:
    """One agent's place in the shared stream: joined, or waiting for the stream to reach it."""

    after_block: int
    block_hash: str | None  # the hash the agent handled ``after_block`` under, if it knows it
    joined: bool = False
    items: deque[_Item] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def next_item(self) -> _Item:
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()

    def put(self, item: _Item) -> None:
        self.items.append(item)
        self.ready.set()

    def offer(self, batch: EventBatch, rewound: bool) -> None:
        """Queue ``batch`` (or its part after the agent's block), or decide to go alone."""
        if self.joined:
            if rewound:  # what is still queued past the fork point is gone: never hand it over
                fork = batch.first_block - 1
                self.items = deque(item if not isinstance(item, EventBatch) or item.last_block <= fork
                                   else _through(item, fork)
                                   for item in self.items
                                   if not isinstance(item, EventBatch) or item.first_block <= fork)
            self.put(batch)
            return
        if rewound:  # the stream went back to a fork point: this agent checks its own past
            self._go_alone()
        elif batch.last_block < self.after_block:
            if batch.at_head:  # the chain ends before the agent's block: it got shorter
                self._go_alone()
        elif batch.first_block > self.after_block or batch.block_hashes.get(self.after_block) is None \
                or batch.block_hashes[self.after_block] != self.block_hash:
            self._go_alone()  # nothing to compare the agent's past with, or a different one
        else:
            self.joined = True
            if batch.last_block > self.after_block:
                self.put(_after(batch, self.after_block))

    def _go_alone(self) -> None:
        self.joined = False
        self.block_hash = None
        self.put(_GO_ALONE)


class SharedEventSource:
    """One upstream :class:`EventSource` stream for ``subscribers`` agents (see the module doc)."""

    def __init__(self, source: EventSource, *, subscribers: int) -> None:
        if subscribers < 1:
            raise ValueError("a shared event source needs at least one subscriber")
        self.source = source
        self.subscribers = subscribers
        self._arrived = 0  # agents that asked before the stream started, joining or not
        self._waiting: list[tuple[_Subscriber, tuple[BlockRef, ...], int | None]] = []
        self._live: list[_Subscriber] = []
        self._upstream: asyncio.Task[None] | None = None
        #: How many agents went alone, for tests and the log (sharing is then partial).
        self.alone = 0

    def __repr__(self) -> str:
        return f"SharedEventSource({self.source!r}, subscribers={self.subscribers})"

    async def batches(self, after_block: int, until_block: int | None = None, *,
                      recent: Sequence[BlockRef] = (), floor: int | None = None) -> AsyncIterator[EventBatch]:
        """As :meth:`EventSource.batches`, from the shared stream when the agent can join it."""
        if until_block is not None or self._upstream is not None:
            self._arrive()  # counted, so that the others do not wait for it
            async with aclosing(self._alone(after_block, until_block, recent, floor)) as alone:
                async for batch in alone:
                    yield batch
            return
        recent = tuple(recent)
        subscriber = _Subscriber(after_block, _hash_at(recent, after_block))
        entry = (subscriber, recent, floor)
        self._waiting.append(entry)
        self._live.append(subscriber)
        self._arrive()
        try:
            while True:
                item = await subscriber.next_item()
                if isinstance(item, _GoAlone):
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._live.remove(subscriber)
            if self._upstream is None:
                self._waiting.remove(entry)  # left before the stream started: not where it starts
                self._arrived -= 1
            elif not self._live:
                self._upstream.cancel()
        # Nothing was delivered from the shared stream: the agent starts alone where it was.
        async with aclosing(self._alone(after_block, None, recent, floor)) as alone:
            async for batch in alone:
                yield batch

    def _arrive(self) -> None:
        """Count one more agent; once all have asked, start the stream for those that wait for it."""
        self._arrived += 1
        if self._upstream is None and self._arrived >= self.subscribers and self._waiting:
            self._upstream = asyncio.create_task(self._pump())

    async def _alone(self, after_block: int, until_block: int | None, recent: Sequence[BlockRef],
                     floor: int | None) -> AsyncIterator[EventBatch]:
        self.alone += 1
        async with aclosing(self.source.batches(after_block, until_block, recent=recent, floor=floor)) as own:
            async for batch in own:
                yield batch

    async def _pump(self) -> None:
        """Read the upstream stream from the oldest checkpoint and offer each batch to every agent."""
        oldest, recent, floor = min(self._waiting, key=lambda entry: entry[0].after_block)
        for subscriber, _, _ in self._waiting:
            subscriber.joined = (subscriber.after_block == oldest.after_block
                                 and subscriber.block_hash == oldest.block_hash)
        last = oldest.after_block
        try:
            async with aclosing(self.source.batches(last, recent=recent, floor=floor)) as upstream:
                async for batch in upstream:
                    rewound = batch.first_block <= last
                    last = batch.last_block
                    for subscriber in list(self._live):
                        subscriber.offer(batch, rewound)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # every agent stops with the stream's error
            for subscriber in list(self._live):
                subscriber.put(exc)
