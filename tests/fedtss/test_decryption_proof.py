"""fedtss.decryption_proof: a member shows the X25519 secret of a sealed share, and that it is
the one its own key gives, so that anyone can see whether the share opens; a proof that does
not fit its blob, its place or its key never verifies."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from fedtss.decryption_proof import (
    PROOF_BYTES,
    InvalidDecryptionProof,
    is_valid_ephemeral,
    prove_shared_secret,
    shared_secret_from_proof,
)
from fedtss.errors import FormatError, InvalidSealedShare
from fedtss.sealing import (
    MAGIC,
    ShareContext,
    keypair_from_seed,
    open_share,
    open_share_with_key,
    seal_share,
    share_key_from_secret,
)

CONTEXT = ShareContext(chain_id=31337, contract="0x" + "11" * 20, round=3, client="0x" + "22" * 20, member_index=2)
Q = 2**255 - 19
# u-coordinates of small order (RFC 7748's list, as libsodium's X25519 blocklist has them)
SMALL_ORDER = [0, 1, 325606250916557431795983626356110631294008115727848805560023387167927233504,
               39382357235489614581723060781553021112529911719440698176882885853963445705823, Q - 1, Q, Q + 1]


def _member() -> tuple[bytes, bytes]:
    return keypair_from_seed(os.urandom(32))


def _sealed(public: bytes, plaintext: bytes = b"share bytes" * 10, context: ShareContext = CONTEXT) -> bytes:
    return seal_share(plaintext, public, context, ephemeral_seed=os.urandom(32))


def _with_ephemeral(sealed: bytes, ephemeral: bytes) -> bytes:
    return sealed[:5] + ephemeral + sealed[37:]


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_the_proven_secret_is_the_members_x25519_exchange_and_gives_the_key_that_opens_the_share(
        member_seed, ephemeral_seed) -> None:
    private, public = keypair_from_seed(member_seed)
    sealed = seal_share(b"the share", public, CONTEXT, ephemeral_seed=ephemeral_seed)
    proof = prove_shared_secret(sealed, private, CONTEXT, nonce_seed=os.urandom(32))
    assert len(proof) == PROOF_BYTES
    secret = shared_secret_from_proof(sealed, public, CONTEXT, proof)
    exchange = X25519PrivateKey.from_private_bytes(private).exchange(X25519PublicKey.from_public_bytes(sealed[5:37]))
    assert secret == exchange
    key = share_key_from_secret(sealed, secret, public, CONTEXT)
    assert open_share_with_key(sealed, key, CONTEXT) == b"the share" == open_share(sealed, private, CONTEXT)


def test_a_share_sealed_to_another_key_is_shown_not_to_open_with_the_members_proven_secret() -> None:
    """What a proof is for: the client sealed member 2's share to a key that is not member 2's.
    Member 2's proof verifies against its own public key, and the key anyone derives from the
    proven secret does not open the blob: the client's fault, shown without member 2's private key."""
    private, public = _member()
    sealed = _sealed(_member()[1])
    proof = prove_shared_secret(sealed, private, CONTEXT, nonce_seed=os.urandom(32))
    key = share_key_from_secret(sealed, shared_secret_from_proof(sealed, public, CONTEXT, proof), public, CONTEXT)
    with pytest.raises(InvalidSealedShare):
        open_share_with_key(sealed, key, CONTEXT)


@pytest.mark.parametrize("change", ["public-key", "context-member", "context-round", "another-blob",
                                    "another-members-key", "forged-secret"])
def test_a_proof_verifies_only_for_its_own_blob_place_and_key(change: str) -> None:
    """The class "a member shows a secret other than its own": a proof checked against another
    public key, another context, another blob, made with another private key, or carrying a
    secret its key does not give, never verifies."""
    private, public = _member()
    sealed = _sealed(public)
    proof = prove_shared_secret(sealed, private, CONTEXT, nonce_seed=os.urandom(32))
    blob, key, context = sealed, public, CONTEXT
    if change == "public-key":
        key = _member()[1]
    elif change == "context-member":
        context = ShareContext(CONTEXT.chain_id, CONTEXT.contract, CONTEXT.round, CONTEXT.client, 3)
    elif change == "context-round":
        context = ShareContext(CONTEXT.chain_id, CONTEXT.contract, 4, CONTEXT.client, CONTEXT.member_index)
    elif change == "another-blob":
        blob = _sealed(public)
    elif change == "another-members-key":
        proof = prove_shared_secret(sealed, _member()[0], CONTEXT, nonce_seed=os.urandom(32))
    else:  # a valid point, the real c and z: the secret of another scalar
        other = prove_shared_secret(sealed, _member()[0], CONTEXT, nonce_seed=os.urandom(32))
        proof = other[:32] + proof[32:]
    with pytest.raises(InvalidDecryptionProof):
        shared_secret_from_proof(blob, key, context, proof)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, PROOF_BYTES * 8 - 1))
def test_any_one_bit_flipped_in_a_proof_makes_it_fail(bit: int) -> None:
    private, public = keypair_from_seed(b"\x07" * 32)
    sealed = seal_share(b"x", public, CONTEXT, ephemeral_seed=b"\x09" * 32)
    proof = bytearray(prove_shared_secret(sealed, private, CONTEXT, nonce_seed=b"\x01" * 32))
    proof[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(InvalidDecryptionProof):
        shared_secret_from_proof(sealed, public, CONTEXT, bytes(proof))


@pytest.mark.parametrize("length", [0, 32, 95, 97, 128])
def test_a_proof_of_another_length_fails(length: int) -> None:
    private, public = _member()
    sealed = _sealed(public)
    proof = prove_shared_secret(sealed, private, CONTEXT, nonce_seed=os.urandom(32))
    with pytest.raises(InvalidDecryptionProof):
        shared_secret_from_proof(sealed, public, CONTEXT, (proof * 2)[:length])


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_every_ephemeral_key_an_honest_client_makes_is_valid(seed) -> None:
    assert is_valid_ephemeral(_sealed(_member()[1])) and is_valid_ephemeral(
        seal_share(b"x", _member()[1], CONTEXT, ephemeral_seed=seed))


def _on_the_twist() -> bytes:
    """A u-coordinate of no point of the curve (v^2 = u^3 + A u^2 + u has no root)."""
    for u in range(2, 1000):
        rhs = (u**3 + 486662 * u**2 + u) % Q
        if pow(rhs, (Q - 1) // 2, Q) == Q - 1:
            return u.to_bytes(32, "little")
    raise AssertionError("no twist point below 1000")


def _with_torsion() -> bytes:
    """The u-coordinate of an honest point plus a point of order 8: on the curve, not in the subgroup."""
    from nacl import bindings as sodium

    # the Ed25519 point of order 8 (y = 2707385501144840649318225287225658788936804267575313519463743609750303402022)
    torsion = (2707385501144840649318225287225658788936804267575313519463743609750303402022).to_bytes(32, "little")
    honest = sodium.crypto_scalarmult_ed25519_base_noclamp((12345).to_bytes(32, "little"))
    mixed = sodium.crypto_core_ed25519_add(honest, torsion)
    y = int.from_bytes(mixed, "little") & (2**255 - 1)
    return ((1 + y) * pow(1 - y, -1, Q) % Q).to_bytes(32, "little")


@pytest.mark.parametrize("ephemeral", [*(u.to_bytes(32, "little") for u in SMALL_ORDER), "twist", "torsion",
                                       "non-canonical"], ids=lambda e: e if isinstance(e, str) else e.hex()[:8])
def test_an_ephemeral_key_no_honest_client_makes_is_seen_from_the_blob_and_needs_no_proof(ephemeral) -> None:
    """The class "the client's ephemeral key is not a point of the subgroup" (small order, on the
    twist, with a torsion component, not canonical): anyone sees it from the public blob, and the
    prover refuses, so no member is asked for a proof it cannot make."""
    private, public = _member()
    if ephemeral == "twist":
        ephemeral = _on_the_twist()
    elif ephemeral == "torsion":
        ephemeral = _with_torsion()
    elif ephemeral == "non-canonical":  # an honest key with bit 255 set: X25519 ignores the bit, we do not
        honest = _sealed(public)[5:37]
        ephemeral = honest[:31] + bytes([honest[31] | 0x80])
    sealed = _with_ephemeral(_sealed(public), ephemeral)
    assert not is_valid_ephemeral(sealed)
    with pytest.raises(FormatError):
        prove_shared_secret(sealed, private, CONTEXT, nonce_seed=os.urandom(32))


@pytest.mark.parametrize("blob", [b"", MAGIC, MAGIC + b"\x02" + bytes(48), b"XXXX\x01" + bytes(48)])
def test_a_blob_without_a_well_formed_header_is_the_clients_fault_on_its_face(blob: bytes) -> None:
    assert not is_valid_ephemeral(blob)
    with pytest.raises(InvalidSealedShare):
        share_key_from_secret(blob, bytes(32), bytes(32), CONTEXT)
