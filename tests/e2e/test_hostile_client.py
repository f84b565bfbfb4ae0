"""End to end: whatever a client's manifest says costs that client its place, never a member its process.

Committee of 3, t = 2, 3 clients, one OS process per agent. The test plays client 2: as soon
as round 1 opens it stores a manifest that is right for this chain, contract, round and client
in every field but one, whose quantization numbers sit at the float and integer limits (the
largest float as ``clip_norm``, 2^40 clients and samples). It submits first, so collection
closes at the target of 3 as soon as clients 0 and 1 have submitted. Every member must exclude
client 2 for its manifest (a FormatError, logged and recorded with its address), stay up, and
the round finalizes from the other two clients. Before the fix, building the capacity error
for these numbers raised OverflowError, which ended every member process.

The manifest is refused before any sealed share is fetched, so its ``share_cids`` point at
placeholder blobs rather than real sealed shares.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.config import load_node_config
from fedtss.formats import Manifest, RoundTerms, check_manifest, encode_manifest, parse_manifest, shared_vector_length
from orchestration.launcher import LocalFederation

from .conftest import ROUND_TIMEOUT
from .test_client_set import _assert_is_plaintext_fedavg_of

pytestmark = pytest.mark.slow

HOSTILE = 2
#: Accepted by JSON and by every range check but the capacity one; QuantizationConfig refuses
#: them, so they are written into the manifest's JSON directly.
ABSURD_QUANTIZATION = {"clip_norm": 1.7976931348623157e308, "fractional_bits": 60,
                       "max_clients": 2**40, "max_samples": 2**40}
#: Each member's record of the parties it excluded, in its node's ``state_dir``.
EXCLUSIONS_FILE = "exclusions.jsonl"


def _submit_absurd_manifest(federation: LocalFederation, round_: int, client_index: int) -> None:
    """Store a manifest valid for ``round_`` but for its quantization; submit it as the client."""
    contract, store = federation.contract, federation.store
    account = federation.clients[client_index]
    model = federation.load_model(federation.initial_model_cid)
    committee = contract.committee()
    terms = RoundTerms(
        chain_id=contract.w3.eth.chain_id, contract=contract.address, round=round_, n=len(committee),
        t=contract.threshold(), vector_length=shared_vector_length(model),
        quantization=load_node_config(federation.config_path("member-1"), role="aggregator").federation.quantization,
    )
    honest = Manifest(
        chain_id=terms.chain_id, contract=terms.contract, round=round_, client=account.address, n=terms.n,
        t=terms.t, vector_length=terms.vector_length, quantization=terms.quantization,
        share_cids=tuple(store.put(f"placeholder share for member {j}".encode()) for j in range(1, terms.n + 1)),
    )
    document = json.loads(encode_manifest(honest))
    document["quantization"] = ABSURD_QUANTIZATION
    manifest_cid = store.put(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
    # Only the quantization is wrong: the same manifest with the honest numbers passes the members' check.
    check_manifest(parse_manifest(encode_manifest(honest)), client=account.address, terms=terms)
    contract.submit_update(account, round_, manifest_cid)


def _exclusions(federation: LocalFederation, member: str) -> list[dict]:
    state_dir = Path(load_node_config(federation.config_path(member), role="aggregator").node.state_dir)
    path = state_dir / EXCLUSIONS_FILE
    assert path.is_file(), f"{member} recorded no exclusion in {path}"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _members_exited(federation: LocalFederation) -> dict[str, int]:
    return {name: code for name, code in federation.exited().items() if name in federation.member_names}


def test_a_client_posting_absurd_quantization_is_excluded_by_every_member_and_the_round_finalizes(
        small_federation) -> None:
    federation, tracker = small_federation(skip=(f"client-{HOSTILE}",), rounds=1)
    tracker.wait_until(lambda t: 1 in t.records, timeout=ROUND_TIMEOUT)
    _submit_absurd_manifest(federation, 1, HOSTILE)

    # Stop waiting as soon as a member exits: that is the failure this test is about.
    tracker.wait_until(lambda t: t.completed or bool(_members_exited(federation)), timeout=ROUND_TIMEOUT)
    hostile = federation.clients[HOSTILE].address
    for name in federation.member_names:
        assert name not in federation.exited(), (
            f"{name} exited with code {federation.exited()[name]}:\n{federation.log_tail(name)}")
        log = federation.log_path(name).read_text(errors="replace")
        assert f"excluded_client={hostile} reason=FormatError" in log, name
    record = tracker.records[1]
    assert record.state == "Finalized" and record.submitted == 3 and record.participants == 2
    _assert_is_plaintext_fedavg_of(federation, [0, 1], record.model_cid)
    for name in federation.member_names:
        [exclusion] = [e for e in _exclusions(federation, name) if e.get("client", "").lower() == hostile.lower()]
        member = federation.members[federation.member_names.index(name)].address
        assert exclusion["by"].lower() == member.lower(), name  # who decided
        assert exclusion == {"round": 1, "client": exclusion["client"], "reason": "FormatError",
                             "by": exclusion["by"]}, name
    assert not federation.exited(), {name: federation.log_tail(name) for name in federation.exited()}
