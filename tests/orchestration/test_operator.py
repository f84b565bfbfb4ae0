"""The operator CLI against a real anvil: reads of a two-round federation, and the operator's
transactions (start, fail, reopen, wait) on a fresh contract, including decoded reverts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedtss.chain import ClientSet, Deployment, RoundState
from fedtss.cid import cid_from_parts
from orchestration.operator import operator_app
from tests.fixtures.federation import TwoRoundFederation

RUNNER = CliRunner(env={"FEDTSS_PRIVATE_KEY": None, "COLUMNS": "250"})
PERIOD = 60


def _run(*args: str) -> tuple[int, str]:
    result = RUNNER.invoke(operator_app, [str(a) for a in args])
    return result.exit_code, result.output


def _common(fed_or_url: str, deployment: Path) -> list[str]:
    return ["--rpc-url", fed_or_url, "--deployment", str(deployment)]


@pytest.fixture
def fed_args(two_round_federation: TwoRoundFederation) -> list[str]:
    return _common(two_round_federation.anvil.url, two_round_federation.deployment_path)


def test_status_json_names_the_round_its_state_and_who_submitted(two_round_federation, fed_args) -> None:
    code, output = _run("status", *fed_args, "--json")
    document = json.loads(output)
    assert code == 0
    assert (document["current_round"], document["state"]) == (2, "Finalized")
    submitted = [c["address"] for c in document["clients"] if c["submitted"]]
    assert submitted == two_round_federation.submitters[2]
    assert document["latest_model_cid"] == two_round_federation.models[2]


def test_status_prints_a_human_readable_summary(fed_args) -> None:
    code, output = _run("status", *fed_args)
    assert code == 0
    assert "round 2: Finalized" in output
    assert "rounds finalized 2 of 2" in output


def test_rounds_json_lists_every_round_with_its_timeline(two_round_federation, fed_args) -> None:
    code, output = _run("rounds", *fed_args, "--json")
    rounds = json.loads(output)
    assert code == 0
    assert [(r["round"], r["state"], r["submitted"], r["participants"]) for r in rounds] == [
        (1, "Finalized", 3, 3), (2, "Finalized", 2, 2)]
    assert [r["result_cid"] for r in rounds] == [two_round_federation.models[1], two_round_federation.models[2]]
    assert [m["label"] for m in rounds[1]["timeline"]] == ["opened", "collection closed", "threshold reached",
                                                           "finalized"]


def test_rounds_table_shows_each_round(fed_args) -> None:
    code, output = _run("rounds", *fed_args)
    assert code == 0
    assert output.count("Finalized") == 2


def test_round_json_details_submissions_shares_votes_and_exclusions(two_round_federation, fed_args) -> None:
    fed = two_round_federation
    code, output = _run("round", "1", *fed_args, "--json")
    detail = json.loads(output)
    assert code == 0
    assert [s["client"] for s in detail["submissions"]] == fed.submitters[1]
    assert [s["manifest_cid"] for s in detail["submissions"]] == [fed.manifests[(1, c)] for c in fed.submitters[1]]
    assert [s["matches_agreed_set"] for s in detail["shares"]] == [True, False, True]
    assert [v["matches"] for v in detail["votes"]] == [True, False, True]
    assert {e["party"] for e in detail["exclusions"]} == {fed.anvil.accounts[2].address, fed.anvil.accounts[3].address}
    assert set(detail["gas"]) == {"startTraining", "submitUpdate", "submitAggregateShare", "proposeModel"}
    assert all(s["gas_used"] > 21_000 for s in detail["submissions"])


def test_round_table_marks_the_conflicting_vote(fed_args) -> None:
    code, output = _run("round", "1", *fed_args)
    assert code == 0
    assert "CONFLICTING" in output and "DIFFERS" in output


def test_round_that_was_never_opened_is_a_clear_error(fed_args) -> None:
    code, output = _run("round", "7", *fed_args)
    assert code == 2
    assert "round 7 was never opened" in output


def test_a_node_that_does_not_answer_is_named(tmp_path, two_round_federation) -> None:
    code, output = _run("status", "--rpc-url", "http://127.0.0.1:9", "--deployment",
                        str(two_round_federation.deployment_path))
    assert code == 2
    assert "http://127.0.0.1:9" in output


# ------------------------------------------------------------------------ transactions


@pytest.fixture
def fresh(deploy, chain, tmp_path, rounds_artifact) -> tuple[list[str], object]:
    """A fresh contract (reverted after the test) with short periods and its deployment record."""
    contract = deploy(collection_period=PERIOD, aggregation_period=PERIOD)
    abi_path = tmp_path / "abi.json"
    abi_path.write_text(json.dumps(rounds_artifact.abi), encoding="utf-8")
    receipt = chain.w3.eth.get_transaction_receipt(chain.w3.eth.get_block("latest")["transactions"][0])
    record = Deployment(chain_id=31337, address=contract.address, abi_path=abi_path,
                        deploy_block=receipt["blockNumber"], tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
                        config=_config(contract))
    record.write(tmp_path / "deployment.json")
    return _common(chain.url, tmp_path / "deployment.json"), contract


def _config(contract):
    from tests.fixtures.anvil import default_rounds_config
    from fedtss.chain.devnode import dev_accounts
    from dataclasses import replace

    return replace(default_rounds_config(dev_accounts(30)), collection_period=PERIOD, aggregation_period=PERIOD)


MODEL_CID = cid_from_parts(0x55, hashlib.sha256(b"model0").digest())


def test_start_confirms_the_transaction_with_hash_block_gas_and_events(fresh) -> None:
    args, contract = fresh
    code, output = _run("start", "--model-cid", MODEL_CID, "--rounds", "3", *args, "--json")
    sent = json.loads(output)
    assert code == 0 and sent["ok"]
    assert sent["block"] > 0 and sent["gas_used"] > 21_000 and sent["tx"].startswith("0x")
    assert [e["name"] for e in sent["events"]] == ["TrainingStarted", "RoundOpened"]
    assert contract.state(1) is RoundState.Collecting


def test_start_from_a_store_puts_the_seeded_model_there_and_opens_round_one_from_it(fresh, tmp_path) -> None:
    from fedtss.storage import LocalStore

    args, contract = fresh
    code, output = _run("start", "--store", str(tmp_path / "store"), "--rounds", "2", *args)
    assert code == 0, output
    stored = output.split("initial model stored as ")[1].split()[0]
    assert LocalStore(tmp_path / "store").has(stored)
    assert contract.latest_model()[1] == stored


def test_start_twice_reverts_with_the_decoded_custom_error(fresh) -> None:
    args, _ = fresh
    assert _run("start", "--model-cid", MODEL_CID, *args)[0] == 0
    code, output = _run("start", "--model-cid", MODEL_CID, *args)
    assert code == 1
    assert "TrainingInProgress(round=1)" in output


def test_fail_before_the_deadline_reverts_with_its_reason_in_json(fresh) -> None:
    args, _ = fresh
    _run("start", "--model-cid", MODEL_CID, *args)
    code, output = _run("fail", "1", *args, "--json")
    document = json.loads(output)
    assert code == 1
    assert document["ok"] is False and document["revert"] == "RoundDeadlineNotReached"
    assert document["args"]["round"] == 1


def test_fail_then_reopen_a_stalled_round_and_wait_sees_it(fresh, chain) -> None:
    args, contract = fresh
    _run("start", "--model-cid", MODEL_CID, *args)
    chain.increase_time(PERIOD + 1)
    code, output = _run("fail", "1", *args)
    assert code == 0, output
    assert "sent failRound(1): tx 0x" in output and "gas" in output and "event RoundFailed" in output
    code, output = _run("wait", "--round", "1", "--until", "Failed", "--timeout", "5", *args, "--json")
    assert (code, json.loads(output)["state"]) == (0, "Failed")
    code, output = _run("reopen", "1", *args, "--json")
    sent = json.loads(output)
    assert code == 0
    assert [e["name"] for e in sent["events"]] == ["RoundOpened"] and sent["events"][0]["args"]["round"] == 2
    assert contract.state(2) is RoundState.Collecting


def test_reopen_of_a_live_round_reverts_naming_the_state_it_needs_and_prints_it_for_people(fresh) -> None:
    args, contract = fresh
    _run("start", "--model-cid", MODEL_CID, *args)
    code, output = _run("reopen", "1", *args)
    assert code == 1
    assert "RoundWrongState" in output and "round=1" in output and "Collecting" in output
    assert contract.current_round() == 1


def test_wait_gives_up_after_its_timeout(fresh) -> None:
    args, _ = fresh
    _run("start", "--model-cid", MODEL_CID, *args)
    code, output = _run("wait", "--round", "1", "--until", "Finalized", "--timeout", "0.5", "--interval", "0.1",
                        *args, "--json")
    assert code == 3
    assert json.loads(output)["reached"] is False


def test_start_needs_exactly_one_model_source(fresh) -> None:
    args, _ = fresh
    code, output = _run("start", *args)
    assert code == 2
    assert "--store" in output and "--model-cid" in output


def test_register_puts_every_operator_command_on_an_app_replacing_same_named_ones(fed_args) -> None:
    import typer

    from orchestration.operator import register

    app = typer.Typer()

    @app.command()
    def status() -> None:
        typer.echo("the old status")

    @app.command()
    def demo() -> None:
        typer.echo("demo")

    register(app)
    help_text = RUNNER.invoke(app, ["--help"]).output
    for command in ("status", "rounds", "round", "start", "fail", "reopen", "wait", "demo"):
        assert command in help_text
    result = RUNNER.invoke(app, ["status", *fed_args, "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["current_round"] == 2


def test_round_gas_counts_each_transaction_of_that_round_once(two_round_federation, fed_args) -> None:
    fed = two_round_federation
    code, output = _run("round", "2", *fed_args, "--json")
    gas = json.loads(output)["gas"]
    round2 = [h for label, h in fed.txs.items() if label.split()[1:2] == ["2"]]
    expected = sum(fed.anvil.w3.eth.get_transaction_receipt(h)["gasUsed"] for h in round2)
    assert code == 0
    assert set(gas) == {"submitUpdate", "closeCollection", "submitAggregateShare", "proposeModel"}
    assert sum(gas.values()) == expected  # not the round-1 vote that opened round 2


# ------------------------------------------------------------ who is missing, what to do next


def test_round_names_the_member_that_posted_no_share_and_no_vote(two_round_federation, fed_args) -> None:
    silent = two_round_federation.anvil.accounts[3].address  # member 3 sat round 2 out
    code, output = _run("round", "2", *fed_args, "--json")
    detail = json.loads(output)
    assert code == 0
    assert detail["members_without_share"] == [silent] and detail["members_without_vote"] == [silent]
    assert detail["next_step"] is None  # finalized: nothing to do
    code, output = _run("round", "2", *fed_args)
    assert f"no aggregate share from: member 3 ({silent})" in output and f"no vote from: member 3 ({silent})" in output
    everyone = json.loads(_run("round", "1", *fed_args, "--json")[1])
    assert everyone["members_without_share"] == [] and everyone["members_without_vote"] == []


def test_status_names_the_members_missing_from_the_current_round(two_round_federation, fed_args) -> None:
    silent = two_round_federation.anvil.accounts[3].address
    document = json.loads(_run("status", *fed_args, "--json")[1])
    assert document["members_without_share"] == [silent] and document["members_without_vote"] == [silent]
    assert f"no vote from: member 3 ({silent})" in _run("status", *fed_args)[1]


def test_a_stalled_then_failed_round_names_the_silent_members_and_suggests_reopen(fresh, chain) -> None:
    args, contract = fresh
    accounts = chain.accounts
    _run("start", "--model-cid", MODEL_CID, *args)
    for client in accounts[6:9]:
        contract.submit_update(client, 1, MODEL_CID)
    chain.increase_time(PERIOD + 1)
    contract.close_collection(accounts[0], 1)
    contract.submit_aggregate_share(accounts[1], 1, MODEL_CID, ClientSet.of(range(3)))
    silent = [a.address for a in accounts[2:6]]
    aggregating = json.loads(_run("status", *args, "--json")[1])
    assert aggregating["members_without_share"] == silent and aggregating["members_without_vote"] == []
    assert aggregating["next_step"] is None  # the deadline is still ahead
    chain.increase_time(PERIOD + 1)
    overdue = json.loads(_run("round", "1", *args, "--json")[1])
    assert "`fedtss fail 1`" in overdue["next_step"] and "`fedtss reopen 1`" in overdue["next_step"]
    assert _run("fail", "1", *args)[0] == 0
    code, output = _run("status", *args)
    assert code == 0
    assert f"no aggregate share from: member 2 ({silent[0]})" in output
    assert "next: round 1 failed; `fedtss reopen 1` opens round 2" in output
    assert json.loads(_run("round", "1", *args, "--json")[1])["members_without_vote"] == []  # failed before votes
