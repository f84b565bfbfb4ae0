"""Views, transactions' data and events coded by eth_abi, without web3's per-call machinery (private).

web3.py 8's ``ContractFunction.call`` spends about 2.9 ms of CPU on one view (argument
normalizers, request and result formatters, middleware, output normalizers: measured on this
machine against anvil), encodes a transaction's call twice (to estimate it, then to build it),
and its ``process_log`` takes about 1 ms a log; agents read views on every event and tick and
decode the logs of every block they follow: on two cores shared by ten clients, five members,
the keeper and the node, that CPU is what bounds a round. A :class:`CallCodec` does the same ABI
work with eth_abi and :func:`read_view` hands the request to web3's provider (0.7 ms in all); an
:class:`EventCodec` decodes a log. They give what web3 gives: the one output, or a list of the
outputs, arrays as lists, structs as tuples, addresses checksummed (``test_contract.py`` compares
every view of the contract with web3's answer, ``test_views.py`` every event with random
arguments).

Only the plain case is done here: a JSON-RPC error answer (a revert), an argument web3 would
refuse or an answer that does not decode makes :func:`read_view` return :data:`ASK_WEB3` (and
:meth:`EventCodec.decode` None), and the caller goes through web3, which raises as it always did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.codec import ABICodec
from eth_abi.exceptions import DecodingError, EncodingError
from eth_utils import function_abi_to_4byte_selector, is_checksum_address, to_checksum_address
from web3 import Web3
from web3._utils.abi import build_strict_registry
from web3.types import RPCEndpoint

__all__ = ["ASK_WEB3", "CallCodec", "EventCodec", "abi_type", "call_codecs", "event_codecs", "read_view"]

#: What :func:`read_view` returns when web3 should answer instead (see the module doc).
ASK_WEB3 = object()
#: The arguments' encoder web3 8 uses by default: bytes of the exact size, checksummed addresses.
_STRICT = ABICodec(build_strict_registry())


@dataclass(frozen=True)
class CallCodec:
    """How to encode a call to one function, and decode a view's answer as web3 would."""

    selector: bytes
    input_types: tuple[str, ...]
    outputs: tuple[Mapping[str, Any], ...]

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> CallCodec:
        return cls(function_abi_to_4byte_selector(item), tuple(abi_type(i) for i in item["inputs"]),
                   tuple(item["outputs"]))

    def encode(self, args: Sequence[Any]) -> str:
        """The call's data; refuses (ValueError) what web3 refuses: a short ``bytes32``, an
        address that is not checksummed."""
        for kind, value in zip(self.input_types, args, strict=True):
            _require_checksummed(kind, value)
        return "0x" + (self.selector + _STRICT.encode(self.input_types, list(args))).hex()

    def decode(self, raw: bytes) -> Any:
        values = abi_decode([abi_type(o) for o in self.outputs], raw)
        normalized = [_checksummed(o, v) for o, v in zip(self.outputs, values, strict=True)]
        return normalized[0] if len(normalized) == 1 else normalized


def call_codecs(abi: Sequence[Mapping[str, Any]], *, transactions: bool = False) -> dict[str, CallCodec]:
    """A codec per view or pure function of ``abi`` (per other function with ``transactions``:
    their inputs encoded the same way), by name; an overloaded name gets none."""
    reads = ("view", "pure")
    items = [i for i in abi if i.get("type") == "function" and (i.get("stateMutability") in reads) != transactions]
    names = [i["name"] for i in items]
    return {i["name"]: CallCodec.of(i) for i in items if names.count(i["name"]) == 1}


def read_view(w3: Web3, address: str, codec: CallCodec, args: Sequence[Any], block: int | str) -> Any:
    """The view's value on the state after ``block``, or :data:`ASK_WEB3`. Transport errors
    (the node is away) propagate as the provider raises them."""
    try:
        data = codec.encode(args)
    except (EncodingError, TypeError, ValueError, OverflowError):
        return ASK_WEB3  # web3's normalizers may accept it, or say why not
    tag = hex(block) if isinstance(block, int) else block
    answer = w3.provider.make_request(RPCEndpoint("eth_call"), [{"to": address, "data": data}, tag])
    result = answer.get("result") if isinstance(answer, Mapping) and "error" not in answer else None
    if not isinstance(result, str) or not result.startswith("0x"):
        return ASK_WEB3
    try:
        return codec.decode(bytes.fromhex(result[2:]))
    except (DecodingError, ValueError):
        return ASK_WEB3  # web3 says what was wrong (no code there, a short answer)


@dataclass(frozen=True)
class EventCodec:
    """How to decode one event's log as web3's ``process_log`` does: its indexed arguments (all
    static in this contract) from topics 1.., the others from the data."""

    indexed: tuple[Mapping[str, Any], ...]
    unindexed: tuple[Mapping[str, Any], ...]

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> EventCodec:
        inputs = item["inputs"]
        return cls(tuple(i for i in inputs if i.get("indexed")), tuple(i for i in inputs if not i.get("indexed")))

    def decode(self, topics: Sequence[str], data: bytes) -> dict[str, Any] | None:
        """The arguments by name; None for a log this cannot decode plainly (a dynamic indexed
        argument, the wrong number of topics, short data): web3 then says what is wrong."""
        if len(topics) != len(self.indexed) or any(_is_dynamic(i["type"]) for i in self.indexed):
            return None
        try:
            values = [abi_decode([abi_type(i)], bytes.fromhex(t.removeprefix("0x")))[0]
                      for i, t in zip(self.indexed, topics, strict=True)]
            values += abi_decode([abi_type(i) for i in self.unindexed], data)
        except (DecodingError, ValueError):
            return None
        items = self.indexed + self.unindexed
        return {i["name"]: _checksummed(i, v) for i, v in zip(items, values, strict=True)}


def event_codecs(abi: Sequence[Mapping[str, Any]]) -> dict[str, EventCodec]:
    """A codec per event of ``abi``, by name (an overloaded name gets none)."""
    items = [i for i in abi if i.get("type") == "event" and not i.get("anonymous")]
    names = [i["name"] for i in items]
    return {i["name"]: EventCodec.of(i) for i in items if names.count(i["name"]) == 1}


def _require_checksummed(kind: str, value: Any) -> None:
    if kind.endswith("]") and isinstance(value, (list, tuple)):
        for item in value:
            _require_checksummed(kind[:kind.rindex("[")], item)
    elif kind == "address" and isinstance(value, str) and not is_checksum_address(value):
        raise ValueError(f"{value} is not a checksummed address")


def _is_dynamic(kind: str) -> bool:
    return kind in ("bytes", "string") or kind.endswith("[]") or kind.startswith("tuple")


def abi_type(item: Mapping[str, Any]) -> str:
    """The canonical ABI type of an ABI input or output (a struct as ``(t1,t2)``)."""
    if item["type"].startswith("tuple"):
        return f"({','.join(abi_type(c) for c in item['components'])}){item['type'][5:]}"
    return item["type"]


def _checksummed(item: Mapping[str, Any], value: Any) -> Any:
    """``value`` of ABI ``item`` with every address in it checksummed, as web3 returns it."""
    kind = item["type"]
    if kind.endswith("]"):
        element = {**item, "type": kind[:kind.rindex("[")]}
        return [_checksummed(element, v) for v in value]
    if kind == "tuple":
        return tuple(_checksummed(c, v) for c, v in zip(item["components"], value, strict=True))
    if kind == "address":
        return to_checksum_address(value)
    return value
