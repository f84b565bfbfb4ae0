"""The model every node trains: a small MLP, moved between nodes as named float32 tensors.

On the wire a model is a mapping ``name -> float32 array`` (``fedtss.formats.encode_model``);
here it becomes a PyTorch module for training and back. The tensor names are fixed
(``hidden.bias, hidden.weight, output.bias, output.weight``, the name-sorted order in which
``fedtss.formats`` lays them out and flattens them for the update math).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import skip_init

from fedtss.errors import ConfigError, FormatError

from .data import NUM_CLASSES, NUM_FEATURES

__all__ = [
    "ModelConfig",
    "MLP",
    "Tensors",
    "build_model",
    "initial_tensors",
    "model_to_tensors",
    "tensors_to_model",
    "config_from_tensors",
]

Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class ModelConfig:
    """Layer sizes of the MLP: input -> hidden (ReLU) -> classes."""

    input_dim: int = NUM_FEATURES
    hidden: int = 64
    num_classes: int = NUM_CLASSES

    def __post_init__(self) -> None:
        for name in ("input_dim", "hidden", "num_classes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model {name} must be at least 1, got {getattr(self, name)}")

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the tensors, sorted by name as fedtss.formats lays them out."""
        return {
            "hidden.bias": (self.hidden,),
            "hidden.weight": (self.hidden, self.input_dim),
            "output.bias": (self.num_classes,),
            "output.weight": (self.num_classes, self.hidden),
        }


class MLP(nn.Module):
    """input -> Linear -> ReLU -> Linear -> class logits.

    Layers are created uninitialised (``skip_init``): values always come from a seeded
    generator or from received tensors, never from PyTorch's global RNG.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.hidden = skip_init(nn.Linear, config.input_dim, config.hidden)
        self.output = skip_init(nn.Linear, config.hidden, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(torch.relu(self.hidden(x)))


def build_model(config: ModelConfig, *, seed: int) -> MLP:
    """A freshly initialised MLP, identical for identical (config, seed).

    Uses PyTorch's default Linear scheme (uniform in +-1/sqrt(fan_in)) but draws from a
    private generator, so building a model never disturbs or depends on global RNG state.
    """
    model = MLP(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (model.hidden, model.output):
            bound = 1.0 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return model


def initial_tensors(config: ModelConfig, *, seed: int) -> Tensors:
    """The round-1 global model as named tensors, ready for ``fedtss.formats.encode_model``."""
    return model_to_tensors(build_model(config, seed=seed))


def model_to_tensors(model: MLP) -> Tensors:
    """Copy a model's parameters out as float32 arrays in the fixed name order."""
    state = model.state_dict()
    return {
        name: np.ascontiguousarray(state[name].detach().cpu().numpy(), dtype=np.float32).copy()
        for name in model.config.tensor_shapes()
    }


def config_from_tensors(tensors: Mapping[str, np.ndarray]) -> ModelConfig:
    """Recover the layer sizes from a model's tensors, checking names and shapes.

    A model fetched from the store carries no config of its own; its shapes are the config.
    Raises FormatError if the tensors are not exactly those of an MLP.
    """
    expected = {"hidden.weight", "hidden.bias", "output.weight", "output.bias"}
    if set(tensors) != expected:
        raise FormatError(f"model tensors must be named {sorted(expected)}; got {sorted(tensors)}")
    weight = np.asarray(tensors["hidden.weight"])
    out = np.asarray(tensors["output.weight"])
    if weight.ndim != 2 or out.ndim != 2:
        raise FormatError("model weights must be 2-D arrays")
    config = ModelConfig(
        input_dim=weight.shape[1], hidden=weight.shape[0], num_classes=out.shape[0]
    )
    for name, shape in config.tensor_shapes().items():
        array = np.asarray(tensors[name])
        if array.shape != shape or array.dtype != np.float32:
            raise FormatError(
                f"model tensor {name} must be float32 of shape {shape}; "
                f"got {array.dtype} of shape {array.shape}"
            )
        if not np.all(np.isfinite(array)):
            raise FormatError(f"model tensor {name} holds non-finite values")
    return config


def tensors_to_model(tensors: Mapping[str, np.ndarray]) -> MLP:
    """Build the MLP that the given tensors describe, with exactly their values."""
    config = config_from_tensors(tensors)
    model = MLP(config)
    state = {name: torch.from_numpy(np.array(tensors[name], dtype=np.float32)) for name in tensors}
    model.load_state_dict(state, strict=True)
    return model
