"""What the committee's checks on clients' shares cost (issue 13): member seconds, bytes, gas, transactions.

    python -m benchmarks.validation [--quick]

One member's step 1 at d = 10^6, 10 clients, n = 10, t = 6 (the issue's case), with and without the
checks (agents/client_checks.py): open each client's sealed share, decode it and add it to the
running sum (``agents.aggregator.ShareSum``; with the checks each share times its manifest's sample
count, the members weighting the unweighted updates: the same kernel, weight 1 without), and, with the checks, take its projection on the round's challenge and its sample-count
share and its norm value (a sum of squares of the update's coordinates), then decode every client's
n checks (fedtss.validation.round_verdict; with the norm limit and each client's norm claims when
the committee can check norms, n >= 2t - 1). The client's own cost of its claims (n norm values
over its shares) is timed too. Times are medians of ``REPEATS``
runs, the two kinds interleaved, on the same blobs (already in memory: the fetch is the same with
or without the checks). Gas comes from a real anvil: ``submitChecks`` by each of the n members over 10 clients, and
one ``submitComplaints``. Writes benchmarks/results/validation.json and prints a table; asserts
nothing (tests/benchmarks checks its shape on a tiny case).

The increase is the checks' own seconds (timed inside the step) plus the verdict's, over the step
without checks: the difference of the two whole steps is dominated by this machine's noise.

Targets (issue 13): at most 20% more member time, at most one extra transaction per member per round
(a complaint is a second one, sent only by a member a client cheated), upload growth at most 1%.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from numpy.typing import NDArray

from agents.aggregator import ShareSum
from agents.client import UpdateContext, prove_update
from agents.client_checks import ShareProjections, WrapCheck
from fedtss import field as gf
from fedtss.chain import Member, RoundsConfig, RoundsContract, compile_contracts, connect, deploy_rounds, dev_sealing_keypair
from fedtss.chain.devnode import dev_accounts, start_anvil
from fedtss.cid import compute_cid
from fedtss.formats import RoundTerms, VectorKind, decode_field_vector, encode_field_vector, field_vector_bytes
from fedtss.quantize import QuantizationConfig, quantize_update
from fedtss.sealing import OVERHEAD, ShareContext, keypair_from_seed, open_proof, open_share, seal_share, sealing_key
from fedtss.shamir import add_weighted_share, share_vector
from fedtss.wraparound import WrapBounds, proof_length
from fedtss.validation import (
    CHECK_BYTES,
    CheckedLayout,
    challenge_vector,
    check_tail_length,
    check_share,
    claim_norm_values,
    committee_decides_norms,
    encode_checks,
    pad_vector,
    round_verdict,
    squared_norm_limit,
)

__all__ = ["measure", "measure_gas", "measure_member", "measure_wraparound", "main"]

RESULTS = Path(__file__).resolve().parent / "results" / "validation.json"
#: The most one norm claim adds to a manifest: 19 digits, two quotes and a comma.
_CLAIM_BYTES = 22
#: What the sample count adds to a manifest: ``"samples":`` and up to 13 digits (2^40), and a comma.
_SAMPLES_BYTES = 24
REPEATS = 5
CONTRACT = "0x" + "11" * 20
MEMBER = 1
TARGETS = {"member_time_increase": 0.20, "extra_transactions_per_member": 1, "upload_increase": 0.01}


@dataclass(frozen=True)
class Case:
    d: int
    clients: int
    n: int
    t: int


def _client(address: int) -> str:
    return "0x" + f"{address + 1:040x}"


def _sealed_for_member(case: Case, quantization: QuantizationConfig, private_key: bytes, public_key: bytes,
                       *, padded: bool) -> tuple[list[bytes], NDArray[np.uint64]]:
    """Member 1's sealed share of each client's vector, and every member's checks of every client."""
    rng = np.random.default_rng(5)
    sealed, all_rows = [], []
    for i in range(case.clients):
        # with the checks, shared unweighted: the members weight it by the manifest's count
        vector = quantize_update(rng.normal(0, 0.01, case.d).astype(np.float32), 1 if padded else _samples(i),
                                 quantization)
        if padded:
            tail = [int(v) for v in rng.integers(0, gf.MODULUS, size=check_tail_length(case.t))]
            vector = pad_vector(vector, tail[-1], norm_masks=tail[:-1])
        rows = share_vector(vector, threshold=case.t, holders=case.n, key=os.urandom(32))
        context = ShareContext(31337, CONTRACT, 1, _client(i), MEMBER)
        sealed.append(seal_share(encode_field_vector(rows[MEMBER - 1], kind=VectorKind.SHARE), public_key, context,
                                 ephemeral_seed=os.urandom(32)))
        all_rows.append(rows)
    return sealed, np.stack(all_rows)


def _samples(client: int) -> int:
    return 10 + client


def _member_step(case: Case, sealed: list[bytes], private_key: bytes, length: int,
                 rho: NDArray[np.uint64] | None, layout: CheckedLayout) -> tuple[float, list[NDArray[np.uint64]]]:
    """Seconds for member 1 to open, decode and sum every client's share (and check it in the same
    pass, with ``rho``, as ``begin_checks`` does), and the opened shares."""
    started = time.perf_counter()
    summed = ShareSum.empty(length)
    checks = None if rho is None else ShareProjections(rho, layout, MEMBER, norms=committee_decides_norms(case.n, case.t))
    shares = []
    for i, blob in enumerate(sealed):
        plain = open_share(blob, private_key, ShareContext(31337, CONTRACT, 1, _client(i), MEMBER))
        share = decode_field_vector(plain, kind=VectorKind.SHARE, max_bytes=field_vector_bytes(length),
                                    expected_length=length)
        summed.add(i, share, 1 if checks is None else _samples(i), checks=checks)
        shares.append(share)
    if checks is not None:
        encode_checks(checks.posted(case.clients))
    return time.perf_counter() - started, shares


def _checks_own_seconds(shares: list[NDArray[np.uint64]], rho: NDArray[np.uint64], layout: CheckedLayout) -> float:
    """What the checks add to the step: the pass that checks and sums every share, less the pass that
    only sums them (the same shares, REPEATS interleaved runs each, medians). Timing the fused pass
    alone inside the step would count the sum's own memory traffic as the checks'."""
    scratch = np.zeros(layout.length, dtype=np.uint64)
    fused, plain = [], []

    def checked() -> None:
        for i, share in enumerate(shares):
            check_share(share, rho, layout, MEMBER, add_to=scratch, weight=_samples(i))

    def summed_only() -> None:
        for i, share in enumerate(shares):
            add_weighted_share(scratch, share, _samples(i))

    for repeat in range(-1, 3 * REPEATS):
        for runs, run in ([(fused, checked), (plain, summed_only)] if repeat % 2 else [(plain, summed_only), (fused, checked)]):
            started = time.perf_counter()
            run()
            runs.append(time.perf_counter() - started)
    return max(0.0, statistics.median(fused[2:]) - statistics.median(plain[2:]))


def measure_member(case: Case) -> dict[str, float]:
    """Member 1's step 1 without and with the checks, the checks' own seconds within it, and the
    verdict's; medians over REPEATS interleaved runs after two untimed ones.

    The increase is (checks + verdict) / the step without checks: the difference of the two
    whole steps is the same work plus this machine's noise (+-30 points between runs, in both
    directions), while the checks' own time is measured directly (:func:`_checks_own_seconds`)."""
    quantization = QuantizationConfig(clip_norm=10.0, fractional_bits=16, max_clients=case.clients, max_samples=1000)
    private_key, public_key = keypair_from_seed(bytes(range(32)))
    plain_sealed, _ = _sealed_for_member(case, quantization, private_key, public_key, padded=False)
    checked_sealed, rows = _sealed_for_member(case, quantization, private_key, public_key, padded=True)
    length = case.d + 1
    layout = CheckedLayout(update=case.d, metrics=0, threshold=case.t)
    rho = challenge_vector(os.urandom(32), layout.length)
    plain_runs, checked_runs = [], []
    for repeat in range(-2, REPEATS):  # interleaved, each first in turn: a slow spell hits both alike
        steps = [(plain_runs, plain_sealed, length, None), (checked_runs, checked_sealed, layout.length, rho)]
        for runs, sealed, size, challenge in (steps if repeat % 2 else steps[::-1]):
            runs.append(_member_step(case, sealed, private_key, size, challenge, layout))
    plain_step = statistics.median(step for step, _ in plain_runs[2:])
    checked_step = statistics.median(step for step, _ in checked_runs[2:])
    checking = _checks_own_seconds(checked_runs[-1][1], rho, layout)
    del plain_runs, checked_runs  # the opened shares
    checks = {j: [check_share(rows[i, j - 1], rho, layout, j) for i in range(case.clients)] for j in range(1, case.n + 1)}
    norms = committee_decides_norms(case.n, case.t)
    claims = {i: claim_norm_values(rows[i], layout) for i in range(case.clients)} if norms else None
    claim_runs = []
    for _ in range(REPEATS if norms else 0):  # after the untimed first pass (a fresh cache compiles its kernels)
        started = time.perf_counter()
        claims = {i: claim_norm_values(rows[i], layout) for i in range(case.clients)}
        claim_runs.append((time.perf_counter() - started) / case.clients)
    claim_seconds = statistics.median(claim_runs) if claim_runs else 0.0
    limit = squared_norm_limit(quantization, 1, update=case.d)  # one sample's: the members weight (as verdict_of)
    verdict_runs = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        verdict = round_verdict(checks, {}, clients=case.clients, threshold=case.t, max_samples=1,
                                norm_limit=(lambda _shared_count: limit) if norms else None, norm_claims=claims)
        verdict_runs.append(time.perf_counter() - started)
    verdict_seconds = statistics.median(verdict_runs)  # warm: the first run filled the Lagrange cache
    if verdict.excluded_clients or verdict.wrong_members or (norms and verdict.norm_unchecked):
        raise RuntimeError("the benchmark's honest clients and members were not all kept and checked")
    return {"member_seconds_without_checks": plain_step, "member_seconds_with_checks": checked_step + verdict_seconds,
            "check_seconds": checking, "verdict_seconds": verdict_seconds, "verdict_seconds_first": verdict_runs[0],
            "member_time_increase": (checking + verdict_seconds) / plain_step,
            # the same from the two whole steps: the same work, plus this machine's noise
            "member_time_increase_whole_steps": (checked_step + verdict_seconds - plain_step) / plain_step,
            "norms_checked": norms, "client_claim_seconds": claim_seconds}


def measure_wraparound(case: Case) -> dict[str, float]:
    """The wrap-around proof (:mod:`fedtss.wraparound`, where norms are checked): a client's
    seconds to prove its update (projections, bits, their sharing and sealing, claims), member 1's
    seconds per client to check it (the projection words, the relation's table pass over the
    update share, the bit check, the proof's projection), and the bytes it adds to an upload;
    medians of REPEATS. Raises if an honest proof does not check out."""
    quantization = QuantizationConfig(clip_norm=10.0, fractional_bits=16, max_clients=case.clients, max_samples=1000)
    update = quantize_update(np.random.default_rng(3).normal(0, 0.01, case.d).astype(np.float32), 1, quantization)[:-1]
    bounds = WrapBounds.of(quantization, update=case.d)
    layout = CheckedLayout(update=case.d, metrics=0, threshold=case.t)
    terms = RoundTerms(31337, CONTRACT, 1, case.n, case.t, layout.length, quantization, norm_claims=True, samples=True,
                       proof_length=proof_length(bounds, case.t))
    wrap = WrapCheck.for_round(os.urandom(32), terms, layout)
    assert wrap is not None
    context = UpdateContext(31337, CONTRACT, 1, _client(0))
    member_keys = [keypair_from_seed(bytes([j]) * 32)[1] for j in range(1, case.n + 1)]
    seeds = [os.urandom(32) for _ in member_keys]
    share_keys = [sealing_key(key, context.for_member(j), ephemeral_seed=seed)
                  for j, (key, seed) in enumerate(zip(member_keys, seeds), start=1)]
    share_cids = [compute_cid(bytes([j])) for j in range(case.n)]
    client_runs, member_runs = [], []
    for _ in range(REPEATS):
        started = time.perf_counter()
        proof = prove_update(update, context=context, share_cids=share_cids, share_keys=share_keys, threshold=case.t,
                             quantization=quantization, proof_seed=os.urandom(32), metrics=np.zeros(0, dtype=np.uint64))
        client_runs.append(time.perf_counter() - started)
        share = decode_field_vector(open_proof(proof.sealed[0], share_keys[0], context.for_member(1)),
                                    kind=VectorKind.PROOF_SHARE, max_bytes=len(proof.sealed[0]))
        update_share = np.ascontiguousarray(update)  # any field vector: the pass costs the same
        manifest = SimpleNamespace(client=context.client, share_cids=share_cids, proof_cids=proof.cids)
        started = time.perf_counter()
        client_proof = wrap.client_proof(manifest, share)  # type: ignore[arg-type]
        extras = wrap.extras(update_share, client_proof, MEMBER)
        member_runs.append(time.perf_counter() - started)
        if extras[2] != wrap.factor * proof.bit_claims[0] % gf.MODULUS:
            raise RuntimeError("the member's bit-check value is not the client's claim")
    sealed_share_bytes = field_vector_bytes(layout.length) + OVERHEAD
    return {"client_prove_seconds": statistics.median(client_runs),
            "member_seconds_per_client": statistics.median(member_runs),
            "proof_bytes_per_member": len(proof.sealed[0]),
            "upload_increase": len(proof.sealed[0]) / sealed_share_bytes,
            "projections": 63, "bits_per_projection": bounds.bits}


def measure_gas(case: Case) -> dict[str, int]:
    """Gas of ``submitChecks`` (median over the n members) and of one ``submitComplaints`` (a key, and
    a 96-byte proven secret), on anvil."""
    artifact = compile_contracts(build_dir=None)["FedTSSRounds"]
    node = start_anvil(accounts=1 + case.n + case.clients)
    try:
        accounts = dev_accounts(1 + case.n + case.clients)
        operator, members, clients = accounts[0], accounts[1 : 1 + case.n], accounts[1 + case.n :]
        config = RoundsConfig(
            committee=tuple(Member(m.address, dev_sealing_keypair(m.address)[1]) for m in members),
            threshold=case.t, clients=tuple(c.address for c in clients), min_clients=2,
            target_clients=case.clients, collection_period=600, aggregation_period=600, check_period=60,
        )
        w3 = connect(node.url)
        address, _ = deploy_rounds(w3, operator, artifact, config)
        rounds = RoundsContract(w3, address, artifact.abi)
        rounds.start_training(operator, compute_cid(b"model"), 1)
        for i, client in enumerate(clients):
            rounds.submit_update(client, 1, compute_cid(f"manifest-{i}".encode()))
        rng = np.random.default_rng(7)  # field elements as posted: almost every calldata byte non-zero
        blob = encode_checks([tuple(int(v) for v in rng.integers(0, gf.MODULUS, size=3)) for _ in range(case.clients)])
        gas = [rounds.submit_checks(m, 1, blob)["gasUsed"] for m in members]
        complaint = rounds.submit_complaints(members[0], 1, [(3, os.urandom(32))])["gasUsed"]
        proof = rounds.submit_complaints(members[1], 1, [(3, os.urandom(96))])["gasUsed"]  # a proven secret
    finally:
        node.stop()
    return {"submitChecks_median": int(statistics.median(gas)), "submitChecks_max": max(gas),
            "submitComplaints_one": complaint, "submitComplaints_one_proof": proof}


def measure(case: Case, *, member_runs: int = 1) -> dict[str, object]:
    """Everything for one case; the member's step is measured ``member_runs`` times afresh (new
    blobs each time) and the run with the median increase is kept, every run's listed beside it."""
    record: dict[str, object] = {"d": case.d, "clients": case.clients, "n": case.n, "t": case.t}
    runs = sorted((measure_member(case) for _ in range(member_runs)), key=lambda r: r["member_time_increase"])
    record.update(runs[len(runs) // 2])
    record["member_time_increase_runs"] = [r["member_time_increase"] for r in runs]
    record["member_time_increase_whole_steps_runs"] = [r["member_time_increase_whole_steps"] for r in runs]
    record.update(measure_gas(case))
    length = case.d + 1  # update and sample count (the default task adds its metrics too)
    claims_bytes = case.n * _CLAIM_BYTES if committee_decides_norms(case.n, case.t) else 0
    manifest_bytes = claims_bytes + _SAMPLES_BYTES
    record.update({
        # t - 1 norm masks and the pad in every share, and the manifest's norm claims and sample count
        "upload_increase": check_tail_length(case.t) / length + manifest_bytes / (case.n * field_vector_bytes(length)),
        "manifest_claims_bytes": claims_bytes,
        "manifest_samples_bytes": _SAMPLES_BYTES,
        "extra_transactions_per_member": 1,
        "complaint_transactions": "one more, only from a member a client cheated",
        "checks_bytes_per_member_on_chain": CHECK_BYTES * case.clients,
    })
    return record


def render(record: dict[str, object]) -> str:
    return "\n".join([
        f"d = {record['d']:,}, {record['clients']} clients, n = {record['n']}, t = {record['t']}",
        f"member step 1 without checks  {record['member_seconds_without_checks']:.3f} s",
        f"member step 1 with checks     {record['member_seconds_with_checks']:.3f} s",
        f"the checks within it          {record['check_seconds'] * 1e3:.1f} ms, "
        f"verdict {record['verdict_seconds'] * 1e3:.2f} ms: +{100 * record['member_time_increase']:.1f}% (target <= 20%)",
        "increase in each run          " + ", ".join(f"+{100 * x:.1f}%" for x in record["member_time_increase_runs"]),
        f"whole steps compared          {100 * record['member_time_increase_whole_steps']:+.1f}% "
        f"(verdict the first time {record['verdict_seconds_first'] * 1e3:.2f} ms)",
        f"upload growth                 +{100 * record['upload_increase']:.5f}% (target <= 1%)",
        f"extra transactions            {record['extra_transactions_per_member']} per member per round (target <= 1)",
        f"submitChecks gas              {record['submitChecks_median']:,} median, {record['submitChecks_max']:,} max",
        f"submitComplaints gas          {record['submitComplaints_one']:,} (one complaint with a key), "
        f"{record['submitComplaints_one_proof']:,} (with a proven secret)",
        f"checks on chain               {record['checks_bytes_per_member_on_chain']} bytes per member",
        *([f"submitChecks gas, 1,000 clients {record['submitChecks_median_1000_clients']:,} median"]
          if "submitChecks_median_1000_clients" in record else []),
        f"norms checked                 {'yes' if record['norms_checked'] else 'no (n < 2t - 1)'}"
        + (f", the client's claims {record['client_claim_seconds'] * 1e3:.1f} ms" if record["norms_checked"] else ""),
        *([f"n = 10, t = 4 (norms checked)  +{100 * record['norms_checked_n10_t4']['member_time_increase']:.1f}% "
           f"(verdict {record['norms_checked_n10_t4']['verdict_seconds'] * 1e3:.2f} ms, "
           f"client claims {record['norms_checked_n10_t4']['client_claim_seconds'] * 1e3:.1f} ms)"]
          if "norms_checked_n10_t4" in record else []),
        *([f"  with the wrap-around proof  +{100 * record['norms_checked_n10_t4']['member_time_increase_with_wraparound']:.1f}% "
           f"({record['norms_checked_n10_t4']['wraparound']['member_seconds_per_client'] * 1e3:.1f} ms per client; "
           f"client proves in {record['norms_checked_n10_t4']['wraparound']['client_prove_seconds'] * 1e3:.0f} ms, "
           f"upload +{100 * record['norms_checked_n10_t4']['wraparound']['upload_increase']:.2f}%)"]
          if "norms_checked_n10_t4" in record and "wraparound" in record["norms_checked_n10_t4"] else []),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 10^4 instead of 10^6 (seconds, not a minute)")
    args = parser.parse_args(argv)
    case = Case(d=10_000 if args.quick else 1_000_000, clients=10, n=10, t=6)
    record = measure(case, member_runs=1 if args.quick else 3)
    if not args.quick:  # what a member's checks cost at the 1,000 clients of issue 14's runs
        large = measure_gas(Case(d=case.d, clients=1000, n=case.n, t=case.t))
        record["submitChecks_median_1000_clients"] = large["submitChecks_median"]
        # 10 / 6 cannot check norms (2t - 1 = 11): the same with t = 4, where the verdict reads the claims
        checked = measure_member(Case(d=case.d, clients=10, n=10, t=4))
        record["norms_checked_n10_t4"] = {key: checked[key] for key in ("check_seconds", "verdict_seconds",
                                                                        "member_time_increase", "client_claim_seconds",
                                                                        "member_seconds_without_checks")}
        # and the wrap-around proof, which comes with the norm check
        wrap = measure_wraparound(Case(d=case.d, clients=10, n=10, t=4))
        record["norms_checked_n10_t4"]["wraparound"] = wrap
        step = checked["member_seconds_without_checks"]
        record["norms_checked_n10_t4"]["member_time_increase_with_wraparound"] = (
            checked["check_seconds"] + checked["verdict_seconds"] + 10 * wrap["member_seconds_per_client"]) / step
    record["targets"] = TARGETS
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(render(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
