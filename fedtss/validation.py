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

**What it does not settle** (left to the agents that will use it, issue 13): who is wrong when a
client's projections disagree at one member (the client that sealed a bad share, or the member
that posted a wrong projection) needs more than projections; and norm bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fedtss import _kernels
from fedtss._reed_solomon import DecodingFailure, decode
from fedtss.errors import ConfigError, FormatError
from fedtss.field import MODULUS
from fedtss.randomness import uniform_field_elements

__all__ = [
    "CHALLENGE_LABEL",
    "ClientCheck",
    "challenge_vector",
    "check_client",
    "pad_vector",
    "project_share",
]

CHALLENGE_LABEL = b"fedtss/validation/challenge/v1"


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
