"""Shamir t-of-n sharing of whole vectors over GF(2**61 - 1), with checked reconstruction.

A client's update u (d field elements) gets one random polynomial per coordinate,
f_i(x) = u_i + c_1,i x + ... + c_{t-1},i x**(t-1), and holder j (1-based, j <= 255) receives
the vector (f_i(j))_i. Any t holders recover u by Lagrange interpolation at 0; any t - 1 of
them see values that are uniform and independent of u. Because sharing is linear, the sum of
many clients' shares held by one member is a share of the sum of their updates: this is the
whole aggregation protocol.

Checked reconstruction (:func:`reconstruct_checked`) tolerates wrong shares without paying
error correction per coordinate: every share vector is projected onto one random vector r
(derived from the caller's fresh key, so a cheating holder cannot aim at it), giving one
scalar per holder that is a Shamir share of r·u under the same polynomial degree. Reed-Solomon
decoding of those m scalars (Gao's algorithm, :mod:`fedtss._reed_solomon`) names up to
floor((m - t) / 2) wrong holders; a wrong vector escapes the projection with probability
1/p ~ 2**-61 (then it may be among the t holders interpolated from, and the result is wrong).
The full vector is then interpolated from t of the remaining holders. Cost per coordinate: one
projection pass over the shares plus one Lagrange pass.

What decoding cannot do: e wrong holders who know their own shares can put them on another
polynomial g that agrees with the true one at t - 1 honest points; once e + floor((m - t) / 2)
>= m - t + 1, the shares are within the decoding radius of g, and g's secret is returned with
honest holders named as wrong. For example 2 colluders among m = 5, t = 3 shift the secret by
any vector they choose. Correction is only safe when no more than floor((m - t) / 2) holders
can be wrong, e.g. m >= 3t - 2 if up to t - 1 may collude.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from numpy.typing import NDArray

from fedtss import _kernels
from fedtss._reed_solomon import DecodingFailure, decode
from fedtss.errors import ConfigError, InconsistentShares, InvalidShare, NotEnoughShares, ShareError
from fedtss.field import MODULUS, lagrange_coefficients_at_zero
from fedtss.randomness import (
    COEFFICIENTS_LABEL,
    PROJECTION_LABEL,
    derive_subkey,
    fill_keystream_words,
    replace_rejected_words,
    uniform_field_elements,
)

__all__ = [
    "MAX_HOLDERS",
    "Reconstruction",
    "share_vector",
    "reconstruct_at_zero",
    "add_weighted_share",
    "reconstruct_checked",
    "is_consistent",
]

MAX_HOLDERS = 255
"""Holders are the evaluation points 1..255: small x keeps Horner's rule cheap."""

_GROUP = 4  # share vectors combined per Lagrange kernel call
# Coordinates per keystream chunk: bounds the coefficient buffer at (t - 1)·512 KiB, which
# is reused (no fresh pages to fault in) and stays cache-warm between generation and use.
_CHUNK_COORDINATES = 1 << 16


@dataclass(frozen=True)
class Reconstruction:
    """A checked reconstruction: the secret and which holders it rests on.

    ``used_holders`` are the t holders the vector was interpolated from; ``excluded_holders``
    are those found wrong (their shares are off the polynomial the others agree on).
    """

    secret: NDArray[np.uint64]
    used_holders: tuple[int, ...]
    excluded_holders: tuple[int, ...]


def share_vector(
    secret: NDArray[np.uint64], *, threshold: int, holders: int, key: bytes
) -> NDArray[np.uint64]:
    """Split ``secret`` into ``holders`` Shamir shares, any ``threshold`` of which recover it.

    Returns an array of shape (holders, d); row j - 1 is holder j's share. The (t - 1)·d
    coefficients come from the keyed stream of :mod:`fedtss.randomness`, so the result is a
    deterministic function of ``key``: pass 32 fresh bytes from ``os.urandom`` every time
    (reusing a key for two secrets reveals their difference to any single holder).
    """
    _check_parameters(threshold, holders)
    values = _as_vector(secret, "secret")
    d = values.size
    subkey = derive_subkey(key, COEFFICIENTS_LABEL)
    shares = np.empty((holders, d), dtype=np.uint64)
    buffer = np.empty((threshold - 1, min(_CHUNK_COORDINATES, d)), dtype=np.uint64)
    for offset in range(0, d, _CHUNK_COORDINATES):
        width = min(_CHUNK_COORDINATES, d - offset)
        words = buffer if width == buffer.shape[1] else np.empty((threshold - 1, width), np.uint64)
        _fill_coefficient_words(words, subkey, d, offset)
        # Touch the chunk's output pages from this one thread first: two kernel threads
        # faulting fresh (huge) pages at once measured 2-10x slower, erratically, at d = 10**7.
        shares[:, offset : offset + width] = 0
        rejected, outside = _kernels.share_words(values, words, shares, offset)
        if outside:
            raise ShareError(
                f"secret has {outside} values >= p = 2**61 - 1 near coordinate {offset}; "
                "quantize into the field first"
            )
        if rejected:  # probability ~ (t - 1)·d / 2**61; keeps coefficients exactly uniform
            for k in range(threshold - 1):
                replace_rejected_words(words[k], subkey, k * d + offset)
            _kernels.share_words(values, words, shares, offset)
    return shares


def _fill_coefficient_words(
    words: NDArray[np.uint64], subkey: bytes, d: int, offset: int
) -> None:
    # Coefficient c_k[i] is stream word (k - 1)·d + i: row k - 1 of ``words`` holds
    # coordinates offset .. offset + width of it.
    for k in range(words.shape[0]):
        fill_keystream_words(words[k], subkey, k * d + offset)


def reconstruct_at_zero(shares: Mapping[int, NDArray[np.uint64]]) -> NDArray[np.uint64]:
    """Interpolate the secret from exactly the given holders' shares (no checking).

    With fewer than t holders the result is meaningless, and a wrong share silently gives a
    wrong result: use :func:`reconstruct_checked` when more than t shares are available.
    """
    holders, vectors = _validated_shares(shares)
    weights = lagrange_coefficients_at_zero(holders)
    result = np.empty(vectors[0].size, dtype=np.uint64)
    for start in range(0, len(holders), _GROUP):
        group = vectors[start : start + _GROUP]
        group_weights = weights[start : start + _GROUP]
        padding = _GROUP - len(group)
        group = group + [group[0]] * padding
        group_weights = np.array(group_weights + [0] * padding, dtype=np.uint64)
        outside = _kernels.lagrange_combine4(result, *group, group_weights, start > 0)
        if outside:
            _raise_outside_field(dict(zip(holders, vectors)))
    return result


def add_weighted_share(total: NDArray[np.uint64], share: NDArray[np.uint64], weight: int) -> None:
    """``total += weight * share (mod p)`` in place: by linearity, a holder that adds every
    client's share times a public weight holds a share of the weighted sum of their secrets.

    ``total`` must be a uint64 field vector of the same length as ``share``; ``weight`` an int
    in ``[0, p)``. Raises :class:`InvalidShare` if ``share`` holds a value >= p, with ``total``
    as it was (the kernel adds the share's values masked to 61 bits in the same pass as it counts
    the bad ones; adding the same masked values times p - weight takes them out exactly).
    """
    vector = _as_vector(share, "share")
    if not isinstance(total, np.ndarray) or total.dtype != np.uint64 or total.shape != vector.shape:
        raise InvalidShare(f"a share of shape {vector.shape} does not add to a sum of shape {np.shape(total)}")
    if not _is_int(weight) or not 0 <= int(weight) < MODULUS:
        raise ConfigError(f"weight must be an int in [0, p), got {weight!r:.40}")
    if _kernels.add_scaled(total, vector, np.uint64(int(weight))):
        _kernels.add_scaled(total, vector, np.uint64((MODULUS - int(weight)) % MODULUS))
        raise InvalidShare("share has values >= p = 2**61 - 1")


def reconstruct_checked(
    shares: Mapping[int, NDArray[np.uint64]], *, threshold: int, key: bytes
) -> Reconstruction:
    """Reconstruct the secret, naming and excluding wrong holders where m - t allows.

    ``key`` (32 fresh bytes from os.urandom, unknown to the holders) seeds the projection
    vector. Raises :class:`NotEnoughShares` with fewer than ``threshold`` shares and
    :class:`InconsistentShares` when the shares do not lie within floor((m - t) / 2) errors
    of one polynomial of degree < t; never returns an unchecked result when m > t. More
    wrong holders than that, if they collude, can make it return a wrong secret (see the
    module docstring).
    """
    _check_threshold(threshold)
    holders, vectors = _validated_shares(shares)
    if len(holders) < threshold:
        raise NotEnoughShares(
            f"{len(holders)} shares given, threshold is {threshold}: collect more shares"
        )
    excluded = _find_wrong_holders(dict(zip(holders, vectors)), threshold, key)
    good = [j for j in holders if j not in excluded]
    used = tuple(good[:threshold])
    secret = reconstruct_at_zero({j: shares[j] for j in used})
    return Reconstruction(secret=secret, used_holders=used, excluded_holders=excluded)


def is_consistent(
    shares: Mapping[int, NDArray[np.uint64]], *, threshold: int, key: bytes
) -> bool:
    """Whether all the shares lie on one polynomial of degree < threshold (w.h.p. 1 - 2**-61)."""
    _check_threshold(threshold)
    holders, vectors = _validated_shares(shares)
    projections = _project_all(dict(zip(holders, vectors)), key)  # also checks values < p
    if len(holders) <= threshold:
        return True  # any m <= t values lie on some polynomial of degree < t
    try:
        decoded = decode(holders, projections, threshold)
    except DecodingFailure:
        return False
    return not decoded.error_points


def _find_wrong_holders(
    shares: dict[int, NDArray[np.uint64]], threshold: int, key: bytes
) -> tuple[int, ...]:
    holders = list(shares)
    projections = _project_all(shares, key)
    try:
        decoded = decode(holders, projections, threshold)
    except DecodingFailure as failure:
        correctable = (len(holders) - threshold) // 2
        raise InconsistentShares(
            f"shares from holders {holders} are not within {correctable} wrong shares of one "
            f"polynomial of degree < {threshold}; collect more shares to locate the wrong ones"
        ) from failure
    return decoded.error_points


def _project_all(shares: dict[int, NDArray[np.uint64]], key: bytes) -> list[int]:
    d = next(iter(shares.values())).size
    r = uniform_field_elements(key, d, label=PROJECTION_LABEL)
    projections = []
    for vector in shares.values():
        value, outside = _kernels.project(r, vector)
        if outside:
            _raise_outside_field(shares)
        projections.append(int(value))
    return projections


def _check_parameters(threshold: int, holders: int) -> None:
    _check_threshold(threshold)
    if not _is_int(holders) or not threshold <= holders <= MAX_HOLDERS:
        raise ConfigError(
            f"holders must be an integer with threshold ({threshold}) <= holders <= "
            f"{MAX_HOLDERS}, got {holders!r}"
        )


def _check_threshold(threshold: int) -> None:
    if not _is_int(threshold) or not 2 <= threshold <= MAX_HOLDERS:
        raise ConfigError(f"threshold must be an integer in 2..{MAX_HOLDERS}, got {threshold!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _as_vector(values: object, what: str) -> NDArray[np.uint64]:
    if not isinstance(values, np.ndarray) or values.dtype != np.uint64 or values.ndim != 1:
        described = getattr(values, "dtype", type(values).__name__)
        shape = getattr(values, "shape", None)
        raise InvalidShare(
            f"{what} must be a one-dimensional numpy uint64 array, got {described} {shape}"
        )
    return np.ascontiguousarray(values)


def _validated_shares(
    shares: Mapping[int, NDArray[np.uint64]],
) -> tuple[list[int], list[NDArray[np.uint64]]]:
    if not isinstance(shares, Mapping) or not shares:
        raise NotEnoughShares("no shares given: pass a mapping {holder index: share vector}")
    for j in shares:
        if not _is_int(j) or not 1 <= j <= MAX_HOLDERS:
            raise InvalidShare(f"holder index must be an integer in 1..{MAX_HOLDERS}, got {j!r}")
    holders = sorted(shares)
    vectors = [_as_vector(shares[j], f"share of holder {j}") for j in holders]
    lengths = {j: v.size for j, v in zip(holders, vectors)}
    if len(set(lengths.values())) > 1:
        raise InvalidShare(f"share vectors differ in length: {lengths}")
    return [int(j) for j in holders], vectors


def _raise_outside_field(shares: Mapping[int, NDArray[np.uint64]]) -> None:
    bad = [j for j, v in shares.items() if v.size and int(v.max()) >= MODULUS]
    raise InvalidShare(f"shares of holders {bad} have values >= p = 2**61 - 1")
