"""web3 behind one door: the chain reader's plain values against anvil, and how node failures
and reverts are told apart (ChainUnavailable, ContractRevert)."""

from __future__ import annotations

import hashlib

import pytest

from fedtss.chain import (
    Block,
    ChainReader,
    Log,
    Receipt,
    RoundsContract,
    Transaction,
    checksum_address,
    connect,
    is_address,
)
from fedtss.chain.devnode import free_port
from fedtss.cid import RAW, cid_from_parts
from fedtss.errors import ChainError, ChainUnavailable, ContractRevert


def cid(label: str) -> str:
    return cid_from_parts(RAW, hashlib.sha256(label.encode()).digest())


def _nothing_listens() -> str:
    return f"http://127.0.0.1:{free_port()}"


# ------------------------------------------------------------------- plain values


def test_the_reader_answers_blocks_transactions_and_receipts_in_plain_values(chain, deployed) -> None:
    rounds, operator = deployed.rounds, deployed.accounts[0]
    raw = rounds.start_training(operator, cid("model-0"), 1)
    tx_hash = "0x" + bytes(raw["transactionHash"]).hex()
    reader = rounds.chain

    assert reader.chain_id() == chain.w3.eth.chain_id == 31337
    assert reader.head_number() == raw["blockNumber"]
    head = reader.latest_block()
    assert isinstance(head, Block) and head.number == raw["blockNumber"]
    assert head.hash == "0x" + bytes(raw["blockHash"]).hex()
    assert reader.chain_time() == head.timestamp == chain.timestamp()
    assert reader.block(head.number - 1).hash == head.parent_hash
    assert head.transaction_hashes == (tx_hash,) and head.transactions == ()

    (tx,) = reader.block(head.hash, transactions=True).transactions
    assert tx == reader.transaction(tx_hash)
    assert isinstance(tx, Transaction) and tx.hash == tx_hash and tx.block_number == head.number
    assert (tx.sender, tx.to, tx.value) == (operator.address, rounds.address, 0)
    assert isinstance(tx.input, bytes) and rounds.decode_call(tx.input).function == "startTraining"

    receipt = reader.receipt(tx_hash)
    assert isinstance(receipt, Receipt) and (receipt.tx_hash, receipt.status) == (tx_hash, 1)
    assert receipt.gas_used == reader.gas_used(tx_hash) == raw["gasUsed"]
    assert receipt.block_hash == head.hash and receipt.contract_address is None
    assert all(isinstance(log, Log) and isinstance(log.topics[0], str) for log in receipt.logs)
    assert rounds.events(receipt) == rounds.events(raw)  # the same events from either form


def test_the_reader_answers_logs_and_accounts_and_the_otterscan_index(chain, deployed) -> None:
    rounds, operator = deployed.rounds, deployed.accounts[0]
    start = deployed.deployment.deploy_block
    rounds.start_training(operator, cid("model-0"), 1)
    reader = rounds.chain

    logs = reader.logs(rounds.address, start, "latest")
    assert [log.address for log in logs] == [rounds.address] * 2
    assert rounds.decode_logs(logs) == rounds.get_events(start)

    assert reader.balance(operator.address) == chain.w3.eth.get_balance(operator.address) > 0
    assert reader.nonce(operator.address) == chain.w3.eth.get_transaction_count(operator.address)
    assert reader.code(rounds.address) == bytes(chain.w3.eth.get_code(rounds.address)) != b""
    assert reader.code(operator.address) == b""

    newest = reader.search_transactions_before(operator.address, 2)  # anvil keeps the index
    assert newest is not None and len(newest) == 2
    assert newest[0] == reader.transaction(newest[0].hash) and newest[0].sender == operator.address


def test_what_the_chain_does_not_have_is_none(chain, deployed) -> None:
    reader = deployed.rounds.chain
    unknown = "0x" + "ab" * 32
    assert reader.block(reader.head_number() + 1000) is None
    assert reader.block(unknown) is None
    assert reader.transaction(unknown) is None and reader.receipt(unknown) is None
    with pytest.raises(ChainError, match="no receipt"):
        reader.gas_used(unknown)


def test_calldata_that_names_no_function_decodes_to_a_problem_not_an_error(deployed) -> None:
    rounds = deployed.rounds
    assert rounds.decode_call(b"\x01\x02").problem.startswith("2 bytes of input")
    assert "names no function" in rounds.decode_call(b"\xde\xad\xbe\xef" + b"\0" * 32).problem
    assert rounds.decode_call("not hex").problem == "the input is not hex data"


def test_addresses_are_checked_and_checksummed_at_the_door() -> None:
    lower = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
    assert is_address(lower) and not is_address("0x1234")
    assert checksum_address(lower) == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    with pytest.raises(ValueError):
        checksum_address("not an address")


# ------------------------------------------------------------------ classification


def test_a_refused_connection_to_the_node_is_chain_unavailable(deployed) -> None:
    url = _nothing_listens()
    port = url.rsplit(":", 1)[1]
    with pytest.raises(ChainUnavailable, match=f"127.0.0.1:{port}.*connection refused"):
        ChainReader.at(url, timeout=2.0).chain_time()
    with pytest.raises(ChainUnavailable, match=port):
        connect(url, timeout=2.0)
    away = RoundsContract.at(url, deployed.deployment, timeout=2.0)
    with pytest.raises(ChainUnavailable, match=r"\(currentRound\)"):
        away.current_round()
    with pytest.raises(ChainUnavailable):
        away.get_events(0)
    with pytest.raises(ChainUnavailable):
        away.start_training(deployed.accounts[0], cid("model-0"), 1)


def test_a_revert_is_a_contract_revert_and_never_chain_unavailable(deployed) -> None:
    with pytest.raises(ContractRevert) as info:  # round 1 is not open yet
        deployed.rounds.submit_update(deployed.accounts[6], 1, cid("update"))
    assert info.value.name == "RoundWrongState" and not isinstance(info.value, ChainUnavailable)


def test_views_and_transactions_ask_the_node_its_chain_id_once_per_connection(chain, deployed) -> None:
    from tests.fedtss.chain.test_events import _HttpOnlyNode

    node = _HttpOnlyNode(chain.url)
    try:
        rounds = RoundsContract(connect(node.url), deployed.rounds.address, deployed.rounds.contract.abi)
        for _ in range(3):
            rounds.current_round()  # not a fixed view: asked each time
            rounds.state(1)
        deployed.start_training()
        rounds.submit_update(deployed.accounts[6], 1, cid("update-0"))
    finally:
        node.close()
    assert node.methods.count("eth_call") >= 6 and "eth_sendRawTransaction" in node.methods
    first_call = node.methods.index("eth_call")
    assert "eth_chainId" not in node.methods[first_call:]  # web3's validation asked before every call


def test_blocks_logs_and_the_pending_time_read_plainly_are_what_web3_reads(chain, deployed):
    from fedtss.chain.reader import block_from_rpc, log_from_rpc

    rounds = deployed.rounds
    rounds.start_training(deployed.accounts[0], cid("model-0"), 1)
    reader, address, first_block = rounds.chain, rounds.address, deployed.deployment.deploy_block
    w3 = chain.w3
    head = w3.eth.block_number
    for ref in ("latest", head, head - 1):
        assert reader.block(ref) == block_from_rpc(w3.eth.get_block(ref))
    assert reader.block(head + 1000) is None
    by_web3 = [log_from_rpc(raw) for raw in w3.eth.get_logs({"address": address, "fromBlock": first_block,
                                                              "toBlock": "latest"})]
    assert by_web3 and reader.logs(address, first_block, "latest") == by_web3
    assert abs(reader.pending_time() - w3.eth.get_block("pending")["timestamp"]) <= 1


def test_transactions_and_receipts_read_plainly_are_what_web3_reads(chain, deployed, monkeypatch):
    from fedtss.chain.reader import receipt_from_rpc, transaction_from_rpc

    rounds = deployed.rounds
    raw = rounds.start_training(deployed.accounts[0], cid("model-0"), 1)
    tx_hash, reader, w3 = "0x" + bytes(raw["transactionHash"]).hex(), rounds.chain, chain.w3
    assert reader.transaction(tx_hash) == transaction_from_rpc(w3.eth.get_transaction(tx_hash))
    assert reader.receipt(tx_hash) == receipt_from_rpc(w3.eth.get_transaction_receipt(tx_hash))
    assert rounds.function_name(reader.transaction(tx_hash).input) == "startTraining"
    # Straight to the provider (about 2 ms of CPU less each: the demo's gas table reads both for
    # every transaction): web3's own methods are not asked.
    def refuse(*args):
        raise AssertionError("asked through web3")

    monkeypatch.setattr(reader._w3.eth, "get_transaction", refuse)
    monkeypatch.setattr(reader._w3.eth, "get_transaction_receipt", refuse)
    assert reader.transaction(tx_hash.upper().replace("0X", "0x")).hash == tx_hash
    assert reader.receipt(tx_hash).tx_hash == tx_hash
    assert reader.transaction("0x" + "cd" * 32) is None and reader.receipt("0x" + "cd" * 32) is None
    assert rounds.function_name(b"\xde\xad\xbe\xef") is None and rounds.function_name(b"\x01") is None


def test_a_plain_answer_of_the_wrong_shape_is_a_chain_error_naming_what_was_asked(chain, monkeypatch):
    from fedtss.chain.reader import ChainReader, http_web3
    from fedtss.errors import ChainError, ChainUnavailable

    w3 = http_web3(chain.url, timeout=10)
    reader = ChainReader(w3)
    monkeypatch.setattr(w3.provider, "make_request", lambda method, params: {"jsonrpc": "2.0", "id": 1,
                                                                              "result": {"number": "zz"}})
    with pytest.raises(ChainError, match=r"\(block\)") as info:
        reader.block("latest")
    assert not isinstance(info.value, ChainUnavailable)
    for what, read in (("transaction", reader.transaction), ("receipt", reader.receipt)):
        with pytest.raises(ChainError, match=rf"\({what}\)"):
            read("0x" + "ab" * 32)
    # A node may answer a pending transaction's receipt with a null block: not mined, so None.
    monkeypatch.setattr(w3.provider, "make_request", lambda method, params: {"jsonrpc": "2.0", "id": 1,
                                                                              "result": {"blockNumber": None}})
    assert reader.receipt("0x" + "ab" * 32) is None
