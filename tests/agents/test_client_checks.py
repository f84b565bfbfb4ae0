"""The committee checks each client's shares (agents.client_checks), in process against anvil and a
LocalStore: a client that seals well-formed, correctly sealed shares off its polynomial is excluded
by name by every member and the round is FedAvg of the others; a member that posts a false check is
named and the client kept; with members down the round still finalizes; and the pad keeps what the
checks publish from being a function of the update."""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import pytest

from agents import client_checks
from agents.client import PreparedUpdate, UpdateContext, quantized_vector, seal_proof_shares, seal_rows, share_proof
from fedtss import field as gf
from agents.runtime import NOTHING_TO_DECIDE
from fedtss.chain import (
    AggregateShareSubmitted,
    ChecksSubmitted,
    ClientSet,
    CollectionClosed,
    ComplaintsSubmitted,
    RoundState,
    ThresholdReached,
    events_of,
)
from fedtss.cid import compute_cid
from fedtss.errors import ConfigError
from fedtss.formats import Manifest, VectorKind, decode_field_vector, encode_field_vector, encode_manifest
from fedtss.sealing import keypair_from_seed, seal_share, sealing_key
from fedtss.shamir import share_vector
from fedtss._reed_solomon import evaluate, interpolate
from fedtss.validation import (
    CheckedLayout,
    claim_norm_values,
    committee_decides_norms,
    decode_checks,
    norm_share,
    pad_vector,
)
from fedtss.wraparound import (
    WrapBounds,
    bit_check_weights,
    bits_seed,
    claim_bit_check_values,
    client_projections,
    projection_bits,
    projection_seed,
    projection_words,
)
from tests.agents.conftest import Federation

LOGGER = "fedtss.agents"
#: n = 6, t = 3: six checks per client correct one error, and a member off a client's polynomial
#: has the 2t - 1 = 5 others a complaint needs (fedtss.validation.is_safe_to_complain).
SHAPE = dict(clients=4, members=6, threshold=3, min_clients=2, aggregation_period=20, check_period=3)


def _logged(caplog, key: str, value: str) -> list[str]:
    """The reasons of the log lines with ``key=value`` (one per member that logged it)."""
    return [r.getMessage().split("reason=")[1].split()[0] for r in caplog.records
            if f"{key}={value} " in r.getMessage() + " " and "reason=" in r.getMessage()]


def _hostile_update(fed: Federation, index: int, *, corrupt_members: tuple[int, ...] = (),
                    samples: int | None = None, coordinate: float | None = None,
                    unopenable: tuple[int, ...] = (), understate_at: tuple[int, ...] | None = None,
                    claim_corrupted: bool = False, corrupt_coordinate: int = 3,
                    dispute_the_rest: bool = False, oversized: tuple[int, ...] = (),
                    manifest_samples: int | None = None, clip_scale: float | None = None,
                    update: np.ndarray | None = None, proof: str = "honest",
                    corrupt_proof_members: tuple[int, ...] = ()) -> PreparedUpdate:
    """Client ``index``'s honest update (with the checks' norm masks and pad), shared t-of-n, then
    the shares of ``corrupt_members`` moved off the polynomial by one in ``corrupt_coordinate``, and
    everything sealed correctly: every share opens and is well-formed. The update is shared
    unweighted with the manifest stating the count (``manifest_samples``, else the honest one), as
    the checks require. ``samples`` replaces the shared count coordinate, 1 for an honest client (a
    field element: p - 5 is -5); ``coordinate`` sets every coordinate of the update to that value,
    unclipped (quantized as a client that skips clipping would). The
    manifest claims the norm values of the shares before the corruption (when the committee checks
    norms; of the corrupted ones with ``claim_corrupted``), or with ``understate_at`` (at most
    2t - 2 members) values on the polynomial through those members' real values and a squared
    norm of 0: the best lie a client can tell about its norm. ``clip_scale`` sets every coordinate so
    that the update's norm is that many times the clip bound (within the wrap-around proof's range
    up to a few times); ``update`` replaces the quantized update (field elements). Where the
    committee checks norms, the manifest carries the wrap-around proof of the dealt update:
    ``proof`` "honest" (its real projections' bits), "zero" (the bits of projections of 0, in range
    whatever the update) or "non-bits" (values that make every relation hold but are not bits);
    ``corrupt_proof_members``' proof shares are moved off the polynomial by one in their last
    coordinate (a bit-check mask), before the proof is named and claimed."""
    agent = fed.clients[index]
    node = agent.node
    delta, honest_samples = fed.client_update(index)
    quantization = agent.federation.quantization
    vector = quantized_vector(delta, 1, quantization)
    if samples is not None:
        vector[-1] = samples
    if clip_scale is not None:
        coordinate = clip_scale * quantization.clip_norm / (vector.size - 1) ** 0.5
    if coordinate is not None:
        vector[:-1] = round(coordinate * 2**quantization.fractional_bits) % gf.MODULUS
    if update is not None:
        vector[:-1] = update
    dealt_update = vector[:-1].copy()
    t = node.contract.threshold()
    vector = pad_vector(vector, 123456789, norm_masks=[int.from_bytes(os.urandom(16), "big") % gf.MODULUS
                                                       for _ in range(t - 1)])
    keys = [key for _, key in node.contract.committee()]
    rows = share_vector(vector, threshold=node.contract.threshold(), holders=len(keys), key=os.urandom(32))
    claims = ()
    if committee_decides_norms(len(keys), t):
        claims = claim_norm_values(rows, CheckedLayout.of(vector.size, metrics=0, threshold=t))
        if understate_at is not None:
            steered = interpolate([0, *understate_at], [0, *(claims[j - 1] for j in understate_at)])
            claims = tuple(evaluate(steered, j) for j in range(1, len(keys) + 1))
        if understate_at is not None and dispute_the_rest:
            layout = CheckedLayout.of(vector.size, metrics=0, threshold=t)
            for j in set(range(1, len(keys) + 1)) - set(understate_at):  # nu_j holds j * U_1(j)
                shift = (claims[j - 1] - norm_share(rows[j - 1], layout, j)) * pow(j, -1, gf.MODULUS)
                rows[j - 1, layout.masks_start] = (int(rows[j - 1, layout.masks_start]) + shift) % gf.MODULUS
    for member in corrupt_members:
        rows[member - 1, corrupt_coordinate] = gf.add(rows[member - 1, corrupt_coordinate:][:1],
                                                      np.ones(1, dtype=np.uint64))[0]
    context = UpdateContext(node.deployment.chain_id, node.deployment.address, 1, node.address)
    sealing_keys = [keypair_from_seed(os.urandom(32))[1] if j in unopenable else key  # sealed to nobody's key
                    for j, key in enumerate(keys, start=1)]
    if claim_corrupted:
        claims = claim_norm_values(rows, CheckedLayout.of(vector.size, metrics=0, threshold=t))
    ephemeral = [os.urandom(32) for _ in keys]
    sealed = list(seal_rows(rows, context, sealing_keys, ephemeral))
    for j in oversized:  # one byte more than any share: correctly sealed, and larger than a member fetches
        plaintext = encode_field_vector(rows[j - 1], kind=VectorKind.SHARE) + b"\x00"
        sealed[j - 1] = seal_share(plaintext, keys[j - 1], context.for_member(j), ephemeral_seed=ephemeral[j - 1])
    share_cids = tuple(compute_cid(blob) for blob in sealed)
    sealed_proof = None
    if claims:
        bounds = WrapBounds.of(quantization, update=dealt_update.size)
        seed = projection_seed(chain_id=context.chain_id, contract=context.contract, round_=1,
                               client=context.client, share_cids=share_cids)
        bits = None
        if proof != "honest":
            projections = client_projections(dealt_update, projection_words(seed, bounds.update))
            bits = _cheating_bits(projections, bounds, proof)
        share_keys = [sealing_key(key, context.for_member(j), ephemeral_seed=ephemeral_seed)
                      for j, (key, ephemeral_seed) in enumerate(zip(sealing_keys, ephemeral, strict=True), start=1)]
        proof_rows = share_proof(dealt_update, seed, bounds, threshold=t, holders=len(keys), proof_seed=os.urandom(32),
                                 metrics=np.zeros(0, dtype=np.uint64), bits=bits)
        dealt_rows = proof_rows.copy()
        for member in corrupt_proof_members:
            proof_rows[member - 1, -1] = gf.add(proof_rows[member - 1, -1:], np.ones(1, dtype=np.uint64))[0]
        sealed_proof = seal_proof_shares(proof_rows, seed, bounds, context=context, share_keys=share_keys, threshold=t)
        if corrupt_proof_members:  # it claims the values of the proof it dealt, as for the norm
            weights = bit_check_weights(bits_seed(seed, sealed_proof.cids), bounds)
            sealed_proof = dataclasses.replace(sealed_proof, bit_claims=claim_bit_check_values(dealt_rows, weights,
                                                                                                threshold=t))
    manifest = Manifest(chain_id=context.chain_id, contract=context.contract, round=1, client=context.client,
                        n=len(keys), t=node.contract.threshold(), vector_length=vector.size,
                        quantization=agent.federation.quantization,
                        share_cids=share_cids, norm_claims=claims,
                        samples=honest_samples if manifest_samples is None else manifest_samples,
                        proof_cids=() if sealed_proof is None else sealed_proof.cids,
                        bit_claims=() if sealed_proof is None else sealed_proof.bit_claims)
    return PreparedUpdate(tuple(sealed), manifest, encode_manifest(manifest),
                          sealed_proofs=() if sealed_proof is None else sealed_proof.sealed)


def _cheating_bits(projections: np.ndarray, bounds: WrapBounds, how: str) -> np.ndarray:
    """A cheat's proof bits: those of projections of 0 ("zero": in range, whatever the update), or
    (y_k + B) mod p in the lowest "bit" of each projection ("non-bits": every relation holds)."""
    if how == "zero":
        return projection_bits(np.zeros_like(projections), bounds)
    assert how == "non-bits"
    fake = np.zeros(bounds.projection_bit_count, dtype=np.uint64)
    for k, y in enumerate(projections):
        fake[k * bounds.bits] = (int(y) + bounds.bound) % gf.MODULUS
    return fake


def _submit(fed: Federation, index: int, prepared: PreparedUpdate, *, withhold: tuple[int, ...] = ()) -> None:
    for member, blob in enumerate(prepared.sealed_shares, start=1):
        if member not in withhold:
            fed.store.put(blob)
    for member, blob in enumerate(prepared.sealed_proofs, start=1):
        if member not in withhold:
            fed.store.put(blob)
    fed.contract.submit_update(fed.clients[index].node.account, 1, fed.store.put(prepared.manifest_blob))


def test_an_honest_checked_round_is_plaintext_fedavg_with_one_checks_transaction_per_member(
        make_federation_in, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**SHAPE)
    assert all(m.check_period == 3 for m in fed.members) and all(c.check_period == 3 for c in fed.clients)
    fed.drive()

    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2, 3])
    checks = events_of(fed.events(), ChecksSubmitted)
    assert sorted(e.member_index for e in checks) == [1, 2, 3, 4, 5, 6]
    assert all(len(e.checks) == 24 * 4 for e in checks)
    assert events_of(fed.events(), ComplaintsSubmitted) == []
    assert not any("excluded_" in r.getMessage() for r in caplog.records)
    # the published aggregate shares carry no sum of the norm masks or pads (fedtss.validation)
    t = fed.contract.threshold()
    posted = [decode_field_vector(fed.store.get(e.share_cid, max_bytes=1 << 24), kind=VectorKind.AGGREGATE_SHARE,
                                  max_bytes=1 << 24)
              for e in events_of(fed.events(), AggregateShareSubmitted)]
    assert len(posted) >= t and all(share[-t:].tolist() == [0] * t and share[:-t].any() for share in posted)


def test_the_last_members_checks_arriving_make_a_member_post_its_share_without_waiting_for_a_tick(
        make_federation_in) -> None:
    fed: Federation = make_federation_in(**SHAPE)
    (closed,) = events_of(fed.drive(fed.clients), CollectionClosed)
    fed.deliver(closed, fed.members)  # each opens, posts its checks and waits in the round
    assert all(m.is_waiting() for m in fed.members)
    assert events_of(fed.events(), AggregateShareSubmitted) == []
    last_checks = events_of(fed.events(), ChecksSubmitted)[-1]
    fed.deliver(last_checks, fed.members[:1])  # an event, not a Tick
    (posted,) = events_of(fed.events(), AggregateShareSubmitted)
    assert posted.member_index == fed.members[0].member_index
    # done checking, not yet waiting for shares: more of the round's events ask nothing of the chain
    assert 1 not in fed.members[0].checking and 1 not in fed.members[0].pending
    assert fed.members[0].observe(last_checks) is NOTHING_TO_DECIDE
    assert fed.members[0].observe(posted) is NOTHING_TO_DECIDE


@pytest.mark.parametrize("member", [1, 4])
def test_a_client_that_corrupts_one_members_share_is_excluded_by_every_member_and_that_member_not_named(
        make_federation_in, caplog, member: int) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**SHAPE)
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, corrupt_members=(member,)))
    fed.drive(fed.members)

    hostile = fed.clients[3].node.address
    assert _logged(caplog, "excluded_client", hostile) == ["InconsistentShares"] * 6
    (complaint,) = events_of(fed.events(), ComplaintsSubmitted)
    assert complaint.member_index == member and complaint.client_indices == (3,)
    assert not any("excluded_member=" in r.getMessage() for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized
    (reached,) = events_of(fed.events(), ThresholdReached)
    assert reached.included_clients == ClientSet(0b0111)
    fed.assert_model_is_fedavg_of([0, 1, 2])


def test_a_client_whose_shares_lie_on_no_polynomial_is_excluded_without_a_complaint(make_federation_in,
                                                                                     caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**SHAPE)
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, corrupt_members=(2, 5)))  # two errors: one can be corrected
    fed.drive(fed.members)

    assert _logged(caplog, "excluded_client", fed.clients[3].node.address) == ["InconsistentShares"] * 6
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


#: With the wrap-around check (norms checked: n >= 2t - 1), the relation rides on the count shares,
#: so a count that is off cannot be told from a relation that fails; without it, it can.
WITHOUT_NORMS = {**SHAPE, "threshold": 4}


@pytest.mark.parametrize(("shape", "reason"), [(SHAPE, "CountOrProofOff"),
                                               (WITHOUT_NORMS, "SampleCountOutOfRange")],
                         ids=["wrap-checked", "norms-unchecked"])
@pytest.mark.parametrize("samples", [0, gf.MODULUS - 5, 2], ids=["zero", "negative", "two"])
def test_a_client_whose_shared_count_is_not_one_is_excluded_and_the_round_finalizes(
        make_federation_in, caplog, samples: int, shape: dict, reason: str) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**shape)
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, samples=samples))
    fed.drive(fed.members)

    assert _logged(caplog, "excluded_client", fed.clients[3].node.address) == [reason] * 6
    assert not any("excluded_member=" in r.getMessage() for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


def _half_wrap(size: int) -> np.ndarray:
    """(p + 1) / 2 in four coordinates: squared norm 1 mod p, which the norm check alone passes,
    and w / 2 mod p (about p / 2) added to those coordinates of the sum for an odd count w."""
    update = np.zeros(size, dtype=np.uint64)
    update[[1, 5, 9, 13]] = (gf.MODULUS + 1) // 2
    return update


@pytest.mark.parametrize(("attack", "reason"), [
    (dict(proof="zero"), "CountOrProofOff"),
    (dict(proof="non-bits"), "InvalidProjectionBits"),
], ids=["in-range-bits-it-did-not-compute", "non-bits-that-make-the-relations-hold"])
def test_a_client_whose_update_wraps_its_norm_around_p_is_excluded_by_every_member(
        make_federation_in, caplog, attack: dict, reason: str) -> None:
    """The norm check's blind spot (a squared norm that is small only mod p) closed by the
    wrap-around proof: the client cannot prove its projections small, and either lie it can tell
    excludes it by name; the round is FedAvg of the others."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**NORM_SHAPE)
    size = fed.client_update(3)[0].size
    with pytest.raises(ConfigError, match="exceeds its clip bound"):  # no honest proof exists for it
        _hostile_update(fed, 3, update=_half_wrap(size))
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, update=_half_wrap(size), manifest_samples=3, **attack))
    fed.drive(fed.members)

    assert _logged(caplog, "excluded_client", fed.clients[3].node.address) == [reason] * 5
    assert not any("excluded_member=" in r.getMessage() for r in caplog.records)
    assert events_of(fed.events(), ComplaintsSubmitted) == []
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


def test_a_client_whose_proof_share_is_off_the_polynomial_is_excluded_once_that_member_shows_it(
        make_federation_in, caplog) -> None:
    """The bit check is sound only for proof shares on one polynomial (else a client could pick each
    member's mask share to fit any claims): the proof is under the consistency projection too, so
    one member's proof share off the polynomial (in a bit-check mask) is caught like a share off
    it, and its complaint shows both."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**SHAPE)
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, corrupt_proof_members=(2,)))
    fed.drive(fed.members)

    assert _logged(caplog, "excluded_client", fed.clients[3].node.address) == ["InconsistentShares"] * 6
    (complaint,) = events_of(fed.events(), ComplaintsSubmitted)
    assert complaint.member_index == 2 and complaint.client_indices == (3,)
    assert not any("excluded_member=" in r.getMessage() for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


def test_a_client_that_skips_clipping_by_far_cannot_prove_its_projections_and_is_excluded(
        make_federation_in, caplog) -> None:
    """Every coordinate 10^6 (the issue's attack): its projections are far out of range, so the
    best it can do is prove projections it did not compute, which the relations catch."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**NORM_SHAPE)
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, coordinate=1e6, proof="zero"))
    fed.drive(fed.members)

    assert _logged(caplog, "excluded_client", fed.clients[3].node.address) == ["CountOrProofOff"] * 5
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


@pytest.mark.parametrize("complains", [True, False], ids=["complains", "stays-silent"])
def test_a_member_that_posts_a_false_check_is_named_by_every_member_and_the_client_kept(
        make_federation_in, caplog, monkeypatch, complains: bool) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**SHAPE)
    liar = fed.members[1]  # member 2 says client 0's share projects elsewhere than it does
    real_post, real_complain = client_checks.post_checks, client_checks.post_complaints

    def post_checks(agent, round_, projections):
        if agent is liar:
            (projection, count, norm), *rest = projections
            projections = [((projection + 1) % gf.MODULUS, count, norm), *rest]
        return real_post(agent, round_, projections)

    def post_complaints(agent, round_, clients, terms, **options):
        return 0 if agent is liar and not complains else real_complain(agent, round_, clients, terms, **options)

    monkeypatch.setattr(client_checks, "post_checks", post_checks)
    monkeypatch.setattr(client_checks, "post_complaints", post_complaints)
    fed.drive()

    assert _logged(caplog, "excluded_member", "2") == ["FalseCheck"] * 6
    assert not any("excluded_client=" in r.getMessage() for r in caplog.records)
    assert len(events_of(fed.events(), ComplaintsSubmitted)) == (1 if complains else 0)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2, 3])


def test_with_n_minus_t_members_down_the_checks_window_closes_and_the_round_finalizes(make_federation_in) -> None:
    fed: Federation = make_federation_in(**{**SHAPE, "aggregation_period": 8})  # a short wait for a 4th share
    fed.drive([*fed.clients, *fed.members[:3]])  # members 4 to 6 never post checks

    assert fed.contract.state(1) == RoundState.Finalized
    assert sorted(e.member_index for e in events_of(fed.events(), ChecksSubmitted)) == [1, 2, 3]
    fed.assert_model_is_fedavg_of([0, 1, 2, 3])


def test_with_t_above_half_of_n_a_cheated_member_does_not_show_its_share_and_nobody_is_named_by_the_checks(
        make_federation_in, caplog) -> None:
    """n = 5, t = 3, the client corrupting member 4's pad coordinate (which no norm value holds, so
    its claims match every member): the four other checks are fewer than 2t - 1, so member 4 cannot
    tell being cheated from being framed by two colluders, and showing its share could hand them an
    honest client's third. The disagreement is logged as disputed, and the client kept with its
    norm unchecked (four consistent shares are fewer than 2t - 1): the dodge the README states."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**{**SHAPE, "members": 5})
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, corrupt_members=(4,), claim_corrupted=True, corrupt_coordinate=-1))
    fed.drive(fed.members)

    assert events_of(fed.events(), ComplaintsSubmitted) == []
    assert sum("disputed_member=4 " in r.getMessage() for r in caplog.records) == 5
    assert sum(f"norm_unchecked={fed.clients[3].node.address} " in r.getMessage() for r in caplog.records) == 5
    assert not any("reason=FalseCheck" in r.getMessage() or "excluded_client=" in r.getMessage()
                   for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2, 3])  # only the pad is off, and no aggregate holds it


def test_with_t_above_half_of_n_a_cheated_member_whose_value_contradicts_the_claim_shows_its_share_safely(
        make_federation_in, caplog) -> None:
    """n = 5, t = 3, the client claiming the norm values of its shares before corrupting member
    4's: member 4's value differs from the client's own claim, which only a cheating client can
    cause, so it complains whatever the projections say, and every member excludes the client."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**{**SHAPE, "members": 5})
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, corrupt_members=(4,)))
    fed.drive(fed.members)

    (complaint,) = events_of(fed.events(), ComplaintsSubmitted)
    assert complaint.member_index == 4 and complaint.client_indices == (3,)
    assert _logged(caplog, "excluded_client", fed.clients[3].node.address) == ["InconsistentShares"] * 5
    assert not any("excluded_member=" in r.getMessage() for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


#: n = 5, t = 3 (the demo's committee): 2t - 1 = 5 members, so norms are checked.
NORM_SHAPE = {**SHAPE, "members": 5}


def test_a_client_that_skips_clipping_is_excluded_for_its_norm_by_every_member_and_the_round_is_fedavg_of_the_rest(
        make_federation_in, caplog) -> None:
    """The issue's attack: every coordinate 10^6, well shared and sealed, its norm values claimed
    as dealt. Shares, count and pad all check out; its own claims give it away."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**NORM_SHAPE)
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, clip_scale=2.0))
    fed.drive(fed.members)

    assert _logged(caplog, "excluded_client", fed.clients[3].node.address) == ["NormOutOfRange"] * 5
    assert not any("excluded_member=" in r.getMessage() for r in caplog.records)
    assert events_of(fed.events(), ComplaintsSubmitted) == []
    assert fed.contract.state(1) == RoundState.Finalized
    (reached,) = events_of(fed.events(), ThresholdReached)
    assert reached.included_clients == ClientSet(0b0111)
    fed.assert_model_is_fedavg_of([0, 1, 2])


def test_a_client_that_skips_clipping_and_understates_its_norm_is_excluded_once_the_member_it_could_not_fool_complains(
        make_federation_in, caplog) -> None:
    """The same attack with the claims steered through members 1-4's real values and a norm of 0
    (2t - 2 = 4 is as many as a polynomial of degree < 2t - 1 can match besides 0): member 5's
    value differs from its claim, it shows its share, and every member excludes the client."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**NORM_SHAPE)
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, clip_scale=2.0, understate_at=(1, 2, 3, 4)))
    fed.drive(fed.members)

    assert _logged(caplog, "excluded_client", fed.clients[3].node.address) == ["NormClaimMismatch"] * 5
    (complaint,) = events_of(fed.events(), ComplaintsSubmitted)
    assert complaint.member_index == 5 and complaint.client_indices == (3,)
    assert not any("excluded_member=" in r.getMessage() for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


def test_a_client_scaled_just_past_its_clip_bound_is_excluded_and_one_just_within_is_kept(
        make_federation_in, caplog) -> None:
    """The limit is the clip bound itself (plus rounding): a coordinate that puts the norm at 1.2
    clip_norm is out; the honest clients, at or below clip_norm, are in."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**NORM_SHAPE)
    clip, d = fed.clients[3].federation.quantization.clip_norm, fed.client_update(3)[0].size
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, coordinate=1.2 * clip / d**0.5))
    fed.drive(fed.members)

    assert _logged(caplog, "excluded_client", fed.clients[3].node.address) == ["NormOutOfRange"] * 5
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


def test_a_client_stating_the_largest_sample_count_gets_no_larger_norm_limit_and_is_excluded_past_its_clip_bound(
        make_federation_in, caplog) -> None:
    """The members weight updates by the manifest's count, so the norm limit is one sample's
    whatever count a client states: max_samples with 1.2 clip_norm is excluded like 1 sample."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**NORM_SHAPE)
    quantization = fed.clients[3].federation.quantization
    clip, d = quantization.clip_norm, fed.client_update(3)[0].size
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, coordinate=1.2 * clip / d**0.5, manifest_samples=quantization.max_samples))
    fed.drive(fed.members)

    assert _logged(caplog, "excluded_client", fed.clients[3].node.address) == ["NormOutOfRange"] * 5
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


def test_a_member_that_posts_a_false_norm_value_about_an_honest_client_is_named_by_every_member_and_the_client_kept(
        make_federation_in, caplog, monkeypatch) -> None:
    """Its value differs from the client's claim, so it must show its share; the share matches the
    claim, not its value."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**NORM_SHAPE)
    liar = fed.members[2]  # member 3 says client 0's norm is far larger
    real_post = client_checks.post_checks

    def post_checks(agent, round_, projections):
        if agent is liar:
            (projection, count, norm), *rest = projections
            projections = [(projection, count, (norm + 10**15) % gf.MODULUS), *rest]
        return real_post(agent, round_, projections)

    monkeypatch.setattr(client_checks, "post_checks", post_checks)
    fed.drive()

    assert _logged(caplog, "excluded_member", "3") == ["FalseCheck"] * 5
    assert not any("excluded_client=" in r.getMessage() for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2, 3])


def test_with_fewer_than_2t_minus_1_members_norms_are_neither_claimed_nor_checked_nor_revealed(
        make_federation_in, caplog) -> None:
    """n = 4, t = 3: no polynomial of degree < 2t - 1 is fixed by four values, so clients claim
    none, members post 0 in their place and a norm attack goes through (the README states this
    limit; the demo says so when it starts)."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**{**SHAPE, "members": 4})
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, clip_scale=2.0))
    fed.drive(fed.members)

    posted = [decode_checks(e.checks, 4) for e in events_of(fed.events(), ChecksSubmitted)]
    assert len(posted) == 4 and all(check[2] == 0 for checks in posted for check in checks)
    assert all(check[0] != 0 for checks in posted for check in checks)  # the projections are real
    assert not any("excluded_client=" in r.getMessage() or "norm_unchecked" in r.getMessage()
                   for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized


@pytest.mark.parametrize("how", ["sealed-to-another-key", "one-byte-too-large"])
def test_a_client_that_seals_one_member_a_share_it_cannot_use_is_excluded_by_every_member_once_that_member_shows_it(
        make_federation_in, caplog, how: str) -> None:
    """The unopenable-share dodge, closed (README, "Shares that do not open"): member 2's share is
    sealed to nobody's key, or is one byte larger than any share, and the claims are steered
    through the other four members' values. Member 2 posts "not opened", then shows why: its
    X25519 secret with a proof (anyone derives the key from it and sees the share does not open),
    or nothing but the blob (found in review: its fetch refuses it, BlobTooLarge, and its CID fixes
    its size). Every member excludes the client (``UnusableShare``) and nobody is named, at the
    demo's 5 / 3 where an unchecked norm is kept."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**NORM_SHAPE)
    fed.drive(fed.clients[:3])
    fault = dict(unopenable=(2,)) if how == "sealed-to-another-key" else dict(oversized=(2,))
    _submit(fed, 3, _hostile_update(fed, 3, clip_scale=2.0, understate_at=(1, 3, 4, 5), **fault))
    fed.drive(fed.members)

    hostile = fed.clients[3].node.address
    opening = "InvalidSealedShare" if how == "sealed-to-another-key" else "BlobTooLarge"
    assert sorted(_logged(caplog, "excluded_client", hostile)) == [opening] + ["UnusableShare"] * 5
    (complaint,) = events_of(fed.events(), ComplaintsSubmitted)
    assert complaint.member_index == 2 and complaint.client_indices == (3,)
    if how == "sealed-to-another-key":
        assert len(complaint.evidence[0]) == 96
        assert not any("norm_unchecked=" in r.getMessage() for r in caplog.records)
    else:
        assert complaint.evidence == (bytes(32),)
    assert not any("excluded_member=" in r.getMessage() for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


def test_a_client_that_withholds_one_members_share_and_fools_the_others_escapes_the_norm_check_named(
        make_federation_in, caplog) -> None:
    """What does not hold (README, "What is not checked yet"): member 2's share is never stored,
    so member 2 has nothing to show, and nobody can prove a blob was never served. Four values
    match the steered claims, fewer than 2t - 1: kept, and every member names its norm unchecked
    once the complaints' window closes."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**NORM_SHAPE)
    fed.drive(fed.clients[:3])
    prepared = _hostile_update(fed, 3, clip_scale=2.0, understate_at=(1, 3, 4, 5))
    _submit(fed, 3, prepared, withhold=(2,))
    fed.drive(fed.members)

    hostile = fed.clients[3].node.address
    assert sum(f"norm_unchecked={hostile} " in r.getMessage() for r in caplog.records) == 5
    # member 2 says it has nothing to show, so that nobody waits for the complaints' window
    (complaint,) = events_of(fed.events(), ComplaintsSubmitted)
    assert complaint.member_index == 2 and complaint.client_indices == () and complaint.evidence == ()
    assert not any("reason=Norm" in r.getMessage() or "reason=Unusable" in r.getMessage() for r in caplog.records)


def test_a_member_that_could_not_open_a_client_reads_its_claims_and_excludes_it_like_the_others(
        make_federation_in, caplog) -> None:
    """Member 2 cannot open client 3's share (sealed to nobody's key), so it never parsed its
    manifest while opening; it reads the claims when the checks are in, and its verdict is the
    others': every coordinate 10^6 claimed as dealt, excluded for its norm by all five."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**NORM_SHAPE)
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, clip_scale=2.0, unopenable=(2,)))
    fed.drive(fed.members)

    reasons = _logged(caplog, "excluded_client", fed.clients[3].node.address)
    assert sorted(reasons) == ["InvalidSealedShare"] + ["NormOutOfRange"] * 5  # member 2 at opening, then all
    assert not any("norm_unchecked" in r.getMessage() or "excluded_member=" in r.getMessage()
                   for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


def test_with_the_demos_committee_a_client_that_gets_the_member_its_claims_miss_disputed_is_kept_named_unchecked(
        make_federation_in, caplog) -> None:
    """What does not hold at n <= 3t - 4 (README, "The norm check"): every coordinate 10^6, claims
    steered through members 1-4's values and a norm of 0, and member 5's share moved (one norm
    mask) so that its value fits too. Member 5's projection is off with four others agreeing,
    fewer than 2t - 1: disputed, so the norm cannot be checked; every member says so."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**NORM_SHAPE)
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, clip_scale=2.0, understate_at=(1, 2, 3, 4), dispute_the_rest=True))
    fed.drive(fed.members)

    hostile = fed.clients[3].node.address
    assert sum(f"norm_unchecked={hostile} " in r.getMessage() for r in caplog.records) == 5
    assert sum("disputed_member=5 " in r.getMessage() for r in caplog.records) == 5
    assert events_of(fed.events(), ComplaintsSubmitted) == []
    assert not any("excluded_client=" in r.getMessage() for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized


def test_with_six_members_and_t_3_the_same_dodge_gets_the_client_excluded(make_federation_in, caplog) -> None:
    """n = 6 > 3t - 4: the two members its claims cannot fit are more than decoding corrects."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**{**NORM_SHAPE, "members": 6})
    fed.drive(fed.clients[:3])
    _submit(fed, 3, _hostile_update(fed, 3, clip_scale=2.0, understate_at=(1, 2, 3, 4), dispute_the_rest=True))
    fed.drive(fed.members)

    assert _logged(caplog, "excluded_client", fed.clients[3].node.address) == ["InconsistentShares"] * 6
    assert not any("excluded_member=" in r.getMessage() for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


@pytest.mark.parametrize("dodge", ["withheld", "unopenable", "disputed"])
def test_with_seven_members_and_t_3_a_client_that_keeps_its_norm_off_the_count_is_excluded_by_every_member(
        make_federation_in, caplog, dodge: str) -> None:
    """n = 7 >= 3t - 2: what is not checked is excluded. Every coordinate 10^6, claims steered
    through members 1-4's values and a norm of 0, and members 5-7 kept off the count: their shares
    never stored (the dodge the demo's 5 / 3 only names), sealed to nobody, or moved so their
    values fit the claims (disputed, or here beyond what decoding corrects). Every member
    excludes the client and the round is FedAvg of the three others."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(**{**NORM_SHAPE, "members": 7})
    fed.drive(fed.clients[:3])
    options = {"withheld": {}, "unopenable": dict(unopenable=(5, 6, 7)), "disputed": dict(dispute_the_rest=True)}
    _submit(fed, 3, _hostile_update(fed, 3, clip_scale=2.0, understate_at=(1, 2, 3, 4), **options[dodge]),
            withhold=(5, 6, 7) if dodge == "withheld" else ())
    fed.drive(fed.members)

    reasons = _logged(caplog, "excluded_client", fed.clients[3].node.address)
    if dodge != "disputed":  # members 5-7 at opening, then every member's verdict
        opening = "InvalidSealedShare" if dodge == "unopenable" else "BlobNotFound"
        assert sorted(reasons) == sorted([opening] * 3 + ["NormUnchecked"] * 7), reasons
    else:
        assert reasons == ["InconsistentShares"] * 7
    assert not any("norm_unchecked=" in r.getMessage() or "excluded_member=" in r.getMessage()
                   for r in caplog.records)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])


def test_a_kept_aggregate_share_whose_tail_is_not_zero_is_never_taken_for_publication() -> None:
    """A member restarted mid-round on this code with a share kept by a version that posted the
    norm masks' sum: publish_own_share must rebuild it (and, the CID then differing, publish
    nothing) rather than publish the kept blob."""
    from types import SimpleNamespace

    from agents.aggregator import _tail_is_zero, without_check_tail
    from fedtss.formats import encode_field_vector

    agent = SimpleNamespace(check_period=3, node=SimpleNamespace(contract=SimpleNamespace(threshold=lambda: 3)))
    share = np.arange(1, 11, dtype=np.uint64)
    assert not _tail_is_zero(agent, encode_field_vector(share, kind=VectorKind.AGGREGATE_SHARE))
    zeroed = without_check_tail(agent, share)
    assert zeroed[-3:].tolist() == [0, 0, 0] and share[-1] == 10  # a copy: the running sum is untouched
    assert _tail_is_zero(agent, encode_field_vector(zeroed, kind=VectorKind.AGGREGATE_SHARE))
    assert not _tail_is_zero(agent, b"not a vector")
    unchecked = SimpleNamespace(check_period=0, node=agent.node)
    assert _tail_is_zero(unchecked, b"anything") and without_check_tail(unchecked, share) is share


# ------------------------------------------------------------------ what a complaint shows

_SHARE_CASES = ["opens", "opens-to-no-share", "does-not-open", "bad-header", "wrong-key", "another-members-proof",
                "no-proof-for-an-open-share"]


@pytest.mark.parametrize(("case", "with_proof"),
                         [(case, False) for case in _SHARE_CASES]
                         + [(case, True) for case in [*_SHARE_CASES, "proof-under-another-key", "proof-of-another-size"]])
def test_a_complaints_evidence_shows_the_share_the_clients_fault_or_nothing_and_never_frames_an_honest_client(
        case: str, with_proof: bool) -> None:
    """The class "what a member shows about its sealed share": its evidence opens a well-formed
    share (its check is read), shows the client's bytes unusable (a share that does not open
    with its proven secret, opens to bytes that are no share, or has a header no honest client
    writes; with the wrap-around check also a proof that the share's key does not open, or a blob
    of proofs of another size: UNUSABLE, the client excluded) or shows nothing (a key that opens
    nothing, a proof that is not its own: None, the member named). An honest client's share is
    never UNUSABLE."""
    from fedtss.decryption_proof import complaint_evidence, prove_shared_secret
    from fedtss.formats import RoundTerms, encode_field_vector
    from fedtss.quantize import QuantizationConfig
    from fedtss.sealing import ShareContext, seal_proof, seal_share
    from fedtss.validation import UNUSABLE

    terms = RoundTerms(chain_id=1, contract="0x" + "11" * 20, round=1, n=3, t=2, vector_length=4,
                       quantization=QuantizationConfig(clip_norm=1.0, max_clients=3, max_samples=10),
                       proof_length=3 if with_proof else None)
    context = ShareContext(1, terms.contract, 1, "0x" + "22" * 20, 2)
    private, public = keypair_from_seed(os.urandom(32))
    share = np.array([1, 2, 3, 4], dtype=np.uint64)
    plaintext = encode_field_vector(share, kind=VectorKind.SHARE)
    foreign = keypair_from_seed(os.urandom(32))[1]  # a key that is not the member's
    ephemeral = os.urandom(32)
    sealed = seal_share(plaintext, public, context, ephemeral_seed=ephemeral)
    if case == "opens-to-no-share":
        sealed = seal_share(b"not a share", public, context, ephemeral_seed=ephemeral)
    elif case == "does-not-open":
        sealed = seal_share(plaintext, foreign, context, ephemeral_seed=ephemeral)
    elif case == "bad-header":
        sealed = sealed[:5] + bytes(32) + sealed[37:]
    proof_plain = encode_field_vector(np.array([0, 1, 7], dtype=np.uint64), kind=VectorKind.PROOF_SHARE)
    proof_key = sealing_key(foreign if case == "proof-under-another-key" else public, context, ephemeral_seed=ephemeral)
    mine = seal_proof(proof_plain, proof_key, context)
    if case == "proof-of-another-size":
        mine += b"\x00"
    evidence = complaint_evidence(sealed, private, context, nonce_seed=os.urandom(32))
    if case == "wrong-key":
        evidence = os.urandom(32)
    elif case == "another-members-proof":
        evidence = prove_shared_secret(sealed, keypair_from_seed(os.urandom(32))[0], context, nonce_seed=os.urandom(32))
    elif case == "no-proof-for-an-open-share":  # a proof of the right secret for a share that opens shows it
        evidence = prove_shared_secret(sealed, private, context, nonce_seed=os.urandom(32))
    blobs = client_checks.SealedBlobs(None, sealed, mine if with_proof else None)  # type: ignore[arg-type]
    shown = client_checks.shown_share(blobs, evidence, public, context, terms)
    if case in ("opens", "no-proof-for-an-open-share"):
        assert isinstance(shown, client_checks.ShownShare) and shown.share.tolist() == [1, 2, 3, 4]
        assert (shown.proof is None) if not with_proof else shown.proof.tolist() == [0, 1, 7]
    elif case in ("opens-to-no-share", "does-not-open", "bad-header", "proof-under-another-key",
                  "proof-of-another-size"):
        assert shown == UNUSABLE
    else:
        assert shown is None
