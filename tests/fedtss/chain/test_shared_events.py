"""SharedEventSource: agents of one process follow the chain through one upstream stream, and each
is delivered exactly what its own EventSource would have delivered (scripted, then on real anvil)."""

from __future__ import annotations

import asyncio
import time

import pytest

from fedtss.chain.checkpoint import BlockRef, Checkpoint
from fedtss.chain.events import ChainEvent, EventBatch, EventSource, MemoryCheckpoint, run_handlers
from fedtss.chain.shared_events import SharedEventSource
from tests.fedtss.chain.test_events import FAST, TIMEOUT_S, _closed, drive, ws

WAIT_S = 5.0


def _batch(first: int, last: int, *, branch: str = "a") -> EventBatch:
    """Blocks ``first..last``, one event in each, hashes ``0x<n><branch>``."""
    return EventBatch(tuple(_closed(n) for n in range(first, last + 1)), first, last,
                      {n: f"0x{n}{branch}" for n in range(first, last + 1)})


class _ScriptedChain:
    """An EventSource stand-in: every ``batches`` call is recorded; each yields the scripted
    batches after its ``after_block`` (trimmed as a real source would start), then waits."""

    def __init__(self, *script: EventBatch, pause: float = 0.0) -> None:
        self.script = script
        self.pause = pause  # between batches: time for consumers to take each one first
        self.calls: list[int] = []

    async def batches(self, after_block, until_block=None, *, recent=(), floor=None):
        self.calls.append(after_block)
        for batch in self.script:
            if batch.last_block <= after_block:
                continue
            events = tuple(e for e in batch.events if e.block_number > after_block)
            hashes = {n: h for n, h in batch.block_hashes.items() if n > after_block}
            yield EventBatch(events, max(batch.first_block, after_block + 1), batch.last_block, hashes,
                             at_head=batch.at_head)
            await asyncio.sleep(self.pause)
            if until_block is not None and batch.last_block >= until_block:
                return
        await asyncio.sleep(3600)


async def _take(source, checkpoint, count: int) -> list[int]:
    """The blocks of the first ``count`` events ``run_handlers`` hands over from ``checkpoint`` on."""
    handled: list[int] = []
    done = asyncio.Event()

    async def record(event: ChainEvent) -> None:
        handled.append(event.block_number)
        if len(handled) == count:
            done.set()

    follow = asyncio.create_task(run_handlers(source, record, checkpoint))
    enough = asyncio.create_task(done.wait())
    try:
        await asyncio.wait({follow, enough}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        if follow.done():
            follow.result()  # the stream's error
        if not enough.done():
            raise TimeoutError(f"{len(handled)} of {count} events after {WAIT_S} s")
    finally:
        for task in (follow, enough):
            task.cancel()
        await asyncio.gather(follow, enough, return_exceptions=True)
    return handled


def _at(block: int, block_hash: str | None) -> MemoryCheckpoint:
    checkpoint = MemoryCheckpoint(11)
    if block > checkpoint.block:
        checkpoint.save(block, block_hash)
    return checkpoint


def test_agents_starting_together_share_one_upstream_stream_and_each_get_every_event():
    chain = _ScriptedChain(_batch(11, 12), _batch(13, 13), _batch(14, 16))
    shared = SharedEventSource(chain, subscribers=3)

    async def scenario():
        return await asyncio.gather(*(_take(shared, _at(10, None), 6) for _ in range(3)))

    assert asyncio.run(scenario()) == [[11, 12, 13, 14, 15, 16]] * 3
    assert chain.calls == [10] and shared.alone == 0


def test_an_agent_further_on_with_the_same_hash_joins_the_stream_from_its_next_block():
    chain = _ScriptedChain(_batch(11, 12), _batch(13, 15), _batch(16, 16))
    shared = SharedEventSource(chain, subscribers=2)

    async def scenario():
        return await asyncio.gather(_take(shared, _at(10, None), 6), _take(shared, _at(14, "0x14a"), 2))

    behind, ahead = asyncio.run(scenario())
    assert behind == [11, 12, 13, 14, 15, 16]
    assert ahead == [15, 16]  # nothing it handled before, nothing skipped after
    assert chain.calls == [10] and shared.alone == 0


@pytest.mark.parametrize("its_hash", ["0x14b", None], ids=["other-branch", "no-hash"])
def test_an_agent_whose_block_the_stream_saw_otherwise_follows_alone_from_its_own_checkpoint(its_hash):
    chain = _ScriptedChain(_batch(11, 12), _batch(13, 15), _batch(16, 16))
    shared = SharedEventSource(chain, subscribers=2)

    async def scenario():
        return await asyncio.gather(_take(shared, _at(10, None), 6), _take(shared, _at(14, its_hash), 2))

    behind, ahead = asyncio.run(scenario())
    assert behind == [11, 12, 13, 14, 15, 16]
    assert ahead == [15, 16]
    assert chain.calls == [10, 14] and shared.alone == 1  # its own stream, from its own checkpoint


def test_a_stream_that_goes_back_to_a_fork_point_sends_agents_still_waiting_alone():
    # Upstream delivers 11..13, then a new branch from 13 on (first_block 13 <= 13 delivered).
    chain = _ScriptedChain(_batch(11, 13), _batch(13, 14, branch="b"), _batch(15, 21, branch="b"), pause=0.05)
    shared = SharedEventSource(chain, subscribers=2)

    async def scenario():
        # The second agent handled block 20 (on some branch): the stream went back before reaching it.
        return await asyncio.gather(_take(shared, _at(10, None), 12), _take(shared, _at(20, "0x20a"), 1))

    joined, waiting = asyncio.run(scenario())
    assert joined == [11, 12, 13, 13, 14, 15, 16, 17, 18, 19, 20, 21]
    assert waiting == [21]  # from its own stream, which checks its own past
    assert chain.calls == [10, 20] and shared.alone == 1


def test_a_rewound_batch_reaches_a_joined_agent_as_a_new_branch():
    chain = _ScriptedChain(_batch(11, 13), _batch(13, 14, branch="b"), pause=0.05)
    shared = SharedEventSource(chain, subscribers=1)
    checkpoint = _at(10, None)
    assert asyncio.run(_take(shared, checkpoint, 5)) == [11, 12, 13, 13, 14]
    assert checkpoint.recent[-2:] == (BlockRef(13, "0x13b"), BlockRef(14, "0x14b"))


def test_an_error_that_ends_the_upstream_stream_ends_every_agent_with_it():
    class Broken(_ScriptedChain):
        async def batches(self, after_block, until_block=None, *, recent=(), floor=None):
            yield _batch(11, 11)
            raise ValueError("undecodable log")

    shared = SharedEventSource(Broken(), subscribers=2)

    async def scenario():
        return await asyncio.gather(*(_take(shared, _at(10, None), 5) for _ in range(2)), return_exceptions=True)

    results = asyncio.run(scenario())
    assert [type(r) for r in results] == [ValueError, ValueError]


def test_an_agent_that_asks_after_the_stream_started_or_up_to_a_block_follows_alone():
    chain = _ScriptedChain(_batch(11, 12), _batch(13, 13))
    shared = SharedEventSource(chain, subscribers=1)

    async def scenario():
        first = await _take(shared, _at(10, None), 3)
        late = await _take(shared, _at(10, None), 3)  # the stream runs: a second subscriber goes alone
        return first, late

    assert asyncio.run(scenario()) == ([11, 12, 13], [11, 12, 13])
    assert chain.calls == [10, 10] and shared.alone == 1


# ------------------------------------------------------------------ on a real node


def test_on_anvil_agents_sharing_one_stream_handle_what_separate_streams_handle(chain, deployed, tmp_path):
    after = deployed.deployment.deploy_block
    upstream = EventSource.from_deployment(ws(chain.url), deployed.deployment, **FAST)
    asked: list[int] = []
    original = upstream.batches

    def counting(after_block, until_block=None, **kwargs):
        asked.append(after_block)
        return original(after_block, until_block, **kwargs)

    upstream.batches = counting  # type: ignore[method-assign]
    shared = SharedEventSource(upstream, subscribers=3)
    alone = EventSource.from_deployment(ws(chain.url), deployed.deployment, **FAST)
    actions = [deployed.start_training, lambda: deployed.submit(0), lambda: deployed.submit(1),
               lambda: deployed.submit(2)]

    async def scenario():
        checkpoints = [Checkpoint.for_deployment(tmp_path / f"agent-{i}.json", deployed.deployment,
                                                 write_interval=3600) for i in range(3)]
        sharing = [asyncio.create_task(_take(shared, c, 6)) for c in checkpoints]
        separate = asyncio.create_task(_take(alone, MemoryCheckpoint(after), 6))
        await drive(deployed, actions)
        handled = await asyncio.wait_for(asyncio.gather(*sharing, separate), TIMEOUT_S)
        return handled, checkpoints

    started = time.monotonic()
    handled, checkpoints = asyncio.run(scenario())
    assert time.monotonic() - started < TIMEOUT_S
    assert handled[0] == handled[1] == handled[2] == handled[3] and len(handled[3]) == 6
    assert asked == [after - 1] and shared.alone == 0
    # write_interval: the first save was written, the rest wait in memory until a flush.
    for checkpoint in checkpoints:
        on_disk = Checkpoint.for_deployment(checkpoint.path, deployed.deployment)
        assert on_disk.block < checkpoint.block
        checkpoint.flush()
        assert Checkpoint.for_deployment(checkpoint.path, deployed.deployment).block == checkpoint.block


def test_an_agent_past_the_end_of_a_chain_that_got_shorter_follows_alone_instead_of_waiting():
    # The chain now ends at 15 (restarted from an older state); one agent had handled block 17.
    head = EventBatch(tuple(_closed(n) for n in range(11, 16)), 11, 15, {n: f"0x{n}a" for n in range(11, 16)},
                      at_head=True)
    chain = _ScriptedChain(head)
    shared = SharedEventSource(chain, subscribers=2)

    async def scenario():
        return await asyncio.gather(_take(shared, _at(10, None), 5), _take(shared, _at(17, "0x17z"), 1),
                                    return_exceptions=True)

    behind, ahead = asyncio.run(scenario())
    assert behind == [11, 12, 13, 14, 15]
    assert isinstance(ahead, TimeoutError)  # alone, the scripted chain has nothing past 17 for it either
    assert chain.calls == [10, 17] and shared.alone == 1  # it asked its own stream, from its own block


def test_a_busy_agent_is_not_handed_queued_blocks_of_a_branch_the_stream_already_left():
    chain = _ScriptedChain(_batch(11, 12), _batch(13, 14), _batch(13, 13, branch="b"))
    shared = SharedEventSource(chain, subscribers=1)
    handled: list[tuple[int, str]] = []

    async def scenario():
        stream = shared.batches(10)
        first = await anext(stream)  # 11..12; the agent then "trains" while 13..14a and 13b arrive
        await asyncio.sleep(0.05)
        handled.extend((e.block_number, first.block_hashes[e.block_number]) for e in first.events)
        second = await anext(stream)
        handled.extend((e.block_number, second.block_hashes[e.block_number]) for e in second.events)
        await stream.aclose()

    asyncio.run(scenario())
    assert handled == [(11, "0x11a"), (12, "0x12a"), (13, "0x13b")]  # 13a and 14a never reach it


def test_an_agent_that_goes_alone_from_the_start_still_counts_toward_starting_the_stream():
    chain = _ScriptedChain(_batch(11, 12))
    shared = SharedEventSource(chain, subscribers=2)

    async def up_to(block: int) -> list[int]:
        handled: list[int] = []

        async def record(event: ChainEvent) -> None:
            handled.append(event.block_number)

        await run_handlers(shared, record, _at(10, None), until_block=block)
        return handled

    async def scenario():
        return await asyncio.gather(up_to(12), _take(shared, _at(10, None), 2))

    assert asyncio.run(asyncio.wait_for(scenario(), WAIT_S)) == [[11, 12], [11, 12]]
    assert sorted(chain.calls) == [10, 10] and shared.alone == 1


def test_on_anvil_agents_sharing_one_stream_follow_a_reorg_to_the_new_branch(chain, deployed, caplog):
    import logging

    from tests.fixtures.reorg import reorganize_from

    deployed.start_training()
    deployed.submit(0)
    deployed.submit(1)
    closing = deployed.submit(2)  # UpdateSubmitted and CollectionClosed
    chain.w3.provider.make_request("evm_mine", [])  # a block on top, which the reorg replaces too
    shared = SharedEventSource(EventSource.from_deployment(ws(chain.url), deployed.deployment,
                                                           request_url=chain.url, **FAST), subscribers=2)
    seen: list[list[ChainEvent]] = [[], []]
    checkpoints = [MemoryCheckpoint(deployed.deployment.deploy_block) for _ in seen]

    async def follow(i: int) -> None:
        async def record(event: ChainEvent) -> None:
            seen[i].append(event)

        await run_handlers(shared, record, checkpoints[i])

    async def scenario() -> None:
        followers = [asyncio.create_task(follow(i)) for i in range(2)]
        while min(len(s) for s in seen) < 6:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the stream has looked at the head since
        head = await asyncio.to_thread(reorganize_from, chain.w3, closing)
        deadline = asyncio.get_running_loop().time() + 4 * TIMEOUT_S
        while not all(c.block >= head and c.recent[-1].hash == "0x" + bytes(chain.w3.eth.get_block(head)["hash"]).hex()
                      for c in checkpoints):
            assert asyncio.get_running_loop().time() < deadline, [c.recent[-1:] for c in checkpoints]
            await asyncio.sleep(0.1)
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)

    with caplog.at_level(logging.WARNING, logger="fedtss.chain.events"):
        asyncio.run(scenario())
    for events in seen:
        assert [e.name for e in events[6:]] == ["UpdateSubmitted", "CollectionClosed"]  # the re-mined block
        assert all(e.block_number == closing for e in events[4:])
    assert seen[0] == seen[1] and shared.alone == 0
    assert caplog.text.count("the chain reorganized") == 1  # one stream noticed it, for both agents
