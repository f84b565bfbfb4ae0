"""A member shows what a client sealed to it without giving away its private key.

A sealed share (:mod:`fedtss.sealing`) opens with the AES key that the member derives from its
X25519 exchange with the share's ephemeral key E. When the share opens, the member can show it
by publishing that AES key (:func:`fedtss.sealing.reveal_share_key`): AES-GCM's tag checks it.
When it does *not* open, a published AES key proves nothing: a member that wants to frame a
client publishes any key, and nothing opens with it. What does prove it is the X25519 shared
secret itself, S = X25519(a, E) for the member's private scalar a, together with a proof that
S was computed with the same a as the member's public key A = X25519(a, 9) on chain. Anyone then
derives the AES key from S (HKDF, as the member would) and sees for themselves that the blob
does not open, so the client, not the member, is at fault.

The proof is Chaum-Pedersen's proof of equal discrete logarithms, made non-interactive with
Fiat-Shamir, on the Edwards form of Curve25519 (libsodium's ``crypto_core_ed25519`` and
``crypto_scalarmult_ed25519`` through PyNaCl; no point arithmetic here)::

    B          = the Ed25519 base point; s = a mod l (l the prime order), its sign chosen so
                 that A' = s * B encodes with x's sign bit 0 (then u(A') = A)
    P          = the point of the prime-order subgroup with u-coordinate E (sign bit 0)
    S'         = s * P, whose u-coordinate is the X25519 shared secret S
    k          = SHA-512(nonce label || nonce_seed || s || statement) mod l
    c          = SHA-512(label || A' || P || S' || k * B || k * P || statement) mod l
    z          = k + c * s mod l
    proof      = S' || c || z                                           (96 bytes)

and a verifier recomputes k * B = z * B - c * A' and k * P = z * P - c * S' from the public A
and E, and checks c. "statement" is the sealed share's header and its context (chain, contract,
round, client, member), so a proof is about one blob in one place and cannot be replayed for
another. The proof reveals S and nothing else about a (it is honest-verifier zero-knowledge),
and S opens only this one blob: every E is fresh.

Why the Edwards form: X25519 works on u-coordinates only, which name a point up to its sign;
u(s * P) = u(-(s * P)), so fixing the signs of A' and P fixes the statement without changing S.

An ephemeral key that is not the canonical u-coordinate of a point of the prime-order subgroup
(:func:`is_valid_ephemeral`: off the curve, of small order, with a torsion component, or not
canonically encoded) is never produced by an honest client (its E = X25519(e, 9) for a clamped
e), and anyone can see that from the public blob alone: no proof is needed, or possible, there.
Such a blob counts as the client's fault even where its member could open it (X25519 ignores
bit 255 of E, which the canonical encoding leaves 0): it is not an honest client's blob.
"""

from __future__ import annotations

import hashlib

from enum import Enum

from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumError

from fedtss.errors import FormatError, InvalidSealedShare
from fedtss.sealing import (
    MAGIC,
    VERSION,
    ShareContext,
    encode_share_context,
    open_share_with_key,
    reveal_share_key,
    share_key_from_secret,
)

__all__ = [
    "PROOF_BYTES",
    "InvalidDecryptionProof",
    "Shown",
    "complaint_evidence",
    "read_complaint_evidence",
    "read_complaint_key",
    "ephemeral_key",
    "is_valid_ephemeral",
    "prove_shared_secret",
    "shared_secret_from_proof",
]

PROOF_BYTES = 96
_POINT_BYTES = 32
_HEADER_BYTES = len(MAGIC) + 1 + _POINT_BYTES
_Q = 2**255 - 19  # the field of Curve25519
_L = 2**252 + 27742317777372353535851937790883648493  # the prime order of its base point
_LABEL = b"fedtss decryption proof v1\x00"
_NONCE_LABEL = b"fedtss decryption proof nonce v1\x00"


class InvalidDecryptionProof(FormatError):
    """The proof does not show that the member's own key gave this shared secret."""


def ephemeral_key(sealed: bytes) -> bytes | None:
    """The 32-byte ephemeral X25519 key in a sealed share's header, or None if the blob has no
    well-formed version 1 header (which only a faulty client publishes)."""
    data = bytes(sealed[:_HEADER_BYTES])
    if len(data) < _HEADER_BYTES or data[: len(MAGIC)] != MAGIC or data[len(MAGIC)] != VERSION:
        return None
    return data[len(MAGIC) + 1 :]


def _edwards_from_u(u_bytes: bytes) -> bytes | None:
    """The Ed25519 encoding (x's sign bit 0) of the point with this canonical u-coordinate, if it
    lies in the prime-order subgroup and is not of small order; else None."""
    u = int.from_bytes(u_bytes, "little")
    if len(u_bytes) != _POINT_BYTES or u >= _Q or (u + 1) % _Q == 0:
        return None
    y = (u - 1) * pow(u + 1, -1, _Q) % _Q
    point = y.to_bytes(_POINT_BYTES, "little")
    return point if sodium.crypto_core_ed25519_is_valid_point(point) else None


def _u_from_edwards(point: bytes) -> bytes:
    """The X25519 u-coordinate of an Ed25519 point encoding: u = (1 + y) / (1 - y)."""
    y = int.from_bytes(point, "little") & (2**255 - 1)
    return ((1 + y) * pow(1 - y, -1, _Q) % _Q).to_bytes(_POINT_BYTES, "little")


def is_valid_ephemeral(sealed: bytes) -> bool:
    """Whether the share's header is well-formed and its ephemeral key a point an honest client
    can produce. False is the client's fault (not an honest client's blob, whether or not its
    member could open it), visible to anyone from the blob alone."""
    ephemeral = ephemeral_key(sealed)
    return ephemeral is not None and _edwards_from_u(ephemeral) is not None


def _hash_to_scalar(*parts: bytes) -> bytes:
    """SHA-512 of the parts, reduced mod l (32 bytes, little-endian)."""
    return sodium.crypto_core_ed25519_scalar_reduce(hashlib.sha512(b"".join(parts)).digest())


def _statement(sealed: bytes, context: ShareContext) -> bytes:
    return bytes(sealed[:_HEADER_BYTES]) + encode_share_context(context)


def _member_scalar(private_key: bytes) -> tuple[bytes, bytes]:
    """s = the clamped X25519 scalar mod l, negated if need be so that s * B has sign bit 0; and
    s * B. The secret scalar only goes through libsodium's scalar functions, not Python integers."""
    if len(private_key) != _POINT_BYTES:
        raise FormatError("private key must be 32 bytes")
    clamped = bytearray(private_key)
    clamped[0] &= 248
    clamped[31] &= 127
    clamped[31] |= 64
    s = sodium.crypto_core_ed25519_scalar_reduce(bytes(clamped) + bytes(32))
    public = sodium.crypto_scalarmult_ed25519_base_noclamp(s)
    if public[31] & 0x80:
        s = sodium.crypto_core_ed25519_scalar_negate(s)
        public = sodium.crypto_scalarmult_ed25519_base_noclamp(s)
    return s, public


def _challenge(public: bytes, point: bytes, secret: bytes, commit_base: bytes, commit_point: bytes,
               statement: bytes) -> bytes:
    return _hash_to_scalar(_LABEL, public, point, secret, commit_base, commit_point, statement)


def prove_shared_secret(sealed: bytes, recipient_private_key: bytes, context: ShareContext, *,
                        nonce_seed: bytes) -> bytes:
    """The 96-byte proof of the X25519 secret this recipient shares with ``sealed``'s ephemeral
    key, for ``context``. ``nonce_seed``: 32 fresh random bytes (``os.urandom(32)``); the nonce
    also hashes in the private scalar, so a repeated seed does not leak the key.

    Raises :class:`FormatError` if the ephemeral key is not valid (:func:`is_valid_ephemeral`:
    then the blob speaks for itself)."""
    ephemeral = ephemeral_key(sealed)
    point = None if ephemeral is None else _edwards_from_u(ephemeral)
    if point is None:
        raise FormatError("the sealed share's ephemeral key is not a valid point: anyone can see it, "
                          "no proof is needed")
    if len(nonce_seed) != _POINT_BYTES:
        raise FormatError("nonce_seed must be 32 bytes")
    s, public = _member_scalar(bytes(recipient_private_key))
    secret = sodium.crypto_scalarmult_ed25519_noclamp(s, point)
    statement = _statement(sealed, context)
    seed = _NONCE_LABEL + bytes(nonce_seed) + s + statement
    zero = bytes(_POINT_BYTES)
    while True:  # k, c or z of 0 (probability 2^-252 each) would not verify: draw another nonce
        k = _hash_to_scalar(seed)
        seed = hashlib.sha512(seed).digest()
        if k == zero:
            continue
        commit_base = sodium.crypto_scalarmult_ed25519_base_noclamp(k)
        commit_point = sodium.crypto_scalarmult_ed25519_noclamp(k, point)
        c = _challenge(public, point, secret, commit_base, commit_point, statement)
        z = sodium.crypto_core_ed25519_scalar_add(k, sodium.crypto_core_ed25519_scalar_mul(c, s))
        if c != zero and z != zero:
            return secret + c + z


def shared_secret_from_proof(sealed: bytes, recipient_public_key: bytes, context: ShareContext,
                             proof: bytes) -> bytes:
    """The 32-byte X25519 shared secret of ``sealed``'s ephemeral key and the recipient whose
    public key is ``recipient_public_key``, as ``proof`` shows it; raise
    :class:`InvalidDecryptionProof` unless the proof verifies for exactly this blob's header,
    this context and this public key."""
    ephemeral = ephemeral_key(sealed)
    point = None if ephemeral is None else _edwards_from_u(ephemeral)
    public = _edwards_from_u(bytes(recipient_public_key))
    proof = bytes(proof)
    if point is None or public is None or len(proof) != PROOF_BYTES:
        raise InvalidDecryptionProof("the proof, the share's ephemeral key or the public key is malformed")
    secret, c_bytes, z_bytes = proof[:32], proof[32:64], proof[64:]
    c, z = int.from_bytes(c_bytes, "little"), int.from_bytes(z_bytes, "little")
    if not (0 < c < _L and 0 < z < _L) or not sodium.crypto_core_ed25519_is_valid_point(secret):
        raise InvalidDecryptionProof("the proof's scalars or point are out of range")
    try:
        commit_base = sodium.crypto_core_ed25519_sub(sodium.crypto_scalarmult_ed25519_base_noclamp(z_bytes),
                                                     sodium.crypto_scalarmult_ed25519_noclamp(c_bytes, public))
        commit_point = sodium.crypto_core_ed25519_sub(sodium.crypto_scalarmult_ed25519_noclamp(z_bytes, point),
                                                      sodium.crypto_scalarmult_ed25519_noclamp(c_bytes, secret))
    except SodiumError:
        raise InvalidDecryptionProof("the proof does not verify") from None
    if _challenge(public, point, secret, commit_base, commit_point, _statement(sealed, context)) != c_bytes:
        raise InvalidDecryptionProof("the proof does not verify")
    return _u_from_edwards(secret)


class Shown(Enum):
    """What a complaint's evidence shows when it shows no plaintext (:func:`read_complaint_evidence`)."""

    #: The evidence proves nothing (a key that opens nothing, a proof that does not verify): the member's fault.
    NOTHING = "nothing"
    #: The client's sealed share cannot be used by its member: the client's fault.
    UNUSABLE = "unusable"


def complaint_evidence(sealed: bytes, recipient_private_key: bytes, context: ShareContext, *,
                       nonce_seed: bytes) -> bytes:
    """What a member posts to show its sealed share from a client: the share's 32-byte AES key if
    it opens (whatever the plaintext), else the 96-byte proof of its X25519 secret; for a blob
    whose header or ephemeral key no honest client writes, 32 zero bytes (the blob shows it)."""
    if not is_valid_ephemeral(sealed):
        return bytes(32)
    try:
        return reveal_share_key(sealed, recipient_private_key, context)  # checks that it opens
    except InvalidSealedShare:
        return prove_shared_secret(sealed, recipient_private_key, context, nonce_seed=nonce_seed)


def read_complaint_evidence(sealed: bytes, evidence: bytes, recipient_public_key: bytes,
                            context: ShareContext) -> bytes | Shown:
    """What ``evidence`` (:func:`complaint_evidence`) shows about the member's sealed share: its
    plaintext (the share opened), :attr:`Shown.UNUSABLE` (the blob's header or ephemeral key is
    not an honest client's, or the member's proven secret does not open it) or
    :attr:`Shown.NOTHING` (a key that does not open it, a proof that does not verify)."""
    shown = read_complaint_key(sealed, evidence, recipient_public_key, context)
    return shown if isinstance(shown, Shown) else shown[0]


def read_complaint_key(sealed: bytes, evidence: bytes, recipient_public_key: bytes,
                       context: ShareContext) -> tuple[bytes, bytes] | Shown:
    """As :func:`read_complaint_evidence`, with the share's key beside its plaintext: the key
    opens the client's sealed proof for that member too (:func:`fedtss.sealing.open_proof`)."""
    if not is_valid_ephemeral(sealed):
        return Shown.UNUSABLE
    evidence = bytes(evidence)
    if len(evidence) == PROOF_BYTES:
        try:
            secret = shared_secret_from_proof(sealed, recipient_public_key, context, evidence)
        except InvalidDecryptionProof:
            return Shown.NOTHING
        key = share_key_from_secret(sealed, secret, recipient_public_key, context)
    else:
        key = evidence
    try:
        return open_share_with_key(sealed, key, context), key
    except InvalidSealedShare:  # the proven key is the member's own: the client sealed what it cannot open
        return Shown.UNUSABLE if len(evidence) == PROOF_BYTES else Shown.NOTHING
