"""Views and events decoded with eth_abi answer exactly what web3 answers: every event of the
contract, with arguments drawn at random, decodes to the same values of the same types (the
views are compared against a live contract in test_contract.py)."""

from __future__ import annotations

from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from fedtss.chain import RoundsContract
from fedtss.chain._views import abi_type as _abi_type, event_codecs
from fedtss.chain.contract import _plain

ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def values_of(kind: str) -> st.SearchStrategy[Any]:
    if kind.endswith("[]"):
        return st.lists(values_of(kind[:-2]), max_size=4)
    if kind.startswith("uint"):
        return st.integers(0, 2 ** int(kind[4:] or 256) - 1)
    if kind == "address":
        return st.binary(min_size=20, max_size=20).map(lambda raw: to_checksum_address(raw))
    if kind == "bytes32":
        return st.binary(min_size=32, max_size=32)
    if kind == "bytes":
        return st.binary(max_size=80)
    raise AssertionError(f"no strategy for {kind}: add one, this contract now emits it")


def same(a: Any, b: Any) -> bool:
    """Equal, with lists and tuples where the other has them (bytes and HexBytes alike)."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_every_event_decodes_to_what_web3s_process_log_gives(rounds_artifact, data):
    rounds = RoundsContract(Web3(), ADDRESS, rounds_artifact.abi)
    codecs = event_codecs(rounds_artifact.abi)
    assert set(codecs) == set(rounds.event_topics)
    name = data.draw(st.sampled_from(sorted(codecs)))
    codec = codecs[name]
    indexed = [data.draw(values_of(i["type"])) for i in codec.indexed]
    unindexed = [data.draw(values_of(i["type"])) for i in codec.unindexed]
    topics = [rounds.event_topics[name]] + ["0x" + abi_encode([_abi_type(i)], [v]).hex()
                                            for i, v in zip(codec.indexed, indexed)]
    payload = abi_encode([_abi_type(i) for i in codec.unindexed], unindexed)
    entry = {"address": ADDRESS, "topics": topics, "data": payload, "blockNumber": 7, "blockHash": b"\1" * 32,
             "transactionHash": b"\2" * 32, "transactionIndex": 0, "logIndex": 3}
    by_web3 = {k: _plain(v) for k, v in rounds.contract.events[name]().process_log(entry)["args"].items()}
    plain = {k: _plain(v) for k, v in codec.decode(topics[1:], payload).items()}
    assert by_web3.keys() == plain.keys()
    assert all(same(plain[k], by_web3[k]) for k in plain), (name, plain, by_web3)


def test_a_log_with_the_wrong_number_of_topics_or_short_data_is_left_to_web3(rounds_artifact):
    codec = event_codecs(rounds_artifact.abi)["UpdateSubmitted"]  # round and client indexed
    one_topic = ["0x" + abi_encode(["uint256"], [1]).hex()]
    assert codec.decode(one_topic, b"") is None
    assert codec.decode(one_topic * 2, b"\0" * 10) is None


def test_arguments_web3_refuses_are_left_to_web3_not_padded_or_taken_lowercase(rounds_artifact):
    from fedtss.chain._views import call_codecs

    codecs = call_codecs(rounds_artifact.abi)
    with pytest.raises(Exception):
        codecs["voteCount"].encode((1, 1, b"short"))  # eth_abi's default registry would pad it
    with pytest.raises(Exception):
        codecs["isClient"].encode(("0x" + "ab" * 20,))  # not checksummed
    assert codecs["isClient"].encode((to_checksum_address("0x" + "ab" * 20),)).startswith("0x")
