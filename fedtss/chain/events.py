"""The contract's events as one ordered stream, over WebSocket or HTTP, surviving reconnects.

An agent writes::

    source = EventSource.from_deployment(rpc_url, deployment)
    checkpoint = Checkpoint.for_deployment(state_dir / "checkpoint.json", deployment)
    await run_handlers(source, handle, checkpoint)

and ``handle(event)`` is called once per contract event, in chain order (block, then log
index), starting after the checkpoint.

HANDLERS MUST BE IDEMPOTENT. The checkpoint advances only after every event of a block was
handled, so an agent that crashes (or is killed) mid-block sees *all* events of that block
again when it restarts, including those it already handled. A handler must therefore check
the chain before it acts (e.g. ``has_submitted(round, me)`` before ``submitUpdate``, or the
member's ``lastShareRound`` before ``submitAggregateShare``) and make re-running a no-op.
At most the events of one block are re-delivered (with a checkpoint's ``write_interval``, those
handled since its last write); none are lost.

How events are found. The source reads logs with ``eth_getLogs`` over a block range
``(last delivered, head - confirmations]``, in ranges of at most ``max_block_range`` blocks
(or, for one announced block, by its hash: below); what differs is how it learns that the
head moved:

- ``ws://`` / ``wss://`` URL: web3.py 8 ``AsyncWeb3(WebSocketProvider)`` with an
  ``eth_subscribe("newHeads")`` subscription, read with ``socket.process_subscriptions()``.
  A head notification wakes the source; when the block it announces is the child of the last
  block delivered (the usual case, with no confirmations to wait for), the source asks for
  that block's logs by its hash, one request, and otherwise looks at the head and reads
  the range as below. A ``logs`` subscription would deliver logs a round trip sooner, but it cannot
  say when a block's logs are complete (and nodes do not order ``logs`` and ``newHeads``
  notifications), which the checkpoint needs. If no head arrives for ``idle_check`` seconds
  the source asks for the head anyway, which also notices a silently dead connection.
  With ``request_url`` (an agent's ``http_url``) the requests go over HTTP instead and the
  WebSocket carries only the head notifications: web3.py 8's WebSocketProvider waits for each
  response by re-scheduling itself with ``asyncio.sleep(0)``, so every request on it spins a
  core until the node answers, which on a busy machine is the node's own CPU time.
- ``http://`` / ``https://`` URL: polling ``eth_blockNumber`` every ``poll_interval``
  seconds, for nodes without WebSocket. anvil serves both on one port.
- A ``ws://`` URL whose node answers over HTTP but has no WebSocket (it answers the upgrade
  with 200, 400, 404, 405 or 501) falls back to polling the same host over ``http://``,
  logged once. A node that does not answer, or refuses for now (401, 403, 429, 5xx), is
  retried as below, never switched.

On a connection error the source logs one line (the node's scheme, host and port only: a
URL path may hold an API key), waits with exponential backoff and jitter, reconnects and
catches up from the last block it delivered, so events emitted while it was away are
delivered, in order, once.

Which events. ``events`` names the events the consumer handles (None: all of them). Logs are
then asked for with those events' topics, and a block announced by ``newHeads`` whose header's
logs bloom (:mod:`fedtss.chain.bloom`) proves it holds none of them is delivered as a block
without events, with no request: a bloom can say "maybe" for a block without them, never "no"
for a block with them. Agents name the events their handlers take
(:func:`agents.runtime.handled_events`): a pack's clients skip about 24 of a round's 25 blocks,
a member about half.

Reorganizations. With ``confirmations=k`` only logs of blocks ``<= head - k`` are delivered,
so a reorganization shallower than ``k`` blocks never reaches a handler (at the cost of ``k``
blocks of latency; ``k = 0`` delivers a block's logs as soon as it is the head). A deeper one
is noticed, not ignored: the source remembers the hash of every block it delivered (seeded
with the checkpoint's ``recent`` blocks) and, whenever the head moves, checks that the chain
still has the last one. If it does not, the source finds the newest delivered block the chain
still has (the fork point, :func:`~fedtss.chain.checkpoint.compute_fork_point`), logs one
warning, and delivers the new branch from the block after it. Such a batch starts at or
before a block already delivered; :func:`run_handlers` then rewinds the checkpoint first.
Events of the lost branch are not withdrawn: a handler that acted on one acted on the chain
as it was, and its idempotent re-run on the new branch sends only what the chain lacks.
Each range's last block hash is read *before* its logs, so logs and hash that straddle a
reorganization are caught at the next look, never trusted.

Readers that fold every event from the deploy block at each start (the keeper, the launcher's
tracker) keep no file: a :class:`MemoryCheckpoint` holds their place, and its ``on_rewind``
tells them to drop what they folded of a lost branch. A synchronous reader that polls on its
own clock (the launcher's tracker) takes one look at a time with :meth:`EventSource.read_new`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager, aclosing
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any
from urllib.parse import urlsplit

from web3 import AsyncWeb3, Web3, WebSocketProvider
from web3.exceptions import BlockNotFound, ProviderConnectionError, RequestTimedOut, Web3RPCError
from web3.types import RPCEndpoint
from websockets.exceptions import InvalidStatus

from fedtss.chain._async_http import AsyncJSONRPCOverHTTP
from fedtss.chain._failures import NODE_FAILURES, node_error
from fedtss.chain.bloom import BLOOM_BYTES, bloom_bits, may_contain, may_contain_any
from fedtss.chain.checkpoint import BlockRef, Checkpoint, compute_fork_point, remember_blocks
from fedtss.chain.contract import ChainEvent, Deployment, RoundsContract
from fedtss.chain.reader import Log, log_from_rpc
from fedtss.chain.redaction import display_url, redact_node_urls
from fedtss.errors import ChainUnavailable, ConfigError

__all__ = ["Backoff", "ChainEvent", "EventBatch", "EventSource", "MemoryCheckpoint", "run_handlers"]

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_S = 1.0
DEFAULT_IDLE_CHECK_S = 5.0
DEFAULT_MAX_BLOCK_RANGE = 1000
REQUEST_TIMEOUT_S = 30.0

#: HTTP answers to a WebSocket upgrade that mean "no WebSocket here" (an HTTP-only JSON-RPC
#: endpoint), not "not now" or "not you": 401/403 (a bad API key), 429 (rate limit) and 5xx
#: from a proxy before a restarting node are retried on WebSocket like a connection error.
_NO_WEBSOCKET_STATUSES = frozenset({200, 400, 404, 405, 501})

#: Errors after which reconnecting can help: the node went away, timed out or refused. The
#: raw errors are those the rest of ``fedtss.chain`` turns into ChainUnavailable (one list,
#: :data:`fedtss.chain._failures.NODE_FAILURES`); the source reconnects after either.
_RECONNECT_AFTER: tuple[type[BaseException], ...] = (*NODE_FAILURES, ChainUnavailable)


@dataclass(frozen=True)
class EventBatch:
    """All of the contract's events in blocks ``first_block..last_block`` (maybe none), in order.

    ``block_hashes`` maps ``last_block`` and every block with events to its hash. A batch whose
    ``first_block`` is not after the previous batch's ``last_block`` follows a reorganization.
    """

    events: tuple[ChainEvent, ...]
    first_block: int
    last_block: int
    block_hashes: Mapping[int, str] = field(default_factory=dict)
    #: Whether ``last_block`` was the newest block the source could deliver when it read it
    #: (the head minus ``confirmations``, or the block a head notification announced): the
    #: source knew of nothing past it then.
    at_head: bool = False


@dataclass
class _Position:
    """Where one :meth:`EventSource.batches` stream is: the last block delivered, the newest
    delivered blocks by hash, and where to start over if none of them is left."""

    last: int
    recent: tuple[BlockRef, ...]
    floor: int


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt k waits ``min(maximum, initial * factor**(k-1))``
    times a random factor in [0.5, 1), so that agents restarted together do not reconnect in step."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return min(self.maximum, self.initial * self.factor ** (attempt - 1)) * (0.5 + rng.random() / 2)


class EventSource:
    """The events of one contract at ``address`` on the node at ``url`` (see the module doc)."""

    def __init__(
        self,
        url: str,
        address: str,
        abi: list[dict[str, Any]],
        *,
        confirmations: int = 0,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        idle_check: float = DEFAULT_IDLE_CHECK_S,
        max_block_range: int = DEFAULT_MAX_BLOCK_RANGE,
        backoff: Backoff = Backoff(),
        rng: random.Random | None = None,
        request_url: str | None = None,
        events: Collection[str] | None = None,
    ) -> None:
        scheme = urlsplit(url).scheme
        if request_url is not None and urlsplit(request_url).scheme not in ("http", "https"):
            raise ConfigError(f"request url: expected http:// or https://, got {display_url(request_url)}")
        if scheme not in ("ws", "wss", "http", "https"):
            raise ConfigError(f"rpc url: expected ws://, wss://, http:// or https://, got {display_url(url)}")
        if confirmations < 0 or max_block_range < 1:
            raise ConfigError("confirmations must be >= 0 and max_block_range >= 1")
        self.url = url
        self.request_url = request_url
        self.transport = "websocket" if scheme.startswith("ws") else "polling"
        # Logs by block hash are asked of the node that announced the block (the same host and
        # port): a node that lags and answers [] for a block it lacks, as EIP-234 allows, would
        # otherwise pass for a block without events.
        self._announcer_answers = request_url is None or urlsplit(request_url).netloc == urlsplit(url).netloc
        self._by_hash_failures = 0
        self.confirmations = confirmations
        self.poll_interval = poll_interval
        self.idle_check = idle_check
        self.max_block_range = max_block_range
        self.backoff = backoff
        self._rng = rng or random.Random()
        redact_node_urls(url, *([request_url] if request_url else []))  # web3.py logs its endpoints: keep keys out
        # Decoding needs no node: an offline Web3 only holds the ABI.
        self._decoder = RoundsContract(Web3(), address, abi)
        self.address = self._decoder.address
        self.event_names = None if events is None else frozenset(events)
        self._topics = None if events is None else self._topics_of(self.event_names)
        self._bloom_items = None if self._topics is None else \
            [bloom_bits(bytes.fromhex(topic[2:])) for topic in self._topics]
        self._address_bits = bloom_bits(bytes.fromhex(self.address[2:]))

    @classmethod
    def from_deployment(cls, url: str, deployment: Deployment, **options: Any) -> EventSource:
        """The source for the contract of a deployment record (address and ABI file)."""
        rounds = RoundsContract.from_deployment(Web3(), deployment)
        return cls(url, rounds.address, rounds.contract.abi, **options)

    def __repr__(self) -> str:
        return f"EventSource({display_url(self.url)}, {self.address}, {self.transport})"

    def _topics_of(self, names: frozenset[str]) -> list[str]:
        """The first topic of each event in ``names`` (a ConfigError names any the ABI lacks)."""
        by_name = self._decoder.event_topics
        unknown = sorted(names - by_name.keys())
        if unknown:
            raise ConfigError(f"events {unknown} are not in the contract's ABI; it has {sorted(by_name)}")
        return sorted(by_name[name] for name in names)

    async def _logs(self, w3: AsyncWeb3, **where: Any) -> list[Log]:
        """The logs of the contract's events this source delivers, in the blocks ``where`` names;
        none, without a request, for a source of no events (``[[]]`` would mean any topic)."""
        if self._topics == []:
            return []
        query = {"address": self.address, **where}
        if self._topics is not None:
            query["topics"] = [self._topics]
        return await _get_logs(w3, query)

    def _cannot_hold_events(self, header: Mapping[str, Any]) -> bool:
        """Whether a header's logs bloom proves its block has no event this source delivers."""
        bloom = header.get("logsBloom")
        if not isinstance(bloom, bytes) or len(bloom) != BLOOM_BYTES:
            return False  # no bloom to go by: ask
        if not may_contain(bloom, self._address_bits):
            return True
        return self._bloom_items is not None and not may_contain_any(bloom, self._bloom_items)

    async def events(self, after_block: int, until_block: int | None = None) -> AsyncIterator[ChainEvent]:
        """Every event after ``after_block`` in chain order, forever or through ``until_block``."""
        async with aclosing(self.batches(after_block, until_block)) as batches:
            async for batch in batches:
                for event in batch.events:
                    yield event

    async def batches(self, after_block: int, until_block: int | None = None, *,
                      recent: Sequence[BlockRef] = (), floor: int | None = None) -> AsyncIterator[EventBatch]:
        """Consecutive batches covering every block after ``after_block``, reconnecting as needed.

        A batch is yielded only when its blocks are complete, so a consumer that has
        handled it may record ``last_block`` as done. Endless, unless ``until_block`` is
        given: then the last batch ends exactly at that block.

        ``recent``: the hashes of already handled blocks (a checkpoint's), so that a
        reorganization of them is noticed from the start; ``floor``: the block to start over
        after if the chain has none of them (default ``after_block``). After a
        reorganization, the next batch starts right after the fork point (see the module doc).
        """
        position = _Position(after_block, tuple(b for b in recent if b.number <= after_block),
                             after_block if floor is None else floor)
        attempt = 0
        while True:
            try:
                async with self._connect() as w3, self._requests_over(w3) as requests:
                    async for batch in self._follow(requests, w3, position, until_block):
                        attempt = 0
                        yield batch
                return  # through until_block, on the chain as it is now
            except _RECONNECT_AFTER as exc:
                if self._falls_back_to_polling(exc):
                    continue
                attempt += 1
                delay = self.backoff.delay(attempt, self._rng)
                log.warning(
                    "chain connection to %s failed (%s); reconnecting in %.1f s (attempt %d), then catching up after block %d",
                    self._endpoints(), type(exc).__name__, delay, attempt, position.last,
                )
                await asyncio.sleep(delay)

    def read_new(self, checkpoint: Checkpoint | MemoryCheckpoint) -> list[ChainEvent]:
        """One look at the chain, synchronously: the events of every block after the checkpoint
        through the head minus ``confirmations``, in chain order, the checkpoint advanced past them.

        For a reader that polls on its own clock (the launcher's tracker). A reorganization is
        handled as :func:`run_handlers` handles it: the checkpoint is rewound to the fork point
        (its ``rewind`` is called) before the new branch's events are returned. No retries: a
        node that does not answer raises :class:`~fedtss.errors.ChainUnavailable`, and the next
        call looks again. Not for a coroutine: it runs its own event loop.
        """
        position = _Position(checkpoint.block, checkpoint.recent, checkpoint.floor)
        try:
            batches = asyncio.run(self._look(position))
        except NODE_FAILURES as exc:
            raise node_error(exc, self.url, "the contract's new events") from exc
        if position.last < checkpoint.block and not batches:
            checkpoint.rewind(position.last)  # the new branch has no block past the fork point yet
        events: list[ChainEvent] = []
        for batch in batches:
            if batch.first_block <= checkpoint.block:
                checkpoint.rewind(batch.first_block - 1)
            events.extend(batch.events)
            for block_number in sorted(batch.block_hashes):
                checkpoint.save(block_number, batch.block_hashes[block_number])
        return events

    # -------------------------------------------------------------------------- internals

    async def _look(self, position: _Position) -> list[EventBatch]:
        """The batches of one look at the head (see :meth:`read_new`)."""
        async with self._connect() as heads, self._requests_over(heads) as w3:
            head = await w3.eth.get_block("latest")
            await self._rewind_if_reorganized(w3, position, head)
            return [batch async for batch in self._catch_up(w3, position, head["number"] - self.confirmations, head)]

    def _endpoints(self) -> str:
        """The node's endpoints for a log line (scheme, host and port only): both when heads and
        requests go to different URLs, so that a failure points at the right one."""
        if self.transport == "websocket" and self.request_url:
            return f"{display_url(self.url)} (blocks and logs over {display_url(self.request_url)})"
        return display_url(self.url)

    def _falls_back_to_polling(self, exc: BaseException) -> bool:
        """Switch a WebSocket source to HTTP polling if the node refused the upgrade itself."""
        cause = exc.__cause__
        refused = (isinstance(exc, ProviderConnectionError) and isinstance(cause, InvalidStatus)
                   and cause.response.status_code in _NO_WEBSOCKET_STATUSES)
        if self.transport != "websocket" or not refused:
            return False
        self.url = "http" + self.url[2:]  # ws://h -> http://h, wss://h -> https://h
        self.transport = "polling"
        log.warning("the node at %s answers HTTP but refuses WebSocket (%s); polling eth_getLogs over %s instead",
                    display_url(self.url), type(exc.__cause__).__name__, urlsplit(self.url).scheme)
        return True

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncWeb3]:
        if self.transport == "polling":
            async with _over_http(self.url) as w3:
                yield w3
            return
        provider = WebSocketProvider(self.url, max_connection_retries=1, request_timeout=REQUEST_TIMEOUT_S)
        async with AsyncWeb3(provider) as w3:
            yield w3

    @asynccontextmanager
    async def _requests_over(self, w3: AsyncWeb3) -> AsyncIterator[AsyncWeb3]:
        """Where blocks and logs are asked for: ``request_url`` beside a WebSocket, else ``w3``."""
        if self.transport == "websocket" and self.request_url:
            async with _over_http(self.request_url) as requests:
                yield requests
        else:
            yield w3

    async def _follow(self, w3: AsyncWeb3, heads: AsyncWeb3, position: _Position,
                      until_block: int | None) -> AsyncIterator[EventBatch]:
        """Batches until ``until_block`` is delivered (or forever); always looks at the chain
        once, so that an agent whose checkpoint is already there notices a reorganization.
        Requests go to ``w3``; ``heads`` says when the head moved."""
        wait_for_head = await self._head_waiter(heads)
        seen_head = None
        announced: Mapping[str, Any] | None = None
        while True:
            batch = await self._next_block(w3, position, announced, until_block) if announced else None
            if batch is not None:
                seen_head = announced["hash"]
                yield batch
            else:
                head = await w3.eth.get_block("latest")
                if head["hash"] != seen_head:  # a new block, or a new branch: else nothing changed
                    await self._rewind_if_reorganized(w3, position, head)
                    target = head["number"] - self.confirmations
                    if until_block is not None:
                        target = min(target, until_block)
                    async for batch in self._catch_up(w3, position, target, head):
                        yield batch
                    seen_head = head["hash"]
            if until_block is not None and position.last >= until_block:
                return
            announced = await wait_for_head()

    async def _next_block(self, w3: AsyncWeb3, position: _Position, header: Mapping[str, Any],
                          until_block: int | None) -> EventBatch | None:
        """The batch of the one block a ``newHeads`` notification announced, in one request, when
        that block is the child of the last block delivered; else None (look at the head as usual).

        Its logs are asked for by ``blockHash`` (EIP-234) of the node that announced it (requests
        over another host's URL always take the range path): that node holds the block, and a
        node answers such a request with that block's logs only. Not with confirmations (the
        block to deliver is not the announced one), nor past ``until_block``; not after
        :data:`_BY_HASH_FAILURES_ALLOWED` refusals in a row.
        """
        number, block_hash, parent = header.get("number"), header.get("hash"), header.get("parentHash")
        if not self._announcer_answers or self.confirmations or not position.recent or not isinstance(number, int) \
                or not isinstance(block_hash, bytes) or not isinstance(parent, bytes):
            return None
        last = position.recent[-1]
        if (last.number, last.hash) != (position.last, _hex(parent)) or number != position.last + 1 \
                or (until_block is not None and number > until_block):
            return None
        if self._cannot_hold_events(header):  # no request: whatever the node's record with them
            return self._delivered(position, [], number, number, _hex(block_hash), at_head=True)
        if self._by_hash_failures >= _BY_HASH_FAILURES_ALLOWED:
            return None
        try:
            logs = await self._logs(w3, blockHash=_hex(block_hash))
        except RequestTimedOut:
            raise
        except Web3RPCError as exc:  # the node does not hold that block (any more): look at the head
            self._by_hash_failures += 1
            if self._by_hash_failures == _BY_HASH_FAILURES_ALLOWED:
                log.warning("the node at %s refused eth_getLogs by block hash %d times in a row (%s); reading "
                            "block ranges from now on", self._endpoints(), self._by_hash_failures, exc)
            return None
        self._by_hash_failures = 0
        return self._delivered(position, logs, number, number, _hex(block_hash), at_head=True)

    async def _head_waiter(self, w3: AsyncWeb3) -> Callable[[], Awaitable[Mapping[str, Any] | None]]:
        """A coroutine function that returns when the head may have moved: with the header a
        ``newHeads`` notification carried, or None (polling, or no notification for a while)."""
        if self.transport == "polling":
            return lambda: asyncio.sleep(self.poll_interval)  # None: no header
        await w3.eth.subscribe("newHeads")
        heads = w3.socket.process_subscriptions()

        async def next_head() -> Mapping[str, Any] | None:
            try:
                message = await asyncio.wait_for(anext(heads), self.idle_check)
            except TimeoutError:
                return None  # no block for a while: look at the head anyway
            header = message.get("result") if isinstance(message, Mapping) else None
            return header if isinstance(header, Mapping) else None

        return next_head

    async def _rewind_if_reorganized(self, w3: AsyncWeb3, position: _Position, head: Mapping[str, Any]) -> None:
        """Move ``position`` back to the fork point if the chain lost the last delivered block.

        The head and its parent are known without a request; other remembered blocks are
        read newest first until one is still on the chain (usually the first: no reorg).
        """
        canonical: dict[int, str | None] = {head["number"]: _hex(head["hash"]),
                                            head["number"] - 1: _hex(head["parentHash"])}
        for block in reversed(position.recent):
            if block.number > head["number"]:
                canonical[block.number] = None  # the chain is shorter than what was delivered
            elif block.number not in canonical:
                canonical[block.number] = await _block_hash(w3, block.number)
            if canonical[block.number] == block.hash:
                break
        if not position.recent or canonical[position.recent[-1].number] == position.recent[-1].hash:
            return
        fork = compute_fork_point(position.recent, canonical, floor=position.floor)
        log.warning("the chain reorganized: block %d %s is gone; handling again from block %d (fork point %d)",
                    position.recent[-1].number, position.recent[-1].hash, fork + 1, fork)
        position.last = min(position.last, fork)
        position.recent = tuple(b for b in position.recent if b.number <= fork)

    async def _catch_up(self, w3: AsyncWeb3, position: _Position, target: int,
                        head: Mapping[str, Any]) -> AsyncIterator[EventBatch]:
        """Batches for blocks ``position.last+1..target`` in ranges of at most ``max_block_range`` blocks."""
        while position.last < target:
            first, last = position.last + 1, min(target, position.last + self.max_block_range)
            # The hash first, then the logs: logs of a newer branch under an older hash are
            # caught at the next look; the other way round they would be trusted.
            last_hash = _hex(head["hash"]) if last == head["number"] else await _block_hash(w3, last)
            if last_hash is None:
                return  # the chain got shorter meanwhile: the next look rewinds
            logs = await self._logs(w3, fromBlock=hex(first), toBlock=hex(last))
            yield self._delivered(position, logs, first, last, last_hash,
                                  at_head=last == head["number"] - self.confirmations)

    def _delivered(self, position: _Position, logs: Sequence[Log], first: int, last: int,
                   last_hash: str, *, at_head: bool) -> EventBatch:
        """The batch of blocks ``first..last`` from their logs; ``position`` moves past it."""
        ordered = sorted(logs, key=lambda entry: (entry.block_number, entry.log_index))
        hashes = {entry.block_number: entry.block_hash for entry in ordered} | {last: last_hash}
        position.last = last
        position.recent = remember_blocks(position.recent, [BlockRef(n, h) for n, h in sorted(hashes.items())])
        return EventBatch(tuple(self._decoder.decode_logs(ordered)), first, last, hashes, at_head=at_head)


@asynccontextmanager
async def _over_http(url: str) -> AsyncIterator[AsyncWeb3]:
    # Not web3's AsyncHTTPProvider: a cancelled request of it can hang every web3 HTTP
    # provider in the process (see fedtss.chain._async_http). No retries inside: they are ours.
    provider = AsyncJSONRPCOverHTTP(url, timeout=REQUEST_TIMEOUT_S)
    try:
        yield AsyncWeb3(provider)
    finally:
        await provider.disconnect()  # closes its aiohttp session


async def _get_logs(w3: AsyncWeb3, query: Mapping[str, Any]) -> list[Log]:
    """``eth_getLogs`` for ``query`` (block numbers and hashes in hex). Over HTTP it is handed
    straight to the provider: web3's request and result formatters cost about 1 ms of CPU a
    request, and every agent asks once a block; an error answer raises Web3RPCError, as web3
    would. Over a WebSocket it goes through web3: its provider matches answers to requests that
    web3 registered, and an error answer to one it did not register kills its listener."""
    if not isinstance(w3.provider, AsyncJSONRPCOverHTTP):
        return [log_from_rpc(entry) for entry in await w3.eth.get_logs(query)]  # type: ignore[arg-type]
    answer = await w3.provider.make_request(RPCEndpoint("eth_getLogs"), [dict(query)])
    result = answer.get("result") if isinstance(answer, Mapping) else None
    if not isinstance(result, list):
        error = answer.get("error") if isinstance(answer, Mapping) else None
        raise Web3RPCError(f"eth_getLogs: {error or 'an answer without logs'}",
                           rpc_response=answer if isinstance(answer, dict) else None)
    return [log_from_rpc(entry) for entry in result]


#: Refusals of eth_getLogs by block hash in a row after which a source reads block ranges only
#: (a node without EIP-234, or one that keeps losing the blocks it announced).
_BY_HASH_FAILURES_ALLOWED = 3


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


async def _block_hash(w3: AsyncWeb3, number: int) -> str | None:
    """The hash of the chain's block ``number`` now, or None if the chain is not that long."""
    try:
        return _hex((await w3.eth.get_block(number))["hash"])
    except BlockNotFound:
        return None


class MemoryCheckpoint:
    """A :class:`~fedtss.chain.checkpoint.Checkpoint` held in memory only, for a reader that
    folds every event from the deploy block at each start (the keeper, the launcher's tracker).

    It answers and moves as a checkpoint file does; ``on_rewind(block)`` is called when a
    reorganization takes back every block after ``block``, so that the reader drops what it
    folded from them before the new branch's events come.
    """

    def __init__(self, start_block: int, *, on_rewind: Callable[[int], None] | None = None) -> None:
        self.floor = start_block - 1
        self._block = self.floor
        self._recent: tuple[BlockRef, ...] = ()
        self._on_rewind = on_rewind

    @classmethod
    def for_deployment(cls, deployment: Deployment, *,
                       on_rewind: Callable[[int], None] | None = None) -> MemoryCheckpoint:
        return cls(deployment.deploy_block, on_rewind=on_rewind)

    @property
    def block(self) -> int:
        """The last block whose events were all handled."""
        return self._block

    @property
    def recent(self) -> tuple[BlockRef, ...]:
        """The newest handled blocks with their hashes, oldest first."""
        return self._recent

    def save(self, block: int, block_hash: str | None = None) -> None:
        """As :meth:`Checkpoint.save <fedtss.chain.checkpoint.Checkpoint.save>`, in memory."""
        if block <= self._block:
            return
        if block_hash:
            self._recent = remember_blocks(self._recent, [BlockRef(block, block_hash)])
        self._block = block

    def flush(self) -> None:
        """Nothing to write: as :meth:`Checkpoint.flush <fedtss.chain.checkpoint.Checkpoint.flush>`."""

    def rewind(self, block: int) -> None:
        """Forget every block after ``block`` and tell the reader (``on_rewind``)."""
        block = max(block, self.floor)
        if block >= self._block:
            return
        self._block, self._recent = block, tuple(b for b in self._recent if b.number <= block)
        if self._on_rewind is not None:
            self._on_rewind(block)

    def __repr__(self) -> str:
        return f"MemoryCheckpoint(block={self._block})"


async def run_handlers(
    source: EventSource | Any,
    handle: Callable[[ChainEvent], Awaitable[None]],
    checkpoint: Checkpoint | MemoryCheckpoint,
    *,
    until_block: int | None = None,
) -> None:
    """Feed every event after the checkpoint to ``handle``, advancing the checkpoint per block.

    ``handle`` MUST BE IDEMPOTENT: after a crash the events of the block being handled are
    delivered again (with a checkpoint's ``write_interval``, all those since its last write),
    and after a reorganization those of the new branch (see the module doc). ``source`` is an
    :class:`EventSource` or anything with its ``batches`` (a
    :class:`~fedtss.chain.shared_events.SharedEventSource`). An exception from ``handle`` stops the loop and propagates, leaving the checkpoint
    before that event's block. Runs forever, or returns once every block through
    ``until_block`` is handled (the checkpoint is then exactly there).
    """
    batches = source.batches(checkpoint.block, until_block, recent=checkpoint.recent, floor=checkpoint.floor)
    async with aclosing(batches):
        async for batch in batches:
            if batch.first_block <= checkpoint.block:  # a new branch from the fork point on
                checkpoint.rewind(batch.first_block - 1)
            for block_number, events in groupby(batch.events, key=lambda event: event.block_number):
                for event in events:
                    await handle(event)
                checkpoint.save(block_number, batch.block_hashes.get(block_number))
            checkpoint.save(batch.last_block, batch.block_hashes.get(batch.last_block))
