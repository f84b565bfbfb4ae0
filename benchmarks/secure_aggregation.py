"""Secure-aggregation benchmark, Shamir vs masked: `python -m benchmarks.secure_aggregation [--quick]`.

One round of the two aggregation modes, run with the pure functions the agents use (no chain,
no store, no processes), for d in {10^5, 10^6, 10^7} parameters, {10, 100} clients and
(n, t) in {(5, 3), (10, 6)}:

* ``shamir`` (today's mode, ``agents.client.prepare_update``): a client quantizes its update,
  Shamir-shares it t-of-n (:func:`fedtss.shamir.share_vector`), encodes and seals share j to
  member j and writes the manifest naming the n sealed shares;
* ``masked`` (:mod:`fedtss.masking`, ``agents.client.prepare_masked_update``) in the ring
  Z_(2^48): a client quantizes, converts to ring words, computes one pairwise seed with every
  other client (X25519 + HKDF), masks its vector once, stores it (``encode_ring_vector``),
  Shamir-shares its seeds (self seed + one per other client, in ``seed_order``) and seals
  member j's row of them; its manifest is a real :class:`fedtss.formats.Manifest` with
  ``masked_cid`` and ``modulus_bits`` (n share CIDs + the masked vector's CID);
* ``masked-32``: the masked mode in Z_(2^32), once, at d = 10^6, 10 clients, (10, 6), with the
  largest ``max_samples`` (from 200, halved) that :func:`fedtss.quantize.check_capacity` accepts
  for 32 bits; the config used is in the record (``quantization``).

What is measured, per record:

* ``client_seconds``: one client's whole protect step, from its float32 update in memory to
  its sealed blobs, CIDs and encoded manifest (the per-round pairwise seeds included; the
  clients' and members' X25519 key pairs are registered keys, made before timing). The median
  over the clients actually run; ``client_phase_seconds`` splits it (medians of each phase).
* ``member_seconds``: member 1's whole round work, ``member_step1_seconds`` +
  ``member_step2_seconds``. Step 1, for every client's contribution in turn: parse and check
  its manifest, open its sealed share and add it mod p (shamir), or decode its masked vector
  and add it mod 2^b in place, ``&`` after each add, and open its sealed seed row (masked);
  then encode what the member posts (its aggregate share, or its reveal of the seeds
  :func:`fedtss.masking.seeds_to_reveal` names) as an aggregate-share blob. Step 2: decode the
  other n - 1 members' posted blobs; shamir: :func:`fedtss.shamir.reconstruct_checked` over all
  n (as the agents do); masked: :func:`fedtss.masking.reconstruct_seeds` over all n reveals,
  :func:`fedtss.masking.unmask_sum` and :func:`fedtss.masking.ring_to_field`. Both stop at the
  field-encoded sum, which both modes dequantize with the same function (not timed). Every
  client is included (no drop-outs), so the masked member removes one self mask per client and
  no pairwise mask; drop-outs would add one mask per (included, dropped) pair.
* ``member_peak_bytes``: the most memory tracemalloc saw allocated during a second, untimed
  run of the member's two steps (numpy buffers included), in which every blob the member
  reads is first copied, as a store's ``get`` returns fresh bytes: so it counts the blob being
  read in step 1 (one at a time) and the n - 1 posted blobs held together in step 2. The timed
  run reads the blobs in place (the benchmark's in-memory stand-in for the store).
* ``upload_bytes_per_client``: the ``len()`` of every blob one client stores (its n sealed
  shares, or its masked vector and n sealed seed rows, plus its encoded manifest);
  ``upload_ratio`` divides it by 4·d (a float32 update).
* ``member_download_bytes``: what member 1 fetches: from every client its manifest and its
  piece (its sealed share, or the masked vector and its sealed seed row), and the other n - 1
  members' posted blobs. (The masked agent today fetches every masked vector twice, once to
  check it in step 1 and once to sum it in step 2; this counts it once, as step 1 sums it.)
* ``store_bytes_per_round``: every client's upload plus the n members' posted blobs.
* ``checked``: the member's result was compared with the exact field sum of the quantized
  updates and was equal (shamir also checks member 1's aggregate share against the sum of the
  share rows the clients made for it).

What is replayed. When clients·d <= 10^7 every client is run for real, one after another
(``clients_run`` = ``clients``, ``replayed`` = 0), and member 1's piece of each is kept (at
most about 80 MB) to time the member afterwards. Above that, only 3 clients are run
(``clients_run`` = 3, their median is ``client_seconds``) and the member is timed over all
``clients`` contributions by replaying those three uploads in turn: contribution k is client
k mod 3's manifest and piece, read at allowlist position k (``replayed`` = clients - 3). The
member's work per contribution is the same bytes and the same operations. For shamir the
result is still a sharing of the sum of the replayed vectors and is checked against that sum;
for the masked mode the pairwise masks of the replayed copies do not cancel, so the unmasked
sum means nothing and ``checked`` is false. The other members' posted blobs are computed from
the clients' plaintext rows (sums of share rows, reveals of seed rows), untimed. No full upload
of more than one client is ever held at once: after a client is timed, only member 1's piece
and the bookkeeping for the other members' blobs are kept.

Bytes are counted from the real blobs. The figures are written to
``benchmarks/results/secure_aggregation.json`` (a list of records, one per mode and case; with
``--quick``, to a temporary file or ``--output``) and never asserted in tests. The machine is
shared, so ``loadavg_1min`` records how busy it was.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from fedtss import field as gf
from fedtss import masking, shamir
from fedtss.cid import compute_cid
from fedtss.errors import ConfigError
from fedtss.formats import (
    Manifest,
    RoundTerms,
    VectorKind,
    check_manifest,
    decode_field_vector,
    encode_field_vector,
    encode_manifest,
    field_vector_bytes,
    parse_manifest,
)
from fedtss.quantize import QuantizationConfig, check_capacity, quantize_update
from fedtss.sealing import ShareContext, keypair_from_seed, open_share, seal_share

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "secure_aggregation.json"
QUICK_PATH = Path(tempfile.gettempdir()) / "secure_aggregation.quick.json"
DIMENSIONS = (10**5, 10**6, 10**7)
CLIENT_COUNTS = (10, 100)
HOLDERS_AND_THRESHOLDS = ((5, 3), (10, 6))
MASKED_BITS = 48
SMALL_RING_BITS = 32
REAL_WORK_LIMIT = 10**7  # clients * d above this: run REPLAY_CLIENTS clients, replay them
REPLAY_CLIENTS = 3
_CHAIN_ID = 31337
_CONTRACT = "0x" + "11" * 20
_ROUND = 1
_UPDATE_SCALE = 0.01  # N(0, 0.01^2) per coordinate: norms ~ 0.01 sqrt(d), clipped at 10 for d = 10^7


# ----------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """One round to measure: the mode, the ring (None: the field), sizes and quantization."""

    mode: str
    d: int
    clients: int
    n: int
    t: int
    bits: int | None
    quantization: QuantizationConfig

    @property
    def clients_run(self) -> int:
        return self.clients if self.clients * self.d <= REAL_WORK_LIMIT else min(REPLAY_CLIENTS, self.clients)

    @property
    def terms(self) -> RoundTerms:
        return RoundTerms(_CHAIN_ID, _CONTRACT, _ROUND, self.n, self.t, self.d + 1, self.quantization, self.bits)


def small_ring_quantization(clients: int, bits: int = SMALL_RING_BITS) -> QuantizationConfig:
    """Clip 10, 16 fractional bits, ``clients`` clients and the largest max_samples from 200
    down (halving) whose sums fit ``bits``-bit words."""
    samples = 200
    while True:
        config = QuantizationConfig(clip_norm=10.0, fractional_bits=16, max_clients=clients, max_samples=samples)
        try:
            check_capacity(config, modulus_bits=bits)
            return config
        except ConfigError:
            if samples == 1:
                raise
            samples //= 2


def make_case(mode: str, d: int, clients: int, n: int, t: int) -> Case:
    if mode == "shamir":
        return Case(mode, d, clients, n, t, None, QuantizationConfig(clip_norm=10.0))
    if mode == "masked":
        config = QuantizationConfig(clip_norm=10.0)
        check_capacity(config, modulus_bits=MASKED_BITS)
        return Case(mode, d, clients, n, t, MASKED_BITS, config)
    if mode == "masked-32":
        return Case(mode, d, clients, n, t, SMALL_RING_BITS, small_ring_quantization(clients))
    raise ValueError(f"unknown mode {mode!r}")


def full_cases() -> list[Case]:
    cases = [make_case(mode, d, clients, n, t)
             for d in DIMENSIONS for clients in CLIENT_COUNTS for n, t in HOLDERS_AND_THRESHOLDS
             for mode in ("shamir", "masked")]
    cases.append(make_case("masked-32", 10**6, 10, 10, 6))
    return cases


def quick_cases() -> list[Case]:
    return [make_case(mode, 10**5, 10, n, t) for n, t in HOLDERS_AND_THRESHOLDS
            for mode in ("shamir", "masked", "masked-32")]


# ----------------------------------------------------------------------- the participants


def client_address(position: int) -> str:
    return "0x" + f"{position + 1:040x}"


def client_samples(position: int, config: QuantizationConfig) -> int:
    return min(10 + position, config.max_samples)


def client_update(d: int, position: int) -> NDArray[np.float32]:
    rng = np.random.default_rng(1_000_003 * d + position)
    return (rng.standard_normal(d, dtype=np.float32) * np.float32(_UPDATE_SCALE)).astype(np.float32)


@dataclass(frozen=True)
class Keys:
    """The committee's sealing key pairs and the clients' registered masking key pairs."""

    member_private: tuple[bytes, ...] = field(repr=False)
    member_public: tuple[bytes, ...] = field(repr=False)
    client_private: tuple[bytes, ...] = field(repr=False)
    client_public: tuple[bytes, ...] = field(repr=False)

    @classmethod
    def make(cls, members: int, clients: int) -> Keys:
        member = [keypair_from_seed(os.urandom(32)) for _ in range(members)]
        client = [keypair_from_seed(os.urandom(32)) for _ in range(clients)]
        return cls(tuple(k for k, _ in member), tuple(p for _, p in member),
                   tuple(k for k, _ in client), tuple(p for _, p in client))


@dataclass
class Protected:
    """What one client's protect step made: the blobs it stores and, for the benchmark's
    bookkeeping only, its quantized vector and the plaintext rows it sealed (row j - 1: member j)."""

    vector: NDArray[np.uint64] = field(repr=False)
    sealed: tuple[bytes, ...] = field(repr=False)
    manifest_blob: bytes = field(repr=False)
    masked_blob: bytes | None = field(repr=False)
    rows: NDArray[np.uint64] = field(repr=False)
    phases: dict[str, float]

    @property
    def upload_bytes(self) -> int:
        return (sum(map(len, self.sealed)) + len(self.manifest_blob)
                + (0 if self.masked_blob is None else len(self.masked_blob)))


def _seal_rows(rows: NDArray[np.uint64], case: Case, keys: Keys, position: int) -> tuple[bytes, ...]:
    client = client_address(position)
    return tuple(
        seal_share(encode_field_vector(rows[j - 1], kind=VectorKind.SHARE), keys.member_public[j - 1],
                   ShareContext(_CHAIN_ID, _CONTRACT, _ROUND, client, j), ephemeral_seed=os.urandom(32))
        for j in range(1, case.n + 1)
    )


def protect(case: Case, keys: Keys, position: int, delta: NDArray[np.float32]) -> Protected:
    """One client's protect step (as ``agents.client.prepare_update`` / ``prepare_masked_update``)."""
    marks = [time.perf_counter()]
    vector = quantize_update(delta, client_samples(position, case.quantization), case.quantization)
    marks.append(time.perf_counter())
    masked_blob = None
    if case.bits is None:
        rows = shamir.share_vector(vector, threshold=case.t, holders=case.n, key=os.urandom(32))
    else:
        ring = masking.field_to_ring(vector, case.bits)
        context = masking.PairContext(_CHAIN_ID, _CONTRACT, _ROUND)
        pairs = {peer: masking.pairwise_seed(keys.client_private[position], keys.client_public[peer],
                                             own_index=position, peer_index=peer, context=context)
                 for peer in range(case.clients) if peer != position}
        self_seed = os.urandom(32)
        masked = masking.mask_update(ring, bits=case.bits, own_index=position, self_seed=self_seed, pairwise_seeds=pairs)
        del ring
        marks.append(time.perf_counter())
        masked_blob = masking.encode_ring_vector(masked, case.bits)
        del masked
        marks.append(time.perf_counter())
        order = masking.seed_order(position, range(case.clients))
        rows = masking.share_seeds([self_seed, *(pairs[ref.peer] for ref in order[1:])],
                                   threshold=case.t, holders=case.n, key=os.urandom(32))
    marks.append(time.perf_counter())
    sealed = _seal_rows(rows, case, keys, position)
    marks.append(time.perf_counter())
    manifest = Manifest(
        chain_id=_CHAIN_ID, contract=_CONTRACT, round=_ROUND, client=client_address(position), n=case.n, t=case.t,
        vector_length=vector.size, quantization=case.quantization,
        share_cids=tuple(compute_cid(blob) for blob in sealed),
        masked_cid=None if masked_blob is None else compute_cid(masked_blob), modulus_bits=case.bits,
    )
    manifest_blob = encode_manifest(manifest)
    marks.append(time.perf_counter())
    names = (("quantize", "share", "seal", "cid+manifest") if case.bits is None else
             ("quantize", "pair_seeds+mask", "encode_masked", "share_seeds", "seal", "cid+manifest"))
    phases = {name: marks[k + 1] - marks[k] for k, name in enumerate(names)}
    phases["total"] = marks[-1] - marks[0]
    return Protected(vector, sealed, manifest_blob, masked_blob, rows, phases)


@dataclass(frozen=True)
class Piece:
    """What member 1 fetches from one client: the manifest, its sealed blob and the masked vector."""

    client: str
    manifest_blob: bytes = field(repr=False)
    sealed: bytes = field(repr=False)
    masked_blob: bytes | None = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        return len(self.manifest_blob) + len(self.sealed) + (0 if self.masked_blob is None else len(self.masked_blob))


def reveal_rows(rows: Mapping[int, NDArray[np.uint64]], clients: int) -> NDArray[np.uint64]:
    """A member's shares of the seeds to reveal when ``rows``' clients (allowlist position ->
    the member's seed row from that client) are the set, in ``seeds_to_reveal``'s order."""
    everyone = range(clients)
    refs = masking.seeds_to_reveal(rows, everyone)
    parts, start = [], 0
    while start < len(refs):
        client, end = refs[start].client, start
        while end < len(refs) and refs[end].client == client:
            end += 1
        parts.append(masking.select_seed_shares(rows[client], masking.seed_order(client, everyone), refs[start:end]))
        start = end
    return np.concatenate(parts)


# ------------------------------------------------------------------------------ member 1


@dataclass
class MemberResult:
    step1_seconds: float
    step2_seconds: float
    own_blob: bytes = field(repr=False)
    own_aggregate: NDArray[np.uint64] | None = field(repr=False)  # shamir: its aggregate share
    field_sum: NDArray[np.uint64] = field(repr=False)


def _in_place(blob: bytes) -> bytes:
    return blob


def _fetched(blob: bytes) -> bytes:
    return bytes(memoryview(blob))  # a fresh copy, as a store's get returns


def run_member(case: Case, keys: Keys, contributions: Sequence[Piece],
               others: Mapping[int, bytes], fetch=_in_place) -> MemberResult:
    """Member 1's round: step 1 over ``contributions`` (contribution k is allowlist position k),
    step 2 with the other members' posted blobs ``others`` (member index -> blob). ``fetch``
    is applied to every blob read: the timed run reads them in place, the peak run copies them."""
    terms, private_key, length = case.terms, keys.member_private[0], case.d + 1
    start = time.perf_counter()
    own_aggregate = None
    if case.bits is None:
        plain_size = field_vector_bytes(length)
        total = np.zeros(length, dtype=np.uint64)
        for piece in contributions:
            check_manifest(parse_manifest(fetch(piece.manifest_blob)), client=piece.client, terms=terms)
            context = ShareContext(_CHAIN_ID, _CONTRACT, _ROUND, piece.client, 1)
            share = decode_field_vector(open_share(fetch(piece.sealed), private_key, context), kind=VectorKind.SHARE,
                                        max_bytes=plain_size, expected_length=length)
            total = gf.add(total, share)
            del share
        own_aggregate = total
        own = total
    else:
        row_length = masking.LIMBS_PER_SEED * case.clients
        row_size = field_vector_bytes(row_length)
        total = np.zeros(length, dtype=np.uint64)
        seed_rows: dict[int, NDArray[np.uint64]] = {}
        for position, piece in enumerate(contributions):
            check_manifest(parse_manifest(fetch(piece.manifest_blob)), client=piece.client, terms=terms)
            vector = masking.decode_ring_vector(fetch(piece.masked_blob), bits=case.bits, expected_length=length)
            np.add(total, vector, out=total)  # mod 2^64; unmask_sum reduces mod 2^b once, as the agents do
            del vector
            context = ShareContext(_CHAIN_ID, _CONTRACT, _ROUND, piece.client, 1)
            seed_rows[position] = decode_field_vector(open_share(fetch(piece.sealed), private_key, context),
                                                      kind=VectorKind.SHARE, max_bytes=row_size,
                                                      expected_length=row_length)
        own = reveal_rows(seed_rows, case.clients)
    own_blob = encode_field_vector(own, kind=VectorKind.AGGREGATE_SHARE)
    middle = time.perf_counter()
    posted = {1: own}
    for member, blob in others.items():
        posted[member] = decode_field_vector(fetch(blob), kind=VectorKind.AGGREGATE_SHARE, max_bytes=len(blob),
                                             expected_length=own.size)
    if case.bits is None:
        field_sum = shamir.reconstruct_checked(posted, threshold=case.t, key=os.urandom(32)).secret
    else:
        refs = masking.seeds_to_reveal(range(case.clients), range(case.clients))
        seeds, _ = masking.reconstruct_seeds(posted, threshold=case.t, key=os.urandom(32))
        ring_sum = masking.unmask_sum(total, bits=case.bits, seeds=dict(zip(refs, seeds, strict=True)))
        field_sum = masking.ring_to_field(ring_sum, case.bits)
    end = time.perf_counter()
    return MemberResult(middle - start, end - middle, own_blob, own_aggregate, field_sum)


def peak_allocated(function) -> int:
    """Peak bytes allocated (beyond what exists already) while ``function`` runs."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------------------- one case


def replay_counts(clients: int, run: int) -> list[int]:
    """How many of the ``clients`` contributions replay each of the ``run`` real clients."""
    return [len(range(i, clients, run)) for i in range(run)]


def weighted(vector: NDArray[np.uint64], count: int) -> NDArray[np.uint64]:
    """``count`` times ``vector`` mod p, row by row (mul_scalar's temporaries stay one row big)."""
    if count == 1:
        return vector
    if vector.ndim == 1:
        return gf.mul_scalar(vector, count)
    return np.stack([gf.mul_scalar(row, count) for row in vector])


def measure_case(case: Case, *, peak: bool = True) -> dict[str, object]:
    """Every figure of one mode and case (see the module docstring)."""
    run = case.clients_run
    counts = replay_counts(case.clients, run)
    keys = Keys.make(case.n, case.clients if case.bits is not None else 0)
    length = case.d + 1
    pieces: list[Piece] = []
    uploads: list[int] = []
    phases: list[dict[str, float]] = []
    expected = np.zeros(length, dtype=np.uint64)
    row_sums = None  # shamir: the n members' sums of their share rows (the posted aggregates)
    seed_rows: list[NDArray[np.uint64]] = []  # masked: every client's (n, 5 * clients) seed rows
    for position in range(run):
        delta = client_update(case.d, position)
        protected = protect(case, keys, position, delta)
        del delta
        phases.append(protected.phases)
        uploads.append(protected.upload_bytes)
        pieces.append(Piece(client_address(position), protected.manifest_blob, protected.sealed[0],
                            protected.masked_blob))
        expected = gf.add(expected, weighted(protected.vector, counts[position]))
        if case.bits is None:
            rows = weighted(protected.rows, counts[position])
            row_sums = rows.copy() if row_sums is None else gf.add(row_sums, rows)
            del rows
        else:
            seed_rows.append(protected.rows)
        del protected
    contributions = [pieces[k % run] for k in range(case.clients)]
    if case.bits is None:
        others_plain = {j: row_sums[j - 1] for j in range(2, case.n + 1)}
    else:
        others_plain = {j: reveal_rows({k: seed_rows[k % run][j - 1] for k in range(case.clients)}, case.clients)
                        for j in range(2, case.n + 1)}
    others = {j: encode_field_vector(vector, kind=VectorKind.AGGREGATE_SHARE) for j, vector in others_plain.items()}
    del others_plain
    result = run_member(case, keys, contributions, others)
    if case.bits is None:
        checked = bool(np.array_equal(result.field_sum, expected) and np.array_equal(result.own_aggregate, row_sums[0]))
    else:
        checked = run == case.clients and bool(np.array_equal(result.field_sum, expected))
    del row_sums
    member_peak = None
    if peak:
        member_peak = peak_allocated(lambda: run_member(case, keys, contributions, others, fetch=_fetched))
    posted_bytes = len(result.own_blob) + sum(map(len, others.values()))
    client_seconds = statistics.median(p["total"] for p in phases)
    upload = int(statistics.median(uploads))
    q = case.quantization
    return {
        "mode": case.mode,
        "modulus_bits": case.bits,  # None: the Shamir mode works in the field, not a ring
        "ring": "field p = 2^61 - 1" if case.bits is None else f"Z_(2^{case.bits})",
        "d": case.d,
        "n": case.n,
        "t": case.t,
        "clients": case.clients,
        "client_seconds": client_seconds,
        "client_phase_seconds": {name: statistics.median(p[name] for p in phases) for name in phases[0]},
        "member_seconds": result.step1_seconds + result.step2_seconds,
        "member_step1_seconds": result.step1_seconds,
        "member_step2_seconds": result.step2_seconds,
        "upload_bytes_per_client": upload,
        "float32_update_bytes": 4 * case.d,
        "upload_ratio": upload / (4 * case.d),
        "member_piece_bytes": pieces[0].nbytes,
        "member_download_bytes": sum(piece.nbytes for piece in contributions) + sum(map(len, others.values())),
        "posted_blob_bytes": len(result.own_blob),
        "store_bytes_per_round": sum(uploads[k % run] for k in range(case.clients)) + posted_bytes,
        "member_peak_bytes": member_peak,
        "clients_run": run,
        "replayed": case.clients - run,
        "checked": checked,
        "quantization": {"clip_norm": q.clip_norm, "fractional_bits": q.fractional_bits,
                         "max_clients": q.max_clients, "max_samples": q.max_samples},
        "loadavg_1min": os.getloadavg()[0],
    }


def warm_up(cases: Sequence[Case]) -> None:
    """Compile (or load from numba's cache) every kernel once, so no case pays for it: each
    (mode, n, t) once on a tiny vector (the kernels' signatures depend on which of the n
    posted vectors are read-only views, so on n and t)."""
    for mode, n, t in sorted({(case.mode, case.n, case.t) for case in cases}):
        measure_case(make_case(mode, 1000, 3, n, t), peak=False)


# ------------------------------------------------------------------------------ output


def _mb(value: float) -> str:
    return f"{value / 1e6:,.1f}"


def render(records: Sequence[Mapping[str, object]]) -> Table:
    table = Table(title="Secure aggregation, one round: Shamir shares vs masked vector (times: s, one run; MB = 10^6 B)")
    for column in ("mode", "bits", "d", "clients", "n/t", "run+replay", "client s", "member s", "(step1+step2)",
                   "upload/4d", "member down MB", "store MB", "member peak MB", "checked"):
        table.add_column(column, justify="right")
    for r in records:
        peak = "-" if r["member_peak_bytes"] is None else _mb(r["member_peak_bytes"])
        table.add_row(
            str(r["mode"]), "p61" if r["modulus_bits"] is None else str(r["modulus_bits"]), f"{r['d']:.0e}", str(r["clients"]), f"{r['n']}/{r['t']}",
            f"{r['clients_run']}+{r['replayed']}", f"{r['client_seconds']:.3f}", f"{r['member_seconds']:.2f}",
            f"{r['member_step1_seconds']:.2f}+{r['member_step2_seconds']:.2f}", f"{r['upload_ratio']:.2f}",
            _mb(r["member_download_bytes"]), _mb(r["store_bytes_per_round"]), peak, "yes" if r["checked"] else "no",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"only d = 10^5 and 10 clients (writes {QUICK_PATH} unless --output)")
    parser.add_argument("--output", type=Path, help="where to write the records (default: "
                        "benchmarks/results/secure_aggregation.json, or a temporary file with --quick)")
    parser.add_argument("--no-peak", action="store_true", help="skip the second, tracemalloc'd member run")
    args = parser.parse_args(argv)
    output = args.output or (QUICK_PATH if args.quick else RESULTS_PATH)
    cases = quick_cases() if args.quick else full_cases()
    console = Console(width=200)
    started = time.perf_counter()
    warm_up(cases)
    records = []
    for case in cases:
        record = measure_case(case, peak=not args.no_peak)
        records.append(record)
        console.print(f"[dim]{case.mode} d={case.d:.0e} clients={case.clients} n={case.n} t={case.t}: "
                      f"client {record['client_seconds']:.3f} s, member {record['member_seconds']:.2f} s, "
                      f"{time.perf_counter() - started:.0f} s elapsed[/dim]")
    console.print(render(records))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(records, indent=1) + "\n")
    console.print(f"wrote {output} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
