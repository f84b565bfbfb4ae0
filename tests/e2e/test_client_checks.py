"""End to end, one OS process per agent: the committee's checks on clients' shares (agents.client_checks).

Committee of 6, t = 3 (six checks per client correct one error, and a member off a client's
polynomial has the 2t - 1 others a complaint needs), 4 clients, the launcher's default
``check_period``. The test plays client 3 and submits well-formed, correctly sealed shares that break
one rule: one member's share off the polynomial, a shared sample count of zero, or (with the demo's
committee, 5 and t = 3) every coordinate 10^6 without clipping (no honest wrap-around proof exists:
it proves projections of 0), twice the clip bound with its norm values steered to claim a norm of 0,
or a squared norm that wraps around p to 1 (four coordinates (p + 1) / 2), or a metric of 10^4
beyond the clip bound (proved as 0). Every member must exclude client 3 by name, name no member, and
finalize the round as plaintext FedAvg of clients 0-2.
Then a member that posts a false check about client 0 (tests/e2e/lying_member.py): every member names
it and client 0 stays in.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from agents.client import UpdateContext, prove_update, quantized_vector, seal_rows
from agents.config import load_node_config
from fedtss import field as gf
from fedtss.chain import load_deployment
from fedtss.cid import compute_cid
from fedtss.formats import Manifest, encode_manifest
from fedtss.sealing import sealing_key
from fedtss.wraparound import WrapBounds, metric_range_bits, projection_bits
from fedtss.shamir import share_vector
from fedtss._reed_solomon import evaluate, interpolate
from fedtss.validation import CheckedLayout, claim_norm_values, committee_decides_norms, pad_vector
from orchestration.launcher import LocalFederation

from .conftest import ROUND_TIMEOUT
from .test_client_set import _assert_is_plaintext_fedavg_of

pytestmark = pytest.mark.slow

HOSTILE = 3
SHAPE = dict(clients=4, committee=6, threshold=3, min_clients=2, rounds=1)


def _submit_hostile(federation: LocalFederation, *, corrupt_member: int | None = None,
                    samples: int | None = None, coordinate: float | None = None, understate: bool = False,
                    clip_scale: float | None = None, half_wrap: bool = False, metric: float | None = None) -> None:
    """Client HOSTILE's honest round-1 update, shared with the checks' norm masks and pad, then
    broken: member ``corrupt_member``'s share moved off the polynomial, the shared count coordinate
    (1: the update is shared unweighted, its count in the manifest) replaced, or every update coordinate set to ``coordinate`` without clipping. The manifest
    claims the norm values dealt before the corruption, or with ``understate`` values through
    members 1..2t - 2's real ones and a squared norm of 0. ``clip_scale`` sets every coordinate so
    that the norm is that many times the clip bound; ``half_wrap`` puts (p + 1) / 2 in four
    coordinates (squared norm 1 mod p); ``metric`` shares that value, unclipped, as its first
    metric. Where norms are checked, the manifest carries the wrap-around proof: honest where the
    update allows one, else the bits of projections of 0 (and of a metric of 0)."""
    contract, store = federation.contract, federation.store
    account = federation.clients[HOSTILE]
    model = federation.load_model(federation.initial_model_cid)
    quantization = load_node_config(federation.config_path("member-1"), role="aggregator").federation.quantization
    delta, honest_samples = federation.client_update(HOSTILE, 1, model)
    metrics = [0.0] * len(load_deployment(federation.deployment_path).model_metrics)
    vector = quantized_vector(delta, 1, quantization, metrics)  # the members weight it by the manifest's count
    if samples is not None:
        vector[delta.size] = samples  # the count sits right after the update
    if clip_scale is not None:
        coordinate = clip_scale * quantization.clip_norm / delta.size**0.5
    if coordinate is not None:
        vector[: delta.size] = round(coordinate * 2**quantization.fractional_bits) % gf.MODULUS
    if half_wrap:
        vector[[1, 5, 9, 13]] = (gf.MODULUS + 1) // 2
    if metric is not None:
        assert metrics, "the federation's task names no metrics"
        vector[delta.size + 1] = round(metric * 2**quantization.fractional_bits) % gf.MODULUS
    dealt = vector[: delta.size].copy()
    dealt_metrics = vector[delta.size + 1 : delta.size + 1 + len(metrics)].copy()
    tail = [int.from_bytes(os.urandom(16), "big") % gf.MODULUS for _ in range(contract.threshold())]
    vector = pad_vector(vector, tail[-1], norm_masks=tail[:-1])
    keys = [key for _, key in contract.committee()]
    t = contract.threshold()
    rows = share_vector(vector, threshold=t, holders=len(keys), key=os.urandom(32))
    claims = ()
    if committee_decides_norms(len(keys), t):
        claims = claim_norm_values(rows, CheckedLayout.of(vector.size, metrics=len(metrics), threshold=t))
    if understate:
        fooled = range(1, 2 * t - 1)
        steered = interpolate([0, *fooled], [0, *(claims[j - 1] for j in fooled)])
        claims = tuple(evaluate(steered, j) for j in range(1, len(keys) + 1))
    if corrupt_member is not None:
        rows[corrupt_member - 1, 0] = gf.add(rows[corrupt_member - 1, 0:1], np.ones(1, dtype=np.uint64))[0]
    context = UpdateContext(contract.w3.eth.chain_id, contract.address, 1, account.address)
    ephemeral = [os.urandom(32) for _ in keys]
    sealed = seal_rows(rows, context, keys, ephemeral)
    share_cids = tuple(store.put(blob) for blob in sealed)
    proof = None
    if claims:
        bounds = WrapBounds.of(quantization, update=delta.size, metrics=len(metrics))
        lying = None if coordinate is None and not half_wrap or clip_scale is not None else \
            projection_bits(np.zeros(63, dtype=np.int64), bounds)  # no honest proof exists for it
        lying_ranges = None if metric is None else metric_range_bits(np.zeros(len(metrics), dtype=np.uint64), bounds)
        proof = prove_update(dealt, context=context, share_cids=share_cids, threshold=t, quantization=quantization,
                             share_keys=[sealing_key(key, context.for_member(j), ephemeral_seed=seed)
                                         for j, (key, seed) in enumerate(zip(keys, ephemeral), start=1)],
                             proof_seed=os.urandom(32), metrics=dealt_metrics, bits=lying, range_bits=lying_ranges)
        assert tuple(store.put(blob) for blob in proof.sealed) == proof.cids
    manifest = Manifest(chain_id=context.chain_id, contract=context.contract, round=1, client=account.address,
                        n=len(keys), t=contract.threshold(), vector_length=vector.size, quantization=quantization,
                        share_cids=share_cids, norm_claims=claims, samples=honest_samples,
                        proof_cids=() if proof is None else proof.cids,
                        bit_claims=() if proof is None else proof.bit_claims)
    assert manifest.share_cids == tuple(compute_cid(blob) for blob in sealed)
    contract.submit_update(account, 1, store.put(encode_manifest(manifest)))


def _member_logs(federation: LocalFederation) -> dict[str, str]:
    return {name: federation.log_path(name).read_text(errors="replace") for name in federation.member_names}


#: The demo's committee, 5 and t = 3: 2t - 1 members, so norms are checked.
NORM_SHAPE = {**SHAPE, "committee": 5, "threshold": 3}


@pytest.mark.parametrize(("attack", "reason", "shape"), [
    (dict(corrupt_member=2), "InconsistentShares", SHAPE),
    (dict(samples=0), "CountOrProofOff", SHAPE),  # n >= 2t - 1: the relation rides on the count
    (dict(coordinate=1e6), "CountOrProofOff", NORM_SHAPE),
    (dict(clip_scale=2.0, understate=True), "NormClaimMismatch", NORM_SHAPE),
    (dict(half_wrap=True), "CountOrProofOff", NORM_SHAPE),
    (dict(metric=1e4), "CountOrProofOff", NORM_SHAPE),
], ids=["one-share-off-the-polynomial", "zero-samples", "every-coordinate-a-million",
        "twice-the-clip-bound-claimed-as-zero", "squared-norm-wrapped-around-p", "a-metric-unclipped"])
def test_a_client_breaking_a_checked_rule_is_excluded_by_name_by_every_member_and_the_round_is_fedavg_of_the_rest(
        small_federation, attack: dict, reason: str, shape: dict) -> None:
    federation, tracker = small_federation(skip=(f"client-{HOSTILE}",), **shape)
    assert federation.spec.resolved_check_period > 0
    tracker.wait_until(lambda t: 1 in t.records, timeout=ROUND_TIMEOUT)
    _submit_hostile(federation, **attack)

    tracker.wait_until(lambda t: t.completed, timeout=ROUND_TIMEOUT)
    hostile = federation.clients[HOSTILE].address
    for name, log in _member_logs(federation).items():
        assert f"excluded_client={hostile} reason={reason}" in log, federation.log_tail(name)
        assert "excluded_member=" not in log, name
    record = tracker.records[1]
    assert record.state == "Finalized" and record.submitted == 4 and record.participants == 3
    _assert_is_plaintext_fedavg_of(federation, [0, 1, 2], record.model_cid)
    assert not federation.exited(), {name: federation.log_tail(name) for name in federation.exited()}


def test_a_member_posting_a_false_check_is_named_by_every_member_and_the_client_kept(small_federation) -> None:
    federation, tracker = small_federation(skip=("member-2",), **SHAPE)
    federation.start("member-2", module="tests.e2e.lying_member")
    federation.wait_until_ready(["member-2"])

    tracker.wait_until(lambda t: t.completed, timeout=ROUND_TIMEOUT)
    logs = _member_logs(federation)
    honest = [name for name in federation.member_names if name != "member-2"]
    for name in honest:
        assert "excluded_member=2 " in logs[name] and "reason=FalseCheck" in logs[name], federation.log_tail(name)
        assert "excluded_client=" not in logs[name], name
    record = tracker.records[1]
    assert record.state == "Finalized" and record.participants == 4
    _assert_is_plaintext_fedavg_of(federation, [0, 1, 2, 3], record.model_cid)
