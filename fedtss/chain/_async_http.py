"""An asynchronous JSON-RPC provider over HTTP that can be cancelled at any point (private).

web3.py 8's ``AsyncHTTPProvider`` takes one process-wide ``threading.Lock``
(``HTTPSessionManager._lock``, a class attribute) around its session cache on *every*
request, from a thread pool (``async_lock``). A task cancelled while its pool thread still
waits for that lock leaves the thread to take it later with nobody to release it, and from
then on every web3 HTTP provider in the process, synchronous ones included (each new thread
caches its session under that lock), waits forever: ApeWorX/web3.py issue #3867, open as of
web3 8.0.0 (fix proposed in pull request #3872). Agents cancel their event followers whenever
they stop, and a pack runs many agents in one process; a CI run hung on it for 80 minutes.

This provider keeps one aiohttp session of its own, opened on first use in the running
loop, and takes no lock: cancelling a request only abandons that request. It raises what
``AsyncHTTPProvider`` raises (``aiohttp.ClientError``, ``TimeoutError``), which
``fedtss.chain`` turns into ``ChainUnavailable``; the JSON-RPC answer is decoded by web3.
It sends no batch requests (nothing here asks for one) and no web3 ``User-Agent``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

__all__ = ["AsyncJSONRPCOverHTTP"]


class AsyncJSONRPCOverHTTP(AsyncJSONBaseProvider):
    """JSON-RPC requests to ``url``, each given ``timeout`` seconds in all; close with :meth:`disconnect`."""

    def __init__(self, url: str, *, timeout: float) -> None:
        super().__init__()
        self.endpoint_uri = url
        self._timeout = ClientTimeout(total=timeout)
        self._session: ClientSession | None = None

    def __str__(self) -> str:
        return f"RPC connection {self.endpoint_uri}"

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        if self._session is None or self._session.closed:
            # A connection per request, as web3's provider does: a kept-alive connection that a
            # proxy closed while idle would fail the next request for nothing.
            self._session = ClientSession(timeout=self._timeout, raise_for_status=True,
                                          connector=TCPConnector(force_close=True))
        body = self.encode_rpc_request(method, params)
        async with self._session.post(self.endpoint_uri, data=body,
                                      headers={"Content-Type": "application/json"}) as response:
            return self.decode_rpc_response(await response.read())

    async def is_connected(self, show_traceback: bool = False) -> bool:
        try:
            response = await self.make_request(RPCEndpoint("web3_clientVersion"), [])
        except Exception:
            if show_traceback:
                raise
            return False
        return "result" in response

    async def disconnect(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
