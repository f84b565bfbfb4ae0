"""The update math shared by the secure protocol and its plaintext baseline.

One round of FedAvg as fedtss runs it:

    delta_i  = flatten(local_i) - flatten(global)            (client i, float32)
    u_i      = clip(delta_i, clip_norm) * samples_i           (float64; fedtss.quantize does
                                                               this, then quantizes and shares)
    mean     = sum_i u_i / sum_i samples_i                    (committee, after reconstruction)
    global'  = apply_mean_update(global, mean)                (float32, same bytes everywhere)

:func:`plaintext_fedavg` runs exactly these steps in float, without quantization or secret
sharing: it is the baseline the demo compares the secure result against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedtss.errors import FormatError
from fedtss.formats import flatten_model, unflatten_model
from fedtss.quantize import clip_update

from .data import ClientData
from .model import Tensors
from .train import TrainConfig, derive_training_seed, evaluate, train_locally

__all__ = [
    "DEFAULT_CLIP_NORM",
    "FedAvgRound",
    "compute_delta",
    "compute_client_update",
    "apply_mean_update",
    "plaintext_fedavg",
]

# Honest updates on the default digits setup have L2 norm ~5.4 (median) and at most ~7.5 in
# round 1 (from the random initial model), ~1-2.5 from round 3 on (5 seeds, alpha 0.2 and
# 0.5), so 10 bounds a malicious client's influence while clipping honest ones almost never.
DEFAULT_CLIP_NORM = 10.0


@dataclass(frozen=True)
class FedAvgRound:
    """The outcome of one plaintext round: test metrics, the new global model, update norms."""

    round: int
    accuracy: float
    loss: float
    tensors: Tensors
    update_norms: tuple[float, ...]


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
    global_tensors: Mapping[str, np.ndarray],
    data: ClientData,
    *,
    config: TrainConfig,
    seed: int,
) -> tuple[np.ndarray, int]:
    """Train locally and return (float32 delta, samples), unclipped.

    Exactly what a client agent passes to ``quantize_update`` (which clips, weights and
    quantizes); the baseline clips and weights the same delta in float.
    """
    local, samples = train_locally(global_tensors, data, config=config, seed=seed)
    return compute_delta(global_tensors, local), samples


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
    initial_tensors: Mapping[str, np.ndarray],
    clients: Sequence[ClientData],
    *,
    rounds: int,
    train_config: TrainConfig,
    clip_norm: float,
    seed: int,
    test: ClientData,
) -> list[FedAvgRound]:
    """Run ``rounds`` of clipped, sample-weighted FedAvg in float; one result per round.

    Client i trains in round r (1-based) with ``derive_training_seed(seed, r, i)``, as the
    client agents do, so the baseline and the secure run see the same local updates.
    """
    tensors: Tensors = {
        name: np.array(value, dtype=np.float32) for name, value in initial_tensors.items()
    }
    results = []
    for round_number in range(1, rounds + 1):
        weighted_sum, total_samples, norms = None, 0, []
        for index, data in enumerate(clients):
            client_seed = derive_training_seed(seed, round_number, index)
            delta, samples = compute_client_update(
                tensors, data, config=train_config, seed=client_seed
            )
            contribution = clip_update(delta, clip_norm) * samples
            weighted_sum = contribution if weighted_sum is None else weighted_sum + contribution
            total_samples += samples
            norms.append(float(np.linalg.norm(delta.astype(np.float64))))
        tensors = apply_mean_update(tensors, weighted_sum / total_samples)
        accuracy, loss = evaluate(tensors, test.x, test.y)
        results.append(FedAvgRound(round_number, accuracy, loss, tensors, tuple(norms)))
    return results
