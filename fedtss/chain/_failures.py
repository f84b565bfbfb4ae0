"""Which errors of web3 and its transports mean "the node is away", and what they become.

One classification for the whole package: :class:`~fedtss.chain.contract.RoundsContract`,
:class:`~fedtss.chain.reader.ChainReader` and :func:`~fedtss.chain.contract.connect` turn these
errors into :class:`~fedtss.errors.ChainUnavailable`, and
:class:`~fedtss.chain.events.EventSource` reconnects after them. Nothing outside
``fedtss/chain`` sees a web3, requests, aiohttp or websockets error.
"""

from __future__ import annotations

import errno

import aiohttp
from web3.exceptions import ProviderConnectionError, TimeExhausted, Web3Exception, Web3RPCError
from websockets.exceptions import WebSocketException

from fedtss.chain.redaction import display_url, redact_urls
from fedtss.errors import ChainError, ChainUnavailable

__all__ = ["BAD_ANSWERS", "NODE_FAILURES", "describe_failure", "node_error"]

#: Errors after which asking the node again can succeed: it went away, timed out, or refused
#: for now (a JSON-RPC error answer, e.g. "nonce too low" for a transaction).
NODE_FAILURES: tuple[type[BaseException], ...] = (
    OSError,  # TimeoutError, and requests' errors (a refused connection, an HTTP 5xx of a proxy)
    aiohttp.ClientError,
    WebSocketException,
    ProviderConnectionError,
    TimeExhausted,  # no receipt in time
    Web3RPCError,
)

#: Errors of a node's answer that asking again would not mend (a malformed answer, an
#: argument web3 refused): a ChainError, not ChainUnavailable.
BAD_ANSWERS: tuple[type[BaseException], ...] = (Web3Exception, ValueError)


def node_error(exc: BaseException, rpc_url: str, what: str) -> ChainError:
    """The fedtss error for ``exc``, raised while asking the node at ``rpc_url`` for ``what``.

    The message names the node by scheme, host and port only (a hosted node's API key lives in
    the URL's path) and says why in a few words.
    """
    node, reason = display_url(rpc_url), describe_failure(exc, rpc_url)
    if isinstance(exc, NODE_FAILURES):
        return ChainUnavailable(f"the node at {node} did not answer ({what}): {reason}")
    return ChainError(f"the node at {node} gave no usable answer ({what}): {reason}")


def describe_failure(exc: BaseException, rpc_url: str) -> str:
    """Why a node did not answer, in a few words: a refused connection is by far the most common
    case, and urllib3's full retry chain buried it in three lines of pool internals."""
    text = str(exc)
    if _is_refused_connection(exc, text):
        return "connection refused (is a node running there?)"
    return redact_urls(text, rpc_url)


def _is_refused_connection(exc: BaseException, text: str) -> bool:
    """Each transport words it its own way: requests nests "[Errno 111] Connection refused" in its
    retry chain, aiohttp says "Connect call failed" (with the errno on the exception), websockets
    raises the ConnectionRefusedError itself."""
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return True
    return isinstance(exc, OSError) and ("Connection refused" in text or "Errno 111" in text)
