"""The update math shared by the secure protocol and its plaintext baseline.

One round of FedAvg as fedtss runs it, for any task (:mod:`fedtss.task`):

    delta_i  = tensors(train_i(global)) - tensors(global)     (client i, float32, flat)
    u_i      = clip(delta_i, clip_norm) * examples_i          (float64; fedtss.quantize does
                                                               this, then quantizes and shares)
    mean     = sum_i u_i / sum_i examples_i                   (committee, after reconstruction)
    global'  = apply_mean_update(global, mean)                (float32, same bytes everywhere)

``tensors`` are the model's float parameters and buffers (``agents.learning.task.model_tensors``).
:func:`plaintext_fedavg` runs exactly these steps in float, without quantization or secret
sharing: it is the baseline the demo compares the secure result against.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from typing import TYPE_CHECKING

import numpy as np

from fedtss.errors import FormatError, TaskError
from fedtss.formats import flatten_model, unflatten_model
from fedtss.quantize import clip_update
from fedtss.task import Settings

if TYPE_CHECKING:
    from .task import LoadedTask

Tensors = dict[str, np.ndarray]

__all__ = [
    "DEFAULT_CLIP_NORM",
    "FedAvgRound",
    "compute_delta",
    "compute_client_update",
    "derive_training_seed",
    "round_settings",
    "apply_mean_update",
    "plaintext_fedavg",
]

# Honest updates on the default digits setup have L2 norm ~5.4 (median) and at most ~7.5 in
# round 1 (from the random initial model), ~1-2.5 from round 3 on (5 seeds, alpha 0.2 and
# 0.5), so 10 bounds a malicious client's influence while clipping honest ones almost never.
DEFAULT_CLIP_NORM = 10.0


@dataclass(frozen=True)
class FedAvgRound:
    """The outcome of one plaintext round: test metrics (empty without a test set), the new
    global model, the clients' update norms."""

    round: int
    metrics: dict[str, float]
    tensors: Tensors
    update_norms: tuple[float, ...]

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    @property
    def loss(self) -> float | None:
        return self.metrics.get("loss")


def derive_training_seed(base_seed: int, round_number: int, client_index: int) -> int:
    """The seed client ``client_index`` (0-based) trains with in round ``round_number``.

    SHA-256 of ``b"fedtss/train" || base_seed || round || client`` (each a signed 64-bit
    big-endian integer), first 8 bytes, top bit cleared: a 63-bit seed that differs per
    round and client and is the same in every process that derives it.
    """
    message = b"fedtss/train" + struct.pack(">qqq", base_seed, round_number, client_index)
    return int.from_bytes(hashlib.sha256(message).digest()[:8], "big") >> 1


def round_settings(base: Settings, *, federation_seed: int, round_number: int, client_index: int) -> Settings:
    """``base`` with the seed and round number of this client's training in this round."""
    return dataclasses.replace(base, round=round_number,
                               seed=derive_training_seed(federation_seed, round_number, client_index))


def compute_delta(
    global_tensors: Mapping[str, np.ndarray], local_tensors: Mapping[str, np.ndarray]
) -> np.ndarray:
    """``local - global`` as one float32 vector (``fedtss.formats.flatten_model`` order).

    This is what ``fedtss.quantize.quantize_update`` takes.
    """
    local_flat, local_layout = flatten_model(local_tensors)
    global_flat, global_layout = flatten_model(global_tensors)
    if local_layout != global_layout:
        raise FormatError("local and global models have different tensor names or shapes")
    return local_flat - global_flat


def compute_client_update(
    task: LoadedTask, global_tensors: Mapping[str, np.ndarray], data: Any, settings: Settings
) -> tuple[np.ndarray, int]:
    """Train the global model on ``data``; return (float32 delta, examples), unclipped.

    Exactly what a client agent passes to ``quantize_update`` (which clips, weights and
    quantizes); the baseline clips and weights the same delta in float. One thread: ten client
    processes share two cores, and a single-threaded CPU run is bit-reproducible.
    """
    import torch  # here, not at the top: a member applies updates with numpy and never loads PyTorch

    from .task import model_tensors

    torch.set_num_threads(1)
    model = task.model_from(global_tensors)
    examples = task.train(model, data, settings)
    delta = compute_delta(global_tensors, model_tensors(model, task=task.name))
    if not np.all(np.isfinite(delta)):
        raise TaskError(f"task {task.name}: train() left non-finite values in the model; lower the learning "
                        "rate or check the loss")
    return delta, examples


def apply_mean_update(
    global_tensors: Mapping[str, np.ndarray], mean_update_flat: np.ndarray
) -> Tensors:
    """The next global model: ``global + mean update``, rounded once to float32.

    ``mean_update_flat`` is in ``fedtss.formats.flatten_model`` order (tensors sorted by
    name), as produced by ``dequantize_sum`` from the clients' :func:`compute_delta` vectors.

    The sum is taken in float64 and rounded to float32 once, element-wise: IEEE arithmetic
    makes this bit-identical on every machine, so honest committee members store identical
    model bytes and their votes carry the same CID.
    """
    base, layout = flatten_model(global_tensors)
    update = np.asarray(mean_update_flat)
    if update.ndim != 1 or update.shape != base.shape:
        raise FormatError(f"mean update has shape {update.shape}; the model needs {base.shape}")
    if not np.all(np.isfinite(update)):
        raise FormatError("mean update holds non-finite values")
    summed = (base.astype(np.float64) + update.astype(np.float64)).astype(np.float32)
    return unflatten_model(summed, layout)


def plaintext_fedavg(
    task: LoadedTask,
    initial_tensors: Mapping[str, np.ndarray],
    clients: Sequence[Any],
    *,
    rounds: int,
    settings: Settings,
    clip_norm: float,
    seed: int,
    test: Any | None,
) -> list[FedAvgRound]:
    """Run ``rounds`` of clipped, example-weighted FedAvg in float; one result per round.

    Client i trains in round r (1-based) with :func:`round_settings` (seed
    ``derive_training_seed(seed, r, i)``), as the client agents do, so the baseline and the
    secure run see the same local updates. ``clients`` and ``test`` are ``task.load_data`` values.
    """
    tensors: Tensors = {name: np.array(value, dtype=np.float32) for name, value in initial_tensors.items()}
    results = []
    for round_number in range(1, rounds + 1):
        weighted_sum, total_examples, norms = None, 0, []
        for index, data in enumerate(clients):
            client_settings = round_settings(settings, federation_seed=seed, round_number=round_number,
                                             client_index=index)
            delta, examples = compute_client_update(task, tensors, data, client_settings)
            contribution = clip_update(delta, clip_norm) * examples
            weighted_sum = contribution if weighted_sum is None else weighted_sum + contribution
            total_examples += examples
            norms.append(float(np.linalg.norm(delta.astype(np.float64))))
        tensors = apply_mean_update(tensors, weighted_sum / total_examples)
        metrics = {} if test is None else task.evaluate(task.model_from(tensors), test)
        results.append(FedAvgRound(round_number, metrics, tensors, tuple(norms)))
    return results
