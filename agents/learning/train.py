"""Local training and evaluation, deterministic for a seed.

A client process and the launcher's plaintext baseline must train bit-identically from the
same (global model, data, config, seed), so that the secure result can be compared with the
baseline. Hence: one thread (``torch.set_num_threads(1)``; ~10 client processes share two
cores anyway), shuffling from a private seeded generator, plain tensor batching instead of a
DataLoader, and seeds derived by one function, :func:`derive_training_seed`.

The SGD-with-momentum step is written out here rather than taken from ``torch.optim``:
constructing any ``torch.optim`` optimizer imports ``torch._dynamo`` on first use, which
costs about a second of CPU per process (several seconds with ten clients starting on two
cores), far more than a whole local training run on this task (~15 ms).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedtss.errors import ConfigError

from .data import ClientData
from .model import Tensors, model_to_tensors, tensors_to_model

__all__ = [
    "TrainConfig",
    "derive_training_seed",
    "train_locally",
    "evaluate",
]

@dataclass(frozen=True)
class TrainConfig:
    """Local SGD hyper-parameters; the defaults reach the issue's target with margin.

    Momentum starts from zero every round (no state is carried between rounds), which is
    what a client process that only receives the global model can do.
    """

    epochs: int = 5
    batch_size: int = 16
    lr: float = 0.05
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")


def derive_training_seed(base_seed: int, round_number: int, client_index: int) -> int:
    """The seed client ``client_index`` (0-based) trains with in round ``round_number``.

    SHA-256 of ``b"fedtss/train" || base_seed || round || client`` (each a signed 64-bit
    big-endian integer), first 8 bytes, top bit cleared: a 63-bit seed that differs per
    round and client and is the same in every process that derives it.
    """
    message = b"fedtss/train" + struct.pack(">qqq", base_seed, round_number, client_index)
    return int.from_bytes(hashlib.sha256(message).digest()[:8], "big") >> 1


def train_locally(
    global_tensors: Mapping[str, np.ndarray], data: ClientData, *, config: TrainConfig, seed: int
) -> tuple[Tensors, int]:
    """Train the global model on ``data`` for ``config.epochs``; return (local tensors, samples).

    Identical inputs give bit-identical outputs in any process (single-threaded CPU).
    """
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(seed)
    model = tensors_to_model(global_tensors)
    parameters = list(model.parameters())
    velocities = [torch.zeros_like(p) for p in parameters]
    x = torch.from_numpy(data.x)
    y = torch.from_numpy(data.y)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(data.num_samples, generator=generator)
        for start in range(0, data.num_samples, config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            gradients = torch.autograd.grad(loss, parameters)
            _sgd_momentum_step(parameters, gradients, velocities, config)
    return model_to_tensors(model), data.num_samples


@torch.no_grad()
def _sgd_momentum_step(
    parameters: list[torch.Tensor],
    gradients: tuple[torch.Tensor, ...],
    velocities: list[torch.Tensor],
    config: TrainConfig,
) -> None:
    """``v = momentum * v + g; p -= lr * v``: torch.optim.SGD's rule (no dampening, nesterov)."""
    for parameter, gradient, velocity in zip(parameters, gradients, velocities):
        velocity.mul_(config.momentum).add_(gradient)
        parameter.sub_(velocity, alpha=config.lr)


def evaluate(
    tensors: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[float, float]:
    """Return (accuracy in [0, 1], mean cross-entropy loss) of a model on (x, y)."""
    torch.set_num_threads(1)
    model = tensors_to_model(tensors)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
        loss = nn.functional.cross_entropy(logits, labels).item()
        accuracy = (logits.argmax(dim=1) == labels).double().mean().item()
    return float(accuracy), float(loss)
