"""The FedAvg update math and the plaintext baseline the demo compares against."""

from __future__ import annotations

import numpy as np
import pytest

from agents.learning.data import DataConfig, make_federation
from agents.learning.fedavg import (
    DEFAULT_CLIP_NORM,
    apply_mean_update,
    compute_client_update,
    compute_delta,
    plaintext_fedavg,
)
from agents.learning.model import ModelConfig, initial_tensors
from agents.learning.train import TrainConfig, derive_training_seed, train_locally
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


@pytest.fixture(scope="module")
def federation():
    return make_federation(DataConfig())


@pytest.fixture(scope="module")
def start():
    return initial_tensors(ModelConfig(), seed=0)


def _flat(tensors) -> np.ndarray:
    return flatten_model(tensors)[0].astype(np.float64)


def test_default_setup_reaches_90_percent_within_10_rounds(federation, start) -> None:
    rounds = plaintext_fedavg(
        start,
        federation.clients,
        rounds=10,
        train_config=TrainConfig(),
        clip_norm=DEFAULT_CLIP_NORM,
        seed=0,
        test=federation.test,
    )
    assert [r.round for r in rounds] == list(range(1, 11))
    assert rounds[-1].accuracy >= 0.90
    assert rounds[-1].loss < rounds[0].loss


def test_baseline_is_deterministic_for_a_seed(federation, start) -> None:
    def run():
        return plaintext_fedavg(
            start, federation.clients[:3], rounds=2, train_config=TrainConfig(epochs=1),
            clip_norm=DEFAULT_CLIP_NORM, seed=5, test=federation.test,
        )

    first, second = run(), run()
    assert encode_model(first[-1].tensors) == encode_model(second[-1].tensors)
    assert first[-1].accuracy == second[-1].accuracy


def test_clipping_bounds_the_change_of_the_global_model(federation, start) -> None:
    clip_norm = 0.01
    (result,) = plaintext_fedavg(
        start, federation.clients, rounds=1, train_config=TrainConfig(),
        clip_norm=clip_norm, seed=0, test=federation.test,
    )
    assert min(result.update_norms) > 10 * clip_norm  # every update was clipped...
    change = np.linalg.norm(_flat(result.tensors) - _flat(start))
    assert change <= clip_norm * (1 + 1e-5)  # ...so their weighted mean moves at most clip_norm


def test_default_clip_norm_leaves_honest_updates_unclipped(federation, start) -> None:
    rounds = plaintext_fedavg(
        start, federation.clients, rounds=3, train_config=TrainConfig(),
        clip_norm=DEFAULT_CLIP_NORM, seed=0, test=federation.test,
    )
    assert max(norm for r in rounds for norm in r.update_norms) < DEFAULT_CLIP_NORM


def test_baseline_round_is_the_sample_weighted_mean_of_clipped_deltas(federation, start) -> None:
    clients, clip_norm = federation.clients[:4], 1.0
    (result,) = plaintext_fedavg(
        start, clients, rounds=1, train_config=TrainConfig(), clip_norm=clip_norm, seed=9,
        test=federation.test,
    )
    weighted, total = 0.0, 0
    for index, data in enumerate(clients):
        local, samples = train_locally(
            start, data, config=TrainConfig(), seed=derive_training_seed(9, 1, index)
        )
        weighted = weighted + clip_update(compute_delta(start, local), clip_norm) * samples
        total += samples
    expected = apply_mean_update(start, weighted / total)
    assert encode_model(result.tensors) == encode_model(expected)


def test_secure_path_matches_the_baseline_within_quantization_error(federation, start) -> None:
    # The committee's arithmetic without the sharing: quantize, sum in the field, dequantize.
    clients = federation.clients
    config = QuantizationConfig(clip_norm=DEFAULT_CLIP_NORM)
    total = None
    for index, data in enumerate(clients):
        delta, samples = compute_client_update(
            start, data, config=TrainConfig(), seed=derive_training_seed(0, 1, index)
        )
        vector = quantize_update(delta, samples, config)
        total = vector if total is None else field.add(total, vector)
    mean, samples_total = dequantize_sum(total, config)
    secure = apply_mean_update(start, mean)
    (baseline,) = plaintext_fedavg(
        start, clients, rounds=1, train_config=TrainConfig(), clip_norm=DEFAULT_CLIP_NORM,
        seed=0, test=federation.test,
    )
    bound = quantization_error_bound(config, clients=len(clients), total_samples=samples_total)
    gap = np.max(np.abs(_flat(secure) - _flat(baseline.tensors)))
    assert samples_total == sum(c.num_samples for c in clients)
    assert gap <= bound + 2 * np.finfo(np.float32).eps  # plus float32 rounding of the model


def test_delta_applied_to_global_gives_back_the_local_model(start, federation) -> None:
    local, _ = train_locally(start, federation.clients[0], config=TrainConfig(), seed=1)
    delta = compute_delta(start, local)
    assert delta.dtype == np.float32
    rebuilt = apply_mean_update(start, delta)
    assert np.allclose(_flat(rebuilt), _flat(local), atol=1e-6)


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
