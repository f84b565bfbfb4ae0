"""The keeper on a real anvil: closes, fails and reopens rounds by chain time, races harmlessly.

The keeper is an agent (:mod:`agents.keeper`): each test builds one on the test's contract and
hands it a :class:`~agents.runtime.Tick` through the runtime's :func:`handle_event`, as the
process does every ``interval_seconds``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import pytest

from agents.config import FederationSettings, KeeperSettings, NodeConfig, NodeSettings, load_node_config
from agents.keeper import KeeperAction, KeeperAgent, SendRoundTransaction, decide_action
from agents.runtime import Node, Tick, connect_node, handle_event
from fedtss.chain import Deployment, RoundState, UpdateSubmitted
from fedtss.chain.events import EventSource
from fedtss.chain.rounds import RoundRecord
from fedtss.cid import compute_cid
from fedtss.errors import ConfigError
from tests.fixtures.anvil import default_rounds_config

PERIOD = 60


def _keeper(contract, account, *, min_clients: int, reopen_failed: bool = False, confirmations: int = 0,
           deploy_block: int = 0, accounts=None, abi_path: Path = Path("unused.json")) -> KeeperAgent:
    """A keeper agent on ``contract`` signing with ``account`` (what build_keeper_agent makes of a config)."""
    url = contract.chain.rpc_url
    settings = NodeSettings(rpc_url=url, http_url=url, deployment=Path("unused.json"), confirmations=confirmations)
    config = NodeConfig(Path("keeper.toml"), "keeper", settings, FederationSettings(),
                        keeper=KeeperSettings(reopen_failed=reopen_failed))
    rounds = replace(default_rounds_config(accounts or [account] * 30), min_clients=min_clients)
    deployment = Deployment(chain_id=31337, address=contract.address, abi_path=abi_path,
                            deploy_block=deploy_block, tx_hash="0x" + "00" * 32, config=rounds)
    return KeeperAgent(Node(config, deployment, contract, account, store=None), config.keeper)


def _follow(keeper: KeeperAgent) -> None:
    """Hand the keeper the contract's new events, as the runtime's event follower does."""
    node = keeper.node
    source = EventSource(node.config.node.rpc_url, node.contract.address, node.contract.contract.abi,
                         confirmations=node.config.node.confirmations)
    for event in source.read_new(keeper.progress):
        handle_event(keeper, event)


def _tick(keeper: KeeperAgent) -> KeeperAction | None:
    """The new events, then one tick, through the runtime; the action whose transaction went out, if any."""
    _follow(keeper)
    sent = [outcome for outcome in handle_event(keeper, Tick()) if outcome.tx_hash]
    return KeeperAction(sent[0].note.split()[0]) if sent else None


def load_keeper_config(path: Path) -> NodeConfig:
    return load_node_config(path, role="keeper")


def _cid(label: str) -> str:
    return compute_cid(label.encode())


def _record(state: RoundState, *, clients: int = 0, collection: int = 100, committee: int | None = None) -> RoundRecord:
    """Round 1 as its events would fold: ``clients`` updates, the given state and deadlines."""
    updates = tuple(UpdateSubmitted(round=1, client=f"0x{i + 1:040x}", index=i, manifest_cid=_cid(f"update{i}"),
                                    block_number=2 + i, tx_hash=f"0x{i:064x}", log_index=0) for i in range(clients))
    return RoundRecord(round=1, state=state, collection_deadline=collection, committee_deadline=committee,
                       submissions=updates)


@pytest.mark.parametrize(
    ("record", "now", "expected"),
    [
        (_record(RoundState.Collecting, clients=5), 100, None),
        (_record(RoundState.Collecting, clients=3), 101, KeeperAction.CLOSE_COLLECTION),
        (_record(RoundState.Collecting, clients=2), 101, KeeperAction.FAIL_ROUND),
        (_record(RoundState.Aggregating, committee=200), 200, None),
        (_record(RoundState.Aggregating, committee=200), 201, KeeperAction.FAIL_ROUND),
        (_record(RoundState.Reconstructing, committee=200), 201, KeeperAction.FAIL_ROUND),
        (_record(RoundState.Finalized), 10**9, None),
        (_record(RoundState.Failed), 10**9, None),
    ],
)
def test_decide_action_acts_only_after_a_deadline_has_passed(record: RoundRecord, now: int, expected) -> None:
    assert decide_action(record, now, min_clients=3, reopen_failed=False) == expected


def test_decide_action_reopens_a_failed_round_only_when_configured() -> None:
    failed = _record(RoundState.Failed)
    assert decide_action(failed, 0, min_clients=3, reopen_failed=True) is KeeperAction.REOPEN_ROUND
    assert decide_action(failed, 0, min_clients=3, reopen_failed=False) is None


@pytest.fixture
def rounds(chain, deploy):
    """A fresh contract with short periods, training started (round 1 Collecting)."""
    contract = deploy(collection_period=PERIOD, aggregation_period=PERIOD)
    contract.start_training(chain.accounts[0], _cid("model0"), 3)
    return contract


def _submit(contract, chain, count: int) -> None:
    for i in range(count):
        contract.submit_update(chain.accounts[6 + i], 1, _cid(f"update{i}"))


def test_keeper_waits_for_the_collection_deadline_by_chain_time(chain, rounds) -> None:
    _submit(rounds, chain, 3)
    keeper = _keeper(rounds, chain.accounts[20], min_clients=3)
    assert _tick(keeper) is None
    assert rounds.state(1) is RoundState.Collecting


def test_keeper_closes_collection_with_enough_updates_after_the_deadline(chain, rounds) -> None:
    _submit(rounds, chain, 3)
    chain.increase_time(PERIOD + 1)
    keeper = _keeper(rounds, chain.accounts[20], min_clients=3)
    assert _tick(keeper) is KeeperAction.CLOSE_COLLECTION
    assert rounds.state(1) is RoundState.Aggregating


def test_keeper_fails_a_round_with_too_few_updates_and_reopens_it_when_configured(chain, rounds) -> None:
    _submit(rounds, chain, 2)
    chain.increase_time(PERIOD + 1)
    keeper = _keeper(rounds, chain.accounts[0], min_clients=3, reopen_failed=True)
    assert _tick(keeper) is KeeperAction.FAIL_ROUND
    assert rounds.state(1) is RoundState.Failed
    assert _tick(keeper) is KeeperAction.REOPEN_ROUND
    assert rounds.current_round() == 2
    assert rounds.state(2) is RoundState.Collecting


def test_keeper_fails_a_round_whose_committee_missed_its_deadline(chain, rounds) -> None:
    _submit(rounds, chain, 3)
    chain.increase_time(PERIOD + 1)
    keeper = _keeper(rounds, chain.accounts[20], min_clients=3)
    _tick(keeper)
    assert _tick(keeper) is None
    chain.increase_time(PERIOD + 1)
    assert _tick(keeper) is KeeperAction.FAIL_ROUND
    assert rounds.round_info(1).state_at_failure is RoundState.Aggregating


def test_a_second_keeper_that_lost_the_race_logs_it_and_carries_on(chain, rounds, caplog) -> None:
    _submit(rounds, chain, 3)
    chain.increase_time(PERIOD + 1)
    first = _keeper(rounds, chain.accounts[20], min_clients=3)
    second = _keeper(rounds, chain.accounts[21], min_clients=3)
    # The second keeper read the round before the first one acted: it still decides to close.
    _follow(second)
    view = second.observe(Tick())
    assert _tick(first) is KeeperAction.CLOSE_COLLECTION
    action = decide_action(view.record, view.now, min_clients=3, reopen_failed=False)
    outcome = second.execute(SendRoundTransaction(action, 1))
    assert outcome.tx_hash is None and "already done (RoundWrongState)" in outcome.note
    assert rounds.state(1) is RoundState.Aggregating


def test_keeper_without_the_operator_key_cannot_reopen_and_says_so(chain, rounds, caplog) -> None:
    _submit(rounds, chain, 2)
    chain.increase_time(PERIOD + 1)
    keeper = _keeper(rounds, chain.accounts[20], min_clients=3, reopen_failed=True)
    _tick(keeper)
    with caplog.at_level(logging.WARNING, logger="fedtss.agents"):
        assert _tick(keeper) is None
    assert "AccessNotOperator" in caplog.text
    assert rounds.state(1) is RoundState.Failed


def test_keeper_config_polls_over_http_and_refuses_bad_fields(tmp_path) -> None:
    path = tmp_path / "keeper.toml"
    path.write_text('[node]\nrpc_url = "ws://127.0.0.1:8545"\ndeployment = "d.json"\n')
    assert load_keeper_config(path).node.http_url == "http://127.0.0.1:8545"
    path.write_text('[node]\nrpc_url = "ftp://127.0.0.1"\ndeployment = "d.json"\n')
    with pytest.raises(ConfigError, match="rpc_url"):
        load_keeper_config(path)
    path.write_text('[node]\nrpc_url = "http://x"\ndeployment = "d.json"\n[keeper]\ninterval_seconds = 0\n')
    with pytest.raises(ConfigError, match="interval_seconds"):
        load_keeper_config(path)
    path.write_text('[node]\nrpc_url = "http://x"\ndeployment = "d.json"\n[keeper]\nreopen_failed = true\n')
    config = load_keeper_config(path)
    assert config.keeper.reopen_failed and config.keeper.interval_seconds == 2.0
    assert config.node.confirmations == 0


def test_keeper_config_reads_confirmations_and_refuses_a_bad_number(tmp_path) -> None:
    path = tmp_path / "keeper.toml"
    path.write_text('[node]\nrpc_url = "http://x"\ndeployment = "d.json"\nconfirmations = 12\n')
    assert load_keeper_config(path).node.confirmations == 12
    for bad in ("-1", "true", "2.5", "1001"):
        path.write_text(f'[node]\nrpc_url = "http://x"\ndeployment = "d.json"\nconfirmations = {bad}\n')
        with pytest.raises(ConfigError, match="confirmations"):
            load_keeper_config(path)


def test_keeper_with_confirmations_acts_only_once_the_passed_deadline_is_that_deep(chain, rounds) -> None:
    _submit(rounds, chain, 3)
    chain.increase_time(PERIOD + 1)  # the first block stamped after the deadline: the head, 0 deep
    keeper = _keeper(rounds, chain.accounts[20], min_clients=3, confirmations=1)
    assert _tick(keeper) is None
    assert rounds.state(1) is RoundState.Collecting
    chain.w3.provider.make_request("evm_mine", [])  # now it is 1 deep
    assert _tick(keeper) is KeeperAction.CLOSE_COLLECTION
    assert rounds.state(1) is RoundState.Aggregating


def test_keeper_with_confirmations_waits_for_the_deployment_to_be_that_deep(chain, deploy, caplog) -> None:
    contract = deploy()
    head = chain.w3.eth.block_number
    keeper = _keeper(contract, chain.accounts[20], min_clients=3, confirmations=5, deploy_block=head)
    with caplog.at_level(logging.WARNING, logger="fedtss.agents"):
        assert _tick(keeper) is None
    assert caplog.records == []  # no contract 5 blocks down is not a node error


def test_keeper_acts_on_an_idle_chain_whose_latest_block_predates_the_deadline(chain, deploy) -> None:
    # anvil mines only on transactions: no block after the deadline, yet the next one is stamped now.
    contract = deploy(collection_period=2, aggregation_period=PERIOD)
    contract.start_training(chain.accounts[0], _cid("model0"), 3)
    _submit(contract, chain, 3)
    deadline = contract.round_info(1).collection_deadline
    keeper = _keeper(contract, chain.accounts[20], min_clients=3)
    _follow(keeper)
    while keeper.observe(Tick()).now <= deadline:
        time.sleep(0.2)
    assert chain.timestamp() <= deadline
    assert _tick(keeper) is KeeperAction.CLOSE_COLLECTION
    assert contract.state(1) is RoundState.Aggregating


def test_keeper_config_takes_a_keystore_with_its_password_in_a_file_as_agents_do(chain, deploy, rounds_artifact,
                                                                                   tmp_path) -> None:
    import json

    from fedtss.chain import Deployment
    from fedtss.chain.keys import write_keystore
    from tests.fixtures.anvil import default_rounds_config

    contract = deploy()
    (tmp_path / "abi.json").write_text(json.dumps(rounds_artifact.abi), encoding="utf-8")
    Deployment(chain_id=31337, address=contract.address, abi_path=tmp_path / "abi.json",
               deploy_block=chain.w3.eth.block_number, tx_hash="0x" + "00" * 32,
               config=default_rounds_config(chain.accounts)).write(tmp_path / "deployment.json")
    keystore, password = tmp_path / "keeper.json", tmp_path / "password"
    address = write_keystore(keystore, "0x" + "11" * 32, "secret", scrypt_n=2**4)
    password.write_text("secret\n")
    password.chmod(0o600)
    path = tmp_path / "keeper.toml"
    path.write_text(f'[node]\nrpc_url = "{chain.url}"\ndeployment = "{tmp_path / "deployment.json"}"\n'
                    f'keystore = "{keystore}"\npassword_file = "{password}"\n')
    config = load_keeper_config(path)
    assert config.node.password_file == password
    assert connect_node(config, environ={}).account.address == address  # no FEDTSS_KEYSTORE_PASSWORD needed


def test_keeper_config_refuses_a_misspelled_key_or_table_naming_it(tmp_path) -> None:
    path = tmp_path / "keeper.toml"
    path.write_text('[node]\nrpc_url = "http://x"\ndeployment = "d.json"\nconfirmation = 3\n')
    with pytest.raises(ConfigError, match=r"\[node\]: unknown key\(s\) \['confirmation'\]"):
        load_keeper_config(path)  # not a keeper silently running with 0 confirmations
    path.write_text('[node]\nrpc_url = "http://x"\ndeployment = "d.json"\n[keeper]\nreopen_failled = true\n')
    with pytest.raises(ConfigError, match=r"\[keeper\]: unknown key\(s\) \['reopen_failled'\]"):
        load_keeper_config(path)
    path.write_text('[node]\nrpc_url = "http://x"\ndeployment = "d.json"\n[keeprr]\nreopen_failed = true\n')
    with pytest.raises(ConfigError, match=r"unknown table\(s\) \['keeprr'\]"):
        load_keeper_config(path)
    path.write_text('[node]\nrpc_url = "ws://x"\ndeployment = "d.json"\nstore = "s"\nstate_dir = "n"\n')
    assert load_keeper_config(path).node.http_url == "http://x"  # an agent's [node] serves the keeper as it is


def test_keeper_config_with_several_problems_reports_all_of_them_at_once(tmp_path) -> None:
    path = tmp_path / "keeper.toml"
    path.write_text('[node]\nrpc_url = "ftp://x"\nconfirmations = -1\nconfirmation = 3\n'
                    '[keeper]\ninterval_seconds = 0\nreopen_failed = "yes"\n')
    with pytest.raises(ConfigError) as raised:
        load_keeper_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: 6 problems:\n")
    for field in ("rpc_url", "deployment", "confirmations", "['confirmation']", "interval_seconds", "reopen_failed"):
        assert field in message


def test_keeper_config_refuses_a_file_that_is_not_utf8_with_a_config_error(tmp_path) -> None:
    path = tmp_path / "keeper.toml"
    path.write_bytes(b'[node]\nrpc_url = "http://\xff"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_keeper_config(path)


def test_the_keeper_runs_on_the_agents_runtime_following_events_from_the_deploy_block(
        chain, rounds, rounds_artifact, tmp_path, caplog) -> None:
    import asyncio
    import json

    from agents.runtime import run_agent

    _submit(rounds, chain, 3)
    chain.increase_time(PERIOD + 1)
    (tmp_path / "abi.json").write_text(json.dumps(rounds_artifact.abi), encoding="utf-8")
    keeper = _keeper(rounds, chain.accounts[20], min_clients=3, abi_path=tmp_path / "abi.json")
    keeper.settings = KeeperSettings(interval_seconds=0.1)
    assert keeper.node.config.node.state_dir is None  # it keeps nothing on disk

    async def run_until_collection_closes() -> None:
        run = asyncio.create_task(run_agent(keeper, poll_interval=0.05))
        try:
            for _ in range(100):
                if rounds.state(1) is RoundState.Aggregating or run.done():
                    break
                await asyncio.sleep(0.1)
            for _ in range(50):  # and its fold follows what it did
                if keeper.rounds[1].state is RoundState.Aggregating or run.done():
                    break
                await asyncio.sleep(0.1)
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)

    with caplog.at_level(logging.INFO, logger="fedtss.agents"):
        asyncio.run(run_until_collection_closes())
    assert rounds.state(1) is RoundState.Aggregating
    assert keeper.rounds[1].state is RoundState.Aggregating and keeper.rounds[1].submitted == 3
    assert "role=keeper" in caplog.text and "started=polling" in caplog.text
    assert "event=UpdateSubmitted action=keep_round" in caplog.text
    assert "action=send_round_transaction" in caplog.text and "closeCollection gas=" in caplog.text
    assert caplog.text.count("closeCollection gas=") == 1


def test_a_restarted_keeper_folds_the_rounds_again_from_the_deploy_block(chain, rounds) -> None:
    _submit(rounds, chain, 3)
    chain.increase_time(PERIOD + 1)
    assert _tick(_keeper(rounds, chain.accounts[20], min_clients=3)) is KeeperAction.CLOSE_COLLECTION
    again = _keeper(rounds, chain.accounts[20], min_clients=3)  # a new process: nothing in memory
    assert _tick(again) is None
    assert again.rounds[1].state is RoundState.Aggregating and again.rounds[1].submitted == 3


def test_the_keeper_waits_for_its_fold_to_see_its_own_transaction_before_deciding_again(chain, rounds) -> None:
    _submit(rounds, chain, 3)
    chain.increase_time(PERIOD + 1)
    keeper = _keeper(rounds, chain.accounts[20], min_clients=3)
    assert _tick(keeper) is KeeperAction.CLOSE_COLLECTION
    # Not yet folded: the round still looks Collecting past its deadline, yet nothing goes out twice.
    assert keeper.rounds[1].state is RoundState.Collecting
    assert handle_event(keeper, Tick()) == []
    _follow(keeper)
    assert keeper.rounds[1].state is RoundState.Aggregating


def test_the_keeper_drops_the_events_of_a_reorganized_branch_and_acts_on_the_new_one(chain, rounds) -> None:
    _submit(rounds, chain, 3)
    chain.increase_time(PERIOD + 1)
    keeper = _keeper(rounds, chain.accounts[20], min_clients=3)
    assert _tick(keeper) is KeeperAction.CLOSE_COLLECTION
    assert _tick(keeper) is None and keeper.rounds[1].state is RoundState.Aggregating
    # The block holding CollectionClosed is replaced by an empty one: the round is Collecting again.
    answer = chain.w3.provider.make_request("anvil_reorg", [1, []])
    assert "error" not in answer
    assert rounds.state(1) is RoundState.Collecting
    assert _tick(keeper) is KeeperAction.CLOSE_COLLECTION
    assert [e.name for e in keeper.events].count("CollectionClosed") == 0  # not folded yet
    _follow(keeper)
    assert [e.name for e in keeper.events].count("CollectionClosed") == 1
    assert keeper.rounds[1].state is RoundState.Aggregating
