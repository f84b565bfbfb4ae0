"""Deployment configuration: each bad value is refused with an error naming the field."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedtss.chain import (
    DEFAULT_MODULUS_BITS,
    Aggregation,
    committee_warning,
    dev_sealing_keypair,
    load_config,
    parse_rounds_config,
)
from fedtss.chain.config import _x25519_key
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
        ({"target_clients": 4097}, "target_clients"),
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


# --------------------------------------------------------------------- [aggregation] table

MASKED_KEYS = ["0x" + f"{i + 1:02x}" * 32 for i in range(10)]


def _aggregation_toml(tmp_path, table: str) -> Path:
    """config/local.toml with its [aggregation] table replaced by ``table``."""
    body = LOCAL.read_text()
    path = tmp_path / "deploy.toml"
    path.write_text(body[:body.index("\n[aggregation]")] + "\n" + table + "\n")
    return path


def test_the_local_config_is_in_the_shamir_mode_and_so_is_a_config_without_the_table(tmp_path, rounds_table):
    config, _ = load_config(LOCAL)
    assert config.aggregation == Aggregation("shamir", 0) and config.client_keys == ()
    assert parse_rounds_config(rounds_table) == config
    assert load_config(_aggregation_toml(tmp_path, ""))[0] == config


def test_the_masked_mode_takes_48_bits_by_default_and_the_client_keys_in_allowlist_order(tmp_path):
    keys = ", ".join(f'"{k}"' for k in MASKED_KEYS)
    config, _ = load_config(_aggregation_toml(tmp_path, f'[aggregation]\nmode = "masked"\nclient_keys = [{keys}]'))
    assert config.aggregation == Aggregation("masked", DEFAULT_MODULUS_BITS) == Aggregation("masked", 48)
    assert config.client_keys == tuple(bytes.fromhex(k[2:]) for k in MASKED_KEYS)
    assert config.constructor_arg()[8:11] == (1, 48, list(config.client_keys))
    assert parse_rounds_config(config.to_json()) == config  # the record keeps the mode and the keys


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('mode = "additive"', 'aggregation.mode: must be "shamir" or "masked", got \'additive\''),
        ("mode = 1", "aggregation.mode: must be"),
        ('mode = "shamir"\nmodulus_bits = 48', "aggregation.modulus_bits: only for mode = \"masked\""),
        ('modulus_bits = 48', "aggregation.modulus_bits: only for mode = \"masked\""),
        (f'client_keys = ["{MASKED_KEYS[0]}"]', "aggregation.client_keys: only for mode = \"masked\""),
        ('mode = "masked"\nmodulus_bits = 50\nclient_keys = []', "aggregation.modulus_bits: must be 32, 40, 48, 56 "
                                                                  "or 64, got 50"),
        ('mode = "masked"\nmodulus_bits = true\nclient_keys = []', "aggregation.modulus_bits: must be"),
        ('mode = "masked"\nmodulus_bits = "48"\nclient_keys = []', "aggregation.modulus_bits: must be"),
        ('mode = "masked"', "aggregation.client_keys: the masked mode needs a list"),
        ('mode = "masked"\nclient_keys = []', "aggregation.client_keys: .* 10 clients, 0 keys"),
        (f'mode = "masked"\nclient_keys = ["{MASKED_KEYS[0]}"]', "aggregation.client_keys: .* 10 clients, 1 keys"),
        ('mode = "masked"\nclient_keys = ["0x' + "00" * 32 + '"]', r"aggregation.client_keys\[0\]: must be 32 non-zero"),
        ('mode = "masked"\nclient_keys = ["0x1234"]', r"aggregation.client_keys\[0\]: must be 32 non-zero"),
        ('mode = "masked"\nclient_keys = [7]', r"aggregation.client_keys\[0\]: missing"),
        ('mode = "masked"\nbits = 48', "aggregation: unknown key\\(s\\) \\['bits'\\]; the table reads \"mode\", "
                                      "\"modulus_bits\" or \"client_keys\""),
    ],
)
def test_a_bad_aggregation_table_is_refused_in_one_line_naming_the_key_and_the_allowed_values(tmp_path, table,
                                                                                             message):
    with pytest.raises(ConfigError, match="^" + message) as info:
        load_config(_aggregation_toml(tmp_path, "[aggregation]\n" + table))
    assert "\n" not in str(info.value)


def test_aggregation_that_is_not_a_table_or_sits_inside_rounds_is_refused(tmp_path):
    without_table = LOCAL.read_text().split("\n[aggregation]")[0]
    top_level_string = tmp_path / "string.toml"
    top_level_string.write_text('aggregation = "masked"\n' + without_table)
    with pytest.raises(ConfigError, match=r"^aggregation: expected a table \(\[aggregation\]\), got str"):
        load_config(top_level_string)
    nested = tmp_path / "nested.toml"
    nested.write_text(without_table.replace("[rounds]\n", '[rounds]\naggregation = "masked"\n'))
    with pytest.raises(ConfigError, match=r"^rounds.aggregation: .*top-level \[aggregation\] table"):
        load_config(nested)


def test_an_aggregation_value_checks_its_mode_and_ring():
    assert Aggregation.from_contract(1, 56) == Aggregation("masked", 56)
    assert Aggregation("masked", 40).mode_index == 1 and Aggregation().mode_index == 0
    with pytest.raises(ConfigError, match="must be 0 in the shamir mode"):
        Aggregation("shamir", 48)
    with pytest.raises(ConfigError, match="must be 32, 40, 48, 56 or 64 in the masked mode"):
        Aggregation("masked", 0)
    with pytest.raises(ConfigError, match="does not know"):
        Aggregation.from_contract(2, 0)


#: Curve25519's low-order points as X25519 (RFC 7748) reads them, and the encodings of p - 1,
#: p and p + 1 that reduce to them: with any of them every exchange gives the all-zero secret,
#: which cryptography refuses. (Zero itself is refused earlier, as "non-zero" above.)
LOW_ORDER_POINTS = [
    "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f",
    "ed" + "ff" * 30 + "7f",
    "ee" + "ff" * 30 + "7f",
]


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_a_low_order_point_is_refused_as_a_sealing_key_and_as_a_masking_key(rounds_table, tmp_path, point):
    committee = copy.deepcopy(rounds_table["committee"])
    committee[1]["sealing_key"] = "0x" + point
    with pytest.raises(ConfigError, match=r"^committee\[1\]\.sealing_key: .* low-order X25519 point"):
        parse_rounds_config(_with(rounds_table, committee=committee))
    keys = [*MASKED_KEYS[:3], "0x" + point, *MASKED_KEYS[4:]]
    table = '[aggregation]\nmode = "masked"\nclient_keys = [' + ", ".join(f'"{k}"' for k in keys) + "]"
    with pytest.raises(ConfigError, match=r"aggregation.client_keys\[3\]: .* low-order X25519 point"):
        load_config(_aggregation_toml(tmp_path, table))


@given(st.binary(min_size=32, max_size=32))
def test_every_public_key_of_a_real_private_key_is_accepted(private: bytes) -> None:
    public = public_key_from_private(private)
    assert _x25519_key("0x" + public.hex(), "key") == public
