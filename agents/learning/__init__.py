"""The learning side of fedtss: a user's task (:mod:`fedtss.task`) loaded and guarded, and the
FedAvg update math.

No chain, storage or secret sharing here: client agents and the committee call these
functions, and the launcher runs :func:`plaintext_fedavg` as the baseline of a demo.
"""

from .fedavg import (
    DEFAULT_CLIP_NORM,
    FedAvgRound,
    apply_mean_update,
    compute_client_update,
    compute_delta,
    derive_training_seed,
    plaintext_fedavg,
    round_settings,
)
from .task import DEFAULT_TASK, EXAMPLES_DIR, LoadedTask, Tensors, load_task, load_tensors, model_tensors

__all__ = [
    "DEFAULT_CLIP_NORM",
    "DEFAULT_TASK",
    "EXAMPLES_DIR",
    "FedAvgRound",
    "LoadedTask",
    "Tensors",
    "apply_mean_update",
    "compute_client_update",
    "compute_delta",
    "derive_training_seed",
    "load_task",
    "load_tensors",
    "model_tensors",
    "plaintext_fedavg",
    "round_settings",
]
