"""Chain bindings: revert decoding, replayed transactions, events by block range, records."""

from __future__ import annotations

import hashlib

import pytest

from fedtss.chain import (
    Aggregation,
    ChainEvent,
    Deployment,
    RoundEvent,
    RoundsContract,
    RoundState,
    TrainingStarted,
    UpdateSubmitted,
    load_deployment,
)
from fedtss.cid import DAG_PB, RAW, cid_from_parts
from fedtss.errors import ChainError, ContractRevert
from tests.fixtures.anvil import default_rounds_config


def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def cid(label: str, codec: int = RAW) -> str:
    """The CID of ``codec`` whose digest is ``digest(label)``."""
    return cid_from_parts(codec, digest(label))


def test_revert_is_decoded_into_error_name_and_named_arguments(chain, deploy):
    rounds = deploy()
    with pytest.raises(ContractRevert) as info:
        rounds.submit_update(chain.accounts[6], 1, cid("x"))
    assert info.value.name == "RoundWrongState"
    assert info.value.args_by_name == {
        "round": 1,
        "expectedStates": (RoundState.Collecting,),
        "actual": RoundState.Unopened,
    }
    assert "RoundWrongState(round=1" in str(info.value)
    assert isinstance(info.value, ChainError)


def test_replaying_the_same_signed_transaction_is_refused_and_changes_nothing(chain, deploy):
    rounds = deploy()
    operator = chain.accounts[0]
    rounds.start_training(operator, cid("m0"), 1)
    client = chain.accounts[6]
    call = rounds.contract.functions.submitUpdate(1, RAW, digest("u"))
    tx = call.build_transaction({"from": client.address, "nonce": chain.w3.eth.get_transaction_count(client.address)})
    signed = client.sign_transaction(tx)
    chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_raw_transaction(signed.raw_transaction))
    with pytest.raises(Exception, match="nonce"):
        chain.w3.eth.send_raw_transaction(signed.raw_transaction)
    assert rounds.round_info(1).clients == 1
    assert rounds.submitters(1) == [client.address]


def test_events_in_a_block_range_come_back_decoded_in_chain_order(chain, deploy):
    rounds = deploy()
    start = chain.w3.eth.block_number
    rounds.start_training(chain.accounts[0], cid("m0", DAG_PB), 1)
    rounds.submit_update(chain.accounts[7], 1, cid("u7"))
    events = rounds.get_events(start)
    assert [e.name for e in events] == ["TrainingStarted", "RoundOpened", "UpdateSubmitted"]
    assert isinstance(events[2], ChainEvent)
    assert isinstance(events[2], UpdateSubmitted)
    assert events[2].client == chain.accounts[7].address
    assert events[2].block_number > events[1].block_number


def test_decode_logs_keeps_only_this_contracts_events_in_the_order_given(chain, deploy):
    ours, other = deploy(), deploy()
    start = chain.w3.eth.block_number + 1
    other.start_training(chain.accounts[0], cid("other", DAG_PB), 1)
    receipt = ours.start_training(chain.accounts[0], cid("m0", DAG_PB), 1)
    logs = chain.w3.eth.get_logs({"fromBlock": start, "toBlock": "latest"})  # both contracts
    assert {log["address"] for log in logs} == {ours.address, other.address}
    assert ours.decode_logs(logs) == ours.events(receipt)
    assert [e.name for e in ours.decode_logs(reversed(logs))] == ["RoundOpened", "TrainingStarted"]


def test_round_events_are_filtered_by_the_indexed_round_on_the_node(chain, deploy):
    rounds, other = deploy(), deploy()
    start = chain.w3.eth.block_number + 1
    rounds.start_training(chain.accounts[0], cid("m0", DAG_PB), 2)
    other.start_training(chain.accounts[0], cid("other", DAG_PB), 1)  # its round 1 is not ours
    rounds.submit_update(chain.accounts[6], 1, cid("u6"))
    chain.increase_time(601)
    rounds.fail_round(chain.accounts[0], 1)
    rounds.reopen_round(chain.accounts[0], 1)
    rounds.submit_update(chain.accounts[7], 2, cid("u7"))
    everything = rounds.get_events(start)
    for round_ in (1, 2):
        # TrainingStarted's indexed value is firstRound, not round: it is not a round-1 event.
        expected = [e for e in everything if isinstance(e, RoundEvent) and e.round == round_]
        assert rounds.get_round_events(round_, from_block=start) == expected
    assert [e.name for e in rounds.get_round_events(1)] == ["RoundOpened", "UpdateSubmitted", "RoundFailed"]
    (update,) = rounds.get_round_events(2, UpdateSubmitted)
    assert isinstance(update, UpdateSubmitted)
    assert update.client == chain.accounts[7].address
    with pytest.raises(ChainError, match="TrainingStarted is not an event indexed by round"):
        rounds.get_round_events(1, TrainingStarted)


def test_deployment_record_round_trips_and_binds_the_same_contract(chain, deploy, rounds_artifact, tmp_path):
    rounds = deploy()
    record = Deployment(
        chain_id=chain.w3.eth.chain_id,
        address=rounds.address,
        abi_path=tmp_path / "FedTSSRounds.json",
        deploy_block=chain.w3.eth.block_number,
        tx_hash="0x" + "00" * 32,
        config=default_rounds_config(chain.accounts),
    )
    record.abi_path.write_text('{"abi": ' + __import__("json").dumps(rounds_artifact.abi) + "}")
    record.write(tmp_path / "records" / "deployment.json")
    loaded = load_deployment(tmp_path / "records" / "deployment.json")
    assert loaded == record
    bound = RoundsContract.from_deployment(chain.w3, loaded)
    assert bound.committee() == rounds.committee()


def test_unreadable_deployment_record_raises_chain_error(tmp_path):
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ChainError, match="bad.json"):
        load_deployment(tmp_path / "bad.json")


def test_a_transaction_mined_as_a_revert_is_named_like_an_estimated_one(chain, deploy):
    """A tx that lost a race (it passed estimation, then reverted when mined) gets the same
    ContractRevert, so agents treat a late vote as the skip it is rather than crashing."""
    from fedtss.chain.contract import explain_mined_revert

    rounds = deploy()
    outsider = chain.accounts[20]
    call = rounds.contract.functions.startTraining(RAW, digest("m0"), 1)
    # Explicit gas skips estimation, so the revert happens only when the tx is mined.
    tx = call.build_transaction({"from": outsider.address, "gas": 200_000,
                                 "nonce": chain.w3.eth.get_transaction_count(outsider.address)})
    tx_hash = chain.w3.eth.send_raw_transaction(outsider.sign_transaction(tx).raw_transaction)
    receipt = chain.w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 0

    error = explain_mined_revert(call, outsider, receipt, rounds._decoder)

    assert isinstance(error, ContractRevert)
    assert error.name == "AccessNotOperator"
    assert error.args_by_name == {"account": outsider.address}
    assert "reverted when mined" in str(error)


def test_revert_data_with_a_known_selector_but_garbled_arguments_is_a_chain_error_not_a_crash(deploy):
    from web3.exceptions import ContractLogicError

    rounds = deploy()
    selector = next(bytes(k).hex() for k, item in rounds._decoder._errors.items() if item["name"] == "AccessNotOperator")
    error = rounds._decoder.decode(ContractLogicError("execution reverted", data="0x" + selector + "00" * 5))
    assert type(error) is ChainError and "AccessNotOperator" in str(error) and "malformed" in str(error)


def test_a_missing_deployment_record_is_a_config_error_that_says_how_to_get_one(tmp_path):
    """Not a ChainError wrapping FileNotFoundError: agents took that for a node outage to retry."""
    from fedtss.errors import ConfigError

    with pytest.raises(ConfigError, match=r"no deployment record at .*absent\.json: deploy first") as info:
        load_deployment(tmp_path / "absent.json")
    assert info.value.__cause__ is None and "\n" not in str(info.value)


def test_a_record_whose_abi_file_is_gone_is_a_config_error_naming_it(chain, deploy, tmp_path, rounds_artifact):
    from fedtss.errors import ConfigError

    rounds = deploy()
    record = Deployment(chain_id=31337, address=rounds.address, abi_path=tmp_path / "gone.json", deploy_block=1,
                        tx_hash="0x" + "00" * 32, config=default_rounds_config(chain.accounts))
    with pytest.raises(ConfigError, match=r"cannot read the contract ABI .*gone\.json"):
        RoundsContract.from_deployment(chain.w3, record)


def test_a_masked_record_round_trips_with_its_mode_and_keys_and_agrees_with_the_contract(chain, deploy,
                                                                                         rounds_artifact, tmp_path):
    import json
    from dataclasses import replace

    from fedtss.chain import dev_sealing_keypair

    keys = tuple(dev_sealing_keypair(a.address)[1] for a in chain.accounts[6:16])
    config = replace(default_rounds_config(chain.accounts), aggregation=Aggregation("masked", 40), client_keys=keys)
    rounds = deploy(aggregation=config.aggregation, client_keys=keys)
    (tmp_path / "abi.json").write_text(json.dumps({"abi": rounds_artifact.abi}))
    record = Deployment(chain_id=31337, address=rounds.address, abi_path=tmp_path / "abi.json", deploy_block=1,
                        tx_hash="0x" + "00" * 32, config=config)
    record.write(tmp_path / "deployment.json")
    stored = json.loads((tmp_path / "deployment.json").read_text())["config"]["aggregation"]
    assert (stored["mode"], stored["modulus_bits"], len(stored["client_keys"])) == ("masked", 40, 10)
    loaded = load_deployment(tmp_path / "deployment.json")
    assert loaded == record and loaded.aggregation == Aggregation("masked", 40)
    bound = RoundsContract.from_deployment(chain.w3, loaded)
    assert bound.aggregation() == loaded.aggregation and bound.client_keys() == list(loaded.config.client_keys)


def test_a_record_written_before_aggregation_modes_reads_as_the_shamir_mode(chain, tmp_path):
    import json

    record = Deployment(chain_id=31337, address=chain.accounts[0].address, abi_path=tmp_path / "abi.json",
                        deploy_block=1, tx_hash="0x" + "00" * 32, config=default_rounds_config(chain.accounts))
    data = record.to_json(tmp_path)
    assert data["config"].pop("aggregation") == {"mode": "shamir"}
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert load_deployment(tmp_path / "old.json").aggregation == Aggregation("shamir", 0)


def _constructor_and_rest(source: str) -> tuple[str, str]:
    """The constructor's body and the source without it (braces matched)."""
    start = source.index("constructor(")
    depth, index = 0, source.index("{", start)
    for index in range(index, len(source)):
        depth += {"{": 1, "}": -1}.get(source[index], 0)
        if depth == 0:
            break
    return source[start:index + 1], source[:start] + source[index + 1:]


def test_views_read_once_are_of_state_that_only_the_constructor_writes():
    from pathlib import Path
    import re

    from fedtss.chain.contract import _FIXED_VIEWS

    source = (Path(__file__).resolve().parents[3] / "contracts" / "FedTSSRounds.sol").read_text()
    constructor, rest = _constructor_and_rest(source)
    backing = {"committee": ("_committee", "_sealingKeys"), "threshold": ("threshold",),
               "checkPeriod": ("checkPeriod",), "aggregation": ("_mode", "_modulusBits")}
    assert set(backing) == _FIXED_VIEWS  # a view added to the cache must be added here, with its state
    for view, names in backing.items():
        for name in names:
            written = re.compile(rf"\b{name}\b(\s*\[[^\]]*\])?\s*(=(?!=)|\.push\(|\.pop\(|\+=|-=)|delete\s+{name}\b")
            assert written.search(constructor), f"{name} ({view}) is not set by the constructor"
            assert not written.search(rest), f"{name} ({view}) is written outside the constructor: stop caching it"


def test_a_fixed_view_is_asked_of_the_node_once_and_other_views_every_time(chain, deploy):
    rounds = deploy()
    asked: list[str] = []
    original = rounds.call

    def counting(function, *args, **kwargs):
        asked.append(function)
        return original(function, *args, **kwargs)

    rounds.call = counting
    assert rounds.committee() == rounds.committee() and rounds.threshold() == rounds.threshold()
    rounds.current_round(), rounds.current_round()
    assert asked == ["committee", "threshold", "currentRound", "currentRound"]
    with pytest.raises(ValueError, match="currentRound is not fixed"):
        rounds.fixed_view("currentRound")


def _same_shape(a, b) -> bool:
    """Equal, and of the same types all the way down (a tuple is not a list here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same_shape(x, y) for x, y in zip(a, b))
    return a == b


def test_every_view_read_without_web3_answers_exactly_what_web3_answers(chain, deploy):
    from fedtss.chain._views import ASK_WEB3, read_view, call_codecs

    rounds = deploy()
    operator, client = chain.accounts[0], chain.accounts[6]
    rounds.start_training(operator, cid("m0"), 1)
    rounds.submit_update(client, 1, cid("u"))
    head = chain.w3.eth.block_number
    member = rounds.committee()[0][0]
    args_for = {"checkWindow": (1,), "hasSubmitted": (1, client.address), "isClient": (client.address,),
                "member": (member,), "memberChecks": (member,), "roundInfo": (1,), "shareCount": (1, [1, 2]),
                "state": (1,), "submitters": (1,), "voteCount": (1, 1, digest("m1"))}
    codecs = call_codecs(rounds.contract.abi)
    assert len(codecs) >= 20
    for name, codec in codecs.items():
        args = args_for.get(name, ())
        assert len(args) == len(codec.input_types), f"give {name} its arguments in this test"
        for block in ("latest", head - 1):
            fast = read_view(chain.w3, rounds.address, codec, args, block)
            assert fast is not ASK_WEB3, name
            slow = rounds.contract.functions[name](*args).call(block_identifier=block)
            assert _same_shape(fast, slow), (name, fast, slow)


def test_a_view_the_node_answers_with_an_error_is_asked_again_through_web3_which_raises_as_before(chain, deploy):
    from fedtss.chain._views import ASK_WEB3, read_view, call_codecs

    rounds = deploy()
    future = chain.w3.eth.block_number + 1000  # a block the node does not have: an error answer
    codec = call_codecs(rounds.contract.abi)["currentRound"]
    assert read_view(chain.w3, rounds.address, codec, (), future) is ASK_WEB3
    with pytest.raises(ChainError, match="currentRound"):
        rounds.call("currentRound", block=future)
    assert read_view(chain.w3, rounds.address, call_codecs(rounds.contract.abi)["state"], ("one",), "latest") \
        is ASK_WEB3  # an argument eth_abi refuses: web3 says why


def test_a_transaction_built_from_plain_requests_is_the_one_web3_builds(chain, deploy):
    from fedtss.chain.contract import GAS_HEADROOM, _plain_transaction

    rounds = deploy()
    operator = chain.accounts[0]
    newcomer = "0x1212121212121212121212121212121212121212"
    for function, args in (("startTraining", (RAW, digest("m0"), 2)), ("addClients", ([newcomer], []))):
        data = rounds._encoded(function, args)
        plain = _plain_transaction(chain.w3, operator.address, rounds.address, data)
        call = rounds.contract.functions[function](*args)
        params = {"from": operator.address, "nonce": chain.w3.eth.get_transaction_count(operator.address, "pending")}
        web3s = call.build_transaction({**params, "gas": call.estimate_gas(params, block_identifier="pending")
                                        + GAS_HEADROOM})
        assert {k: plain[k] for k in web3s if k != "from"} == {k: v for k, v in web3s.items() if k != "from"}, function
        assert set(plain) - set(web3s) <= {"type"} and plain["type"] == 2  # EIP-1559, as its fee fields say
    # One that would revert (a second startTraining is fine here: none ran) is left to web3:
    rounds.start_training(operator, cid("m0"), 1)
    assert _plain_transaction(chain.w3, operator.address, rounds.address,
                              rounds._encoded("startTraining", (RAW, digest("m1"), 1))) is None
