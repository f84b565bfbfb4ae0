"""The wrap-around check: a client's update is small in the integers, not only modulo p (issue 13).

The committee's norm check (:mod:`fedtss.validation`) bounds ||q||^2 *mod p*. A client that crafts
its update so that the squares wrap around p passes it: q_j = (p + 1) / 2 in 4k coordinates has
squared norm k mod p, and the members, weighting it by its sample count w, add w / 2 mod p (about
p / 2) to those coordinates of the round's sum. Closing that needs a statement about the update
as integers. This module is the arithmetic of PINE's wrap-around check (Rothblum, Omri, Chen and
Talwar, 2023; ``../shared/research/secure-aggregation.md``) on Shamir shares, with the client's
one message made non-interactive by Fiat-Shamir:

1. **Projections the client cannot choose.** Once the client has sealed its shares of q, their n
   CIDs fix ``seed`` (:func:`projection_seed`). One AES-CTR word W_j per update coordinate
   (:func:`projection_words`) gives 63 ternary vectors c_k[j] = bit k of W_j - bit 0 of W_j
   (k = 1..63): each coordinate is -1, 0 or +1 with probabilities 1/4, 1/2, 1/4, and given bit 0
   the 63 projections are independent.
2. **The client proves each projection small.** It computes y_k = <c_k, q> in the integers
   (:func:`client_projections`), z_k = y_k + B, and shares the l bits of every z_k in a second
   vector (:func:`proof_vector`: 63 l bits, the metrics' range bits below, then t - 1 masks of the
   bit check). B is ten times the largest norm an honest update has (:class:`WrapBounds`), so an
   honest |y_k| exceeds it with probability below 2 e^-50 (Hoeffding: the c_k[j] are independent,
   in [-1, 1], of mean 0).
3. **The committee checks the relation** sum_i 2^i b_ki - B - <c_k, q> = 0 for every k on its
   shares, all 63 at once through the powers of a round challenge gamma no client knew
   (:func:`relation_value`): member j's value lies on a polynomial of degree < t whose value at
   0 is sum_k gamma^k rel_k, zero for an honest client and, if any relation fails, zero with
   probability at most (64 + 2 x metrics) / p (the metrics' relations, below, join them). Its
   63 x d multiplications become eight table lookups per coordinate (:func:`relation_tables`; the
   tables hold the sums of gamma^k over each byte's bits).
4. **... and that the bits are bits**: sum_i r_i (b_i^2 - b_i) = 0 with r drawn from a second seed
   over the CIDs of the sealed bits (:func:`bits_seed`, :func:`bit_check_weights`), so the client
   fixed its bits before knowing r. Member j's value (:func:`bit_check_value`) lies on a
   polynomial of degree < 2t - 1 whose value at 0 is that sum, plus the mask term sum_i j^i U_i(j),
   zero at 0, which hides the polynomial's other coefficients as in the norm check. The client
   claims every member's value (:func:`claim_bit_check_values`), like its norm claims; the
   claims must decode to 0 at 0 (:func:`read_bit_claims`).

**Why a crafted wrap fails** (our analysis after PINE's; W = 2^l is the window's width). Centre
the update: q~ with coordinates in (-p/2, p/2). (a) If some |q~_j| > W, flipping c_k[j] between its
two values (given bit 0) moves <c_k, q> by q~_j mod p, off the window [-B, W - B] whichever way:
at most half of the c_k put the projection in range, so all 63 pass with probability at most
2^-63 per sealing, however often the client re-seals (each sealing draws new projections). (b) If
every |q~_j| <= W but ||q~||^2 >= p, the projections do not wrap (d W < p / 4), so a projection in
range puts the integer sum S = sum_j q~_j c_k[j] in a window of width W. Given bit 0, the terms are
independent, each taking two values q~_j apart with probability 1/2 (variance q~_j^2 / 4, third
absolute central moment |q~_j|^3 / 8 <= W q~_j^2 / 8), and S has variance s^2 = ||q~||^2 / 4 >= p / 4.
Berry-Esseen for independent, non-identical terms (constant 0.56, Shevtsova 2010) puts S's
distribution within 0.56 (W s^2 / 2) / s^3 = 0.28 W / s of a normal one everywhere, so S lands in
the window with probability at most W / (s sqrt(2 pi)) + 2 x 0.28 W / s < 0.96 W / s < 0.24, as
:class:`WrapBounds` requires (8 W)^2 < p. The 63 projections use different bits, independent given
bit 0: all pass with probability below 0.24^63 < 2^-129. So whatever passes has ||q~||^2 < p: its
squared norm mod p *is* its squared norm, and the norm check holds in the integers.

**The metrics.** A client's shared evaluation (its metrics, after its update and count) is not in
the norm, so each metric m is proved in [-C, C] exactly, C the clip bound quantized: the proof also
holds the bits of a = m + C and of b = C - m (l' bits each, 2^l' > 2C), and the relations
sum 2^i a_i - C - m = 0 and sum 2^i b_i - C + m = 0 join the others (powers 64 + 2e and 65 + 2e of
gamma for metric e). Then a + b = 2C mod p with 0 <= a, b < 2^l' and 2^(l' + 1) < p, so a + b = 2C
in the integers, and m = a - C with 0 <= a <= 2C.

**What it reveals.** Nothing beyond the norm check: the bits (the metrics' too) are shared (t - 1
members learn nothing of them), the relation value is a share of 0 (its polynomial is fixed by any
t - 1 members' own values and its value 0 at 0), and the bit check's claims are a masked share of 0.

This module is the pure arithmetic. The agents run it wherever the committee checks norms
(docs/protocol.md, step 6c): :func:`agents.client.prove_update` on the client,
:class:`agents.client_checks.WrapCheck` at each member, which folds the relation value into the
count share it posts and R times the bit-check value into its norm value, so nothing more goes
on chain. The bit check's weights come from the proof shares' CIDs, so a client may re-seal its
proof alone and draw new weights: each try passes non-bits with probability 1 / p (2^-61).
"""

from __future__ import annotations

import hashlib
import math

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from fedtss import _kernels
from fedtss import field as gf
from fedtss.errors import ConfigError, FormatError
from fedtss.field import MODULUS
from fedtss.quantize import QuantizationConfig
from fedtss.randomness import derive_subkey, keystream_words, uniform_field_elements

__all__ = [
    "PROJECTIONS",
    "RelationTables",
    "WrapBounds",
    "bit_check_value",
    "claims_factor",
    "combine_claims",
    "proof_length",
    "bit_check_weights",
    "bits_seed",
    "claim_bit_check_values",
    "client_projections",
    "metric_range_bits",
    "projection_bits",
    "projection_seed",
    "projection_words",
    "proof_vector",
    "read_bit_claims",
    "relation_gamma",
    "relation_tables",
    "relation_value",
    "warm_up",
]

#: How many projections a client proves small: one 64-bit word per coordinate, bit 0 shared.
PROJECTIONS = 63
#: How many times the largest honest norm the bound B is (Hoeffding: 2 e^-(10^2 / 2) per projection).
BOUND_FACTOR = 10
#: (MARGIN * 2^l)^2 must stay below p: a vector whose norm wraps then passes a projection with
#: probability below 1 / MARGIN (the module docstring, case b).
MARGIN = 8

PROJECTION_SEED_LABEL = b"fedtss/wraparound/projection-seed/v1"
PROJECTION_WORDS_LABEL = b"fedtss/wraparound/projection-words/v1"
BITS_SEED_LABEL = b"fedtss/wraparound/bits-seed/v1"
BIT_WEIGHTS_LABEL = b"fedtss/wraparound/bit-weights/v1"
GAMMA_LABEL = b"fedtss/wraparound/gamma/v1"
FACTOR_LABEL = b"fedtss/wraparound/claims-factor/v1"

_HALF = MODULUS // 2


@dataclass(frozen=True)
class WrapBounds:
    """The check's sizes for ``update`` coordinates: each projection is shifted by ``bound`` (B)
    and proved to lie in [0, 2^``bits``). With ``metrics`` (the client's shared evaluation, after
    its update and count), each metric m is proved in [-C, C], C = ``metric_bound`` (the clip
    bound, quantized: what an honest client's clipped metric can reach), by the
    ``metric_bits`` bits of m + C and of C - m."""

    update: int
    bound: int
    bits: int
    metrics: int = 0
    metric_bound: int = 0
    metric_bits: int = 0

    def __post_init__(self) -> None:
        # m + C and C - m fit their bits, and two of them add up below p: a + b = 2C cannot wrap
        if self.metrics and not (2 * self.metric_bound < 1 << self.metric_bits and 2 << self.metric_bits < MODULUS):
            raise ConfigError(f"metric ranges of +-{self.metric_bound} in {self.metric_bits} bits cannot be proved")

    @classmethod
    def of(cls, quantization: QuantizationConfig, *, update: int, metrics: int = 0) -> WrapBounds:
        """The bounds for one sample's quantized update (the members weight updates by their
        counts) and ``metrics`` metric values, or ConfigError when the projections' range would
        leave no margin below p."""
        if not isinstance(update, int) or update < 1:
            raise ConfigError(f"the wrap-around check needs at least one update coordinate, got {update!r}")
        if not isinstance(metrics, int) or metrics < 0:
            raise ConfigError(f"the wrap-around check takes a number of metrics >= 0, got {metrics!r}")
        largest_norm = (Fraction(quantization.clip_norm) * 2**quantization.fractional_bits * (1 + Fraction(1, 2**51))
                        + Fraction(math.isqrt(update) + 1, 2))
        bound = BOUND_FACTOR * math.ceil(largest_norm)
        bits = (2 * bound).bit_length()
        if (MARGIN << bits) ** 2 >= MODULUS:
            raise ConfigError(f"clip_norm {quantization.clip_norm} at {quantization.fractional_bits} fractional bits "
                              f"needs {bits}-bit projections, too wide to tell a wrap below p: lower clip_norm or "
                              "fractional_bits")
        if update << (bits + 2) >= MODULUS:  # d W < p / 4: projections of coordinates below W do not wrap
            raise ConfigError(f"{update} coordinates are too many for the wrap-around check's projections")
        # quantize_metrics clips to +-clip_norm, then rounds v 2^f (exact in float64) to nearest:
        # monotone, so no honest metric is beyond the rounded bound
        metric_bound = int(np.rint(float(quantization.clip_norm) * float(2**quantization.fractional_bits)))
        metric_bits = max(1, (2 * metric_bound).bit_length())  # m + C and C - m both < 2^metric_bits
        return cls(update, bound, bits, metrics, metric_bound, metric_bits if metrics else 0)

    @property
    def projection_bit_count(self) -> int:
        """Coordinates of the projections' bits (the proof's first)."""
        return PROJECTIONS * self.bits

    @property
    def bit_count(self) -> int:
        """Coordinates of the proof's bits (before its masks): the projections', then each metric's two ranges."""
        return self.projection_bit_count + 2 * self.metrics * self.metric_bits


def proof_length(bounds: WrapBounds, threshold: int) -> int:
    """Coordinates of a client's proof vector: the bits, then the bit check's t - 1 masks."""
    return bounds.bit_count + threshold - 1


def projection_seed(*, chain_id: int, contract: str, round_: int, client: str, share_cids: Sequence[str]) -> bytes:
    """The 32-byte seed of a client's projections: fixed by the CIDs of its n sealed shares of q,
    so the client learns its projections only once its update is sealed."""
    digest = hashlib.sha256(PROJECTION_SEED_LABEL)
    digest.update(chain_id.to_bytes(32, "big") + _address(contract) + round_.to_bytes(32, "big") + _address(client))
    _update_with_strings(digest, share_cids)
    return digest.digest()


def bits_seed(seed: bytes, bits_cids: Sequence[str]) -> bytes:
    """The seed of the bit check's weights: ``seed`` and the CIDs of the n sealed proof shares, so
    the client fixed its bits before it could know the weights."""
    digest = hashlib.sha256(BITS_SEED_LABEL + _seed(seed))
    _update_with_strings(digest, bits_cids)
    return digest.digest()


def projection_words(seed: bytes, update: int) -> NDArray[np.uint64]:
    """One 64-bit word per update coordinate (AES-CTR keyed by ``seed``, :mod:`fedtss.randomness`)."""
    return keystream_words(derive_subkey(_seed(seed), PROJECTION_WORDS_LABEL), update)


def client_projections(update: NDArray[np.uint64], words: NDArray[np.uint64]) -> NDArray[np.int64]:
    """The 63 projections <c_k, q> of the client's quantized update (field elements), reduced mod p
    and read centred in (-p/2, p/2): for an honest update, its projections in the integers; for a
    wrap, what its client could claim at best (the members check the relation mod p)."""
    update = np.ascontiguousarray(update, dtype=np.uint64)
    if update.shape != words.shape:
        raise ConfigError(f"{update.size} coordinates, {words.size} projection words")
    if update.size >= 2**32:
        raise ConfigError(f"{update.size} coordinates are too many for 64-bit partial projections")
    if np.any(update >= MODULUS):
        raise ConfigError("the update holds values outside the field")
    centred = np.where(update > _HALF, update.astype(np.int64) - np.int64(MODULUS), update.astype(np.int64))
    words = np.ascontiguousarray(words, dtype=np.uint64)
    largest = int(np.max(np.abs(centred))) if centred.size else 0
    if largest * centred.size < 2**62:  # an honest update: no partial sum can overflow 64 bits
        exact = _kernels.ternary_projections(words, centred).astype(object)
    else:  # split each |value| < 2^60 into 2^31 * high + low, each pass exact in 64 bits
        low = centred & np.int64(2**31 - 1)
        high = centred >> np.int64(31)
        exact = (_kernels.ternary_projections(words, high).astype(object) * 2**31
                 + _kernels.ternary_projections(words, low).astype(object))
    reduced = [int(value) % MODULUS for value in exact]
    return np.array([value - MODULUS if value > _HALF else value for value in reduced], dtype=np.int64)


def projection_bits(projections: NDArray[np.int64], bounds: WrapBounds) -> NDArray[np.uint64]:
    """The bits of z_k = y_k + B, ``bounds.bits`` per projection, least significant first.

    Raises ConfigError when a z_k is outside [0, 2^l): the update's norm is beyond its clip bound
    (an honest, clipped update gets there with probability below 2 e^-50 per projection)."""
    if len(projections) != PROJECTIONS:
        raise ConfigError(f"{len(projections)} projections, expected {PROJECTIONS}")
    shifted = np.asarray(projections, dtype=np.int64) + bounds.bound
    outside = np.flatnonzero((shifted < 0) | (shifted >= 1 << bounds.bits))
    if outside.size:
        k = int(outside[0])
        raise ConfigError(f"projection {k + 1} of the update is {int(projections[k])}, beyond +-{bounds.bound}: "
                          "the update's norm exceeds its clip bound")
    powers = np.arange(bounds.bits, dtype=np.int64)
    return ((shifted[:, None] >> powers[None, :]) & 1).astype(np.uint64).reshape(-1)


def metric_range_bits(metrics: NDArray[np.uint64], bounds: WrapBounds) -> NDArray[np.uint64]:
    """The bits of m + C, then of C - m, ``bounds.metric_bits`` each, least significant first, for
    every metric m (a field element, read centred); ConfigError for a metric beyond +-C (not clipped)."""
    values = np.asarray(metrics, dtype=np.uint64)
    if values.shape != (bounds.metrics,):
        raise ConfigError(f"{values.size} metric values for a check of {bounds.metrics}")
    centred = np.where(values > _HALF, values.astype(np.int64) - np.int64(MODULUS), values.astype(np.int64))
    outside = np.flatnonzero(np.abs(centred) > bounds.metric_bound)
    if outside.size:
        e = int(outside[0])
        raise ConfigError(f"metric {e + 1} is {int(centred[e])}, beyond +-{bounds.metric_bound}: metrics must be "
                          "clipped to +-clip_norm")
    ranges = np.stack([centred + bounds.metric_bound, bounds.metric_bound - centred], axis=1).reshape(-1)
    powers = np.arange(bounds.metric_bits, dtype=np.int64)
    return ((ranges[:, None] >> powers[None, :]) & 1).astype(np.uint64).reshape(-1)


def proof_vector(bits: NDArray[np.uint64], masks: Sequence[int]) -> NDArray[np.uint64]:
    """The client's second shared vector: the proof's bits (the projections', then the metrics'
    ranges), then the bit check's t - 1 masks (uniform in [0, p), fresh per round)."""
    if any(not 0 <= mask < MODULUS for mask in masks):
        raise ConfigError("the bit check's masks must be field elements in [0, p)")
    return np.concatenate([np.asarray(bits, dtype=np.uint64), np.array(list(masks), dtype=np.uint64)])


def relation_gamma(challenge: bytes) -> int:
    """gamma, from the round's challenge (:func:`fedtss.validation.round_challenge`): non-zero."""
    gamma = int(uniform_field_elements(_seed(challenge), 1, label=GAMMA_LABEL)[0])
    return gamma or 1


@dataclass(frozen=True)
class RelationTables:
    """What every member precomputes once per round from gamma: ``tables`` (8 x 256: entry
    [b, v] is sum of gamma^k over the bits k of byte value v at byte b, bit 0 counting -G),
    ``bit_weights`` (gamma^k 2^i for the proof's bits), G = sum_k gamma^k, and for the metrics'
    ranges (relations 64 + 2e and 65 + 2e for metric e) each metric's weight
    gamma^(65+2e) - gamma^(64+2e) and the constant C sum_e (gamma^(64+2e) + gamma^(65+2e))."""

    tables: NDArray[np.uint64]
    bit_weights: NDArray[np.uint64]
    total: int
    bounds: WrapBounds
    metric_weights: tuple[int, ...] = ()
    metric_constant: int = 0


def relation_tables(gamma: int, bounds: WrapBounds) -> RelationTables:
    """The lookup tables of :func:`relation_value` for this round's ``gamma``."""
    if not 0 < gamma < MODULUS:
        raise ConfigError("gamma must be a non-zero field element")
    powers = [pow(gamma, k, MODULUS) for k in range(PROJECTIONS + 1 + 2 * bounds.metrics)]  # powers[k] = gamma^k
    total = sum(powers[1 : PROJECTIONS + 1]) % MODULUS
    per_bit = [MODULUS - total] + powers[1 : PROJECTIONS + 1]  # bit 0 of a word counts -G, bit k counts gamma^k
    tables = np.zeros((8, 256), dtype=np.uint64)
    for byte in range(8):
        for value in range(256):
            tables[byte, value] = sum(per_bit[8 * byte + i] for i in range(8) if value >> i & 1) % MODULUS
    # metric e's relations: sum 2^i a_i - C - m = 0 (gamma^(64+2e)), sum 2^i b_i - C + m = 0 (gamma^(65+2e))
    metric_powers = powers[PROJECTIONS + 1 :]
    bit_weights = np.array([powers[k] * (1 << i) % MODULUS for k in range(1, PROJECTIONS + 1)
                            for i in range(bounds.bits)]
                           + [power * (1 << i) % MODULUS for power in metric_powers
                              for i in range(bounds.metric_bits)], dtype=np.uint64)
    metric_weights = tuple((metric_powers[2 * e + 1] - metric_powers[2 * e]) % MODULUS for e in range(bounds.metrics))
    metric_constant = bounds.metric_bound * sum(metric_powers) % MODULUS
    return RelationTables(tables, bit_weights, total, bounds, metric_weights, metric_constant)


def relation_value(update_share: NDArray[np.uint64], proof_share: NDArray[np.uint64], words: NDArray[np.uint64],
                   tables: RelationTables, metrics_share: NDArray[np.uint64] | None = None) -> int:
    """Member j's share of sum_k gamma^k (sum_i 2^i b_ki - B - <c_k, q>), plus the metrics' range
    relations: zero at 0 for an honest client. ``update_share`` is its share's update coordinates,
    ``metrics_share`` its metric coordinates (where the check has metrics), ``proof_share`` its
    share of the proof vector. FormatError for a share with values outside the field or of the
    wrong size."""
    bounds = tables.bounds
    update_share = np.ascontiguousarray(update_share, dtype=np.uint64)
    if update_share.size != bounds.update or words.size != bounds.update:
        raise FormatError(f"an update share of {update_share.size} coordinates for a check of {bounds.update}")
    bits_share = np.ascontiguousarray(proof_share[: bounds.bit_count], dtype=np.uint64)
    if bits_share.size != bounds.bit_count:
        raise FormatError(f"a proof share of {proof_share.size} coordinates holds no {bounds.bit_count} bits")
    metric_values = [] if metrics_share is None else [int(v) for v in np.asarray(metrics_share, dtype=np.uint64)]
    if len(metric_values) != bounds.metrics:
        raise FormatError(f"{len(metric_values)} metric coordinates for a check of {bounds.metrics}")
    projected, outside = _kernels.table_projection(np.ascontiguousarray(words, dtype=np.uint64), tables.tables,
                                                   update_share)
    bits, bits_outside = _kernels.project(tables.bit_weights, bits_share)
    if outside or bits_outside or any(value >= MODULUS for value in metric_values):
        raise FormatError("a share holds values outside the field")
    metrics_term = sum(weight * value for weight, value in zip(tables.metric_weights, metric_values))
    return (int(bits) - bounds.bound * tables.total - int(projected) - tables.metric_constant + metrics_term) % MODULUS


def bit_check_weights(seed: bytes, bounds: WrapBounds) -> NDArray[np.uint64]:
    """r: one field element per proof bit, from :func:`bits_seed`."""
    return uniform_field_elements(_seed(seed), bounds.bit_count, label=BIT_WEIGHTS_LABEL)


def bit_check_value(proof_share: NDArray[np.uint64], weights: NDArray[np.uint64], member: int, *,
                    threshold: int) -> int:
    """Member ``member``'s value sum_i r_i (b_i^2 - b_i) + sum_(i=1..t-1) member^i U_i(member) on its
    share of the proof (bits, then the t - 1 masks U)."""
    share = np.ascontiguousarray(proof_share, dtype=np.uint64)
    if share.size != weights.size + threshold - 1:
        raise FormatError(f"a proof share of {share.size} coordinates, expected {weights.size + threshold - 1}")
    if np.any(share >= MODULUS):
        raise FormatError("a share holds values outside the field")
    bits = share[: weights.size]
    value, _ = _kernels.project(weights, gf.mulmod(bits, gf.sub(bits, np.ones_like(bits))))  # r . (b (b - 1))
    total = int(value)
    for i in range(1, threshold):
        total += pow(member, i, MODULUS) * int(share[weights.size + i - 1])
    return total % MODULUS


def claim_bit_check_values(proof_shares: NDArray[np.uint64], weights: NDArray[np.uint64], *,
                           threshold: int) -> tuple[int, ...]:
    """What the client claims: every member's :func:`bit_check_value` (row j - 1 is member j's share)."""
    return tuple(bit_check_value(share, weights, member, threshold=threshold)
                 for member, share in enumerate(proof_shares, start=1))


def read_bit_claims(claims: Sequence[int], threshold: int) -> bool:
    """Whether a client's bit-check claims are n field elements on one polynomial of degree
    < 2t - 1 that is zero at 0 (its bits are bits, if the members' values match the claims)."""
    from fedtss.validation import read_norm_claims  # the same decoding as the norm claims

    return read_norm_claims(claims, threshold) == 0


def warm_up(*, member: bool) -> None:
    """Compile the check's kernels now (about 7 s on a machine that never ran them; numba then
    caches them on disk, and loading takes ~0.4 s): an agent calls this at start, not inside its
    first round, where the compile would eat into the checks' window. A client needs only its
    projections' kernel; a ``member`` the relation's too."""
    words = np.arange(8, dtype=np.uint64)
    client_projections(np.arange(8, dtype=np.uint64), words)
    if member:  # on read-only arrays, as the shares a member decodes are (numba compiles those apart)
        bounds = WrapBounds(update=8, bound=1, bits=2)
        share, proof = np.zeros(8, dtype=np.uint64), np.zeros(proof_length(bounds, 2), dtype=np.uint64)
        share.setflags(write=False)
        proof.setflags(write=False)
        relation_value(share, proof, words, relation_tables(2, bounds))
        bit_check_value(proof, np.ones(bounds.bit_count, dtype=np.uint64), 1, threshold=2)
        _kernels.project(np.ones(proof.size, dtype=np.uint64), proof)  # the proof's consistency projection


def claims_factor(challenge: bytes) -> int:
    """R, from the round's challenge: a member posts its norm value plus R times its bit-check
    value as one number, and each client's claims combine the same way (:func:`combine_claims`).
    No client knew R, so a member whose pair differs from the claimed pair posts a value other than
    the combined claim but with probability 1 / p."""
    return int(uniform_field_elements(_seed(challenge), 1, label=FACTOR_LABEL)[0])


def combine_claims(norm_claims: Sequence[int], bit_claims: Sequence[int], factor: int) -> tuple[int, ...]:
    """Each member's claimed norm value plus ``factor`` times its claimed bit-check value, mod p."""
    if len(norm_claims) != len(bit_claims):
        raise FormatError(f"{len(norm_claims)} norm claims and {len(bit_claims)} bit claims")
    return tuple((norm + factor * bit) % MODULUS for norm, bit in zip(norm_claims, bit_claims))


def _seed(seed: bytes) -> bytes:
    if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
        raise ConfigError("a seed or challenge is 32 bytes")
    return bytes(seed)


def _address(address: str) -> bytes:
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise ConfigError(f"{address!r} is not a 20-byte address")
    return raw


def _update_with_strings(digest: hashlib._Hash, values: Sequence[str]) -> None:
    digest.update(len(values).to_bytes(4, "big"))
    for value in values:
        raw = value.encode()
        digest.update(len(raw).to_bytes(4, "big") + raw)
