"""Share consistency per client, checked by the committee without revealing a share (issue 13's core).

A client deals its vector s_i (update, sample count, metrics, then one *pad*) as Shamir shares
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
pad is summed like every coordinate; the aggregate's pad coordinate (a sum of uniform values)
is dropped. Without the pad, <rho, s_i> would be a public linear function of the update
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

**What holds, and when.** Decoding corrects up to floor((m - t) / 2) errors among the m
projections of a client: as long as the lying members plus the corrupted shares of one client
stay within that, every honest member reaches the same verdict from the same posted checks and
complaints. With exactly t checks nothing is checked but the sample count. Beyond the bound,
colluders can make an honest client's checks undecodable (it is excluded) but never make an
honest member show its share. Norm bounds are not checked here.
"""

from __future__ import annotations

import hashlib

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from fedtss import _kernels
from fedtss._reed_solomon import DecodingFailure, decode, evaluate
from fedtss.errors import ConfigError, FormatError
from fedtss.field import MODULUS
from fedtss.randomness import uniform_field_elements

__all__ = [
    "CHALLENGE_LABEL",
    "CHECK_BYTES",
    "NOT_OPENED",
    "Check",
    "ClientCheck",
    "RoundVerdict",
    "challenge_vector",
    "check_client",
    "decode_checks",
    "is_safe_to_complain",
    "encode_checks",
    "pad_vector",
    "project_share",
    "round_challenge",
    "round_verdict",
]

CHALLENGE_LABEL = b"fedtss/validation/challenge/v1"
#: What a member posts for a client whose share it could not open (no field element is this large).
NOT_OPENED = 2**64 - 1
_ELEMENT_BYTES = 8
#: Bytes a member posts per client (:func:`encode_checks`).
CHECK_BYTES = 2 * _ELEMENT_BYTES


def pad_vector(vector: NDArray[np.uint64], pad: int) -> NDArray[np.uint64]:
    """``vector`` with one pad coordinate appended: ``pad`` must be uniform in [0, p), fresh per round."""
    if not 0 <= pad < MODULUS:
        raise ConfigError(f"the pad must be a field element in [0, p), got {pad}")
    return np.concatenate([np.asarray(vector, dtype=np.uint64), np.array([pad], dtype=np.uint64)])


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


#: What member j posts about client i: the projection of its share on rho, and its share of the
#: client's sample count (the coordinate the count is at; :func:`fedtss.quantize.quantize_update`).
Check = tuple[int, int]


def encode_checks(checks: Sequence[Check | None]) -> bytes:
    """What a member posts: 16 bytes per client in submission order, the projection then the count
    share (8 bytes each, big-endian); :data:`NOT_OPENED` twice for a client it could not open (None)."""
    out = bytearray()
    for check in checks:
        values = (NOT_OPENED, NOT_OPENED) if check is None else check
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
        projection = int.from_bytes(blob[k : k + _ELEMENT_BYTES], "big")
        count_share = int.from_bytes(blob[k + _ELEMENT_BYTES : k + CHECK_BYTES], "big")
        checks.append((projection, count_share) if projection < MODULUS and count_share < MODULUS else None)
    return checks


@dataclass(frozen=True)
class RoundVerdict:
    """What the posted checks and complaints of one round decide, the same at every honest member.

    ``excluded_clients``: submission index -> reason (``InconsistentShares``,
    ``SampleCountOutOfRange``). ``wrong_members``: member index -> the kept clients it posted a
    false check about. ``awaiting``: (member, client) pairs whose complaint could still change the
    verdict (the member posted none yet). ``disputed``: member index -> clients it disagrees with
    where nobody can be blamed without risking an honest client's privacy (see
    :func:`is_safe_to_complain`): nobody is named and the client is kept. ``unchecked``: clients
    with at most t checks (their sample count is still read and range-checked from t).
    ``sample_counts``: each client's sample count, revealed by the count shares.
    """

    excluded_clients: dict[int, str] = field(default_factory=dict)
    wrong_members: dict[int, tuple[int, ...]] = field(default_factory=dict)
    awaiting: frozenset[tuple[int, int]] = frozenset()
    disputed: dict[int, tuple[int, ...]] = field(default_factory=dict)
    unchecked: tuple[int, ...] = ()
    sample_counts: dict[int, int] = field(default_factory=dict)


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
    members = sorted(points)
    try:
        decoded = decode(members, [points[j] for j in members], threshold)
    except DecodingFailure:
        return None
    agreeing = len(members) - len(decoded.error_points)
    return evaluate(decoded.polynomial, 0), tuple(decoded.error_points), is_safe_to_complain(agreeing, threshold)


def round_verdict(
    checks: Mapping[int, Sequence[Check | None]],
    complaints: Mapping[tuple[int, int], Check | None],
    *,
    clients: int,
    threshold: int,
    max_samples: int,
    complained: frozenset[int] = frozenset(),
    window_closed: bool = False,
) -> RoundVerdict:
    """Decide every client of a round from the members' posted checks.

    ``checks``: member index -> its checks (None: not opened). ``complaints``: (member, client)
    -> the check of the share the member's revealed key opens (None: it opens nothing, or no
    share). ``complained``: the members that posted complaints (once each); the others may
    still complain, so a disagreement of theirs is ``awaiting`` until the complaints' window has
    closed (``window_closed``): then it names the member. A member is expected to complain only
    where :func:`is_safe_to_complain`; elsewhere its disagreement is ``disputed``. A client whose
    revealed sample count is outside [1, ``max_samples``] is excluded: its weight would make the
    round's sum fail.
    """
    excluded: dict[int, str] = {}
    wrong: dict[int, list[int]] = {}
    disputed: dict[int, list[int]] = {}
    awaiting: set[tuple[int, int]] = set()
    unchecked: list[int] = []
    counts: dict[int, int] = {}
    for client in range(clients):
        points = {j: values[client] for j, values in checks.items() if values[client] is not None}
        if len(points) < threshold:
            unchecked.append(client)
            continue
        agreeing = dict(points)
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
                if not safe:
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
            excluded[client] = "SampleCountOutOfRange"
    # A member is named only about clients kept: about an excluded one, nothing hangs on its word.
    awaiting = {(m, c) for m, c in awaiting if c not in excluded}

    def kept(by_member: dict[int, list[int]]) -> dict[int, tuple[int, ...]]:
        about = {m: tuple(sorted({c for c in cs if c not in excluded})) for m, cs in by_member.items()}
        return {m: cs for m, cs in about.items() if cs}

    return RoundVerdict(excluded, kept(wrong), frozenset(awaiting), kept(disputed), tuple(unchecked), counts)
