"""The launcher's measurement of a round: the folded record's facts with the times it saw each step.

The tracker itself runs against real processes in tests/e2e and test_launcher.py; here the
pure :func:`measure_round` gets a record folded from hand-made events.
"""

from __future__ import annotations

import hashlib

from fedtss.chain import (
    ClientSet,
    CollectionClosed,
    RoundFailed,
    RoundFinalized,
    RoundOpened,
    RoundState,
    ThresholdReached,
    UpdateSubmitted,
)
from fedtss.chain.rounds import fold_rounds
from fedtss.cid import RAW, cid_from_parts
from orchestration.tracker import measure_round

MODEL = cid_from_parts(RAW, hashlib.sha256(b"model 0").digest())
RESULT = cid_from_parts(RAW, hashlib.sha256(b"model 1").digest())


def _at(block: int) -> dict:
    return {"block_number": block, "tx_hash": f"0x{block:064x}", "log_index": 0}


def _opened_with_updates(count: int) -> list:
    return [RoundOpened(round=1, model_cid=MODEL, collection_deadline=100, **_at(1)),
            *(UpdateSubmitted(round=1, client=f"0x{i + 1:040x}", index=i, manifest_cid=MODEL, **_at(2 + i))
              for i in range(count))]


def test_a_finalized_round_is_measured_between_the_times_the_launcher_saw_each_step() -> None:
    events = [*_opened_with_updates(3), CollectionClosed(round=1, clients=3, aggregation_deadline=160, **_at(5)),
              ThresholdReached(round=1, included_clients=ClientSet.of([0, 2]), proposal_deadline=220, **_at(6)),
              RoundFinalized(round=1, model_cid=RESULT, **_at(7))]
    seen_at = {RoundState.Collecting: 100.0, RoundState.Aggregating: 102.5, RoundState.Reconstructing: 103.0,
               RoundState.Finalized: 104.25}
    measured = measure_round(fold_rounds(events)[1], seen_at, gas={"submitUpdate": 3}, accuracy=0.9, loss=0.3)
    assert (measured.state, measured.submitted, measured.participants, measured.model_cid) == ("Finalized", 3, 2,
                                                                                             RESULT)
    assert measured.seconds() == {"collecting": 2.5, "aggregating": 0.5, "reconstructing": 1.25, "total": 4.25}
    assert (measured.accuracy, measured.loss, measured.gas, measured.failed_in) == (0.9, 0.3, {"submitUpdate": 3}, None)


def test_a_failed_round_is_measured_with_the_state_it_failed_in_and_its_end() -> None:
    events = [*_opened_with_updates(1), RoundFailed(round=1, state_at_failure=RoundState.Collecting, **_at(9))]
    measured = measure_round(fold_rounds(events)[1], {RoundState.Collecting: 10.0, RoundState.Failed: 16.0})
    assert (measured.state, measured.failed_in, measured.participants) == ("Failed", "Collecting", None)
    assert measured.marks == {"end": 16.0} and measured.seconds() == {"total": 6.0}


def test_an_open_round_has_no_result_and_no_total_yet() -> None:
    measured = measure_round(fold_rounds(_opened_with_updates(2))[1], {RoundState.Collecting: 1.0})
    assert (measured.state, measured.submitted, measured.model_cid, measured.gas) == ("Collecting", 2, None, {})
    assert measured.opened_at == 1.0 and measured.seconds() == {}


def test_a_clients_upload_is_its_manifest_and_every_blob_it_names_proofs_included(tmp_path) -> None:
    import os

    from fedtss.formats import Manifest, encode_manifest
    from fedtss.quantize import QuantizationConfig
    from fedtss.storage.local import LocalStore
    from orchestration.tracker import stored_upload_bytes

    store = LocalStore(tmp_path / "store")
    shares = [store.put(os.urandom(1000)) for _ in range(3)]
    proofs = [store.put(os.urandom(300)) for _ in range(3)]
    manifest = Manifest(chain_id=31337, contract="0x5FbDB2315678afecb367f032d93F642f64180aa3", round=1,
                        client="0x70997970C51812dc3A010C7d01b50e0d17dc79C8", n=3, t=2, vector_length=11,
                        quantization=QuantizationConfig(clip_norm=2.5, fractional_bits=12), share_cids=tuple(shares),
                        norm_claims=(1, 2, 3), samples=5, proof_cids=tuple(proofs), bit_claims=(4, 5, 6))
    blob = encode_manifest(manifest)
    assert stored_upload_bytes(store, store.put(blob)) == len(blob) + 3 * 1000 + 3 * 300
