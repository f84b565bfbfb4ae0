"""deploy.py: validates before sending, deploys, writes the record agents read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

import deploy
from fedtss.chain import Aggregation, DeployerSettings, RoundsContract, load_deployment
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
    assert record.aggregation == rounds.aggregation() == Aggregation("shamir", 0) and rounds.client_keys() == []


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


def _masked_config(tmp_path: Path, bits: int = 56) -> Path:
    """config/local.toml in the masked mode, with one (made-up, valid) X25519 key per client."""
    keys = ", ".join(f'"0x{i + 1:02x}{"ab" * 31}"' for i in range(10))
    path = tmp_path / "masked.toml"
    table = f'\n[aggregation]\nmode = "masked"\nmodulus_bits = {bits}\nclient_keys = [{keys}]'
    path.write_text(LOCAL.read_text().replace('\n[aggregation]\nmode = "shamir"', table))
    return path


def test_a_masked_config_deploys_a_masked_contract_and_its_record_carries_the_mode(chain, tmp_path, monkeypatch):
    monkeypatch.delenv("FEDTSS_PRIVATE_KEY", raising=False)
    out = tmp_path / "deployment.json"
    assert deploy.main(["--rpc-url", chain.url, "--config", str(_masked_config(tmp_path)), "--out", str(out)]) == 0
    record = load_deployment(out)
    rounds = RoundsContract.from_deployment(chain.w3, record)
    assert record.aggregation == rounds.aggregation() == Aggregation("masked", 56)
    assert rounds.client_keys() == list(record.config.client_keys) and len(rounds.client_keys()) == 10
    assert json.loads(out.read_text())["config"]["aggregation"]["mode"] == "masked"


def test_a_quantization_that_could_wrap_the_ring_is_refused_before_any_transaction(chain, tmp_path):
    from fedtss.chain.deploy import deploy as deploy_contract
    from fedtss.quantize import QuantizationConfig

    nonce = chain.w3.eth.get_transaction_count(chain.accounts[0].address)
    too_fine = QuantizationConfig(clip_norm=10.0, fractional_bits=24, max_clients=1000, max_samples=10_000)
    with pytest.raises(ConfigError, match="quantization could overflow 32-bit masked words"):
        deploy_contract(chain.url, _masked_config(tmp_path, bits=32), tmp_path / "d.json", {}, quantization=too_fine)
    assert chain.w3.eth.get_transaction_count(chain.accounts[0].address) == nonce
    assert not (tmp_path / "d.json").exists()


def test_a_bad_aggregation_table_is_refused_by_deploy_py_in_one_line(chain, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(LOCAL.read_text().replace('\n[aggregation]\nmode = "shamir"',
                                             '\n[aggregation]\nmode = "shamir"\nmodulus_bits = 48'))
    assert deploy.main(["--rpc-url", chain.url, "--config", str(bad), "--out", str(tmp_path / "d.json")]) == 1
    assert capsys.readouterr().err == ('deploy.py: aggregation.modulus_bits: only for mode = "masked" (the Shamir '
                                       'mode has no ring and no client keys); remove it or set mode = "masked"\n')
