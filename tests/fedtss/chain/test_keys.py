"""Keys from keystores, files and environment variables: round trips, and errors that name what to
fix without ever showing a key."""

from __future__ import annotations

import os

import pytest
from eth_account import Account

from fedtss.chain.keys import (
    MaskingKey,
    SealingKey,
    load_account,
    load_masking_key,
    load_sealing_key,
    new_x25519_private_key,
    write_keystore,
    write_masking_key,
    write_sealing_key,
)
from fedtss.errors import ConfigError
from fedtss.sealing import public_key_from_private

CHEAP_SCRYPT_N = 2**10  # tests only: the default makes every decrypt take about a second
PRIVATE_KEY = "0x" + "4c" * 32
SEALING_PRIVATE = bytes(range(1, 33))


@pytest.fixture
def keystore(tmp_path):
    path = tmp_path / "node" / "account.json"
    write_keystore(path, PRIVATE_KEY, "correct horse", scrypt_n=CHEAP_SCRYPT_N)
    return path


def test_keystore_round_trip_with_password_from_the_environment(keystore):
    account = load_account(keystore=keystore, environ={"FEDTSS_KEYSTORE_PASSWORD": "correct horse"})
    assert account.address == Account.from_key(PRIVATE_KEY).address
    assert oct(keystore.stat().st_mode & 0o777) == "0o600"


def test_keystore_round_trip_with_password_from_a_private_file(keystore, tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text("correct horse\n")
    password_file.chmod(0o600)
    account = load_account(keystore=keystore, password_file=password_file, environ={})
    assert account.key.hex() == PRIVATE_KEY.removeprefix("0x")


def test_a_wrong_password_names_the_keystore_file(keystore):
    with pytest.raises(ConfigError, match="wrong password") as info:
        load_account(keystore=keystore, environ={"FEDTSS_KEYSTORE_PASSWORD": "battery staple"})
    assert str(keystore) in str(info.value)


def test_a_missing_password_names_the_variable_to_set(keystore):
    with pytest.raises(ConfigError, match="FEDTSS_KEYSTORE_PASSWORD"):
        load_account(keystore=keystore, environ={})
    with pytest.raises(ConfigError, match="MY_PASSWORD"):
        load_account(keystore=keystore, password_env="MY_PASSWORD", environ={})


def test_a_password_file_others_can_read_is_refused(keystore, tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text("correct horse")
    password_file.chmod(0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {password_file}"):
        load_account(keystore=keystore, password_file=password_file, environ={})


def test_a_missing_or_foreign_keystore_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the keystore file .*missing.json"):
        load_account(keystore=tmp_path / "missing.json", environ={"FEDTSS_KEYSTORE_PASSWORD": "x"})
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match="not an Ethereum keystore"):
        load_account(keystore=other, environ={"FEDTSS_KEYSTORE_PASSWORD": "x"})


def test_the_private_key_comes_from_the_configured_variable():
    assert load_account(environ={"FEDTSS_PRIVATE_KEY": PRIVATE_KEY}).key.hex() == PRIVATE_KEY[2:]
    assert load_account(key_env="CLIENT_3_KEY", environ={"CLIENT_3_KEY": PRIVATE_KEY}).key.hex() == PRIVATE_KEY[2:]


def test_no_key_at_all_names_the_variable_to_set():
    with pytest.raises(ConfigError, match="FEDTSS_PRIVATE_KEY"):
        load_account(environ={})


def test_a_keystore_and_a_key_variable_together_are_ambiguous(keystore):
    with pytest.raises(ConfigError, match="unset FEDTSS_PRIVATE_KEY"):
        load_account(keystore=keystore, environ={"FEDTSS_PRIVATE_KEY": PRIVATE_KEY, "FEDTSS_KEYSTORE_PASSWORD": "x"})


def test_a_malformed_key_variable_is_named_without_echoing_its_value():
    bad = "0x" + "ab" * 31 + "zz"
    with pytest.raises(ConfigError, match="FEDTSS_PRIVATE_KEY") as info:
        load_account(environ={"FEDTSS_PRIVATE_KEY": bad})
    assert "ab" * 8 not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_no_key_holding_object_shows_its_key_in_repr():
    account = load_account(environ={"FEDTSS_PRIVATE_KEY": PRIVATE_KEY})
    sealing = load_sealing_key(environ={"FEDTSS_SEALING_KEY": SEALING_PRIVATE.hex()})
    for obj in (account, sealing):
        text = repr(obj) + str(obj)
        assert PRIVATE_KEY[2:] not in text and SEALING_PRIVATE.hex() not in text
    assert sealing.public_key.hex() in repr(sealing)


def test_sealing_key_round_trip_through_a_private_file(tmp_path):
    path = tmp_path / "member" / "sealing.key"
    written = write_sealing_key(path, SEALING_PRIVATE)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    loaded = load_sealing_key(key_file=path, environ={})
    assert loaded == written == SealingKey(SEALING_PRIVATE, public_key_from_private(SEALING_PRIVATE))


def test_sealing_key_from_the_environment_accepts_0x_hex():
    key = load_sealing_key(key_env="MEMBER_2_SEALING_KEY", environ={"MEMBER_2_SEALING_KEY": "0x" + SEALING_PRIVATE.hex()})
    assert key.private_key == SEALING_PRIVATE


@pytest.mark.parametrize("value", ["00" * 32, "ab" * 31, "not hex at all"])
def test_a_bad_sealing_key_names_its_source(value):
    with pytest.raises(ConfigError, match="FEDTSS_SEALING_KEY"):
        load_sealing_key(environ={"FEDTSS_SEALING_KEY": value})


def test_missing_sealing_key_and_world_readable_key_file_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="FEDTSS_SEALING_KEY"):
        load_sealing_key(environ={})
    path = tmp_path / "sealing.key"
    path.write_text(SEALING_PRIVATE.hex())
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_sealing_key(key_file=path, environ={})


def test_a_key_file_written_without_overwrite_never_replaces_one_that_exists(tmp_path) -> None:
    path = tmp_path / "member.key"
    path.write_text("someone else's key\n")
    with pytest.raises(ConfigError, match="never overwritten"):
        write_sealing_key(path, SEALING_PRIVATE, overwrite=False)
    with pytest.raises(ConfigError, match="never overwritten"):
        write_keystore(path, PRIVATE_KEY, "pw", scrypt_n=CHEAP_SCRYPT_N, overwrite=False)
    assert path.read_text() == "someone else's key\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["member.key"]  # no temporary file left behind


def test_a_key_file_that_cannot_be_written_is_a_config_error_naming_it(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")  # so its "folder" cannot be made
    for overwrite in (True, False):
        with pytest.raises(ConfigError, match="cannot write the key file .*member.key"):
            write_sealing_key(blocker / "member.key", SEALING_PRIVATE, overwrite=overwrite)


# ------------------------------------------------------------- a client's masking key


def test_masking_key_round_trip_through_a_private_file_and_repr_shows_the_public_half_only(tmp_path):
    private = new_x25519_private_key()
    path = tmp_path / "client-0.masking.key"
    written = write_masking_key(path, private, overwrite=False)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    loaded = load_masking_key(key_file=path, environ={})
    assert loaded == written == MaskingKey(private, public_key_from_private(private))
    assert repr(loaded) == f"MaskingKey(public_key=0x{loaded.public_key.hex()})"
    assert private.hex() not in repr(loaded) + str(loaded)
    assert new_x25519_private_key() != private


def test_masking_key_from_the_environment_and_its_errors_say_masking_key():
    assert load_masking_key(environ={"FEDTSS_MASKING_KEY": "0x" + SEALING_PRIVATE.hex()}).private_key == SEALING_PRIVATE
    with pytest.raises(ConfigError, match="^no masking key: name a masking key file in the node config, or set "
                                          "FEDTSS_MASKING_KEY$"):
        load_masking_key(environ={})
    with pytest.raises(ConfigError, match="the variable FEDTSS_MASKING_KEY must hold 32 non-zero bytes"):
        load_masking_key(environ={"FEDTSS_MASKING_KEY": "00" * 32})


def test_a_masking_key_in_both_a_file_and_the_environment_is_refused(tmp_path):
    path = tmp_path / "masking.key"
    write_masking_key(path, SEALING_PRIVATE)
    with pytest.raises(ConfigError, match="both the masking key file .* and the variable FEDTSS_MASKING_KEY"):
        load_masking_key(key_file=path, environ={"FEDTSS_MASKING_KEY": SEALING_PRIVATE.hex()})
