"""Compiled kernels for sharing and reconstruction over p = 2**61 - 1 (private).

Plain numpy needs a modulo after every Horner step and spends ~460 ms on 10 shares of 10**6
coordinates; these numba kernels do the same arithmetic in cache-sized blocks on every core,
with reductions deferred as far as 64-bit words allow. The arithmetic tricks, all exact:

* ``2**61 ≡ 1 (mod p)``, so ``v ≡ (v & P) + (v >> 61)`` ("fold"), and ``2**64 ≡ 8``.
* Horner with a small evaluation point ``x < 2**8`` (holders are 1..255): split the
  accumulator into 32-bit halves, ``acc = h·2**32 + l``. Then ``l·x < 2**40`` and
  ``y = h·x < 2**40``, and ``y·2**32 ≡ (y mod 2**29)·2**32 + (y >> 29)``. Adding a
  coefficient ``< 2**61`` keeps the new accumulator below ``2**63`` *whatever* 64-bit value
  the old one held, so no reduction is needed inside the loop at all: one fold and one
  conditional subtraction per output value.
* A full 61 x 61-bit product (Lagrange weights, projections) uses 32-bit halves too:
  ``a·b ≡ 8·a1·b1 + mid·2**32 + a0·b0`` with ``mid = a1·b0 + a0·b1 < 2**62``.

Every kernel is ``nogil`` and cached on disk (``cache=True``), so only the first process on a
machine pays the compile time. Kernels validate their inputs on the fly (counting values
outside the field) rather than in a separate pass, because a pass over the data costs as
much as the arithmetic; the callers turn a non-zero count into a named error.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, set_parallel_chunksize

from fedtss.field import MODULUS

__all__ = [
    "BLOCK",
    "share_words",
    "lagrange_combine4",
    "add_scaled",
    "project_square_and_add",
    "project",
    "project_and_square",
    "table_projection",
    "ternary_projections",
]

# Coordinates per block: (t - 1) coefficient rows of BLOCK words stay in L2 while all n
# evaluation points are computed from them.
BLOCK = 2048
# Blocks handed to a thread at a time. Dynamic hand-out instead of numba's default static
# halves: on a shared machine one core is often busy, and the free one then takes more. (Set
# from Python around each call: calling set_parallel_chunksize inside a kernel would make it
# uncacheable.)
CHUNK_BLOCKS = 4

_P = np.uint64(MODULUS)
_M32 = np.uint64(0xFFFFFFFF)
_M29 = np.uint64((1 << 29) - 1)
_S32 = np.uint64(32)
_S29 = np.uint64(29)
_S61 = np.uint64(61)
_EIGHT = np.uint64(8)
_ZERO = np.uint64(0)


@njit(inline="always", cache=True)
def _fold(v):
    return (v & _P) + (v >> _S61)


@njit(inline="always", cache=True)
def _canonical(v):
    """Fully reduce any uint64 to [0, p)."""
    v = (v & _P) + (v >> _S61)
    v = (v & _P) + (v >> _S61)
    if v >= _P:
        v -= _P
    return v


@njit(inline="always", cache=True)
def _horner_step(acc, x, c):
    """Return a value ≡ acc·x + c (mod p), below 2**63, for any acc, x < 2**8, c < 2**61."""
    lo = (acc & _M32) * x
    y = (acc >> _S32) * x
    return lo + ((y & _M29) << _S32) + (y >> _S29) + c


@njit(inline="always", cache=True)
def _mulmod_split(a, b1, b0):
    """Return a value ≡ a·b (mod p), below 2**63, for a < 2**61, b = b1·2**32 + b0 < 2**61."""
    a1 = a >> _S32
    a0 = a & _M32
    mid = a1 * b0 + a0 * b1
    low = a0 * b0
    return _EIGHT * (a1 * b1) + ((mid & _M29) << _S32) + (mid >> _S29) + (low & _P) + (low >> _S61)


@njit(parallel=True, cache=True, nogil=True)
def _share_words(secret, words, out, offset):
    """Evaluate f(x) = secret + Σ_k c_k x^k at x = 1..n for coordinates offset .. offset + w.

    ``words`` is (t - 1, w) raw keystream for those coordinates, c_k[offset + i] =
    words[k - 1, i] & p; results go to out[:, offset + i] of the (n, d) output. Returns
    (words whose 61 low bits equal p, secret values >= p): the caller rejects and replaces
    such words and refuses such secrets. Both are counted, not acted on, here.
    """
    n = out.shape[0]
    degree, width_all = words.shape
    nblocks = (width_all + BLOCK - 1) // BLOCK
    rejected = 0
    bad_secret = 0
    for b in prange(nblocks):
        lo = b * BLOCK
        width = min(BLOCK, width_all - lo)
        base = offset + lo
        # Slices, then 0-based loops: indexing with an offset (row[lo + i]) defeats LLVM's
        # vectorizer (negative-index wraparound) and measured 3x slower.
        sec = secret[base : base + width]
        acc = np.empty(width, dtype=np.uint64)
        for i in range(width):
            bad_secret += sec[i] >= _P
        for k in range(degree):
            row = words[k, lo : lo + width]
            for i in range(width):
                rejected += (row[i] & _P) == _P
        for xi in range(1, n + 1):
            x = np.uint64(xi)
            top = words[degree - 1, lo : lo + width]
            for i in range(width):
                acc[i] = top[i] & _P
            for k in range(degree - 2, -1, -1):
                row = words[k, lo : lo + width]
                for i in range(width):
                    acc[i] = _horner_step(acc[i], x, row[i] & _P)
            dest = out[xi - 1, base : base + width]
            for i in range(width):
                dest[i] = _canonical(_horner_step(acc[i], x, sec[i]))
    return rejected, bad_secret


@njit(parallel=True, cache=True, nogil=True)
def _lagrange_combine4(out, s0, s1, s2, s3, weights, accumulate):
    """out = (out if accumulate else 0) + Σ_j weights[j]·s_j (mod p), four vectors at once.

    Fewer than four holders are passed by repeating a vector with weight 0; more are done in
    groups of four with ``accumulate`` set. Returns how many share values were outside the
    field (>= p).
    """
    d = out.shape[0]
    w0h = weights[0] >> _S32
    w0l = weights[0] & _M32
    w1h = weights[1] >> _S32
    w1l = weights[1] & _M32
    w2h = weights[2] >> _S32
    w2l = weights[2] & _M32
    w3h = weights[3] >> _S32
    w3l = weights[3] & _M32
    nblocks = (d + BLOCK - 1) // BLOCK
    bad = 0
    for b in prange(nblocks):
        lo = b * BLOCK
        hi = min(lo + BLOCK, d)
        v0 = s0[lo:hi]
        v1 = s1[lo:hi]
        v2 = s2[lo:hi]
        v3 = s3[lo:hi]
        dest = out[lo:hi]
        for i in range(hi - lo):
            a0 = v0[i]
            a1 = v1[i]
            a2 = v2[i]
            a3 = v3[i]
            bad += (a0 >= _P) + (a1 >= _P) + (a2 >= _P) + (a3 >= _P)
            # Each folded term is < 2**61 + 4, so the sum of five stays below 2**64.
            total = (
                (dest[i] if accumulate else _ZERO)
                + _fold(_mulmod_split(a0 & _P, w0h, w0l))
                + _fold(_mulmod_split(a1 & _P, w1h, w1l))
                + _fold(_mulmod_split(a2 & _P, w2h, w2l))
                + _fold(_mulmod_split(a3 & _P, w3h, w3l))
            )
            dest[i] = _canonical(total)
    return bad


@njit(parallel=True, cache=True, nogil=True)
def _add_scaled(out, share, weight):
    """out = out + weight·share (mod p) in place, for one weight < p (a member weighting a
    client's share by its sample count). Returns how many share values were outside the field."""
    d = out.shape[0]
    wh = weight >> _S32
    wl = weight & _M32
    nblocks = (d + BLOCK - 1) // BLOCK
    bad = 0
    for b in prange(nblocks):
        lo = b * BLOCK
        hi = min(lo + BLOCK, d)
        v = share[lo:hi]
        dest = out[lo:hi]
        for i in range(hi - lo):
            a = v[i]
            bad += a >= _P
            dest[i] = _canonical(dest[i] + _fold(_mulmod_split(a & _P, wh, wl)))
    return bad


@njit(inline="always", cache=True)
def _fold_split_sums(ll_lo, ll_hi, mid_lo, mid_hi, hh_lo, hh_hi):
    """A value < 2**63 ≡ Σ a·w (mod p) from one block's sums of the halves of the 32 x 32-bit
    partial products a0·w0 (ll), a1·w0 + a0·w1 (mid) and a1·w1 (hh), with ``2**64 ≡ 8``."""
    low = ll_lo + _EIGHT * (mid_hi + hh_lo)  # < 2**47
    high = ll_hi + mid_lo + _EIGHT * hh_hi  # < 2**46; high·2**32 ≡ (high >> 29) + (high mod 2**29)·2**32
    return _fold(low + (high >> _S29) + ((high & _M29) << _S32))


@njit(inline="always", cache=True)
def _block_dot(vector, weights):
    """(A value < 2**63 ≡ Σ weights[i]·vector[i] (mod p), count of vector values >= p) for one block
    (at most 2**11 values, each weight < 2**61 + 8): :func:`_project`'s carry-free sums of the
    partial products, which LLVM vectorizes."""
    ll_lo = _ZERO
    ll_hi = _ZERO
    mid_lo = _ZERO
    mid_hi = _ZERO
    hh_lo = _ZERO
    hh_hi = _ZERO
    bad = 0
    for i in range(vector.size):
        a = vector[i]
        bad += a >= _P
        a = a & _P
        w = weights[i]
        a1 = a >> _S32
        a0 = a & _M32
        w1 = w >> _S32  # <= 2**29
        w0 = w & _M32
        ll = a0 * w0
        mid = a1 * w0 + a0 * w1  # < 2**62
        hh = a1 * w1  # < 2**58
        ll_lo += ll & _M32
        ll_hi += ll >> _S32
        mid_lo += mid & _M32
        mid_hi += mid >> _S32
        hh_lo += hh & _M32
        hh_hi += hh >> _S32
    return _fold_split_sums(ll_lo, ll_hi, mid_lo, mid_hi, hh_lo, hh_hi), bad


@njit(parallel=True, cache=True, nogil=True)
def _project(r, share):
    """Return (Σ_i r[i]·share[i] mod p, count of share values >= p); r must be in [0, p).

    Each 61 x 61-bit product is cut into its 32 x 32-bit partial products, and the halves of
    those are summed in six plain accumulators over a block (each term < 2**32, a block adds
    BLOCK = 2**11 of them): no reduction and no carried dependency inside the loop, so LLVM
    vectorizes it (32 x 32 -> 64-bit multiplies are one SIMD instruction). Per block, with
    ``2**64 ≡ 8``: Σ r·s ≡ ll_lo + 8·mid_hi + 8·hh_lo + 2**32·(ll_hi + mid_lo + 8·hh_hi).
    """
    d = share.shape[0]
    nblocks = (d + BLOCK - 1) // BLOCK
    partial = np.zeros(nblocks, dtype=np.uint64)
    bad = 0
    for b in prange(nblocks):
        lo = b * BLOCK
        hi = min(lo + BLOCK, d)
        vector = share[lo:hi]
        weights = r[lo:hi]
        partial[b], block_bad = _block_dot(vector, weights)
        bad += block_bad
    total = np.uint64(0)
    for b in range(nblocks):
        total = _fold(total + partial[b])
    return _canonical(total), bad


@njit(parallel=True, cache=True, nogil=True)
def _project_and_square(r, share):
    """Return (Σ r[i]·share[i] mod p, Σ share[i]² mod p, count of share values >= p) in one pass.

    :func:`_project`'s block sums, with the square's partial products (a0², 2·a0·a1 < 2**62,
    a1² < 2**58) summed alongside: the share is read once for both (the committee's checks
    need the projection and the squared norm of every share).
    """
    d = share.shape[0]
    nblocks = (d + BLOCK - 1) // BLOCK
    partial = np.zeros(nblocks, dtype=np.uint64)
    partial_sq = np.zeros(nblocks, dtype=np.uint64)
    bad = 0
    for b in prange(nblocks):
        lo = b * BLOCK
        hi = min(lo + BLOCK, d)
        vector = share[lo:hi]
        weights = r[lo:hi]
        ll_lo = _ZERO
        ll_hi = _ZERO
        mid_lo = _ZERO
        mid_hi = _ZERO
        hh_lo = _ZERO
        hh_hi = _ZERO
        sl_lo = _ZERO
        sl_hi = _ZERO
        sm_lo = _ZERO
        sm_hi = _ZERO
        sh_lo = _ZERO
        sh_hi = _ZERO
        for i in range(hi - lo):
            a = vector[i]
            bad += a >= _P
            a = a & _P
            w = weights[i]
            a1 = a >> _S32
            a0 = a & _M32
            w1 = w >> _S32
            w0 = w & _M32
            ll = a0 * w0
            mid = a1 * w0 + a0 * w1  # < 2**62
            hh = a1 * w1  # < 2**58
            ll_lo += ll & _M32
            ll_hi += ll >> _S32
            mid_lo += mid & _M32
            mid_hi += mid >> _S32
            hh_lo += hh & _M32
            hh_hi += hh >> _S32
            sl = a0 * a0
            sm = (a0 * a1) << np.uint64(1)  # < 2**62
            sh = a1 * a1  # < 2**58
            sl_lo += sl & _M32
            sl_hi += sl >> _S32
            sm_lo += sm & _M32
            sm_hi += sm >> _S32
            sh_lo += sh & _M32
            sh_hi += sh >> _S32
        partial[b] = _fold_split_sums(ll_lo, ll_hi, mid_lo, mid_hi, hh_lo, hh_hi)
        partial_sq[b] = _fold_split_sums(sl_lo, sl_hi, sm_lo, sm_hi, sh_lo, sh_hi)
    total = np.uint64(0)
    total_sq = np.uint64(0)
    for b in range(nblocks):
        total = _fold(total + partial[b])
        total_sq = _fold(total_sq + partial_sq[b])
    return _canonical(total), _canonical(total_sq), bad


@njit(parallel=True, cache=True, nogil=True)
def _project_square_and_add(r, share, out, weight):
    """:func:`_project_and_square` and :func:`_add_scaled` in one pass: return (Σ r·share, Σ share²,
    count of values >= p) and add ``weight``·share to ``out`` in place. A member checks each share
    and adds it to its sum; the sum's read and write bound the pass, so the checks' arithmetic
    rides along at little extra cost."""
    d = share.shape[0]
    wh = weight >> _S32
    wl = weight & _M32
    nblocks = (d + BLOCK - 1) // BLOCK
    partial = np.zeros(nblocks, dtype=np.uint64)
    partial_sq = np.zeros(nblocks, dtype=np.uint64)
    bad = 0
    for b in prange(nblocks):
        lo = b * BLOCK
        hi = min(lo + BLOCK, d)
        vector = share[lo:hi]
        weights = r[lo:hi]
        dest = out[lo:hi]
        ll_lo = _ZERO
        ll_hi = _ZERO
        mid_lo = _ZERO
        mid_hi = _ZERO
        hh_lo = _ZERO
        hh_hi = _ZERO
        sl_lo = _ZERO
        sl_hi = _ZERO
        sm_lo = _ZERO
        sm_hi = _ZERO
        sh_lo = _ZERO
        sh_hi = _ZERO
        for i in range(hi - lo):
            a = vector[i]
            bad += a >= _P
            a = a & _P
            w = weights[i]
            a1 = a >> _S32
            a0 = a & _M32
            w1 = w >> _S32
            w0 = w & _M32
            ll = a0 * w0
            mid = a1 * w0 + a0 * w1  # < 2**62
            hh = a1 * w1  # < 2**58
            ll_lo += ll & _M32
            ll_hi += ll >> _S32
            mid_lo += mid & _M32
            mid_hi += mid >> _S32
            hh_lo += hh & _M32
            hh_hi += hh >> _S32
            sl = a0 * a0
            sm = (a0 * a1) << np.uint64(1)  # < 2**62
            sh = a1 * a1  # < 2**58
            sl_lo += sl & _M32
            sl_hi += sl >> _S32
            sm_lo += sm & _M32
            sm_hi += sm >> _S32
            sh_lo += sh & _M32
            sh_hi += sh >> _S32
            dest[i] = _canonical(dest[i] + _fold(_mulmod_split(a, wh, wl)))
        partial[b] = _fold_split_sums(ll_lo, ll_hi, mid_lo, mid_hi, hh_lo, hh_hi)
        partial_sq[b] = _fold_split_sums(sl_lo, sl_hi, sm_lo, sm_hi, sh_lo, sh_hi)
    total = np.uint64(0)
    total_sq = np.uint64(0)
    for b in range(nblocks):
        total = _fold(total + partial[b])
        total_sq = _fold(total_sq + partial_sq[b])
    return _canonical(total), _canonical(total_sq), bad


@njit(parallel=True, cache=True, nogil=True)
def _table_projection(words, tables, share):
    """Return (sum_j w_j share_j mod p, share values >= p) with w_j = sum_b tables[b, byte b of
    words[j]] (byte b: bits 8b..8b+7): the 8 bytes of a coordinate's 64-bit word pick one entry of
    each of 8 tables (entries below 2**61 - 1, so the 8 add up below 2**64). Eight lookups replace
    63 multiplications: the wrap-around check's combined projection (:mod:`fedtss.wraparound`).

    Two passes per block: the lookups into a block of weights (folded below 2**61 + 8, which the
    split product takes), then :func:`_block_dot`, as in :func:`_project`, which LLVM
    vectorizes (one pass with a running modular sum did not vectorize and took 1.4-1.5x as long)."""
    d = share.size
    nblocks = (d + BLOCK - 1) // BLOCK
    partial = np.zeros(nblocks, dtype=np.uint64)
    outside = 0
    byte = np.uint64(255)
    for b in prange(nblocks):
        lo = b * BLOCK
        width = min(BLOCK, d - lo)
        vector = share[lo : lo + width]
        block_words = words[lo : lo + width]
        weights = np.empty(width, dtype=np.uint64)
        for i in range(width):
            x = block_words[i]
            weights[i] = _fold(tables[0, x & byte] + tables[1, (x >> np.uint64(8)) & byte]
                               + tables[2, (x >> np.uint64(16)) & byte] + tables[3, (x >> np.uint64(24)) & byte]
                               + tables[4, (x >> np.uint64(32)) & byte] + tables[5, (x >> np.uint64(40)) & byte]
                               + tables[6, (x >> np.uint64(48)) & byte] + tables[7, x >> np.uint64(56)])
        partial[b], bad = _block_dot(vector, weights)
        outside += bad
    total = _ZERO
    for b in range(nblocks):
        total = _fold(total + partial[b])
    return _canonical(total), outside


@njit(parallel=True, cache=True, nogil=True)
def _ternary_projections(words, values):
    """Return the 63 integer projections y_k = sum_j (bit k - bit 0 of words[j]) * values[j],
    k = 1..63 (int64: the caller bounds |values| so that no sum overflows)."""
    d = values.size
    nblocks = (d + BLOCK - 1) // BLOCK
    partial = np.zeros((nblocks, 63), dtype=np.int64)
    for b in prange(nblocks):
        lo = b * BLOCK
        width = min(BLOCK, d - lo)
        acc = np.zeros(63, dtype=np.int64)
        for i in range(width):
            word = words[lo + i]
            v = values[lo + i]
            base = np.int64(word & np.uint64(1)) * v
            for k in range(63):
                acc[k] += np.int64((word >> np.uint64(k + 1)) & np.uint64(1)) * v - base
        partial[b, :] = acc
    out = np.zeros(63, dtype=np.int64)
    for b in range(nblocks):
        out += partial[b, :]
    return out


def _dynamically_scheduled(kernel):
    """Wrap a parallel kernel so its blocks are handed out CHUNK_BLOCKS at a time."""

    def run(*args):
        previous = set_parallel_chunksize(CHUNK_BLOCKS)
        try:
            return kernel(*args)
        finally:
            set_parallel_chunksize(previous)

    run.__name__ = kernel.__name__.lstrip("_")
    run.__doc__ = kernel.__doc__
    return run


share_words = _dynamically_scheduled(_share_words)
lagrange_combine4 = _dynamically_scheduled(_lagrange_combine4)
add_scaled = _dynamically_scheduled(_add_scaled)
project_square_and_add = _dynamically_scheduled(_project_square_and_add)
project = _dynamically_scheduled(_project)
project_and_square = _dynamically_scheduled(_project_and_square)
table_projection = _dynamically_scheduled(_table_projection)
ternary_projections = _dynamically_scheduled(_ternary_projections)
