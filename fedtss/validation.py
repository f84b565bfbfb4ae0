"""Share consistency per client, checked by the committee without revealing a share (issue 13's core).

A client deals its vector s_i (update, sample count, metrics, then t - 1 norm masks and one *pad*) as Shamir shares
f_i(1..n) of one polynomial f_i of degree < t. An honest member cannot tell, from its own share,
whether the others lie on the same polynomial; a client that corrupts one member's share gets
that honest member named wrong at reconstruction. This module lets the committee check it per
client, before anything is summed:

1. **A public challenge** c, fixed by the chain after collection closes (a block hash no client
   knew when it sealed its shares), expands to a projection vector rho = PRG(c) over GF(p)
   (:func:`challenge_vector`), every coordinate non-zero.
2. **Each member j posts, per client i, one field element** pi_ij = <rho, f_i(j)> mod p
   (:func:`project_share`). Sharing is linear, so pi_ij = g_i(j) with g_i = <rho, f_i>, a
   polynomial of degree < t.
3. **Anyone decodes** the n projections of client i (Reed-Solomon, :func:`check_client`): no
   error means the shares are consistent (a wrong one slips through with probability 1/p per
   check); errors at up to floor((m - t) / 2) members name those members' projections as
   disagreeing; more than that, and client i's shares are inconsistent.

**What it reveals.** Given the t - 1 shares of a coalition, g_i is fixed by its values at the
coalition's points (which the coalition computes itself) and one more value, g_i(0) =
<rho, s_i>. So the posted projections add exactly one number to what t - 1 members know: a
linear function of s_i. The pad makes that number useless: it is the last coordinate of s_i,
uniform in GF(p) and fresh per round (:func:`pad_vector`), and rho's last coordinate is non-zero,
so <rho, s_i> is uniform whatever the update. An outsider learns the same number and less. The
pad is summed like every coordinate; members zero it (with the norm masks) in the aggregate
shares they post. Without the pad, <rho, s_i> would be a public linear function of the update
(tests/fedtss/test_validation.py has both, the second as the control that must fail).

**Who is wrong** when client i's projections decode with member j off the polynomial: either i
sealed j a share off its polynomial, or j posted a false projection. Projections alone cannot
tell, so j may *complain*: it publishes the AES key of i's sealed share for it
(:func:`fedtss.sealing.reveal_share_key`), anyone opens that one blob and projects it (the
agent's I/O), and :func:`round_verdict` decides: the revealed share projects to what j posted,
so i is excluded by name; no complaint, or one that does not reproduce j's projection, names j
and keeps i. A complaint makes j's share of i public, so an honest member complains only when
at least 2t - 1 other checks agree on the decoded polynomial (:func:`is_safe_to_complain`): then
at least t of them are honest and the polynomial is i's own, so i did cheat. With fewer (t above
n / 2, or members down) t - 1 colluders could have framed j, and its share would be their t-th:
the disagreement is *disputed*, nobody is named and i is kept.

**A share its member cannot use** (it does not open, opens to bytes that are no share, or has a
header no honest client writes): the member posts "not opened" for it and then shows why in its
complaints (:mod:`fedtss.decryption_proof`); the agent reads that evidence as :data:`UNUSABLE`, and
:func:`round_verdict` excludes the client (``UnusableShare``) at any n and t. A member that posts
"not opened" and shows a usable share or evidence of nothing is named; one that shows nothing
(its share never arrived) leaves the client to the others' checks.

**What holds, and when.** Decoding corrects up to floor((m - t) / 2) errors among the m
projections of a client: as long as the lying members plus the corrupted shares of one client
stay within that, every honest member reaches the same verdict from the same posted checks and
complaints. With exactly t checks nothing is checked but the sample count. Beyond the bound,
colluders can make an honest client's checks undecodable (it is excluded) but never make an
honest member show its share.

**The norm check.** A client's vector ends with t - 1 *norm masks* before the pad (uniform,
fresh per round; :func:`pad_vector`), so member j holds shares U_1(j)..U_(t-1)(j) of them.
It posts, per client, a third field element (:func:`norm_share`):

    nu_j = sum_k f_k(j)^2 + sum_(i=1..t-1) j^i U_i(j)    (k over the update's coordinates)

The first sum is a polynomial in j of degree 2(t - 1) whose value at 0 is ||q||^2, the squared
norm of the client's quantized update (not its metrics: next to the clip bound, that would give
away the sum of its squared metrics); the mask term M(j) is one too, with M(0) = 0
whatever the client dealt. So the n values lie on one polynomial of degree < 2t - 1 whose value
at 0 is the squared norm, which is compared with what clipping allows (:func:`squared_norm_limit`).
The agents share updates unweighted with these checks on, the members weighting each by the
public sample count in its manifest (:mod:`fedtss.quantize`, "Weighted by the members"), so the
limit is one sample's, and the shared count coordinate must be exactly 1 (their
:func:`round_verdict` is called with ``max_samples=1`` and that limit); the verdict itself also
takes a limit that grows with a shared count, for vectors weighted by their clients. The masks are coordinates of the shared vector, so the
projection check has already verified them.

*What it reveals*: ||q||^2 of each client (its update's size: clipped updates are near the clip
bound anyway), and nothing else, to everyone and to t - 1 colluding members. For the coalition
C, write f_k = q_k L + K_k with L(0) = 1, L = 0 on C and K_k known to C, and likewise U_i =
u_i L + K'_i: the posted polynomial is, up to terms C computes, L(j) (||q||^2 L(j) + sum_i
(2 <q, kappa_i> + u_i) j^i) with kappa_i the coefficient vectors of K. The coalition learns that
bracket (degree t - 1), whose coefficients of j^1..j^(t-1) are hidden by the uniform u_i: t - 1
masks for t - 1 linear functions of q. So the u_i must stay secret: members zero the tail
coordinates in the aggregate shares they post (``agents.aggregator``), else the public sum of the
masks over the round's clients would turn the coalition's brackets into linear functions of the
honest clients' own updates. (tests/fedtss/test_validation.py finds, for a second
update of the same norm, masks that give every member the same posted value; with the masks
zero it cannot, the control.)

*Who decides, and how* (the norm claims): a member's value alone says nothing, and t - 1
colluders can move theirs so that all posted values still lie on one polynomial; decoding the
members' values decides a norm only when at least 3t - 2 of them agree. So the client states the
values itself: its manifest claims c_j = nu_j for every member j (:func:`claim_norm_values`,
``norm_claims`` in :mod:`fedtss.formats`), public, and anyone checks (:func:`read_norm_claims`)
that the c_j lie on one polynomial C of degree < 2t - 1 whose value at 0, the claimed ||q||^2, is
within the limit; else the client is excluded (``InvalidNormClaims``, ``NormOutOfRange``) without
any share being shown. Each member posts its own nu_j as today, and one whose nu_j is not c_j
must complain (the key reveal above): anyone recomputes nu_j from the revealed share, and if it
is not c_j, the client's own share contradicts its own claim (``NormClaimMismatch``: excluded);
if it is, or no complaint comes, the member is named. A member that complains where its value
matched the claim is named too. Complaining about a mismatch is always safe: the claim and the
share both come from the client, so an honest client never gets one.
*Why that is enough*: the real values N(j) lie on a polynomial of degree < 2t - 1 with N(0) =
||q||^2. If C is not N, they agree on at most 2t - 2 points, so with at least 2t - 1 members
whose shares the projection check found on the polynomial posting values equal to their claims
(:func:`is_norm_checked`), one of them posted a false value or C = N. *When that holds*: the
verdict counts only members on the decoded polynomial, so a client can dodge the check by
keeping members off that count, and is then kept with its norm unchecked and named by every
member (``norm_unchecked``): by sealing n - 2t + 2 members shares they cannot open (any n), or
by corrupting that many members' shares in a coordinate of its choosing while steering its
claims through the other 2t - 2 values, which leaves them disputed (fewer than 2t - 1 others
agree) as long as decoding still corrects them: n <= 3t - 4, the demo's 5 / 3 included. Otherwise
a client acting alone is caught for any n >= 2t - 1 (:func:`committee_decides_norms`), and a
client colluding with c members who stay silent when n - c >= 2t - 1 (c = t - 1: n >= 3t - 2).
*From n >= 3t - 2* (:func:`committee_excludes_unchecked_norms`) a client whose norm could not be
checked, for any of these reasons or a limit beyond the field, is excluded (``NormUnchecked``):
there t - 1 colluders still leave 2t - 1 honest members to check every honest client, so the rule
costs honest clients nothing while the honest members are up; each member down counts against
that like a silent colluder.
*What it reveals* is unchanged: the claims are the values members posted anyway, so ||q||^2 is
public for every client and nothing else is. Below 2t - 1 members nothing can check a norm, and clients claim
none and members post 0. The bound holds in GF(p), not in the integers: a client that scales its
update past the clip bound is caught, but one whose squared norm exceeds p lands anywhere in
[0, p) and passes with probability limit / p, and one that picks coordinates whose squares sum to
a small value mod p always passes (closing that takes a range proof per coordinate).
"""

from __future__ import annotations

import hashlib
import math

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Final

import numpy as np
from numpy.typing import NDArray

from fedtss import _kernels
from fedtss._reed_solomon import DecodingFailure, decode, evaluate
from fedtss.errors import ConfigError, FormatError
from fedtss.field import MODULUS
from fedtss.quantize import QuantizationConfig
from fedtss.randomness import uniform_field_elements

__all__ = [
    "CHALLENGE_LABEL",
    "CHECK_BYTES",
    "NOT_OPENED",
    "UNUSABLE",
    "Check",
    "CheckedLayout",
    "ClientCheck",
    "RoundVerdict",
    "challenge_vector",
    "check_client",
    "check_share",
    "check_tail_length",
    "decode_checks",
    "claim_norm_values",
    "committee_decides_norms",
    "committee_excludes_unchecked_norms",
    "is_norm_checked",
    "largest_norm_checked_samples",
    "is_safe_to_complain",
    "encode_checks",
    "norm_share",
    "pad_vector",
    "read_norm_claims",
    "squared_norm_limit",
    "project_share",
    "round_challenge",
    "round_verdict",
]

CHALLENGE_LABEL = b"fedtss/validation/challenge/v1"
#: What a member posts for a client whose share it could not open (no field element is this large).
NOT_OPENED = 2**64 - 1
#: What a complaint shows (in :func:`round_verdict`'s ``complaints``) when its evidence proves the
#: client's share unusable: the client's fault, whoever complained.
UNUSABLE: Final = "UnusableShare"
_ELEMENT_BYTES = 8
#: Bytes a member posts per client (:func:`encode_checks`): projection, count share, norm share.
CHECK_BYTES = 3 * _ELEMENT_BYTES


def check_tail_length(threshold: int) -> int:
    """Coordinates a checked vector ends with: t - 1 norm masks, then the pad."""
    return threshold


def pad_vector(vector: NDArray[np.uint64], pad: int, *, norm_masks: Sequence[int] = ()) -> NDArray[np.uint64]:
    """``vector`` with the checks' tail appended: the ``norm_masks`` (t - 1 of them, for the norm
    check), then ``pad``; each must be uniform in [0, p), fresh per round."""
    tail = [*norm_masks, pad]
    if any(not 0 <= value < MODULUS for value in tail):
        raise ConfigError("the pad and the norm masks must be field elements in [0, p)")
    return np.concatenate([np.asarray(vector, dtype=np.uint64), np.array(tail, dtype=np.uint64)])


@dataclass(frozen=True)
class CheckedLayout:
    """Where a checked vector keeps what: the update (``update`` coordinates), the sample count,
    the ``metrics``, ``threshold`` - 1 norm masks, the pad."""

    update: int
    metrics: int
    threshold: int

    @classmethod
    def of(cls, vector_length: int, *, metrics: int, threshold: int) -> CheckedLayout:
        update = vector_length - 1 - metrics - check_tail_length(threshold)
        if update < 1:
            raise ConfigError(f"a checked vector of length {vector_length} cannot hold {metrics} metrics "
                              f"and the tail of t = {threshold}")
        return cls(update, metrics, threshold)

    @property
    def count_index(self) -> int:
        return self.update

    @property
    def metrics_slice(self) -> slice:
        """The metrics' coordinates (after the update and the count)."""
        return slice(self.update + 1, self.update + 1 + self.metrics)

    @property
    def masks_start(self) -> int:
        return self.update + 1 + self.metrics

    @property
    def length(self) -> int:
        return self.masks_start + check_tail_length(self.threshold)


def norm_share(share: NDArray[np.uint64], layout: CheckedLayout, member: int) -> int:
    """nu_j: member ``member``'s value on the client's squared-norm polynomial (see the module docstring)."""
    share = _checked_share(share, layout)
    squares, outside = _kernels.project(share, share)
    if outside:
        raise FormatError("a share holds values outside the field")
    return _norm_from_squares(int(squares), share, layout, member)


def check_share(share: NDArray[np.uint64], rho: NDArray[np.uint64], layout: CheckedLayout, member: int, *,
                add_to: NDArray[np.uint64] | None = None, weight: int = 1) -> Check:
    """What member ``member`` posts about one client's share: its projection on ``rho``, its share of
    the sample count and its norm value (one pass over the share for the first and the last).

    With ``add_to`` (the member's running sum, a uint64 field vector of the share's length), also
    adds ``weight`` (in [0, p)) times the share to it in place, in the same pass: the sum's memory
    traffic bounds that pass, and the checks' arithmetic rides along. A share with a value outside
    the field raises FormatError and leaves ``add_to`` as it was."""
    share = _checked_share(share, layout)
    if rho.shape != share.shape:
        raise FormatError(f"a share of length {share.size} cannot be projected on a challenge of length {rho.size}")
    if add_to is None:
        projection, squares, outside = _kernels.project_and_square(rho, share)
    else:
        # the caller's arguments, not the client's bytes: a ConfigError, never taken for a client's fault
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight < MODULUS:
            raise ConfigError(f"weight must be an int in [0, p), got {weight!r:.40}")
        if add_to.dtype != np.uint64 or add_to.shape != share.shape:
            raise ConfigError(f"cannot add a share of length {share.size} to a sum of shape {add_to.shape}")
        projection, squares, outside = _kernels.project_square_and_add(rho, share, add_to, np.uint64(weight))
        if outside:  # take the same masked values out again (see fedtss.shamir.add_weighted_share)
            _kernels.add_scaled(add_to, share, np.uint64((MODULUS - weight) % MODULUS))
    if outside:
        raise FormatError("a share holds values outside the field")
    return int(projection), int(share[layout.count_index]), _norm_from_squares(int(squares), share, layout, member)


def _checked_share(share: NDArray[np.uint64], layout: CheckedLayout) -> NDArray[np.uint64]:
    share = np.ascontiguousarray(share, dtype=np.uint64)
    if share.size != layout.length:
        raise FormatError(f"a share of length {share.size} does not fit a checked vector of length {layout.length}")
    return share


def _norm_from_squares(squares: int, share: NDArray[np.uint64], layout: CheckedLayout, member: int) -> int:
    """The sum of squares of every coordinate less those after the update (the count, the metrics
    and the tail), plus the mask term. The metrics stay out: next to the clip bound, a clipped
    client's norm would give away the sum of its squared metrics (its own loss)."""
    total = squares - sum(int(value) ** 2 for value in share[layout.update :])
    for i in range(1, layout.threshold):
        total += pow(member, i, MODULUS) * int(share[layout.masks_start + i - 1])
    return total % MODULUS


def squared_norm_limit(quantization: QuantizationConfig, samples: int, *, update: int) -> int:
    """The largest ||q||^2 an honest client with ``samples`` samples can share over its ``update``
    coordinates: its update clipped to ``clip_norm`` and scaled by samples * 2^f (float rounding as
    in :mod:`fedtss.quantize`), each coordinate rounded (+ 1/2)."""
    scaled = Fraction(quantization.clip_norm) * samples * 2**quantization.fractional_bits * (1 + Fraction(1, 2**51))
    root_d = math.isqrt(update) + 1  # >= sqrt(update)
    return math.ceil((scaled + Fraction(root_d, 2)) ** 2)


def is_norm_checked(matching: int, threshold: int) -> bool:
    """Whether ``matching`` members' values equal to a client's claims check its norm: a polynomial
    of degree < 2t - 1 other than the claimed one meets the real one at no more than 2t - 2 of them."""
    return matching >= 2 * threshold - 1


def committee_decides_norms(committee: int, threshold: int) -> bool:
    """Whether a committee of ``committee`` members can check norms (all of them posting). Below
    that, clients claim no norm values and members post 0 in their place: a norm nobody can act on
    stays private."""
    return is_norm_checked(committee, threshold)


def committee_excludes_unchecked_norms(committee: int, threshold: int) -> bool:
    """Whether a committee excludes every client whose norm it could not check (``NormUnchecked``)
    instead of keeping it named: from n >= 3t - 2. There the n - (t - 1) >= 2t - 1 honest members
    check every honest client's norm even with t - 1 colluders silent, so while every honest member
    is up the rule never costs an honest client, and no client can keep its norm off the count (by
    shares some members cannot open or do not get, by getting members disputed, or by a sample
    count whose limit reaches p). Below it, t - 1 silent members, or members down, would get
    honest clients excluded, so a client whose norm went unchecked is kept and named."""
    return committee >= 3 * threshold - 2


def largest_norm_checked_samples(quantization: QuantizationConfig, *, update: int = 1) -> int:
    """The largest sample count whose norm limit stays inside the field (0 if none): a client that
    claims more is not norm-checked (its limit reaches p)."""
    low, high = 0, quantization.max_samples
    while low < high:  # the limit grows with the count
        middle = (low + high + 1) // 2
        if squared_norm_limit(quantization, middle, update=update) < MODULUS:
            low = middle
        else:
            high = middle - 1
    return low


def claim_norm_values(shares: NDArray[np.uint64], layout: CheckedLayout) -> tuple[int, ...]:
    """What a client claims in its manifest: each member's norm value (:func:`norm_share`), from
    the n shares it dealt (row j - 1 is member j's)."""
    return tuple(norm_share(share, layout, member) for member, share in enumerate(shares, start=1))


def read_norm_claims(claims: Sequence[int], threshold: int) -> int | None:
    """The squared norm a client's claims state (their polynomial at 0), or None when they are not
    n field elements on one polynomial of degree < 2t - 1 (fewer than 2t - 1 check nothing)."""
    if len(claims) < 2 * threshold - 1 or any(not 0 <= value < MODULUS for value in claims):
        return None
    read = _decode_at_zero(dict(enumerate(claims, start=1)), 2 * threshold - 1)
    if read is None or read[1]:
        return None
    return read[0]


def challenge_vector(challenge: bytes, length: int) -> NDArray[np.uint64]:
    """rho in GF(p)^length from the public ``challenge`` (32 bytes), every coordinate non-zero.

    Zero coordinates (probability 1/p each) are replaced by one: a zero at the pad would let
    the projection depend on the update alone.
    """
    if len(challenge) != 32:
        raise ConfigError(f"the challenge must be 32 bytes, got {len(challenge)}")
    if length < 1:
        raise ConfigError(f"a projected vector has at least the pad coordinate, got length {length}")
    rho = uniform_field_elements(challenge, length, label=CHALLENGE_LABEL)
    rho[rho == 0] = 1
    return rho


def project_share(share: NDArray[np.uint64], rho: NDArray[np.uint64]) -> int:
    """<rho, share> mod p: what member j posts for one client's share (one field element)."""
    share = np.ascontiguousarray(share, dtype=np.uint64)
    if share.shape != rho.shape:
        raise FormatError(f"a share of length {share.size} cannot be projected on a challenge of length {rho.size}")
    value, outside = _kernels.project(rho, share)
    if outside:
        raise FormatError("a share holds values outside the field")
    return int(value)


@dataclass(frozen=True)
class ClientCheck:
    """One client's verdict from its members' projections.

    ``consistent``: the projections decode to one polynomial of degree < t (within the errors
    they can correct). ``disagreeing``: the members whose projection is off that polynomial.
    ``checked``: more projections than t were in (with exactly t, any values fit: nothing is
    checked).
    """

    consistent: bool
    disagreeing: tuple[int, ...]
    checked: bool


def check_client(projections: Mapping[int, int], *, threshold: int) -> ClientCheck:
    """Decode one client's projections (member index -> pi_ij) against degree < ``threshold``."""
    if len(projections) < threshold:
        raise ConfigError(f"{len(projections)} projections, threshold {threshold}: at least t are needed")
    if any(not 0 <= value < MODULUS for value in projections.values()):
        raise FormatError("a projection is not a field element")
    members = sorted(projections)
    if len(members) == threshold:
        return ClientCheck(consistent=True, disagreeing=(), checked=False)
    try:
        decoded = decode(members, [projections[j] for j in members], threshold)
    except DecodingFailure:
        return ClientCheck(consistent=False, disagreeing=(), checked=True)
    return ClientCheck(consistent=True, disagreeing=tuple(decoded.error_points), checked=True)


def round_challenge(*, chain_id: int, contract: str, round_: int, block_hash: bytes) -> bytes:
    """The round's 32-byte challenge: the hash of the block that closed collection, bound to the round.

    No client knows that block's hash when it seals its shares (its own submission may be in
    the block, but the hash is fixed only once the block is made).
    """
    if len(block_hash) != 32:
        raise FormatError(f"a block hash is 32 bytes, got {len(block_hash)}")
    return hashlib.sha256(
        CHALLENGE_LABEL + chain_id.to_bytes(32, "big") + bytes.fromhex(contract.removeprefix("0x"))
        + round_.to_bytes(32, "big") + block_hash
    ).digest()


#: What member j posts about client i: the projection of its share on rho, its share of the
#: client's sample count (the coordinate the count is at; :func:`fedtss.quantize.quantize_update`)
#: and its value on the squared-norm polynomial (:func:`norm_share`).
Check = tuple[int, int, int]


def encode_checks(checks: Sequence[Check | None]) -> bytes:
    """What a member posts: 24 bytes per client in submission order, the projection, the count
    share and the norm share (8 bytes each, big-endian); :data:`NOT_OPENED` three times for a
    client it could not open (None)."""
    out = bytearray()
    for check in checks:
        if check is not None and len(check) != 3:
            raise FormatError(f"a check is three field elements, got {len(check)}")
        values = (NOT_OPENED,) * 3 if check is None else check
        for value in values:
            if check is not None and not 0 <= value < MODULUS:
                raise FormatError(f"a check holds field elements, got {value}")
            out += value.to_bytes(_ELEMENT_BYTES, "big")
    return bytes(out)


def decode_checks(blob: bytes, clients: int) -> list[Check | None]:
    """A member's posted checks; a pair holding a value outside the field reads as not opened (None).

    The contract checks the length; a wrong one here means the bytes are not a round's checks.
    """
    if len(blob) != CHECK_BYTES * clients:
        raise FormatError(f"checks of {len(blob)} bytes for {clients} clients: expected {CHECK_BYTES * clients}")
    checks: list[Check | None] = []
    for k in range(0, len(blob), CHECK_BYTES):
        values = tuple(int.from_bytes(blob[i : i + _ELEMENT_BYTES], "big")
                       for i in range(k, k + CHECK_BYTES, _ELEMENT_BYTES))
        checks.append(values if all(value < MODULUS for value in values) else None)  # type: ignore[arg-type]
    return checks


@dataclass(frozen=True)
class RoundVerdict:
    """What the posted checks and complaints of one round decide, the same at every honest member.

    ``excluded_clients``: submission index -> reason (``InconsistentShares``,
    ``SampleCountOutOfRange``, ``InvalidNormClaims``, ``NormOutOfRange``, ``NormClaimMismatch``,
    ``UnusableShare``, and ``NormUnchecked`` where the committee excludes what it could not check).
    ``wrong_members``: member index -> the kept clients it posted a false check about.
    ``awaiting``: (member, client) pairs whose complaint could still change the verdict (the
    member posted none yet). ``disputed``: member index -> clients it disagrees with
    where nobody can be blamed without risking an honest client's privacy (see
    :func:`is_safe_to_complain`): nobody is named and the client is kept. ``unchecked``: clients
    with at most t checks (their sample count is still read and range-checked from t).
    ``sample_counts``: each client's shared count coordinate, revealed by the count shares (its
    sample count where clients weight their own updates; 1 where the members weight them).
    ``norm_unchecked``: kept clients whose norm could not be checked (fewer than t checks, claims
    this member could not read, fewer than 2t - 1 members on the decoded polynomial with values
    equal to the claims, see :func:`is_norm_checked`, or a limit beyond the field);
    ``norm_limit_beyond_field``: those of them for the last reason (the limit for their count,
    or one sample's for a clip bound that large, reaches p); ``squared_norms``: the claimed ||q||^2 of each client whose claims were read
    (public: in its manifest; for an unchecked client, only what it claims).
    """

    excluded_clients: dict[int, str] = field(default_factory=dict)
    wrong_members: dict[int, tuple[int, ...]] = field(default_factory=dict)
    awaiting: frozenset[tuple[int, int]] = frozenset()
    disputed: dict[int, tuple[int, ...]] = field(default_factory=dict)
    unchecked: tuple[int, ...] = ()
    sample_counts: dict[int, int] = field(default_factory=dict)
    norm_unchecked: tuple[int, ...] = ()
    squared_norms: dict[int, int] = field(default_factory=dict)
    norm_limit_beyond_field: tuple[int, ...] = ()


def is_safe_to_complain(agreeing: int, threshold: int) -> bool:
    """Whether a member off a client's decoded polynomial may show its share (complain) safely.

    Its complaint makes its share public. Were the client honest and the member framed by t - 1
    colluding members posting projections on another polynomial, that share would be the
    coalition's t-th. With at least 2t - 1 other checks on the decoded polynomial, at least t of
    them are honest members' (true) projections, so the decoded polynomial is the client's own
    and the member's share really is off it: the client cheated, and only its privacy is spent.
    """
    return agreeing >= 2 * threshold - 1


def _read_count(points: Mapping[int, int], threshold: int) -> tuple[int, tuple[int, ...], bool] | None:
    """The count shares decoded: (count, members off the count polynomial, whether those can be
    named safely), or None if they decode to no polynomial of degree < t."""
    read = _decode_at_zero(points, threshold)
    if read is None:
        return None
    value, off = read
    return value, off, is_safe_to_complain(len(points) - len(off), threshold)


def _decode_at_zero(points: Mapping[int, int], k: int) -> tuple[int, tuple[int, ...]] | None:
    """The polynomial of degree < k the points decode to, at 0, and the members off it (None: none)."""
    members = sorted(points)
    try:
        decoded = decode(members, [points[j] for j in members], k)
    except DecodingFailure:
        return None
    return evaluate(decoded.polynomial, 0), tuple(decoded.error_points)


def round_verdict(
    checks: Mapping[int, Sequence[Check | None]],
    complaints: Mapping[tuple[int, int], Check | str | None],
    *,
    clients: int,
    threshold: int,
    max_samples: int,
    complained: frozenset[int] = frozenset(),
    window_closed: bool = False,
    norm_limit: Callable[[int], int] | None = None,
    norm_claims: Mapping[int, Sequence[int]] | None = None,
    exclude_unchecked_norms: bool = False,
    refused: Mapping[int, str] | None = None,
    count_reason: str = "SampleCountOutOfRange",
) -> RoundVerdict:
    """Decide every client of a round from the members' posted checks.

    ``checks``: member index -> its checks (None: not opened). ``complaints``: (member, client)
    -> the check of the share the member's evidence opens, :data:`UNUSABLE` where the evidence
    shows the client's share cannot be used (it does not open with the member's proven secret,
    opens to bytes that are no share, or has a header no honest client writes: the client is
    excluded, ``UnusableShare``), or None where it shows nothing (a key that opens nothing, a
    proof that does not verify). ``complained``: the members that posted complaints (once each);
    the others may still complain, so a disagreement of theirs, or a client they posted "not
    opened" for, is ``awaiting`` until the complaints' window has closed (``window_closed``):
    then a disagreement names the member, and a "not opened" stays unexplained (the share may
    never have reached it). A member that posted "not opened" and then shows a usable share or
    evidence of nothing is named. A member is expected to complain only
    where :func:`is_safe_to_complain`; elsewhere its disagreement is ``disputed``. A client whose
    revealed sample count is outside [1, ``max_samples``] is excluded: its weight would make the
    round's sum fail. With ``norm_limit`` (sample count -> the largest ||q||^2 clipping allows,
    :func:`squared_norm_limit`), each client's ``norm_claims`` (client -> its manifest's n claims;
    a client missing is not norm-checked here) decide its norm as the module docstring says: a
    claim above the limit or off one polynomial excludes it, a member whose value differs from
    its claim must complain, and its revealed share then excludes the client or names the member;
    without ``norm_limit`` (the vectors carry no norm masks) norms are not checked. With
    ``exclude_unchecked_norms`` (:func:`committee_excludes_unchecked_norms`; only where norms are
    checked: ``norm_limit`` and ``norm_claims`` given) a client whose norm could not be checked is
    excluded (``NormUnchecked``) instead of kept and listed in ``norm_unchecked`` (a client whose
    claims are missing from ``norm_claims`` stays listed: the caller could not read them).
    ``refused``: clients the caller excludes from their public manifest alone (client -> reason:
    bit claims of the wrap-around check that are not zero at 0). ``count_reason``: the reason a
    count out of range is given (the wrap-around check folds its relation into the count shares,
    so there a count "out of range" may be a relation that fails: ``CountOrProofOff``).
    """
    excluded: dict[int, str] = {}
    wrong: dict[int, list[int]] = {}
    disputed: dict[int, list[int]] = {}
    awaiting: set[tuple[int, int]] = set()
    unchecked: list[int] = []
    counts: dict[int, int] = {}
    norms: dict[int, int] = {}
    norm_unchecked: list[int] = []
    beyond_field: list[int] = []
    for client in range(clients):
        if refused and client in refused:
            excluded[client] = refused[client]
            continue
        if any(complaints.get((j, client)) == UNUSABLE for j in checks):
            excluded[client] = "UnusableShare"  # the member's evidence shows the client's own bytes at fault
            continue
        points = {j: values[client] for j, values in checks.items() if values[client] is not None}
        for j, values in checks.items():
            if values[client] is not None:
                continue
            if (j, client) in complaints:  # "not opened", yet it showed a usable share or evidence of nothing
                wrong.setdefault(j, []).append(client)
            elif j not in complained and not window_closed and len(points) >= threshold:
                awaiting.add((j, client))  # it may still show that the share is unusable (below t, nobody sums it)
        if len(points) < threshold:
            unchecked.append(client)
            if norm_limit is not None:
                norm_unchecked.append(client)
            continue
        agreeing = dict(points)
        claims = None if norm_limit is None or norm_claims is None else norm_claims.get(client)
        claimed = None if claims is None else read_norm_claims(claims, threshold)
        if len(points) == threshold:
            unchecked.append(client)  # any t projections fit: only the count can be read
        else:
            result = check_client({j: check[0] for j, check in points.items()}, threshold=threshold)
            if not result.consistent:
                excluded[client] = "InconsistentShares"
                continue
            if any((m, client) in complaints and complaints[m, client] == points[m] for m in result.disagreeing):
                excluded[client] = "InconsistentShares"  # a member's revealed share is off the polynomial
                continue
            safe = is_safe_to_complain(len(points) - len(result.disagreeing), threshold)
            for member in result.disagreeing:
                # It must show its share where that is safe: 2t - 1 others agree, or its norm value
                # contradicts the client's own (readable) claim, which only a cheating client causes.
                if not (safe or claimed is not None and points[member][2] != claims[member - 1]):
                    disputed.setdefault(member, []).append(client)
                elif member in complained or window_closed:
                    wrong.setdefault(member, []).append(client)
                else:
                    awaiting.add((member, client))
                del agreeing[member]
        read = _read_count({j: check[1] for j, check in agreeing.items()}, threshold)
        if read is None:  # beyond the bound: too many false count shares to tell
            excluded[client] = "InconsistentShares"
            continue
        counts[client], off, nameable = read
        for member in off:  # its share is consistent, so its count share was false
            (wrong if nameable else disputed).setdefault(member, []).append(client)
        if not 1 <= counts[client] <= max_samples:
            excluded[client] = count_reason
        elif norm_limit is not None:
            values = {j: check[2] for j, check in agreeing.items() if j not in off}
            shown = {m: complaints[m, client] == points[m] for m in values if (m, client) in complaints}
            verdict = _norm_verdict(claims, claimed, values, shown,
                                    threshold, norm_limit(counts[client]), complained=complained,
                                    window_closed=window_closed)
            if verdict.squared_norm is not None:
                norms[client] = verdict.squared_norm
            if verdict.exclusion is not None:
                excluded[client] = verdict.exclusion
                continue
            for member in verdict.wrong:
                wrong.setdefault(member, []).append(client)
            awaiting.update((member, client) for member in verdict.awaiting)
            if not verdict.checked:
                norm_unchecked.append(client)
                if verdict.beyond_field:
                    beyond_field.append(client)
    if exclude_unchecked_norms and norm_limit is not None and norm_claims is not None:
        # No complaint can make an unchecked norm checked (they convict or name, never add a match),
        # so this holds before the complaints are in, and spares them. Claims this member could not
        # read leave it unable to tell: it keeps the client listed (it did not open it, so it sums it
        # in no set of its own) rather than exclude it where the others may not.
        excluded.update((c, "NormUnchecked") for c in norm_unchecked if c not in excluded and c in norm_claims)
    # A member is named only about clients kept: about an excluded one, nothing hangs on its word.
    awaiting = {(m, c) for m, c in awaiting if c not in excluded}

    def kept(by_member: dict[int, list[int]]) -> dict[int, tuple[int, ...]]:
        about = {m: tuple(sorted({c for c in cs if c not in excluded})) for m, cs in by_member.items()}
        return {m: cs for m, cs in about.items() if cs}

    return RoundVerdict(excluded, kept(wrong), frozenset(awaiting), kept(disputed), tuple(unchecked), counts,
                        tuple(c for c in norm_unchecked if c not in excluded), norms,
                        tuple(c for c in beyond_field if c not in excluded))


@dataclass(frozen=True)
class _NormVerdict:
    exclusion: str | None = None
    squared_norm: int | None = None  # as the client claims it
    wrong: tuple[int, ...] = ()  # members named about this client's norm
    awaiting: tuple[int, ...] = ()  # members whose value differs from the claim and who may still complain
    checked: bool = False  # enough values matched the claims, and the limit is inside the field
    beyond_field: bool = False


def _norm_verdict(claims: Sequence[int] | None, claimed: int | None, values: Mapping[int, int],
                  shown: Mapping[int, bool], threshold: int, limit: int, *, complained: frozenset[int],
                  window_closed: bool) -> _NormVerdict:
    """One client's norm from its ``claims`` (``claimed``: the squared norm they state, None if
    unreadable, :func:`read_norm_claims`) and the members' posted ``values`` (members whose other
    checks agreed). ``shown``: member -> whether the share its complaint revealed reproduces its
    posted check (absent: it did not complain about this client)."""
    if claims is None:
        return _NormVerdict()
    if claimed is None:
        return _NormVerdict(exclusion="InvalidNormClaims")
    beyond_field = limit >= MODULUS  # a limit beyond the field lets any value through
    if not beyond_field and claimed > limit:
        return _NormVerdict(exclusion="NormOutOfRange", squared_norm=claimed)
    wrong, awaiting, matching = [], [], 0
    for member, value in sorted(values.items()):
        if value == claims[member - 1]:
            matching += 1
            if member in shown:  # it showed a share for nothing: its value matched the claim
                wrong.append(member)
        elif shown.get(member):  # the client's own share contradicts its own claim
            return _NormVerdict(exclusion="NormClaimMismatch", squared_norm=claimed)
        elif member in shown or member in complained or window_closed:
            wrong.append(member)  # its share did not back its value, or it will not show it
        else:
            awaiting.append(member)
    checked = not beyond_field and is_norm_checked(matching, threshold)
    return _NormVerdict(None, claimed, tuple(wrong), tuple(awaiting), checked, beyond_field)
