"""The FedAvg update math and the plaintext baseline the demo compares against, on the default task."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from agents.learning import (
    DEFAULT_CLIP_NORM,
    apply_mean_update,
    compute_client_update,
    compute_delta,
    model_tensors,
    plaintext_fedavg,
    round_settings,
)
from fedtss import field
from fedtss.errors import FormatError
from fedtss.formats import decode_model, encode_model, flatten_model
from fedtss.quantize import (
    QuantizationConfig,
    clip_update,
    dequantize_sum,
    quantization_error_bound,
    quantize_update,
)
from fedtss.shamir import reconstruct_at_zero, share_vector
from fedtss.task import Settings

from .conftest import SEED


def _flat(tensors) -> np.ndarray:
    return flatten_model(tensors)[0].astype(np.float64)


def test_default_setup_reaches_90_percent_within_10_rounds(federation, start) -> None:
    rounds = plaintext_fedavg(
        federation.task, start, federation.clients, rounds=10, settings=Settings(),
        clip_norm=DEFAULT_CLIP_NORM, seed=SEED, test=federation.test,
    )
    assert [r.round for r in rounds] == list(range(1, 11))
    assert rounds[-1].accuracy >= 0.90
    assert rounds[-1].loss < rounds[0].loss
    assert all(len(r.update_norms) == 10 for r in rounds)


def test_baseline_is_deterministic_for_a_seed(federation, start) -> None:
    def run(seed: int):
        return plaintext_fedavg(
            federation.task, start, federation.clients[:3], rounds=2, settings=Settings(epochs=1),
            clip_norm=DEFAULT_CLIP_NORM, seed=seed, test=federation.test,
        )

    first, second, other = run(5), run(5), run(6)
    assert encode_model(first[-1].tensors) == encode_model(second[-1].tensors)
    assert first[-1].metrics == second[-1].metrics
    assert encode_model(first[-1].tensors) != encode_model(other[-1].tensors)


def test_baseline_without_a_test_set_has_no_metrics(federation, start) -> None:
    (result,) = plaintext_fedavg(
        federation.task, start, federation.clients[:2], rounds=1, settings=Settings(epochs=1),
        clip_norm=DEFAULT_CLIP_NORM, seed=SEED, test=None,
    )
    assert result.metrics == {} and result.accuracy is None and result.loss is None


def test_clipping_bounds_the_change_of_the_global_model(federation, start) -> None:
    clip_norm = 0.01
    (result,) = plaintext_fedavg(
        federation.task, start, federation.clients, rounds=1, settings=Settings(),
        clip_norm=clip_norm, seed=SEED, test=federation.test,
    )
    assert min(result.update_norms) > 10 * clip_norm  # every update was clipped...
    change = np.linalg.norm(_flat(result.tensors) - _flat(start))
    assert change <= clip_norm * (1 + 1e-5)  # ...so their weighted mean moves at most clip_norm


def test_default_clip_norm_leaves_honest_updates_unclipped(federation, start) -> None:
    rounds = plaintext_fedavg(
        federation.task, start, federation.clients, rounds=3, settings=Settings(),
        clip_norm=DEFAULT_CLIP_NORM, seed=SEED, test=None,
    )
    assert max(norm for r in rounds for norm in r.update_norms) < DEFAULT_CLIP_NORM


def test_baseline_round_is_the_example_weighted_mean_of_clipped_deltas(federation, start) -> None:
    task, clients, clip_norm = federation.task, federation.clients[:4], 1.0
    (result,) = plaintext_fedavg(
        task, start, clients, rounds=1, settings=Settings(), clip_norm=clip_norm, seed=9, test=None,
    )
    weighted, total = 0.0, 0
    for index, data in enumerate(clients):
        settings = round_settings(Settings(), federation_seed=9, round_number=1, client_index=index)
        model = task.model_from(start)
        examples = task.train(model, data, settings)
        assert examples == len(federation.parts[index]["y"])
        weighted = weighted + clip_update(compute_delta(start, model_tensors(model)), clip_norm) * examples
        total += examples
    expected = apply_mean_update(start, weighted / total)
    assert encode_model(result.tensors) == encode_model(expected)


def test_secure_path_matches_the_baseline_within_quantization_error(federation, start) -> None:
    # The committee's arithmetic: every client quantizes and shares its update 3-of-5, each
    # holder sums the shares it received, and 3 holders' sums reconstruct the field sum.
    task, clients = federation.task, federation.clients
    config = QuantizationConfig(clip_norm=DEFAULT_CLIP_NORM)
    threshold, holders = 3, 5
    held = None
    for index, data in enumerate(clients):
        settings = round_settings(Settings(), federation_seed=SEED, round_number=1, client_index=index)
        delta, examples = compute_client_update(task, start, data, settings)
        vector = quantize_update(delta, examples, config)
        key = hashlib.sha256(b"test share key %d" % index).digest()
        shares = share_vector(vector, threshold=threshold, holders=holders, key=key)
        held = shares if held is None else field.add(held, shares)  # holder j's row: j - 1
    total = reconstruct_at_zero({j: held[j - 1] for j in (2, 4, 5)})
    mean, examples_total = dequantize_sum(total, config)
    secure = apply_mean_update(start, mean)
    (baseline,) = plaintext_fedavg(
        task, start, clients, rounds=1, settings=Settings(), clip_norm=DEFAULT_CLIP_NORM,
        seed=SEED, test=None,
    )
    bound = quantization_error_bound(config, clients=len(clients), total_samples=examples_total)
    gap = np.max(np.abs(_flat(secure) - _flat(baseline.tensors)))
    assert examples_total == sum(len(part["y"]) for part in federation.parts)
    assert gap <= bound + 2 * np.finfo(np.float32).eps  # plus float32 rounding of the model


def test_delta_applied_to_global_gives_back_the_local_model(federation, start) -> None:
    task = federation.task
    model = task.model_from(start)
    task.train(model, federation.clients[0], Settings(seed=1))
    local = model_tensors(model)
    delta = compute_delta(start, local)
    assert delta.dtype == np.float32
    rebuilt = apply_mean_update(start, delta)
    assert np.allclose(_flat(rebuilt), _flat(local), atol=1e-6)


def test_client_update_is_the_unclipped_delta_and_the_example_count(federation, start) -> None:
    task, data = federation.task, federation.clients[0]
    delta, examples = compute_client_update(task, start, data, Settings(seed=1))
    model = task.model_from(start)
    assert task.train(model, data, Settings(seed=1)) == examples == len(federation.parts[0]["y"])
    assert np.array_equal(delta, compute_delta(start, model_tensors(model)))


def test_mean_update_is_added_in_float64_and_rounded_once(start) -> None:
    update = np.random.default_rng(0).normal(size=flatten_model(start)[0].size) * 1e-3
    updated = apply_mean_update(start, update)
    expected = (_flat(start) + update).astype(np.float32)
    assert np.array_equal(flatten_model(updated)[0], expected)
    assert all(t.dtype == np.float32 for t in updated.values())


def test_applying_an_update_to_a_decoded_blob_is_byte_identical(start) -> None:
    update = np.full(flatten_model(start)[0].size, 1 / 3)
    blob = encode_model(start)
    members = [apply_mean_update(decode_model(blob, max_bytes=1 << 20), update) for _ in range(2)]
    assert encode_model(members[0]) == encode_model(members[1])
    assert encode_model(members[0]) != blob


@pytest.mark.parametrize(
    "update, message",
    [(np.zeros(3), "shape"), (np.zeros((1, 4810)), "shape"), (np.full(4810, np.nan), "non-finite")],
)
def test_malformed_mean_update_is_refused(start, update: np.ndarray, message: str) -> None:
    assert flatten_model(start)[0].size == 4810
    with pytest.raises(FormatError, match=message):
        apply_mean_update(start, update)


def test_delta_between_models_of_different_layouts_is_refused(start) -> None:
    other = dict(start)
    other.pop("2.bias")
    with pytest.raises(FormatError, match="different tensor names or shapes"):
        compute_delta(start, other)
