"""Masked aggregation: one masked vector per client, only short seeds for the committee.

The default mode (:mod:`fedtss.shamir`) uploads n Shamir shares of every coordinate: 2n
times a float32 update. This mode uploads the update once, hidden under masks that cancel or
are removed in the sum, and shares only 32-byte seeds t-of-n with the committee. It is
Bonawitz et al.'s double masking (CCS 2017) with two changes that the chain makes possible:
the seeds are shared with the committee rather than with the other clients, and the set of
clients whose masks are removed is the one the contract fixed, so no honest member is ever
asked to reveal both seeds of one client.

Arithmetic is in the ring Z_(2^b) (``b = modulus_bits``, a multiple of 8 between 32 and 64),
on numpy uint64 words whose high bits are zero. Word-size arithmetic wraps by itself, so
adding a mask is one numpy add and a mask. The sum of the quantized updates must not wrap:
:func:`fedtss.quantize.check_capacity` with ``modulus_bits=b`` checks that up front.

Client ``i`` with quantized update ``x_i`` (:func:`field_to_ring` of the field encoding) sends::

    y_i = x_i + PRG(b_i) + sum_{u != i} sign(i, u) * PRG(s_iu)      (mod 2^b)

* ``b_i``: the self seed, 32 fresh random bytes for this round;
* ``s_iu = s_ui``: the pairwise seed of clients i and u, from X25519 of i's key with u's
  registered key, hashed with the round (:func:`pairwise_seed`); ``sign(i, u)`` is +1 for
  ``i < u`` and -1 otherwise, so the two masks of a pair cancel when both clients are summed;
* ``PRG``: AES-256-CTR of the seed (:mod:`fedtss.randomness`), low ``b`` bits of each word.

and, sealed to each member j, member j's Shamir share (over GF(2^61 - 1), 5 limbs of 7 bytes
per seed: :func:`share_seeds`) of ``b_i`` and of every ``s_iu``.

Once the round's included set S is fixed, every honest member reveals its shares of exactly
:func:`seeds_to_reveal`: ``b_i`` for each i in S, and ``s_iu`` for each i in S and u outside
S (from i's shares: u may have sent nothing). With t reveals anyone can rebuild those seeds
and compute::

    sum_{i in S} x_i = sum_{i in S} y_i - sum_{i in S} PRG(b_i)
                       - sum_{i in S, u not in S} sign(i, u) * PRG(s_iu)      (:func:`unmask_sum`)

Who learns what (docs/protocol.md has the full argument): a client outside S never has
``b_u`` revealed, so its ``y_u`` (if it sent one) stays masked; a client in S has only its
pairs with other clients of S unrevealed, which is what hides ``x_i`` within the sum. Fewer
than t members hold fewer than t shares of any seed, which says nothing about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from numpy.typing import NDArray

from fedtss._checks import normalize_address, require_int
from fedtss.errors import ConfigError, FormatError, ShareError
from fedtss.field import MODULUS
from fedtss.randomness import derive_subkey, fill_keystream_words
from fedtss.shamir import Reconstruction, reconstruct_checked, share_vector

__all__ = [
    "MODULUS_BITS_CHOICES",
    "SEED_BYTES",
    "LIMBS_PER_SEED",
    "MASK_LABEL",
    "PairContext",
    "SeedRef",
    "check_modulus_bits",
    "field_to_ring",
    "ring_to_field",
    "expand_mask",
    "pairwise_seed",
    "pair_sign",
    "mask_update",
    "seed_order",
    "share_seeds",
    "select_seed_shares",
    "reconstruct_seeds",
    "seeds_to_reveal",
    "unmask_sum",
    "encode_ring_vector",
    "decode_ring_vector",
    "ring_vector_bytes",
]

MODULUS_BITS_CHOICES = (32, 40, 48, 56, 64)
"""Ring sizes offered: whole bytes, so a masked vector is stored as ``b / 8`` bytes per value."""

SEED_BYTES = 32
_LIMB_BYTES = 7  # 56 bits: every limb is a field element (< p = 2^61 - 1)
LIMBS_PER_SEED = -(-SEED_BYTES // _LIMB_BYTES)  # 5 limbs hold 35 >= 32 bytes
MASK_LABEL = b"fedtss/masking/mask/v1"
_PAIR_INFO = b"fedtss/masking/pair/v1"
_MAX_CLIENT_INDEX = 2**16 - 1


def check_modulus_bits(bits: object) -> int:
    """``bits`` if it is one of :data:`MODULUS_BITS_CHOICES`; else a ConfigError naming them."""
    if isinstance(bits, bool) or bits not in MODULUS_BITS_CHOICES:
        raise ConfigError(f"modulus_bits must be one of {', '.join(map(str, MODULUS_BITS_CHOICES))}, got {bits!r}")
    return int(bits)  # type: ignore[arg-type]


def _word_mask(bits: int) -> np.uint64:
    return np.uint64((1 << bits) - 1)


# -- between the field encoding and the ring ------------------------------------------------


def field_to_ring(values: NDArray[np.uint64], bits: int) -> NDArray[np.uint64]:
    """Re-encode field elements (negative q as p + q) as ring words (negative q as 2^b + q).

    :func:`fedtss.quantize.quantize_update` gives the field encoding; reading a value above
    (p-1)/2 as negative and reducing mod 2^b keeps every signed value the capacity check allows.
    """
    bits = check_modulus_bits(bits)
    values = np.asarray(values, dtype=np.uint64)
    negative = values > np.uint64((MODULUS - 1) // 2)
    # for negative q, field value v = p + q, so q mod 2^64 = v - p (wraps); then keep b bits
    out = np.where(negative, values - np.uint64(MODULUS), values)
    np.bitwise_and(out, _word_mask(bits), out=out)
    return out


def ring_to_field(values: NDArray[np.uint64], bits: int) -> NDArray[np.uint64]:
    """The inverse of :func:`field_to_ring` for sums within the signed limit 2^(b-1) - 1.

    The result is what :func:`fedtss.quantize.dequantize_sum` reads, so both modes decode the
    aggregate with the same function.
    """
    bits = check_modulus_bits(bits)
    values = np.asarray(values, dtype=np.uint64) & _word_mask(bits)
    negative = values >= np.uint64(1 << (bits - 1))
    # signed q = v - 2^b; field encoding p + q = v + (p - 2^b) (mod 2^64, exact in [0, p))
    return np.where(negative, values + np.uint64((MODULUS - (1 << bits)) % 2**64), values)


# -- masks -------------------------------------------------------------------------------


def expand_mask(seed: bytes, count: int, bits: int, *, out: NDArray[np.uint64] | None = None) -> NDArray[np.uint64]:
    """``count`` ring words from ``seed``: AES-256-CTR under HMAC(seed, MASK_LABEL), low b bits."""
    bits = check_modulus_bits(bits)
    words = np.empty(count, dtype=np.uint64) if out is None else out
    fill_keystream_words(words, derive_subkey(seed, MASK_LABEL))
    if bits < 64:
        np.bitwise_and(words, _word_mask(bits), out=words)
    return words


@dataclass(frozen=True)
class PairContext:
    """What binds a pairwise seed to one round of one deployment (a new seed every round)."""

    chain_id: int
    contract: str
    round: int

    def __post_init__(self) -> None:
        require_int(self.chain_id, "chain_id", low=0, high=2**256 - 1, error=FormatError)
        object.__setattr__(self, "contract", normalize_address(self.contract, "contract", error=FormatError))
        require_int(self.round, "round", low=0, high=2**256 - 1, error=FormatError)


def pairwise_seed(private_key: bytes, peer_public_key: bytes, *, own_index: int, peer_index: int,
                  context: PairContext) -> bytes:
    """The seed clients ``own_index`` and ``peer_index`` share this round; both compute the same.

    HKDF-SHA256 of their X25519 shared secret, with the round's context and the two indices
    (lower first) as info: a seed revealed in one round says nothing about another round's.
    """
    for name, index in (("own_index", own_index), ("peer_index", peer_index)):
        require_int(index, name, low=0, high=_MAX_CLIENT_INDEX, error=ConfigError)
    if own_index == peer_index:
        raise ConfigError(f"a client has no pairwise seed with itself (index {own_index})")
    try:
        shared = X25519PrivateKey.from_private_bytes(bytes(private_key)).exchange(
            X25519PublicKey.from_public_bytes(bytes(peer_public_key)))
    except ValueError as exc:
        raise FormatError(f"client {peer_index}'s public key is not a usable X25519 key: {exc}") from None
    low, high = sorted((own_index, peer_index))
    info = b"".join((_PAIR_INFO, context.chain_id.to_bytes(32, "big"), bytes.fromhex(context.contract[2:]),
                     context.round.to_bytes(32, "big"), low.to_bytes(2, "big"), high.to_bytes(2, "big")))
    return HKDF(algorithm=hashes.SHA256(), length=SEED_BYTES, salt=None, info=info).derive(shared)


def pair_sign(own_index: int, peer_index: int) -> int:
    """+1 if the lower index of the pair adds the mask, -1 for the higher one (they cancel)."""
    return 1 if own_index < peer_index else -1


def mask_update(update: NDArray[np.uint64], *, bits: int, own_index: int, self_seed: bytes,
                pairwise_seeds: Mapping[int, bytes]) -> NDArray[np.uint64]:
    """``y = x + PRG(b) + sum_u sign(own, u) PRG(s_u)`` mod 2^b; ``update`` is in ring words."""
    bits = check_modulus_bits(bits)
    words = _word_mask(bits)
    masked = np.array(update, dtype=np.uint64, copy=True)
    if masked.ndim != 1 or (masked.size and int(masked.max()) > int(words)):
        raise ConfigError(f"the update must be a 1-D vector of {bits}-bit ring words (field_to_ring)")
    scratch = np.empty_like(masked)
    for seed, sign in [(self_seed, 1), *((pairwise_seeds[u], pair_sign(own_index, u)) for u in sorted(pairwise_seeds))]:
        expand_mask(seed, masked.size, bits, out=scratch)
        (np.add if sign > 0 else np.subtract)(masked, scratch, out=masked)
    np.bitwise_and(masked, words, out=masked)
    return masked


# -- seeds shared with the committee ------------------------------------------------------


@dataclass(frozen=True)
class SeedRef:
    """One seed of client ``client``: its self seed (``peer`` None) or its pair with ``peer``."""

    client: int
    peer: int | None = None

    @property
    def is_self(self) -> bool:
        return self.peer is None

    def sort_key(self) -> tuple[int, int]:
        return (self.client, -1 if self.peer is None else self.peer)


def seed_order(own_index: int, clients: Iterable[int]) -> list[SeedRef]:
    """The seeds a client shares, in the order of its shared vector: self, then pairs by peer."""
    peers = sorted(set(clients) - {own_index})
    return [SeedRef(own_index), *(SeedRef(own_index, peer) for peer in peers)]


def _seeds_to_limbs(seeds: Sequence[bytes]) -> NDArray[np.uint64]:
    padded = bytearray()
    for seed in seeds:
        if len(seed) != SEED_BYTES:
            raise ConfigError(f"a seed must be {SEED_BYTES} bytes, got {len(seed)}")
        padded += seed + bytes(LIMBS_PER_SEED * _LIMB_BYTES - SEED_BYTES)
    raw = np.frombuffer(bytes(padded), dtype=np.uint8).reshape(-1, _LIMB_BYTES)
    words = np.zeros((raw.shape[0], 8), dtype=np.uint8)
    words[:, :_LIMB_BYTES] = raw
    return words.view("<u8").reshape(-1).astype(np.uint64)


def _limbs_to_seeds(limbs: NDArray[np.uint64]) -> list[bytes]:
    """The seeds in reconstructed limbs: each limb's low 56 bits, the padding ignored.

    Total on purpose. A client can share limbs that are no seed's (a field element of 56 bits
    or more, non-zero padding); refusing them would make every honest member's reconstruction
    fail, so one client could fail every round. Read this way they give some seed, which only
    adds noise to the sum, as masking with seeds other than the shared ones does anyway.
    """
    if limbs.size % LIMBS_PER_SEED:
        raise ShareError(f"reconstructed seed limbs come in groups of {LIMBS_PER_SEED}, got {limbs.size}")
    words = np.ascontiguousarray(limbs, dtype="<u8") & np.uint64((1 << (8 * _LIMB_BYTES)) - 1)
    raw = words.view(np.uint8).reshape(-1, 8)[:, :_LIMB_BYTES].tobytes()
    span = LIMBS_PER_SEED * _LIMB_BYTES
    return [raw[k : k + SEED_BYTES] for k in range(0, len(raw), span)]


def share_seeds(seeds: Sequence[bytes], *, threshold: int, holders: int, key: bytes) -> NDArray[np.uint64]:
    """Shamir-share the seeds t-of-n: shape (holders, 5 * len(seeds)), row j - 1 for member j.

    ``key`` is 32 fresh random bytes (the polynomials' coefficients), as for share_vector.
    """
    return share_vector(_seeds_to_limbs(seeds), threshold=threshold, holders=holders, key=key)


def select_seed_shares(share: NDArray[np.uint64], order: Sequence[SeedRef],
                       wanted: Sequence[SeedRef]) -> NDArray[np.uint64]:
    """A member's shares of the ``wanted`` seeds, cut from one client's shared vector."""
    if share.size != LIMBS_PER_SEED * len(order):
        raise FormatError(f"seed share has {share.size} values, expected {LIMBS_PER_SEED * len(order)}")
    position = {ref: k for k, ref in enumerate(order)}
    missing = [ref for ref in wanted if ref not in position]
    if missing:
        raise FormatError(f"seed share holds no {missing[0]}")
    rows = share.reshape(-1, LIMBS_PER_SEED)
    return rows[[position[ref] for ref in wanted]].reshape(-1)


def reconstruct_seeds(shares: Mapping[int, NDArray[np.uint64]], *, threshold: int,
                      key: bytes) -> tuple[list[bytes], Reconstruction]:
    """The seeds from members' shares (each the concatenation from :func:`select_seed_shares`),
    checked: wrong members are named in the Reconstruction as for the aggregate."""
    reconstruction = reconstruct_checked(shares, threshold=threshold, key=key)
    return _limbs_to_seeds(reconstruction.secret), reconstruction


def seeds_to_reveal(included: Iterable[int], clients: Iterable[int]) -> list[SeedRef]:
    """The seeds honest members reveal once the round's set is fixed, in a canonical order.

    For each included client its self seed, and its pairs with every client outside the set.
    Never a pair between two included clients, and never the self seed of a client outside
    the set: those are what keep one client's update hidden (docs/protocol.md).
    """
    inside = sorted(set(included))
    everyone = set(clients)
    if not set(inside) <= everyone:
        raise ConfigError(f"included clients {sorted(set(inside) - everyone)} are not in the client set")
    outside = sorted(everyone - set(inside))
    refs: list[SeedRef] = []
    for client in inside:
        refs.append(SeedRef(client))
        refs.extend(SeedRef(client, peer) for peer in outside)
    return refs


def unmask_sum(masked_sum: NDArray[np.uint64], *, bits: int,
               seeds: Mapping[SeedRef, bytes]) -> NDArray[np.uint64]:
    """``sum_{i in S} x_i`` in ring words from ``sum_{i in S} y_i`` and the revealed seeds."""
    bits = check_modulus_bits(bits)
    total = np.array(masked_sum, dtype=np.uint64, copy=True)
    scratch = np.empty_like(total)
    for ref in sorted(seeds, key=SeedRef.sort_key):
        expand_mask(seeds[ref], total.size, bits, out=scratch)
        sign = 1 if ref.is_self else pair_sign(ref.client, ref.peer)  # type: ignore[arg-type]
        (np.subtract if sign > 0 else np.add)(total, scratch, out=total)
    np.bitwise_and(total, _word_mask(bits), out=total)
    return total


# -- the masked vector on the wire --------------------------------------------------------

_RING_MAGIC = b"FTMV"
_RING_VERSION = 1
_RING_HEADER_BYTES = 16  # magic 4, version 1, bytes per value 1, reserved 2, length 8


def ring_vector_bytes(length: int, bits: int) -> int:
    """Size of an encoded masked vector: 16-byte header + b / 8 bytes per value."""
    return _RING_HEADER_BYTES + length * check_modulus_bits(bits) // 8


def encode_ring_vector(values: NDArray[np.uint64], bits: int) -> bytes:
    """Store ``values`` (b-bit words) in ``b / 8`` little-endian bytes each, after a header."""
    width = check_modulus_bits(bits) // 8
    if not isinstance(values, np.ndarray) or values.dtype != np.uint64 or values.ndim != 1 or values.size == 0:
        raise FormatError("a masked vector must be a non-empty 1-D numpy uint64 array")
    if bits < 64 and int(values.max()) >> bits:
        raise FormatError(f"a masked vector holds a value of more than {bits} bits")
    header = _RING_MAGIC + bytes([_RING_VERSION, width, 0, 0]) + values.size.to_bytes(8, "little")
    body = np.ascontiguousarray(values, dtype="<u8").view(np.uint8).reshape(-1, 8)[:, :width]
    return header + body.tobytes()


def decode_ring_vector(blob: bytes, *, bits: int, expected_length: int) -> NDArray[np.uint64]:
    """Parse a masked vector of exactly ``expected_length`` b-bit values; FormatError otherwise."""
    width = check_modulus_bits(bits) // 8
    data = memoryview(blob).cast("B")
    if data.nbytes < _RING_HEADER_BYTES or bytes(data[:4]) != _RING_MAGIC:
        raise FormatError("not a masked vector (bad magic or truncated header)")
    if data[4] != _RING_VERSION:
        raise FormatError(f"masked vector version {data[4]} is not supported (expected {_RING_VERSION})")
    if data[5] != width or bytes(data[6:8]) != b"\0\0":
        raise FormatError(f"masked vector has {data[5]} bytes per value, the deployment says {width}")
    length = int.from_bytes(data[8:16], "little")
    if length != expected_length:
        raise FormatError(f"masked vector has length {length}, expected {expected_length}")
    if data.nbytes != _RING_HEADER_BYTES + length * width:
        raise FormatError(f"masked vector body is {data.nbytes - _RING_HEADER_BYTES} bytes, expected {length * width}")
    return _widen(data, width, length)


def _widen(data: memoryview, width: int, length: int) -> NDArray[np.uint64]:
    """The body's little-endian values of ``width`` bytes as uint64, built from the widest pieces
    each width splits into (a member decodes every client's vector: this is its hot loop)."""
    if width in (4, 8):  # whole machine words: one widening copy
        return np.frombuffer(data, dtype=f"<u{width}", offset=_RING_HEADER_BYTES).astype(np.uint64)
    piece = 2 if width == 6 else 1  # 48 bits: three 16-bit pieces; 40 and 56 bits: bytes
    parts = np.frombuffer(data, dtype=f"<u{piece}", offset=_RING_HEADER_BYTES).reshape(length, width // piece)
    words = parts[:, -1].astype(np.uint64)
    for k in range(parts.shape[1] - 2, -1, -1):
        words <<= np.uint64(8 * piece)
        words |= parts[:, k]
    return words
