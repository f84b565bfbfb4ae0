"""Deployment configuration: each bad value is refused with an error naming the field."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest

from fedtss.chain import committee_warning, dev_sealing_keypair, load_config, parse_rounds_config
from fedtss.errors import ConfigError
from fedtss.sealing import public_key_from_private

LOCAL = Path(__file__).resolve().parents[3] / "config" / "local.toml"


@pytest.fixture
def rounds_table() -> dict:
    return tomllib.loads(LOCAL.read_text())["rounds"]


def test_local_config_loads_with_five_members_ten_clients_and_the_dev_key(rounds_table):
    config, settings = load_config(LOCAL)
    assert (len(config.committee), config.threshold, len(config.clients)) == (5, 3, 10)
    assert settings.dev_private_key is not None and settings.keystore is None


def test_local_sealing_keys_follow_the_documented_dev_rule():
    config, _ = load_config(LOCAL)
    for member in config.committee:
        private, public = dev_sealing_keypair(member.address)
        assert member.sealing_key == public == public_key_from_private(private)


def _with(table: dict, **changes) -> dict:
    table = copy.deepcopy(table)
    table.update(changes)
    return table


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"threshold": 6}, "threshold"),
        ({"threshold": 1}, "threshold"),
        ({"min_clients": 1}, "min_clients"),
        ({"min_clients": 11}, "min_clients"),
        ({"target_clients": 300}, "target_clients"),
        ({"collection_period": 0}, "collection_period"),
        ({"aggregation_period": -5}, "aggregation_period"),
        ({"collection_period": 2**64 - 1}, "collection_period"),
        ({"aggregation_period": 2**32}, "aggregation_period"),
        ({"threshold": "3"}, "threshold"),
        ({"clients": ["0x1234"]}, "clients[0]"),
    ],
)
def test_bad_value_is_refused_with_the_field_named(rounds_table, changes, field):
    with pytest.raises(ConfigError, match="^" + re.escape(field) + ":"):
        parse_rounds_config(_with(rounds_table, **changes))


def test_duplicate_member_is_refused(rounds_table):
    committee = rounds_table["committee"]
    with pytest.raises(ConfigError, match=r"^committee\[4\]: duplicate"):
        parse_rounds_config(_with(rounds_table, committee=[*committee[:4], committee[0]]))


def test_duplicate_client_is_refused(rounds_table):
    clients = rounds_table["clients"]
    with pytest.raises(ConfigError, match=r"^clients\[2\]: duplicate"):
        parse_rounds_config(_with(rounds_table, clients=[clients[0], clients[1], clients[0].lower()]))


@pytest.mark.parametrize("key", ["0x1234", "0x" + "00" * 32, "0x" + "zz" * 32, None, "ab" * 32,
                                 "0x" + "ab " * 31 + "ab"])
def test_malformed_sealing_key_is_refused(rounds_table, key):
    committee = copy.deepcopy(rounds_table["committee"])
    committee[2]["sealing_key"] = key
    with pytest.raises(ConfigError, match=r"^committee\[2\]\.sealing_key"):
        parse_rounds_config(_with(rounds_table, committee=committee))


def test_committee_of_one_is_refused(rounds_table):
    with pytest.raises(ConfigError, match=r"^committee: needs 2"):
        parse_rounds_config(_with(rounds_table, committee=rounds_table["committee"][:1], threshold=2))


def test_config_round_trips_through_the_record_form():
    config, _ = load_config(LOCAL)
    assert parse_rounds_config(config.to_json()) == config


def test_mixed_case_address_with_a_wrong_checksum_is_refused_and_lowercase_is_accepted(rounds_table):
    clients = list(rounds_table["clients"])
    good = clients[1]
    letter = next(i for i, c in enumerate(good) if i > 1 and c.isalpha())
    clients[1] = good[:letter] + good[letter].swapcase() + good[letter + 1:]  # one case flipped: a typo
    with pytest.raises(ConfigError, match=r"^clients\[1\]: .*EIP-55 checksum"):
        parse_rounds_config(_with(rounds_table, clients=clients))
    clients[1] = good.lower()
    assert parse_rounds_config(_with(rounds_table, clients=clients)).clients[1] == good


@pytest.mark.parametrize(
    ("deployer", "field"),
    [('deployer = "0xsecret"', "deployer must be a table"), ("[deployer]\nkeystore = 5", "deployer.keystore"),
     ("[deployer]\ndev_private_key = 12", "deployer.dev_private_key")],
)
def test_malformed_deployer_settings_are_refused_naming_the_field_not_the_value(tmp_path, deployer, field):
    body = LOCAL.read_text()
    start, end = body.index("[deployer]"), body.index("[rounds]")
    path = tmp_path / "deploy.toml"
    path.write_text(body[:start] + deployer + "\n\n" + body[end:])
    with pytest.raises(ConfigError, match=re.escape(field)) as info:
        load_config(path)
    assert "secret" not in str(info.value)


def test_a_record_whose_config_is_not_a_table_is_refused():
    with pytest.raises(ConfigError, match="^rounds: expected a table"):
        parse_rounds_config(["not", "a", "table"])


@pytest.mark.parametrize(("n", "t"), [(4, 2), (5, 3), (255, 2)])
def test_a_committee_of_at_least_t_plus_2_gets_no_warning(n: int, t: int) -> None:
    assert committee_warning(n, t) is None


@pytest.mark.parametrize(("n", "t", "says"), [
    (3, 2, "detected but cannot be told from the right ones"),
    (5, 4, "fedtss reopen"),
    (2, 2, "one member offline stalls every round"),
    (5, 5, "cannot even be detected"),
])
def test_a_committee_below_t_plus_2_is_warned_that_it_cannot_correct_one_wrong_member(n: int, t: int,
                                                                                     says: str) -> None:
    warning = committee_warning(n, t)
    assert warning is not None
    assert f"n={n} with threshold t={t} cannot correct a single wrong member" in warning
    assert f"n >= t + 2 = {t + 2}" in warning and says in warning
