"""The learning side of fedtss: data, model, local training and the FedAvg update math.

No chain, storage or secret sharing here: client agents and the committee call these
functions, and the launcher runs :func:`plaintext_fedavg` as the baseline of a demo.
"""

from .data import ClientData, DataConfig, Federation, load_client_file, make_federation
from .fedavg import (
    DEFAULT_CLIP_NORM,
    FedAvgRound,
    apply_mean_update,
    compute_client_update,
    compute_delta,
    plaintext_fedavg,
)
from .model import ModelConfig, initial_tensors, model_to_tensors, tensors_to_model
from .train import TrainConfig, derive_training_seed, evaluate, train_locally

__all__ = [
    "ClientData",
    "DataConfig",
    "Federation",
    "load_client_file",
    "make_federation",
    "DEFAULT_CLIP_NORM",
    "FedAvgRound",
    "apply_mean_update",
    "compute_client_update",
    "compute_delta",
    "plaintext_fedavg",
    "ModelConfig",
    "initial_tensors",
    "model_to_tensors",
    "tensors_to_model",
    "TrainConfig",
    "derive_training_seed",
    "evaluate",
    "train_locally",
]
