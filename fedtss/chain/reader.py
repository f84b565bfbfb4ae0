"""What a JSON-RPC node says about its chain, read-only and in plain values.

:class:`ChainReader` is the one place outside the contract bindings that asks a node
anything: chain id, head, the chain's clock, blocks, transactions, receipts, logs, accounts
and Otterscan's address index. It answers with frozen dataclasses of ``int``, ``str`` (hashes
as lowercase ``0x`` hex, addresses checksummed) and ``bytes`` (calldata, log data, code),
never web3's ``HexBytes`` or ``AttributeDict``, so that its callers need not import web3.

Errors. Something the chain does not have (a block number above the head, an unknown hash)
is ``None``, never an exception. A node that cannot be reached, times out or refuses is
:class:`~fedtss.errors.ChainUnavailable`; an answer that makes no sense is
:class:`~fedtss.errors.ChainError`. Both messages name the node by scheme, host and port only.

The chain's clock is :meth:`ChainReader.chain_time`, the latest block's timestamp: contract
deadlines are compared with ``block.timestamp``, so that is the time they are in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_utils import is_hex_address, to_checksum_address
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound, Web3Exception
from web3.types import RPCEndpoint

from fedtss.chain._failures import BAD_ANSWERS, NODE_FAILURES, node_error
from fedtss.chain._views import ASK_WEB3
from fedtss.chain.redaction import display_url, redact_node_urls
from fedtss.errors import ChainError, ChainUnavailable

__all__ = [
    "Block",
    "ChainReader",
    "Log",
    "Receipt",
    "Transaction",
    "checksum_address",
    "is_address",
]

_T = TypeVar("_T")
_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Transaction:
    """A transaction as the node has it; ``block_number`` is None while it is pending."""

    hash: str
    block_number: int | None
    sender: str
    to: str | None  # None: a contract creation
    value: int
    nonce: int
    gas: int  # the gas limit the sender set
    input: bytes  # the calldata, untrusted: anyone can send any bytes to any address


@dataclass(frozen=True)
class Log:
    """One log entry of a receipt or of ``eth_getLogs``; ``topics[0]`` names the event."""

    address: str
    topics: tuple[str, ...]
    data: bytes
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int


@dataclass(frozen=True)
class Receipt:
    """What a mined transaction left: status (1 ok, 0 reverted), gas, logs, a created contract."""

    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    effective_gas_price: int | None
    contract_address: str | None
    logs: tuple[Log, ...]


@dataclass(frozen=True)
class Block:
    """A block's header fields and its transactions' hashes.

    ``transactions`` holds the transactions themselves only when the block was read with
    ``transactions=True``; otherwise it is empty and ``transaction_hashes`` still names them.
    """

    number: int
    hash: str
    parent_hash: str
    timestamp: int
    gas_used: int
    transaction_hashes: tuple[str, ...]
    transactions: tuple[Transaction, ...] = ()


class ChainReader:
    """Read-only questions to the node behind ``w3`` (see the module doc for the answers' forms)."""

    def __init__(self, w3: Web3, rpc_url: str | None = None) -> None:
        self._w3 = w3
        self.rpc_url = rpc_url or str(getattr(w3.provider, "endpoint_uri", "") or "")

    @classmethod
    def at(cls, rpc_url: str, *, timeout: float = 30.0) -> ChainReader:
        """A reader of the node at ``rpc_url`` (http(s)); nothing is asked yet, so a node that is
        away shows at the first question, as :class:`~fedtss.errors.ChainUnavailable`."""
        return cls(http_web3(rpc_url, timeout=timeout), rpc_url)

    def __repr__(self) -> str:
        return f"ChainReader({display_url(self.rpc_url)})"

    # ------------------------------------------------------------------ the chain

    def chain_id(self) -> int:
        return int(self._ask("chain id", lambda: self._w3.eth.chain_id))

    def head_number(self) -> int:
        """The latest block's number."""
        return int(self._ask("block number", lambda: self._w3.eth.block_number))

    def latest_block(self) -> Block:
        """The head block (without its transactions)."""
        block = self.block("latest")
        if block is None:
            raise ChainError("the node answered no latest block")
        return block

    def chain_time(self) -> int:
        """The latest block's timestamp: the clock the contract's deadlines are in."""
        return self.latest_block().timestamp

    def pending_time(self) -> int:
        """The timestamp the next transaction would see: the pending block's, else the latest's
        (a node that builds no pending block answers for "pending" with an error or nothing)."""
        try:
            answer = self._plain("pending block", "eth_getBlockByNumber", ["pending", False])
            return _int(answer["timestamp"])
        except ChainUnavailable:
            raise
        except (ChainError, LookupError, TypeError, ValueError):
            pass  # no usable pending block in the plain answer: as web3 reads it, below
        try:
            return int(self._w3.eth.get_block("pending")["timestamp"])
        except OSError as exc:
            raise node_error(exc, self.rpc_url, "pending block") from exc
        except (Web3Exception, ValueError, KeyError, TypeError):
            return self.chain_time()

    def block(self, ref: int | str, *, transactions: bool = False) -> Block | None:
        """The block with number or hash ``ref`` (or ``"latest"``); None if the chain has none."""
        if not transactions and (isinstance(ref, int) or ref in ("latest", "pending", "earliest", "safe", "finalized")):
            answer = self._plain("block", "eth_getBlockByNumber", [hex(ref) if isinstance(ref, int) else ref, False])
            if answer is None or isinstance(answer, Mapping):
                return None if answer is None else self._parsed("block", block_from_rpc, answer)
        raw = self._ask("block", self._w3.eth.get_block, ref, transactions)
        return None if raw is None else block_from_rpc(raw)

    def transaction(self, tx_hash: str) -> Transaction | None:
        """The transaction with this hash; None if the node knows none."""
        answer = self._plain_by_hash("transaction", "eth_getTransactionByHash", tx_hash)
        if answer is None or isinstance(answer, Mapping):
            return None if answer is None else self._parsed("transaction", transaction_from_rpc, answer)
        raw = self._ask("transaction", self._w3.eth.get_transaction, tx_hash)
        return None if raw is None else transaction_from_rpc(raw)

    def receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt of a mined transaction; None if it is not mined (or not known): some nodes
        answer a pending transaction with a receipt whose ``blockNumber`` is null."""
        answer = self._plain_by_hash("receipt", "eth_getTransactionReceipt", tx_hash)
        if answer is None or isinstance(answer, Mapping):
            raw = answer
        else:
            raw = self._ask("receipt", self._w3.eth.get_transaction_receipt, tx_hash)
        if raw is None or ("blockNumber" in raw and raw["blockNumber"] is None):
            return None
        return self._parsed("receipt", receipt_from_rpc, raw)

    def gas_used(self, tx_hash: str) -> int:
        """The gas a mined transaction used; ChainError if the chain has no receipt for it."""
        receipt = self.receipt(tx_hash)
        if receipt is None:
            raise ChainError(f"the chain has no receipt for transaction {tx_hash} (not mined, or reorganized away)")
        return receipt.gas_used

    def logs(self, address: str, from_block: int, to_block: int | str, *,
             topics: list[str | list[str] | None] | None = None) -> list[Log]:
        """The logs of the contract at ``address`` in blocks ``from_block..to_block``, in chain
        order; ``topics`` filters on the node, as ``eth_getLogs`` does (a list per position means
        any of them)."""
        query: dict[str, Any] = {"address": checksum_address(address), "fromBlock": from_block, "toBlock": to_block}
        if topics is not None:
            query["topics"] = topics
        plain = {**query, "fromBlock": _tag(from_block), "toBlock": _tag(to_block)}
        answer = self._plain("logs", "eth_getLogs", [plain])
        if isinstance(answer, list):
            return self._parsed("logs", lambda raws: [log_from_rpc(raw) for raw in raws], answer)
        return [log_from_rpc(raw) for raw in self._ask("logs", self._w3.eth.get_logs, query)]

    # ------------------------------------------------------------------ accounts

    def balance(self, address: str) -> int:
        """In wei, at the head."""
        return int(self._ask("balance", self._w3.eth.get_balance, checksum_address(address)))

    def nonce(self, address: str) -> int:
        """The number of transactions ``address`` has sent (mined, at the head)."""
        return int(self._ask("nonce", self._w3.eth.get_transaction_count, checksum_address(address)))

    def code(self, address: str) -> bytes:
        """The contract code at ``address``; empty for an account."""
        return bytes(self._ask("code", self._w3.eth.get_code, checksum_address(address)))

    def search_transactions_before(self, address: str, limit: int) -> list[Transaction] | None:
        """The newest ``limit`` transactions from or to ``address``, newest first, from
        Otterscan's ``ots_searchTransactionsBefore`` index (anvil and Erigon keep one); None
        when the node has no such index."""
        answer = self._ask("ots_searchTransactionsBefore", self._w3.provider.make_request,
                           "ots_searchTransactionsBefore", [checksum_address(address), 0, limit])
        try:
            return [transaction_from_rpc(raw) for raw in answer["result"]["txs"]]
        except (KeyError, TypeError, ValueError):
            return None  # an error answer ("method not found"), or not the documented shape

    # ------------------------------------------------------------------ plumbing

    def _plain(self, what: str, method: str, params: list[Any]) -> Any:
        """The ``result`` of one JSON-RPC request handed straight to the provider, skipping web3's
        formatters and middleware (about 1 ms of CPU a request: agents ask for the head and a
        round's logs on every event); ``ASK_WEB3`` for an error answer or none, so that the
        caller asks through web3, which raises as it always did. A result of null is None."""
        try:
            answer = self._w3.provider.make_request(RPCEndpoint(method), params)
        except (*NODE_FAILURES, *BAD_ANSWERS) as exc:
            raise node_error(exc, self.rpc_url, what) from exc
        if not isinstance(answer, Mapping) or "error" in answer or "result" not in answer:
            return ASK_WEB3
        return answer["result"]

    def _plain_by_hash(self, what: str, method: str, tx_hash: Any) -> Any:
        """:meth:`_plain` for a request by transaction hash; ``ASK_WEB3`` for a hash that is not
        0x and 64 hex digits (web3 also takes bytes, and says why it refuses the rest)."""
        if not (isinstance(tx_hash, str) and _TX_HASH.fullmatch(tx_hash)):
            return ASK_WEB3
        return self._plain(what, method, [tx_hash])

    def _parsed(self, what: str, parse: Callable[[Any], _T], answer: Any) -> _T:
        """``parse(answer)``; a plain answer of the wrong shape is the node's ChainError."""
        try:
            return parse(answer)
        except (LookupError, TypeError, ValueError) as exc:
            raise node_error(exc, self.rpc_url, what) from exc

    def _ask(self, what: str, call: Callable[..., _T], *args: Any) -> _T | None:
        """``call(*args)``; None when the node says it has no such block or transaction."""
        try:
            return call(*args)
        except (BlockNotFound, TransactionNotFound):
            return None
        except (*NODE_FAILURES, *BAD_ANSWERS) as exc:
            raise node_error(exc, self.rpc_url, what) from exc


# -------------------------------------------------------------------- plain values


def checksum_address(text: str) -> str:
    """``text`` as an EIP-55 checksummed address; ValueError if it is not 20 bytes of hex."""
    return to_checksum_address(text)


def is_address(text: str) -> bool:
    """Whether ``text`` is ``0x`` and 40 hex digits (any case)."""
    return is_hex_address(text)


def http_web3(rpc_url: str, *, timeout: float) -> Web3:
    """A Web3 on ``rpc_url`` over HTTP; no request is made. The URL's secret parts are kept out
    of log lines from now on (:func:`~fedtss.chain.redaction.redact_node_urls`).

    ``eth_chainId`` is asked once and remembered: web3.py's validation asks it before every
    ``eth_call``, ``eth_estimateGas`` and transaction, which doubled the requests of every view
    and send (a node's chain id does not change under a connection)."""
    redact_node_urls(rpc_url)
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}, cache_allowed_requests=True,
                                  cacheable_requests={RPCEndpoint("eth_chainId")}))


def block_from_rpc(raw: Mapping[str, Any]) -> Block:
    entries = raw.get("transactions") or ()
    full = tuple(transaction_from_rpc(tx) for tx in entries if isinstance(tx, Mapping))
    hashes = tuple(tx.hash for tx in full) if full else tuple(_hash(tx) for tx in entries)
    return Block(number=_int(raw["number"]), hash=_hash(raw["hash"]), parent_hash=_hash(raw["parentHash"]),
                 timestamp=_int(raw["timestamp"]), gas_used=_int(raw["gasUsed"]), transaction_hashes=hashes,
                 transactions=full)


def transaction_from_rpc(raw: Mapping[str, Any]) -> Transaction:
    """A transaction from web3 (ints, HexBytes) or from raw JSON-RPC (hex strings, as Otterscan's)."""
    block = raw.get("blockNumber")
    return Transaction(hash=_hash(raw["hash"]), block_number=None if block is None else _int(block),
                       sender=checksum_address(raw["from"]), to=_address(raw.get("to")), value=_int(raw["value"]),
                       nonce=_int(raw["nonce"]), gas=_int(raw["gas"]), input=_bytes(raw.get("input", b"")))


def receipt_from_rpc(raw: Mapping[str, Any]) -> Receipt:
    price = raw.get("effectiveGasPrice")
    return Receipt(tx_hash=_hash(raw["transactionHash"]), block_number=_int(raw["blockNumber"]),
                   block_hash=_hash(raw["blockHash"]), status=_int(raw["status"]), gas_used=_int(raw["gasUsed"]),
                   effective_gas_price=None if price is None else _int(price),
                   contract_address=_address(raw.get("contractAddress")),
                   logs=tuple(log_from_rpc(log) for log in raw["logs"]))


def log_from_rpc(raw: Mapping[str, Any]) -> Log:
    return Log(address=checksum_address(raw["address"]), topics=tuple(_hash(t) for t in raw["topics"]),
               data=_bytes(raw["data"]), block_number=_int(raw["blockNumber"]), block_hash=_hash(raw["blockHash"]),
               tx_hash=_hash(raw["transactionHash"]), tx_index=_int(raw["transactionIndex"]),
               log_index=_int(raw["logIndex"]))


def _tag(block: int | str) -> str:
    """A block number or tag as JSON-RPC takes it (numbers in hex)."""
    return hex(block) if isinstance(block, int) else block


def _int(value: int | str) -> int:
    return value if isinstance(value, int) else int(value, 16)


def _hash(value: bytes | str) -> str:
    return "0x" + bytes(value).hex() if isinstance(value, (bytes, bytearray)) else str(value).lower()


def _bytes(value: bytes | str) -> bytes:
    return bytes(value) if isinstance(value, (bytes, bytearray)) else bytes.fromhex(str(value).removeprefix("0x"))


def _address(value: str | None) -> str | None:
    return None if value is None else checksum_address(value)
