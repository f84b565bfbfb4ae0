"""deploy.py: validates before sending, deploys, writes the record agents read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

import deploy
from fedtss.chain import DeployerSettings, RoundsContract, load_deployment
from fedtss.chain.keys import write_keystore
from fedtss.errors import ConfigError

LOCAL = Path(__file__).resolve().parents[1] / "config" / "local.toml"


def test_deploy_prints_the_address_and_writes_the_record(chain, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FEDTSS_PRIVATE_KEY", raising=False)
    out = tmp_path / "deployment.json"
    assert deploy.main(["--rpc-url", chain.url, "--config", str(LOCAL), "--out", str(out)]) == 0
    address = capsys.readouterr().out.strip()
    record = load_deployment(out)
    assert record.address == address
    assert record.chain_id == 31337
    assert chain.w3.eth.get_transaction_receipt(record.tx_hash)["blockNumber"] == record.deploy_block
    rounds = RoundsContract.from_deployment(chain.w3, record)
    assert [k for _, k in rounds.committee()] == [m.sealing_key for m in record.config.committee]
    assert rounds.call("operator") == chain.accounts[0].address
    assert json.loads(out.read_text())["config"]["committee"][0]["sealing_key"].startswith("0x")


def test_bad_config_is_refused_before_any_transaction(chain, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(LOCAL.read_text().replace("threshold = 3", "threshold = 9"))
    nonce = chain.w3.eth.get_transaction_count(chain.accounts[0].address)
    assert deploy.main(["--rpc-url", chain.url, "--config", str(bad), "--out", str(tmp_path / "d.json")]) == 1
    assert "threshold: t=9 exceeds the committee size n=5" in capsys.readouterr().err
    assert chain.w3.eth.get_transaction_count(chain.accounts[0].address) == nonce
    assert not (tmp_path / "d.json").exists()


def test_dev_key_is_refused_on_a_chain_other_than_anvil():
    with pytest.raises(ConfigError, match="dev_private_key"):
        deploy.resolve_deployer(DeployerSettings(dev_private_key="0x" + "11" * 32), 1, {})


def test_environment_key_takes_precedence_over_the_dev_key():
    key = "0x" + "22" * 32
    account = deploy.resolve_deployer(DeployerSettings(dev_private_key="0x" + "11" * 32), 1, {"FEDTSS_PRIVATE_KEY": key})
    assert account.address == Account.from_key(key).address


def test_environment_key_and_keystore_together_are_refused(tmp_path):
    keystore = tmp_path / "k.json"
    write_keystore(keystore, "0x" + "33" * 32, "pw", scrypt_n=2)
    environ = {"FEDTSS_PRIVATE_KEY": "0x" + "22" * 32, "FEDTSS_KEYSTORE_PASSWORD": "pw"}
    with pytest.raises(ConfigError, match="unset FEDTSS_PRIVATE_KEY"):
        deploy.resolve_deployer(DeployerSettings(keystore=keystore), 1, environ)


def test_encrypted_keystore_is_decrypted_with_the_password_from_the_environment(tmp_path):
    key = "0x" + "33" * 32
    keystore = tmp_path / "k.json"
    write_keystore(keystore, key, "pw", scrypt_n=2)
    settings = DeployerSettings(keystore=keystore)
    account = deploy.resolve_deployer(settings, 1, {"FEDTSS_KEYSTORE_PASSWORD": "pw"})
    assert account.address == Account.from_key(key).address
    with pytest.raises(ConfigError, match="cannot decrypt"):
        deploy.resolve_deployer(settings, 1, {"FEDTSS_KEYSTORE_PASSWORD": "wrong"})


def test_keystore_password_is_asked_when_the_environment_has_none(tmp_path):
    key = "0x" + "44" * 32
    keystore = tmp_path / "k.json"
    write_keystore(keystore, key, "typed", scrypt_n=2)
    prompts: list[str] = []
    account = deploy.resolve_deployer(DeployerSettings(keystore=keystore), 1, {},
                                      ask_password=lambda prompt: prompts.append(prompt) or "typed")
    assert account.address == Account.from_key(key).address
    assert prompts == ["keystore password: "]


def test_missing_key_source_is_refused():
    with pytest.raises(ConfigError, match="FEDTSS_PRIVATE_KEY"):
        deploy.resolve_deployer(DeployerSettings(), 31337, {})


def test_a_record_path_that_is_a_directory_is_refused_before_any_transaction(chain, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FEDTSS_PRIVATE_KEY", raising=False)
    nonce = chain.w3.eth.get_transaction_count(chain.accounts[0].address)
    assert deploy.main(["--rpc-url", chain.url, "--config", str(LOCAL), "--out", str(tmp_path)]) == 1
    assert "--out:" in capsys.readouterr().err
    assert chain.w3.eth.get_transaction_count(chain.accounts[0].address) == nonce


def test_deploy_warns_before_sending_when_the_committee_cannot_correct_one_wrong_member(chain, tmp_path, capsys,
                                                                                      monkeypatch):
    monkeypatch.delenv("FEDTSS_PRIVATE_KEY", raising=False)
    fragile = tmp_path / "fragile.toml"
    fragile.write_text(LOCAL.read_text().replace("threshold = 3", "threshold = 4"))  # n = 5 < t + 2
    out = tmp_path / "deployment.json"
    assert deploy.main(["--rpc-url", chain.url, "--config", str(fragile), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "deploy.py: warning: a committee of n=5 with threshold t=4 cannot correct a single wrong member" \
        in captured.err
    assert "warning" not in captured.out and load_deployment(out).config.threshold == 4


def test_deploy_of_a_committee_that_corrects_one_wrong_member_warns_nothing(chain, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FEDTSS_PRIVATE_KEY", raising=False)
    out = tmp_path / "deployment.json"
    assert deploy.main(["--rpc-url", chain.url, "--config", str(LOCAL), "--out", str(out)]) == 0  # n = 5, t = 3
    assert "warning" not in capsys.readouterr().err
