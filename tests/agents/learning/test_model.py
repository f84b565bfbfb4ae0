"""The MLP and its named float32 tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.learning.model import (
    ModelConfig,
    build_model,
    config_from_tensors,
    initial_tensors,
    model_to_tensors,
    tensors_to_model,
)
from fedtss.errors import ConfigError, FormatError

NAMES = ["hidden.bias", "hidden.weight", "output.bias", "output.weight"]


def test_tensors_are_float32_in_the_fixed_order_with_the_config_shapes() -> None:
    tensors = initial_tensors(ModelConfig(hidden=32), seed=0)
    assert list(tensors) == NAMES
    assert [t.shape for t in tensors.values()] == [(32,), (32, 64), (10,), (10, 32)]
    assert all(t.dtype == np.float32 for t in tensors.values())


def test_tensors_model_round_trip_keeps_values_and_outputs() -> None:
    model = build_model(ModelConfig(), seed=4)
    tensors = model_to_tensors(model)
    rebuilt = tensors_to_model(tensors)
    again = model_to_tensors(rebuilt)
    assert all(np.array_equal(tensors[name], again[name]) for name in NAMES)
    x = torch.rand(5, 64)
    assert torch.equal(model(x), rebuilt(x))


def test_tensors_are_copies_not_views_of_the_model() -> None:
    model = build_model(ModelConfig(), seed=4)
    tensors = model_to_tensors(model)
    with torch.no_grad():
        model.hidden.weight.add_(1.0)
    assert not np.array_equal(tensors["hidden.weight"], model_to_tensors(model)["hidden.weight"])


def test_init_is_deterministic_per_seed_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    first = initial_tensors(ModelConfig(), seed=1)
    assert torch.equal(torch.rand(3), expected_draw)
    second = initial_tensors(ModelConfig(), seed=1)
    other = initial_tensors(ModelConfig(), seed=2)
    assert all(np.array_equal(first[n], second[n]) for n in NAMES)
    assert not np.array_equal(first["hidden.weight"], other["hidden.weight"])


def test_architecture_is_read_back_from_tensor_shapes() -> None:
    config = ModelConfig(input_dim=64, hidden=17, num_classes=10)
    assert config_from_tensors(initial_tensors(config, seed=0)) == config


def test_tensors_in_another_order_still_build_the_same_model() -> None:
    tensors = initial_tensors(ModelConfig(), seed=0)
    shuffled = {name: tensors[name] for name in reversed(NAMES)}
    assert list(model_to_tensors(tensors_to_model(shuffled))) == NAMES


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.pop("output.bias"), "must be named"),
        (lambda t: t.update(extra=np.zeros(1, np.float32)), "must be named"),
        (lambda t: t.update({"hidden.bias": np.zeros(3, np.float32)}), "hidden.bias must be"),
        (lambda t: t.update({"output.bias": np.zeros(10, np.float64)}), "output.bias must be"),
        (lambda t: t.update({"output.bias": np.full(10, np.inf, np.float32)}), "non-finite"),
    ],
)
def test_tensors_that_do_not_form_an_mlp_are_refused(change, message: str) -> None:
    tensors = initial_tensors(ModelConfig(), seed=0)
    change(tensors)
    with pytest.raises(FormatError, match=message):
        tensors_to_model(tensors)


def test_model_config_rejects_empty_layers() -> None:
    with pytest.raises(ConfigError, match="hidden"):
        ModelConfig(hidden=0)
