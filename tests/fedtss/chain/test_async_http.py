"""The event sources' HTTP requests against real anvil: they can be cancelled at any point and
never hold or leave held web3's process-wide session lock, which every other web3 HTTP provider
in the process needs (web3.py issue #3867: a CI run hung 80 minutes on it)."""

from __future__ import annotations

import asyncio
import errno
import random
import threading
from pathlib import Path

import pytest
from web3 import Web3
from web3._utils.http_session_manager import HTTPSessionManager
from web3.types import RPCEndpoint

from fedtss.chain._async_http import AsyncJSONRPCOverHTTP
from fedtss.chain._failures import NODE_FAILURES, describe_failure, node_error
from fedtss.chain.devnode import free_port
from fedtss.chain.events import _over_http
from fedtss.errors import ChainUnavailable


def answers_from_a_new_thread(url: str, timeout: float = 10.0) -> bool:
    """Whether a fresh synchronous web3 provider, in a thread of its own (so it must cache a new
    session under web3's lock), reads the block number within ``timeout``."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(Web3(Web3.HTTPProvider(url)).eth.block_number),
                              daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)


@pytest.fixture
def throwaway_session_lock(monkeypatch) -> threading.Lock:
    """web3's process-wide session lock, replaced for one test: if a regression leaves it taken,
    that test fails and the rest of the run keeps the real, free one."""
    lock = threading.Lock()
    monkeypatch.setattr(HTTPSessionManager, "_lock", lock)
    return lock


def test_a_polling_request_neither_needs_nor_takes_web3s_process_wide_session_lock(anvil, throwaway_session_lock) -> None:
    async def read_head_while_another_thread_holds_the_lock() -> int:
        async with _over_http(anvil.url) as w3:
            return (await asyncio.wait_for(w3.eth.get_block("latest"), 10))["number"]

    assert throwaway_session_lock.acquire(timeout=10)  # as a thread caching its session does
    try:
        number = asyncio.run(read_head_while_another_thread_holds_the_lock())
    finally:
        throwaway_session_lock.release()
    assert number == anvil.w3.eth.block_number


def test_requests_cancelled_at_random_points_leave_every_web3_provider_in_the_process_working(
        anvil, throwaway_session_lock) -> None:
    rng = random.Random(3867)

    async def poll(url: str) -> None:
        async with _over_http(url) as w3:
            while True:
                await w3.eth.get_block("latest")

    async def start_and_cancel_pollers() -> None:
        for _ in range(40):
            pollers = [asyncio.create_task(poll(anvil.url)) for _ in range(3)]
            await asyncio.sleep(rng.uniform(0, 0.02))  # before, during or after a request
            for poller in pollers:
                poller.cancel()
            outcomes = await asyncio.gather(*pollers, return_exceptions=True)
            assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes

    asyncio.run(start_and_cancel_pollers())
    assert not throwaway_session_lock.locked()
    assert answers_from_a_new_thread(anvil.url)


def test_a_node_that_does_not_answer_in_time_raises_timeout_error_which_fedtss_counts_as_the_nodes_fault() -> None:
    async def ask_a_silent_server() -> None:
        accepted: list[asyncio.StreamWriter] = []
        server = await asyncio.start_server(lambda reader, writer: accepted.append(writer), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        provider = AsyncJSONRPCOverHTTP(f"http://127.0.0.1:{port}", timeout=0.3)
        try:
            await provider.make_request("eth_blockNumber", [])
        finally:
            await provider.disconnect()
            for writer in accepted:
                writer.close()
            server.close()
            await server.wait_closed()

    with pytest.raises(TimeoutError) as caught:
        asyncio.run(ask_a_silent_server())
    assert isinstance(caught.value, NODE_FAILURES)


def test_no_code_of_the_project_builds_web3s_async_http_provider() -> None:
    root = Path(__file__).resolve().parents[3]
    users = [str(path.relative_to(root)) for package in ("fedtss", "agents", "orchestration", "benchmarks")
             for path in (root / package).rglob("*.py") if "AsyncHTTPProvider(" in path.read_text(encoding="utf-8")]
    assert users == [], f"use fedtss.chain._async_http.AsyncJSONRPCOverHTTP instead (web3.py #3867): {users}"


def test_a_refused_connection_is_named_so_whichever_transport_met_it() -> None:
    """aiohttp (the event sources' polling) words it "Connect call failed": the hint must not depend
    on the wording, and the node's URL path (a hosted node's API key) stays out of the message."""
    url = f"http://127.0.0.1:{free_port()}/secret-key"

    async def poll() -> None:
        provider = AsyncJSONRPCOverHTTP(url, timeout=5.0)
        try:
            await provider.make_request(RPCEndpoint("eth_blockNumber"), [])
        finally:
            await provider.disconnect()

    with pytest.raises(NODE_FAILURES) as raised:
        asyncio.run(poll())
    error = node_error(raised.value, url, "eth_blockNumber")
    assert isinstance(error, ChainUnavailable) and "connection refused (is a node running there?)" in str(error)
    assert "secret-key" not in str(error)
    for wording in (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 9)"),
                    OSError("HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded ([Errno 111] "
                            "Connection refused)")):
        assert describe_failure(wording, url) == "connection refused (is a node running there?)"
    assert describe_failure(TimeoutError("timed out"), url) == "timed out"
