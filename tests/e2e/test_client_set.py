"""End to end: a round gives t public aggregate shares to one client set only.

Committee of 4, t = 2, 3 clients, one OS process per agent. The test plays client 2: it trains
and shares its update exactly as the client agent does, but stores only the sealed shares of
members 1 and 2, as if its uploads for members 3 and 4 had been lost (or their store timed
out on them). Members 1 and 2 can then include every client and members 3 and 4 only
clients 0 and 1: two sets, each with t members able to post over it. Were both accepted, both
sums would be public, and their difference is client 2's update. The contract fixes the set
of ``ThresholdReached`` and refuses any other, so the round finalizes from that set alone.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest

from agents.client import UpdateContext, prepare_update
from agents.config import load_node_config
from agents.learning import apply_mean_update
from fedtss.chain import AggregateShareSubmitted, ClientSet, ThresholdReached, UpdateSubmitted, events_of
from fedtss.quantize import clip_update, quantization_error_bound
from orchestration.launcher import LocalFederation
from orchestration.tracker import RoundTracker

from .conftest import ROUND_TIMEOUT

pytestmark = pytest.mark.slow

THRESHOLD = 2


def _submit_readable_only_by(federation: LocalFederation, round_: int, client_index: int,
                             members: tuple[int, ...]) -> None:
    """Client ``client_index``'s real update for ``round_``, with only ``members``' sealed shares stored."""
    spec, contract = federation.spec, federation.contract
    account = federation.clients[client_index]
    quantization = load_node_config(federation.config_path(f"client-{client_index}"),
                                    role="client").federation.quantization
    model = federation.load_model(federation.initial_model_cid)
    delta, samples = federation.client_update(client_index, round_, model)
    committee = contract.committee()
    prepared = prepare_update(
        delta, samples,
        context=UpdateContext(contract.w3.eth.chain_id, contract.address, round_, account.address),
        member_keys=[key for _, key in committee], threshold=contract.threshold(), quantization=quantization,
        sharing_key=os.urandom(32), ephemeral_seeds=[os.urandom(32) for _ in committee],
    )
    for member, blob in enumerate(prepared.sealed_shares, start=1):
        if member in members:
            federation.store.put(blob)
    manifest_cid = federation.store.put(prepared.manifest_blob)
    contract.submit_update(account, round_, manifest_cid)


def _client_indices(federation: LocalFederation, updates: list[UpdateSubmitted], included: ClientSet) -> list[int]:
    """The federation's client numbers (0-based) of the submissions in ``included``."""
    addresses = [c.address for c in federation.clients]
    return sorted(addresses.index(e.client) for e in updates if e.index in included)


def _assert_is_plaintext_fedavg_of(federation: LocalFederation, clients: list[int], finalized_cid: str) -> None:
    """The finalized model is clipped, sample-weighted FedAvg of exactly ``clients``' round-1 updates."""
    spec = federation.spec
    model_in = federation.load_model(federation.initial_model_cid)
    quantization = load_node_config(federation.config_path("member-1"), role="aggregator").federation.quantization
    weighted, total = None, 0
    for index in clients:
        delta, samples = federation.client_update(index, 1, model_in)
        contribution = clip_update(delta, spec.clip_norm) * samples
        weighted = contribution if weighted is None else weighted + contribution
        total += samples
    expected = apply_mean_update(model_in, weighted / total)
    finalized = federation.load_model(finalized_cid)
    bound = quantization_error_bound(quantization, clients=len(clients), total_samples=total,
                                     weighted_by_members=spec.members_weight_updates)
    for name, value in expected.items():
        assert np.all(np.abs(finalized[name] - value) <= bound + np.spacing(np.abs(value))), name


def test_members_that_cannot_read_one_client_never_give_a_second_client_set_t_shares(small_federation) -> None:
    federation, tracker = small_federation(skip=("client-2",), rounds=1, committee=4, threshold=THRESHOLD)
    tracker.wait_until(lambda t: 1 in t.records, timeout=ROUND_TIMEOUT)
    _submit_readable_only_by(federation, 1, 2, members=(1, 2))

    tracker.wait_until(lambda t: t.completed, timeout=ROUND_TIMEOUT)
    assert tracker.records[1].state == "Finalized"
    events = [e for e in tracker.round_events(1) if isinstance(e, (AggregateShareSubmitted, ThresholdReached))]
    [reached] = events_of(events, ThresholdReached)
    fixed = reached.included_clients
    shares = Counter(e.included_clients for e in events_of(events, AggregateShareSubmitted))
    assert [s for s, n in shares.items() if n >= THRESHOLD] == [fixed], f"sets with t shares: {shares}"
    after = events[events.index(reached) + 1:]
    assert {e.included_clients for e in after} <= {fixed}, "a share over another set was accepted"
    # Only shares over the fixed set were ever published: one over another set, next to the
    # public sum, would give its member's share of the clients the two sets differ in.
    published = Counter(e.included_clients for e in events_of(events, AggregateShareSubmitted)
                        if federation.store.has(e.share_cid))
    assert set(published) == {fixed} and published[fixed] >= THRESHOLD, f"published shares by set: {published}"

    # The members did disagree: 3 and 4 left client 2 out (it was not their store's fault).
    client = federation.clients[2].address
    for name in ("member-3", "member-4"):
        assert f"excluded_client={client}" in federation.log_path(name).read_text(), name
    updates = tracker.round_events(1, UpdateSubmitted)
    _assert_is_plaintext_fedavg_of(federation, _client_indices(federation, updates, fixed),
                                   tracker.records[1].model_cid)

