"""Whole rounds in the masked mode (fedtss.masking), in process against anvil and a LocalStore:
the model is plaintext FedAvg, members may be down, allowlisted clients may be absent, and a
client whose seed shares or masked vector are bad is excluded by name while the round goes on."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest


from agents.client import (
    MaskingKeys,
    PreparedUpdate,
    UpdateContext,
    masked_mode_keys,
    masking_keys,
    prepare_masked_update,
    quantized_vector,
)
from fedtss.chain import ClientSet, CollectionClosed, RoundState, ThresholdReached, UpdateSubmitted, events_of
from fedtss.cid import compute_cid
from fedtss.errors import ConfigError
from fedtss.formats import encode_manifest, parse_manifest
from fedtss.masking import decode_ring_vector, field_to_ring
from fedtss.storage import LocalStore
from tests.agents.conftest import Federation, masking_private_key

BITS = 48
LOGGER = "fedtss.agents"


def _excluded(caplog, address: str) -> set[str]:
    """The reasons logged for excluding the client at ``address`` (one per member that did)."""
    return {r.getMessage().split("reason=")[1] for r in caplog.records
            if f"excluded_client={address}" in r.getMessage()}


def test_a_masked_round_gives_plaintext_fedavg_and_stores_one_masked_vector_per_client(make_federation_in) -> None:
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2, modulus_bits=BITS)
    assert all(member.modulus_bits == BITS for member in fed.members)
    fed.drive()

    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])
    final_cid, _ = fed.finalized_model()
    assert set(fed.votes().values()) == {final_cid}
    quantization = fed.clients[0].federation.quantization
    for submitted in events_of(fed.events(), UpdateSubmitted):
        manifest = parse_manifest(fed.store.get(submitted.manifest_cid, max_bytes=1 << 20))
        stored = decode_ring_vector(fed.store.get(manifest.masked_cid, max_bytes=1 << 24), bits=BITS,
                                    expected_length=manifest.vector_length)
        index = [c.node.address.lower() for c in fed.clients].index(manifest.client)
        plain = field_to_ring(quantized_vector(*fed.client_update(index), quantization), BITS)
        assert manifest.modulus_bits == BITS and stored.shape == plain.shape
        assert np.mean(stored == plain) < 0.01  # masked: what is stored is not the update


def test_with_n_minus_t_members_down_a_masked_round_still_finalizes(make_federation_in) -> None:
    # With only t shares in, a member waits for one more that could check them, up to half the
    # time left: a short committee period keeps that wait short.
    fed: Federation = make_federation_in(clients=3, members=5, threshold=3, modulus_bits=BITS,
                                         aggregation_period=20)
    alive = [*fed.clients, *fed.members[:3]]  # members 4 and 5 are down for the whole round
    fed.drive(alive)

    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1, 2])
    assert set(fed.votes()) == {m.node.address for m in fed.members[:3]}


def test_a_client_absent_after_registering_costs_nothing_its_pairwise_masks_are_removed(make_federation_in) -> None:
    fed: Federation = make_federation_in(clients=4, members=3, threshold=2, min_clients=2, target_clients=3,
                                         modulus_bits=BITS)
    fed.drive([*fed.clients[:3], *fed.members])  # client 3 is allowlisted and keyed, and never submits

    assert fed.contract.state(1) == RoundState.Finalized
    (reached,) = events_of(fed.events(), ThresholdReached)
    assert reached.included_clients == ClientSet(0b111)
    fed.assert_model_is_fedavg_of([0, 1, 2])


def _prepare_masked(fed: Federation, index: int, round_: int = 1) -> PreparedUpdate:
    """Client ``index``'s honest masked update for ``round_``, with pinned randomness."""
    agent = fed.clients[index]
    node = agent.node
    delta, samples = fed.client_update(index)
    keys = [key for _, key in node.contract.committee()]
    masking: MaskingKeys = masking_keys(agent, b"\x11" * 32)
    return prepare_masked_update(
        delta, samples, context=UpdateContext(node.deployment.chain_id, node.deployment.address, round_,
                                              node.address),
        member_keys=keys, threshold=node.contract.threshold(), quantization=agent.federation.quantization,
        masking=masking, sharing_key=b"\x05" * 32, ephemeral_seeds=[bytes([9 + j]) * 32 for j in range(len(keys))])


def _submit(fed: Federation, index: int, prepared: PreparedUpdate, *, store_masked: bool = True) -> None:
    for blob in prepared.sealed_shares:
        fed.store.put(blob)
    if store_masked:
        fed.store.put(prepared.masked_blob)
    fed.contract.submit_update(fed.clients[index].node.account, 1, fed.store.put(prepared.manifest_blob))


def test_clients_with_bad_seed_shares_or_masked_vectors_are_excluded_by_name_and_the_round_finalizes(
    make_federation_in, caplog,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    fed: Federation = make_federation_in(clients=5, members=3, threshold=2, modulus_bits=BITS)
    fed.drive(fed.clients[:2])  # clients 0 and 1 are honest agents
    # 2: its seed shares for member 1 are sealed for round 2 (members 2 and 3 open theirs).
    honest, other_round = _prepare_masked(fed, 2), _prepare_masked(fed, 2, round_=2)
    sealed = (other_round.sealed_shares[0], *honest.sealed_shares[1:])
    manifest = replace(honest.manifest, share_cids=tuple(compute_cid(blob) for blob in sealed))
    _submit(fed, 2, PreparedUpdate(sealed, manifest, encode_manifest(manifest), honest.masked_blob))
    # 3: its masked vector is never stored.
    _submit(fed, 3, _prepare_masked(fed, 3), store_masked=False)
    # 4: its masked vector is one value short of the manifest's length.
    four = _prepare_masked(fed, 4)
    short = four.masked_blob[:-6]
    manifest = replace(four.manifest, masked_cid=compute_cid(short))
    _submit(fed, 4, PreparedUpdate(four.sealed_shares, manifest, encode_manifest(manifest), short))

    fed.drive(fed.members)

    addresses = [c.node.address for c in fed.clients]
    assert _excluded(caplog, addresses[2]) == {"InvalidSealedShare"}
    assert sum(f"excluded_client={addresses[2]}" in r.getMessage() for r in caplog.records) == 1
    assert len(_excluded(caplog, addresses[3])) == 1
    assert len(_excluded(caplog, addresses[4])) == 1
    assert fed.contract.state(1) == RoundState.Finalized
    (reached,) = events_of(fed.events(), ThresholdReached)
    assert reached.included_clients == ClientSet(0b00111)  # members 2 and 3 agreed first
    fed.assert_model_is_fedavg_of([0, 1, 2])


def test_a_member_of_a_masked_deployment_refuses_to_start_when_sums_could_wrap_the_ring(make_federation_in) -> None:
    # The conftest's [federation] (1000 clients of up to 10,000 samples, clip 10, 16 bits) fits
    # 48-bit words, not 32-bit ones: the first agent built refuses, naming what to lower.
    with pytest.raises(ConfigError, match="32-bit masked words.*lower"):
        make_federation_in(clients=3, members=3, threshold=2, modulus_bits=32)


def test_a_client_refuses_to_start_without_the_masking_key_the_deployment_registered_for_it(
    make_federation_in,
) -> None:
    fed: Federation = make_federation_in(clients=2, members=2, threshold=2, modulus_bits=BITS)
    node, settings = fed.clients[0].node, fed.clients[0].settings
    assert masked_mode_keys(node, settings, {"MASKING_0": masking_private_key(0).hex()})[0] == BITS
    with pytest.raises(ConfigError, match="does not match the one the deployment registered"):
        masked_mode_keys(node, settings, {"MASKING_0": masking_private_key(1).hex()})
    with pytest.raises(ConfigError, match="masking key"):
        masked_mode_keys(node, settings, {})


def test_each_member_reads_each_masked_vector_once_per_round(make_federation_in, monkeypatch) -> None:
    fed: Federation = make_federation_in(clients=3, members=3, threshold=2, modulus_bits=BITS)
    reads: Counter[str] = Counter()
    real_get = LocalStore.get

    def counting_get(self, cid, **options):
        reads[cid] += 1
        return real_get(self, cid, **options)

    monkeypatch.setattr(LocalStore, "get", counting_get)
    fed.drive()
    monkeypatch.undo()

    assert fed.contract.state(1) == RoundState.Finalized
    masked = {parse_manifest(fed.store.get(e.manifest_cid, max_bytes=1 << 20)).masked_cid
              for e in events_of(fed.events(), UpdateSubmitted)}
    assert {cid: reads[cid] for cid in masked} == {cid: 3 for cid in masked}  # once by each member


def test_a_member_that_summed_a_client_the_fixed_set_leaves_out_takes_it_out(make_federation_in) -> None:
    # Client 2's seed rows open for members 1 and 2 only. Members 3 and 4 post first, so {0, 1} is
    # fixed; members 1 and 2 summed client 2's masked vector in step 1 and must take it out.
    fed: Federation = make_federation_in(clients=3, members=4, threshold=2, modulus_bits=BITS)
    fed.drive(fed.clients[:2])
    honest, other_round = _prepare_masked(fed, 2), _prepare_masked(fed, 2, round_=2)
    sealed = (*honest.sealed_shares[:2], *other_round.sealed_shares[2:])
    manifest = replace(honest.manifest, share_cids=tuple(compute_cid(blob) for blob in sealed))
    _submit(fed, 2, PreparedUpdate(sealed, manifest, encode_manifest(manifest), honest.masked_blob))
    m1, m2, m3, m4 = fed.members
    fed.drive(lambda e: [m3, m4, m1, m2] if isinstance(e, CollectionClosed) else [m1, m2, m3, m4])

    (reached,) = events_of(fed.events(), ThresholdReached)
    assert reached.included_clients == ClientSet(0b011)
    assert fed.contract.state(1) == RoundState.Finalized
    fed.assert_model_is_fedavg_of([0, 1])
    assert m1.masked_step1[1].summed == frozenset({0, 1})  # client 2 taken out of its running sum
