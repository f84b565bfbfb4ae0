"""Tests for fedtss.sealing: round trips, every way a sealed share must fail, test vectors."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from fedtss.errors import FormatError, InvalidSealedShare
from fedtss.sealing import (
    OVERHEAD,
    ShareContext,
    encode_share_context,
    keypair_from_seed,
    open_share,
    open_share_with_key,
    public_key_from_private,
    reveal_share_key,
    seal_share,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "sealing.json").read_text())
CONTEXT = ShareContext(
    chain_id=31337,
    contract="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    round=4,
    client="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    member_index=2,
)
PRIVATE, PUBLIC = keypair_from_seed(bytes(range(32)))
PLAINTEXT = os.urandom(1000)
SEALED = seal_share(PLAINTEXT, PUBLIC, CONTEXT, ephemeral_seed=bytes([7]) * 32)


def test_sealed_share_opens_with_the_right_key_and_context() -> None:
    assert open_share(SEALED, PRIVATE, CONTEXT) == PLAINTEXT
    assert len(SEALED) == len(PLAINTEXT) + OVERHEAD


def test_sealing_is_pure_given_the_ephemeral_seed() -> None:
    again = seal_share(PLAINTEXT, PUBLIC, CONTEXT, ephemeral_seed=bytes([7]) * 32)
    other = seal_share(PLAINTEXT, PUBLIC, CONTEXT, ephemeral_seed=bytes([8]) * 32)
    assert again == SEALED and other != SEALED


def test_sealed_share_does_not_open_with_another_members_key() -> None:
    other_private, _ = keypair_from_seed(bytes([1]) * 32)
    with pytest.raises(InvalidSealedShare):
        open_share(SEALED, other_private, CONTEXT)


def test_a_replayed_share_fails_with_one_message_that_lists_the_causes_without_naming_one() -> None:
    replayed = dataclasses.replace(CONTEXT, round=5)
    messages = set()
    for sealed, key, context in [(SEALED, PRIVATE, replayed), (SEALED[:-1], PRIVATE, CONTEXT),
                                 (SEALED, keypair_from_seed(bytes([1]) * 32)[0], CONTEXT)]:
        with pytest.raises(InvalidSealedShare) as raised:
            open_share(sealed, key, context)
        messages.add(str(raised.value))
    (message,) = messages
    assert "another key" in message and "another context" in message and "round" in message


def test_a_context_that_is_not_a_share_context_fails_like_any_other_bad_input() -> None:
    with pytest.raises(InvalidSealedShare, match="not a ShareContext"):
        open_share(SEALED, PRIVATE, dataclasses.asdict(CONTEXT))


@pytest.mark.parametrize(
    ("field", "value"),
    [("chain_id", 1), ("contract", "0x" + "11" * 20), ("round", 5),
     ("client", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"), ("member_index", 3)],
)
def test_sealed_share_replayed_into_another_context_does_not_open(field: str, value: object) -> None:
    replayed = dataclasses.replace(CONTEXT, **{field: value})
    with pytest.raises(InvalidSealedShare):
        open_share(SEALED, PRIVATE, replayed)


def test_address_case_does_not_change_the_context() -> None:
    recased = dataclasses.replace(CONTEXT, contract="0x" + CONTEXT.contract[2:].upper())
    assert open_share(SEALED, PRIVATE, recased) == PLAINTEXT


@pytest.mark.parametrize("position", [0, 4, 5, 36, 37, 500, len(SEALED) - 17, len(SEALED) - 1])
def test_any_flipped_bit_makes_the_share_fail_to_open(position: int) -> None:
    tampered = bytearray(SEALED)
    tampered[position] ^= 0x01
    with pytest.raises(InvalidSealedShare):
        open_share(bytes(tampered), PRIVATE, CONTEXT)


@pytest.mark.parametrize("length", [0, 4, 5, 36, 37, OVERHEAD - 1, OVERHEAD, len(SEALED) - 1])
def test_truncated_share_fails_to_open(length: int) -> None:
    with pytest.raises(InvalidSealedShare):
        open_share(SEALED[:length], PRIVATE, CONTEXT)


def test_unknown_version_fails_to_open_even_if_otherwise_intact() -> None:
    relabelled = SEALED[:4] + bytes([2]) + SEALED[5:]
    with pytest.raises(InvalidSealedShare):
        open_share(relabelled, PRIVATE, CONTEXT)


@pytest.mark.parametrize("bad", [b"short", None, "not bytes", bytes(33), 32, 10**30, [0] * 32])
def test_malformed_private_key_or_blob_raises_only_invalid_sealed_share(bad: object) -> None:
    with pytest.raises(InvalidSealedShare):
        open_share(SEALED, bad, CONTEXT)  # type: ignore[arg-type]
    with pytest.raises(InvalidSealedShare):
        open_share(bad, PRIVATE, CONTEXT)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_open_and_never_raise_another_error(blob: bytes) -> None:
    with pytest.raises(InvalidSealedShare):
        open_share(blob, PRIVATE, CONTEXT)


def test_low_order_recipient_key_is_refused_when_sealing() -> None:
    with pytest.raises(FormatError, match="low-order"):
        seal_share(b"x", bytes(32), CONTEXT, ephemeral_seed=bytes([7]) * 32)


@pytest.mark.parametrize(
    ("field", "value"),
    [("chain_id", 0), ("round", 0), ("member_index", 0), ("member_index", 256),
     ("contract", "0x1234"), ("client", "70997970C51812dc3A010C7d01b50e0d17dc79C8"),
     ("round", True)],
)
def test_invalid_context_fields_are_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(FormatError, match=field):
        dataclasses.replace(CONTEXT, **{field: value})


def test_keypair_matches_rfc7748_alice() -> None:
    vector = VECTORS["x25519_rfc7748"]
    private, public = keypair_from_seed(bytes.fromhex(vector["private"]))
    assert public.hex() == vector["public"]
    assert public_key_from_private(private) == public


def _recompute_sealed(case: dict, context: ShareContext) -> bytes:
    """The documented construction, step by step, independent of seal_share's code."""
    ephemeral = X25519PrivateKey.from_private_bytes(bytes.fromhex(case["ephemeral_seed"]))
    recipient = bytes.fromhex(case["recipient_public_key"])
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    ctx = bytes.fromhex(case["context_encoding"])
    key = HKDF(hashes.SHA256(), 32, salt=ephemeral_public + recipient,
               info=b"fedtss sealed share v1\x00" + ctx).derive(shared)
    header = b"FTSS\x01" + ephemeral_public
    plaintext = bytes.fromhex(case["plaintext"])
    assert shared.hex() == case["shared_secret"]
    assert ephemeral_public.hex() == case["ephemeral_public_key"]
    return header + AESGCM(key).encrypt(bytes(12), plaintext, header + ctx)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda case: case["description"])
def test_sealing_matches_the_published_vectors(case: dict) -> None:
    context = ShareContext(**case["context"])
    private, public = keypair_from_seed(bytes.fromhex(case["recipient_seed"]))
    sealed = seal_share(bytes.fromhex(case["plaintext"]), public, context,
                        ephemeral_seed=bytes.fromhex(case["ephemeral_seed"]))
    assert public.hex() == case["recipient_public_key"]
    assert encode_share_context(context).hex() == case["context_encoding"]
    assert sealed.hex() == case["sealed"]
    assert _recompute_sealed(case, context).hex() == case["sealed"]
    assert open_share(bytes.fromhex(case["sealed"]), private, context).hex() == case["plaintext"]


def test_context_encoding_is_the_abi_encoding_of_five_words() -> None:
    encoded = encode_share_context(CONTEXT)
    words = [encoded[i : i + 32] for i in range(0, 160, 32)]
    assert len(encoded) == 160
    assert int.from_bytes(words[0], "big") == 31337
    assert words[1] == bytes(12) + bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
    assert int.from_bytes(words[2], "big") == 4
    assert words[3][12:].hex() == "70997970c51812dc3a010c7d01b50e0d17dc79c8"
    assert int.from_bytes(words[4], "big") == 2


def test_large_plaintext_round_trips_from_a_memoryview() -> None:
    plaintext = os.urandom(8 * 2**20)
    sealed = seal_share(memoryview(plaintext), PUBLIC, CONTEXT, ephemeral_seed=os.urandom(32))
    assert open_share(memoryview(sealed), PRIVATE, CONTEXT) == plaintext


# ------------------------------------------------------------ a complaint's revealed key


def test_a_revealed_share_key_opens_that_share_for_anyone() -> None:
    key = reveal_share_key(SEALED, PRIVATE, CONTEXT)
    assert len(key) == 32 and key not in (PRIVATE, PUBLIC)
    assert open_share_with_key(SEALED, key, CONTEXT) == PLAINTEXT


def test_a_revealed_share_key_opens_no_other_share_to_the_same_member() -> None:
    other = seal_share(PLAINTEXT, PUBLIC, CONTEXT, ephemeral_seed=bytes([8]) * 32)
    with pytest.raises(InvalidSealedShare):
        open_share_with_key(other, reveal_share_key(SEALED, PRIVATE, CONTEXT), CONTEXT)


def test_a_revealed_share_key_does_not_open_the_share_in_another_context() -> None:
    key = reveal_share_key(SEALED, PRIVATE, CONTEXT)
    with pytest.raises(InvalidSealedShare):
        open_share_with_key(SEALED, key, dataclasses.replace(CONTEXT, round=5))


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_any_key_but_the_revealed_one_fails_to_open(wrong: bytes) -> None:
    if wrong == reveal_share_key(SEALED, PRIVATE, CONTEXT):
        return
    with pytest.raises(InvalidSealedShare):
        open_share_with_key(SEALED, wrong, CONTEXT)


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33), "not bytes", None])
def test_a_malformed_revealed_key_fails_like_any_other_bad_input(key: object) -> None:
    with pytest.raises(InvalidSealedShare):
        open_share_with_key(SEALED, key, CONTEXT)  # type: ignore[arg-type]


def test_a_member_cannot_reveal_a_key_for_a_share_that_is_not_sealed_to_it() -> None:
    other_private, _ = keypair_from_seed(bytes([9]) * 32)
    with pytest.raises(InvalidSealedShare):
        reveal_share_key(SEALED, other_private, CONTEXT)
