"""The event stream against real anvil: WebSocket and polling agree, checkpoints resume exactly,
a crash re-delivers one block, a node restart loses nothing, and a reorganized chain is
followed from the fork point."""

from __future__ import annotations

import asyncio
import json
import logging
import random

import pytest

from fedtss.chain import CollectionClosed, UpdateSubmitted, events_of
from fedtss.chain.checkpoint import BlockRef, Checkpoint
from fedtss.chain.events import (Backoff, ChainEvent, EventBatch, EventSource, MemoryCheckpoint, _over_http,
                                 _Position, run_handlers)
from fedtss.errors import ConfigError
from tests.fedtss.chain.conftest import deploy_with_record
from tests.fixtures.reorg import reorganize_from

FAST = {"poll_interval": 0.05, "idle_check": 0.5, "backoff": Backoff(initial=0.2, maximum=1.0)}
TIMEOUT_S = 15.0


def ws(url: str) -> str:
    return url.replace("http://", "ws://")


def where(event: ChainEvent) -> tuple[int, int]:
    return event.block_number, event.log_index


async def collect(source: EventSource, after_block: int, count: int) -> list[ChainEvent]:
    """The first ``count`` events after ``after_block``."""
    events: list[ChainEvent] = []
    async for event in source.events(after_block):
        events.append(event)
        if len(events) == count:
            return events
    return events


async def drive(deployed, actions) -> None:
    """Send the transactions one by one from a thread, so live consumers run meanwhile."""
    for action in actions:
        await asyncio.sleep(0.05)
        await asyncio.to_thread(action)


def test_websocket_and_polling_deliver_the_same_events_in_chain_order(chain, deployed):
    after = deployed.deployment.deploy_block
    sources = [
        EventSource.from_deployment(ws(chain.url), deployed.deployment, **FAST),
        EventSource.from_deployment(chain.url, deployed.deployment, **FAST),
    ]
    assert [s.transport for s in sources] == ["websocket", "polling"]
    actions = [deployed.start_training, lambda: deployed.submit(0), lambda: deployed.submit(1), lambda: deployed.submit(2)]

    async def scenario():
        consumers = [asyncio.create_task(collect(s, after, 6)) for s in sources]
        await drive(deployed, actions)  # the consumers are already listening: these arrive live
        return await asyncio.wait_for(asyncio.gather(*consumers), TIMEOUT_S)

    over_websocket, over_polling = asyncio.run(scenario())
    assert over_websocket == over_polling
    assert [e.name for e in over_websocket] == [
        "TrainingStarted", "RoundOpened", "UpdateSubmitted", "UpdateSubmitted", "UpdateSubmitted", "CollectionClosed",
    ]
    assert [where(e) for e in over_websocket] == sorted(where(e) for e in over_websocket)
    assert [e.client for e in events_of(over_websocket, UpdateSubmitted)] == [
        a.address for a in deployed.accounts[6:9]
    ]
    assert over_websocket == deployed.rounds.get_events(after)  # same decoding as the bindings


def test_catch_up_from_a_checkpoint_delivers_exactly_the_missed_events(chain, deployed, tmp_path):
    path = tmp_path / "agent" / "checkpoint.json"
    deployed.start_training()
    first_head = deployed.submit(0)
    deployed.submit(1)
    second_head = deployed.submit(2)

    def run_until(head: int, transport_url: str) -> list[ChainEvent]:
        handled: list[ChainEvent] = []

        async def handle(event: ChainEvent) -> None:
            handled.append(event)

        checkpoint = Checkpoint.for_deployment(path, deployed.deployment)  # a fresh process reads the file
        source = EventSource.from_deployment(transport_url, deployed.deployment, max_block_range=2, **FAST)
        asyncio.run(asyncio.wait_for(run_handlers(source, handle, checkpoint, until_block=head), TIMEOUT_S))
        assert checkpoint.block == head
        return handled

    before_restart = run_until(first_head, chain.url)
    after_restart = run_until(second_head, ws(chain.url))

    everything = deployed.rounds.get_events(deployed.deployment.deploy_block)
    assert before_restart + after_restart == everything
    assert [e.name for e in after_restart] == ["UpdateSubmitted", "UpdateSubmitted", "CollectionClosed"]
    assert all(e.block_number > first_head for e in after_restart)


def test_a_crash_mid_block_redelivers_only_that_block(chain, deployed, tmp_path):
    path = tmp_path / "checkpoint.json"
    deployed.start_training()
    deployed.submit(0)
    deployed.submit(1)
    closing_block = deployed.submit(2)  # UpdateSubmitted and CollectionClosed in one block

    class Crash(Exception):
        pass

    handled: list[ChainEvent] = []

    async def crash_on_close(event: ChainEvent) -> None:
        if isinstance(event, CollectionClosed):
            raise Crash
        handled.append(event)

    async def record(event: ChainEvent) -> None:
        handled.append(event)

    source = EventSource.from_deployment(chain.url, deployed.deployment, **FAST)
    with pytest.raises(Crash):
        asyncio.run(run_handlers(source, crash_on_close, Checkpoint.for_deployment(path, deployed.deployment)))
    restarted = Checkpoint.for_deployment(path, deployed.deployment)
    assert restarted.block == closing_block - 1
    first_run = list(handled)
    handled.clear()
    asyncio.run(asyncio.wait_for(run_handlers(source, record, restarted, until_block=closing_block), TIMEOUT_S))

    assert [e.name for e in handled] == ["UpdateSubmitted", "CollectionClosed"]
    assert {e.block_number for e in handled} == {closing_block}
    assert handled[0] == first_run[-1]  # the one event handled twice, from the crashed block
    assert first_run[:-1] + handled == deployed.rounds.get_events(deployed.deployment.deploy_block)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_reconnects_after_the_node_restarts_and_catches_up_events_emitted_while_down(
    transport, restartable_anvil, accounts, rounds_artifact, tmp_path, caplog
):
    node = restartable_anvil
    deployed = deploy_with_record(node.w3, accounts, rounds_artifact, tmp_path, target_clients=3)
    url = node.ws_url if transport == "websocket" else node.http_url
    source = EventSource.from_deployment(url, deployed.deployment, rng=random.Random(1), **FAST)
    seen: list[ChainEvent] = []
    first_two = asyncio.Event()

    async def consume() -> None:
        async for event in source.events(deployed.deployment.deploy_block):
            seen.append(event)
            if len(seen) == 2:
                first_two.set()
            if len(seen) == 4:
                return

    async def scenario() -> None:
        consumer = asyncio.create_task(consume())
        await asyncio.to_thread(deployed.start_training)
        await asyncio.wait_for(first_two.wait(), TIMEOUT_S)
        await asyncio.to_thread(node.stop)  # the consumer loses its node...
        await asyncio.sleep(0.3)
        await asyncio.to_thread(node.start)  # ...which comes back with its state
        await asyncio.to_thread(deployed.submit, 0)  # emitted before the consumer is back
        await asyncio.to_thread(deployed.submit, 1)
        await asyncio.wait_for(consumer, TIMEOUT_S)

    with caplog.at_level(logging.WARNING, logger="fedtss.chain.events"):
        asyncio.run(scenario())

    assert seen == deployed.rounds.get_events(deployed.deployment.deploy_block)
    assert [e.name for e in seen] == ["TrainingStarted", "RoundOpened", "UpdateSubmitted", "UpdateSubmitted"]
    reconnects = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert reconnects, "the lost connection was not logged"
    assert all(f"127.0.0.1:{node.port}" in line for line in reconnects)


def test_confirmations_hold_back_the_newest_blocks(chain, deployed):
    deployed.start_training()
    last = deployed.submit(0)
    source = EventSource.from_deployment(chain.url, deployed.deployment, confirmations=1, **FAST)

    async def first_batch():
        async for batch in source.batches(deployed.deployment.deploy_block):
            return batch

    batch = asyncio.run(asyncio.wait_for(first_batch(), TIMEOUT_S))
    assert batch.last_block == last - 1
    assert [e.name for e in batch.events] == ["TrainingStarted", "RoundOpened"]


def test_backoff_grows_exponentially_with_jitter_up_to_the_maximum():
    backoff = Backoff(initial=1.0, maximum=8.0, factor=2.0)
    rng = random.Random(7)
    delays = [backoff.delay(attempt, rng) for attempt in range(1, 8)]
    bounds = [1, 2, 4, 8, 8, 8, 8]
    assert all(bound / 2 <= d < bound for d, bound in zip(delays, bounds))
    assert len({round(d / b, 6) for d, b in zip(delays, bounds)}) > 1  # jittered, not a fixed ratio


def test_a_url_without_a_known_scheme_is_refused_without_echoing_its_path():
    with pytest.raises(ConfigError) as info:
        EventSource("ftp://node.example:1/v3/secret-api-key", "0x" + "11" * 20, [])
    assert "secret-api-key" not in str(info.value)
    assert "ftp://node.example:1" in str(info.value)


def test_an_unreachable_node_is_retried_and_logged_without_the_url_path(caplog):
    secret_url = "ws://127.0.0.1:9/v3/secret-api-key"  # port 9 (discard): nothing listens
    source = EventSource(secret_url, "0x" + "11" * 20, [], backoff=Backoff(initial=0.05, maximum=0.1))

    async def attempt_for_a_while():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(source.batches(0)), 0.6)

    with caplog.at_level(logging.INFO):
        asyncio.run(attempt_for_a_while())
    reconnects = [r for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert len(reconnects) >= 2
    assert "ws://127.0.0.1:9" in reconnects[0].getMessage()
    assert "secret-api-key" not in caplog.text


def test_a_failure_beside_a_request_url_names_both_endpoints_without_their_paths(caplog):
    source = EventSource("ws://127.0.0.1:9/v3/secret-ws-key", "0x" + "11" * 20, [],
                         request_url="http://127.0.0.1:9/v3/secret-http-key", backoff=Backoff(initial=0.05, maximum=0.1))

    async def attempt_for_a_while():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(source.batches(0)), 0.4)

    with caplog.at_level(logging.INFO):
        asyncio.run(attempt_for_a_while())
    reconnect = next(r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage())
    assert "ws://127.0.0.1:9" in reconnect and "blocks and logs over http://127.0.0.1:9" in reconnect
    assert "secret" not in caplog.text


class _HttpOnlyNode:
    """A JSON-RPC endpoint without WebSocket: forwards POSTs to anvil, answers 405 to anything else."""

    def __init__(self, upstream: str, upgrade_status: int = 405) -> None:
        import http.server
        import threading
        import urllib.request

        methods = self.methods = []  # the JSON-RPC method of every POST, in order

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # as real JSON-RPC servers answer

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                methods.append(json.loads(body).get("method"))
                request = urllib.request.Request(upstream, body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=10) as answer:
                    data = answer.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - a WebSocket upgrade is a GET
                self.send_error(upgrade_status, "no WebSocket here")

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_websocket_source_with_a_request_url_hears_heads_on_the_socket_and_reads_logs_over_http(chain, deployed):
    after = deployed.deployment.deploy_block
    node = _HttpOnlyNode(chain.url)
    try:
        source = EventSource.from_deployment(ws(chain.url), deployed.deployment, request_url=node.url, **FAST)
        actions = [deployed.start_training, lambda: deployed.submit(0), lambda: deployed.submit(1)]

        async def scenario():
            consumer = asyncio.create_task(collect(source, after, 4))
            await drive(deployed, actions)  # live: each block is announced on the socket
            return await asyncio.wait_for(consumer, TIMEOUT_S)

        events = asyncio.run(scenario())
    finally:
        node.close()
    assert source.transport == "websocket"
    assert events == deployed.rounds.get_events(after)[:4]
    assert "eth_getLogs" in node.methods and "eth_getBlockByNumber" in node.methods
    assert "eth_subscribe" not in node.methods


def _follow_three_blocks(chain, deployed, request_url: str, methods: list[str]) -> list[str]:
    """The JSON-RPC methods (as ``methods`` records them) a WebSocket source asks for while three
    transactions are mined one by one after its first look."""
    after = deployed.deployment.deploy_block - 1  # the first look reads a range, so it knows the head's hash
    source = EventSource.from_deployment(ws(chain.url), deployed.deployment, request_url=request_url,
                                         **{**FAST, "idle_check": 60.0})  # no idle look in between
    actions = [deployed.start_training, lambda: deployed.submit(0), lambda: deployed.submit(1)]

    async def scenario():
        consumer = asyncio.create_task(collect(source, after, 4))
        while "eth_getLogs" not in methods:  # the first look (the head, the range since the deploy block)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        first_look = len(methods)
        await drive(deployed, actions)
        return await asyncio.wait_for(consumer, TIMEOUT_S), methods[first_look:]

    events, later = asyncio.run(scenario())
    assert events == deployed.rounds.get_events(after)[:4]
    return later


def _record_requests(monkeypatch) -> list[str]:
    """The JSON-RPC methods every source's HTTP requests ask for, from now on, in order."""
    from fedtss.chain._async_http import AsyncJSONRPCOverHTTP

    methods: list[str] = []
    real = AsyncJSONRPCOverHTTP.make_request

    async def recording(self, method, params):
        methods.append(method)
        return await real(self, method, params)

    monkeypatch.setattr(AsyncJSONRPCOverHTTP, "make_request", recording)
    return methods


def test_each_announced_child_block_costs_one_request_its_logs_by_block_hash(chain, deployed, monkeypatch):
    methods = _record_requests(monkeypatch)
    later = _follow_three_blocks(chain, deployed, chain.url, methods)  # the announcing node itself
    assert later == ["eth_getLogs"] * 3  # no eth_getBlockByNumber for a block the socket announced


def test_a_source_for_some_events_skips_by_bloom_every_announced_block_without_them(chain, deployed, monkeypatch):
    methods = _record_requests(monkeypatch)
    after = deployed.deployment.deploy_block - 1
    source = EventSource.from_deployment(ws(chain.url), deployed.deployment, events={"UpdateSubmitted"},
                                         request_url=chain.url, **{**FAST, "idle_check": 60.0})
    blocks: list[int] = []

    async def scenario():
        async def follow():
            delivered = []
            async for batch in source.batches(after):
                blocks.append(batch.last_block)
                delivered.extend(batch.events)
                if len(delivered) == 2:
                    return delivered
        consumer = asyncio.create_task(follow())
        while "eth_getLogs" not in methods:  # the first look: the head, the range since the deploy block
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        first_look = len(methods)
        mined = []
        for action in (deployed.start_training, lambda: deployed.submit(0), lambda: deployed.submit(1)):
            await asyncio.sleep(0.05)
            mined.append(await asyncio.to_thread(action))
        return await asyncio.wait_for(consumer, TIMEOUT_S), methods[first_look:], mined

    events, later, mined = asyncio.run(scenario())
    assert events == events_of(deployed.rounds.get_events(after), UpdateSubmitted)
    # The block of TrainingStarted and RoundOpened is delivered without a request: its bloom
    # lacks UpdateSubmitted's topic. Each submission's block is read by its hash.
    assert later == ["eth_getLogs"] * 2
    assert mined[0] in blocks and blocks[-2:] == mined[1:]


def test_a_source_for_some_events_reads_ranges_with_their_topics_and_delivers_only_them(chain, deployed):
    deployed.start_training()
    deployed.submit(0)
    head = deployed.submit(1)
    after = deployed.deployment.deploy_block - 1
    wanted = {"RoundOpened", "UpdateSubmitted"}
    source = EventSource.from_deployment(chain.url, deployed.deployment, events=wanted, max_block_range=2, **FAST)

    async def read():
        delivered, last = [], after
        async for batch in source.batches(after, head):
            delivered.extend(batch.events)
            last = batch.last_block
        return delivered, last

    delivered, last = asyncio.run(asyncio.wait_for(read(), TIMEOUT_S))
    everything = deployed.rounds.get_events(after)
    assert delivered == [e for e in everything if e.name in wanted]
    assert {e.name for e in everything} - wanted == {"TrainingStarted"}  # something was left out
    assert last == head  # every block is covered, with events or not


def test_a_source_refuses_event_names_the_contract_lacks(deployed):
    with pytest.raises(ConfigError, match=r"\['RoundOpend'\] are not in the contract's ABI"):
        EventSource.from_deployment("http://127.0.0.1:1", deployed.deployment, events={"RoundOpend", "RoundOpened"})


def test_requests_to_another_host_than_the_announcers_read_each_block_as_a_range(chain, deployed):
    node = _HttpOnlyNode(chain.url)  # another port: it could lag and answer [] for a block it lacks
    try:
        later = _follow_three_blocks(chain, deployed, node.url, node.methods)
    finally:
        node.close()
    assert later == ["eth_getBlockByNumber", "eth_getLogs"] * 3


def test_an_announced_block_the_node_does_not_hold_is_not_delivered_and_the_head_is_read_instead(chain, deployed):
    source = EventSource.from_deployment(chain.url, deployed.deployment)
    head = chain.w3.eth.get_block("latest")
    position = _Position(head["number"], (BlockRef(head["number"], "0x" + bytes(head["hash"]).hex()),), 0)
    unknown = {"number": head["number"] + 1, "hash": random.randbytes(32), "parentHash": bytes(head["hash"])}
    not_a_child = {"number": head["number"] + 1, "hash": bytes(head["hash"]), "parentHash": random.randbytes(32)}

    async def look(header):
        async with _over_http(chain.url) as w3:
            return await source._next_block(w3, position, header, None)

    assert asyncio.run(look(unknown)) is None and asyncio.run(look(not_a_child)) is None
    assert position.last == head["number"]  # nothing delivered, nothing skipped


def test_over_a_websocket_alone_an_announced_block_the_node_does_not_hold_leaves_the_connection_usable(
        chain, deployed):
    source = EventSource.from_deployment(ws(chain.url), deployed.deployment, events={"UpdateSubmitted"})
    head = chain.w3.eth.get_block("latest")
    position = _Position(head["number"], (BlockRef(head["number"], "0x" + bytes(head["hash"]).hex()),), 0)
    unknown = {"number": head["number"] + 1, "hash": random.randbytes(32), "parentHash": bytes(head["hash"])}

    async def look():
        async with source._connect() as w3:  # requests on the socket itself: no request_url
            refused = await source._next_block(w3, position, unknown, None)
            return refused, (await w3.eth.get_block("latest"))["number"]

    refused, number = asyncio.run(asyncio.wait_for(look(), TIMEOUT_S))
    assert refused is None and number == head["number"]  # the socket still answers after the error


def test_a_source_of_no_events_delivers_every_block_empty_without_asking_for_logs(chain, deployed, monkeypatch):
    deployed.start_training()
    head = deployed.submit(0)
    methods = _record_requests(monkeypatch)
    source = EventSource.from_deployment(chain.url, deployed.deployment, events=set(), **FAST)

    async def read():
        return [batch async for batch in source.batches(deployed.deployment.deploy_block - 1, head)]

    batches = asyncio.run(asyncio.wait_for(read(), TIMEOUT_S))
    assert batches[-1].last_block == head and not any(batch.events for batch in batches)
    assert "eth_getLogs" not in methods  # "topics": [[]] would have asked for every event


def test_after_three_refusals_in_a_row_a_source_reads_ranges_only_and_says_so_once(chain, deployed, caplog):
    source = EventSource.from_deployment(chain.url, deployed.deployment)
    head = chain.w3.eth.get_block("latest")
    position = _Position(head["number"], (BlockRef(head["number"], "0x" + bytes(head["hash"]).hex()),), 0)

    async def look(header):
        async with _over_http(chain.url) as w3:
            return await source._next_block(w3, position, header, None)

    with caplog.at_level(logging.WARNING, logger="fedtss.chain.events"):
        for _ in range(4):
            unknown = {"number": head["number"] + 1, "hash": random.randbytes(32), "parentHash": bytes(head["hash"])}
            assert asyncio.run(look(unknown)) is None
    assert sum("refused eth_getLogs by block hash" in r.getMessage() for r in caplog.records) == 1
    chain.w3.provider.make_request("evm_mine", [])
    child = chain.w3.eth.get_block("latest")
    real = {"number": child["number"], "hash": bytes(child["hash"]), "parentHash": bytes(child["parentHash"])}
    assert asyncio.run(look(real)) is None  # a block it holds, but the source no longer asks by hash


def test_a_request_url_must_be_http():
    with pytest.raises(ConfigError, match="request url"):
        EventSource("ws://127.0.0.1:1", "0x" + "11" * 20, [], request_url="ws://127.0.0.1:1")


def test_a_websocket_url_to_a_node_without_websocket_falls_back_to_polling_and_misses_nothing(
        chain, deployed, caplog):
    node = _HttpOnlyNode(chain.url)
    try:
        after = deployed.deployment.deploy_block
        deployed.start_training()
        deployed.submit(0)
        source = EventSource.from_deployment(ws(node.url), deployed.deployment, **FAST)
        with caplog.at_level(logging.WARNING, logger="fedtss.chain.events"):
            events = asyncio.run(asyncio.wait_for(collect(source, after, 3), TIMEOUT_S))
    finally:
        node.close()
    assert source.transport == "polling" and source.url == node.url
    assert events == deployed.rounds.get_events(after)
    assert "refuses WebSocket" in caplog.text and "polling eth_getLogs" in caplog.text


def test_a_node_that_refuses_websocket_for_now_is_retried_on_websocket_not_switched(chain, deployed) -> None:
    node = _HttpOnlyNode(chain.url, upgrade_status=429)  # rate limited: WebSocket may work later
    try:
        source = EventSource.from_deployment(ws(node.url), deployed.deployment, **FAST)
        with pytest.raises(TimeoutError):
            asyncio.run(asyncio.wait_for(collect(source, deployed.deployment.deploy_block, 1), 2.0))
    finally:
        node.close()
    assert source.transport == "websocket" and source.url == ws(node.url)


# ------------------------------------------------------------------ reorganizations


def _closed(block: int) -> ChainEvent:
    """A CollectionClosed of round 1 in ``block`` (a scripted source's event)."""
    return CollectionClosed(round=1, clients=3, aggregation_deadline=0, block_number=block,
                            tx_hash=f"0x{block:02x}", log_index=0)


class _ScriptedSource:
    """What a source yields around a reorganization, without a node: the script is the chain."""

    def __init__(self, *script: EventBatch) -> None:
        self.script, self.asked = script, None

    async def batches(self, after_block, until_block=None, *, recent=(), floor=None):
        self.asked = (after_block, tuple(recent), floor)
        for batch in self.script:
            yield batch


def test_run_handlers_rewinds_the_checkpoint_to_the_fork_point_before_a_new_branch(tmp_path):
    path = tmp_path / "checkpoint.json"
    closed_then_lost = EventBatch((_closed(11),), 10, 12, {11: "0x11a", 12: "0x12a"})
    new_branch = EventBatch((_closed(12),), 11, 13, {12: "0x12b", 13: "0x13b"})
    handled: list[ChainEvent] = []

    async def record(event: ChainEvent) -> None:
        handled.append(event)

    checkpoint = Checkpoint(path, deployment="d", start_block=10)
    asyncio.run(run_handlers(_ScriptedSource(closed_then_lost), record, checkpoint))
    assert checkpoint.block == 12 and checkpoint.recent == (BlockRef(11, "0x11a"), BlockRef(12, "0x12a"))

    restarted = Checkpoint(path, deployment="d", start_block=10)
    source = _ScriptedSource(new_branch)
    asyncio.run(run_handlers(source, record, restarted))

    assert source.asked == (12, (BlockRef(11, "0x11a"), BlockRef(12, "0x12a")), 9)  # what the source checks
    assert [e.block_number for e in handled] == [11, 12]  # the re-mined event is handled
    assert restarted.block == 13 and restarted.recent == (BlockRef(12, "0x12b"), BlockRef(13, "0x13b"))


def _run(source: EventSource, deployed, path, until_block: int) -> list[ChainEvent]:
    """One agent process: read the checkpoint, handle (record) events up to ``until_block``."""
    handled: list[ChainEvent] = []

    async def record(event: ChainEvent) -> None:
        handled.append(event)

    checkpoint = Checkpoint.for_deployment(path, deployed.deployment)
    asyncio.run(asyncio.wait_for(run_handlers(source, record, checkpoint, until_block=until_block), TIMEOUT_S))
    assert checkpoint.block == until_block
    return handled


@pytest.mark.parametrize("scheme", ["http", "ws"])
def test_a_live_source_follows_a_reorg_and_delivers_the_re_mined_collection_closed(chain, deployed, scheme, caplog):
    deployed.start_training()
    deployed.submit(0)
    deployed.submit(1)
    closing = deployed.submit(2)  # UpdateSubmitted and CollectionClosed
    chain.w3.provider.make_request("evm_mine", [])  # a block on top, which the reorg replaces too
    url = ws(chain.url) if scheme == "ws" else chain.url
    source = EventSource.from_deployment(url, deployed.deployment, **FAST)
    seen: list[ChainEvent] = []

    async def consume() -> None:
        async for event in source.events(deployed.deployment.deploy_block):
            seen.append(event)
            if [e.name for e in seen].count("CollectionClosed") == 2:
                return

    async def scenario() -> None:
        consumer = asyncio.create_task(consume())
        while len(seen) < 6:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the source has looked at the head since
        await asyncio.to_thread(reorganize_from, chain.w3, closing)
        await asyncio.wait_for(consumer, 4 * TIMEOUT_S)  # a loaded machine: the reorg and the next look

    with caplog.at_level(logging.WARNING, logger="fedtss.chain.events"):
        asyncio.run(scenario())

    assert [e.name for e in seen[6:]] == ["UpdateSubmitted", "CollectionClosed"]
    # The same transaction at the same place in a new block (whose timestamp may differ).
    assert [(where(e), e.tx_hash) for e in seen[6:]] == [(where(e), e.tx_hash) for e in seen[4:6]]
    assert all(e.block_number == closing for e in seen[4:])
    assert f"handling again from block {closing}" in caplog.text


def test_a_restarted_agent_handles_the_branch_that_replaced_its_checkpoint_after_evm_revert(chain, deployed, tmp_path):
    w3 = chain.w3
    path = tmp_path / "checkpoint.json"
    deployed.start_training()
    deployed.submit(0)
    before_close = deployed.submit(1)
    snapshot = chain.node.snapshot()  # evm_snapshot
    closing = deployed.submit(2)
    raw = w3.eth.get_raw_transaction(w3.eth.get_block(closing)["transactions"][0])
    for _ in range(2):
        w3.provider.make_request("evm_mine", [])
    source = EventSource.from_deployment(chain.url, deployed.deployment, **FAST)
    first_run = _run(source, deployed, path, closing + 2)
    assert [e.name for e in first_run][-1] == "CollectionClosed"

    chain.node.revert(snapshot)  # evm_revert: the agent is down; the chain forgets the closing update...
    w3.provider.make_request("evm_mine", [])
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))  # ...and mines it one block later
    w3.provider.make_request("evm_mine", [])
    assert w3.eth.block_number == closing + 2  # the same height as the checkpoint, on another branch

    second_run = _run(source, deployed, path, closing + 2)
    assert [e.name for e in second_run] == ["UpdateSubmitted", "CollectionClosed"]
    assert {e.block_number for e in second_run} == {closing + 1}
    assert all(e.block_number > before_close for e in second_run)


def test_read_new_looks_once_and_a_memory_checkpoint_says_when_a_reorg_takes_blocks_back(chain, deployed):
    deployed.start_training()
    deployed.submit(0)
    deployed.submit(1)
    closing = deployed.submit(2)  # UpdateSubmitted and CollectionClosed
    chain.w3.provider.make_request("evm_mine", [])
    rewound: list[int] = []
    checkpoint = MemoryCheckpoint.for_deployment(deployed.deployment, on_rewind=rewound.append)
    source = EventSource.from_deployment(chain.url, deployed.deployment)
    first = source.read_new(checkpoint)
    assert [e.name for e in first][-2:] == ["UpdateSubmitted", "CollectionClosed"]
    assert checkpoint.block == closing + 1 and rewound == []
    assert source.read_new(checkpoint) == []  # nothing new: one look, no waiting

    reorganize_from(chain.w3, closing)  # the same height, another branch from the closing block on
    again = source.read_new(checkpoint)
    assert rewound == [closing - 1]  # the reader drops what it folded after the fork point first
    assert [(where(e), e.tx_hash) for e in again] == [(where(e), e.tx_hash) for e in first[-2:]]
    assert checkpoint.block == closing + 1


def test_a_batch_says_whether_it_reached_the_head_not_merely_the_block_it_was_asked_for(chain, deployed):
    after = deployed.deployment.deploy_block
    deployed.start_training()
    deployed.submit(0)
    head = deployed.submit(1)
    source = EventSource.from_deployment(chain.url, deployed.deployment, **FAST)

    async def first_batch(until_block):
        async for batch in source.batches(after, until_block):
            return batch

    short, full = asyncio.run(first_batch(head - 1)), asyncio.run(first_batch(None))
    assert (short.last_block, short.at_head) == (head - 1, False)
    assert (full.last_block, full.at_head) == (head, True)
