"""The learning side of fedtss: a user's task (:mod:`fedtss.task`) loaded and guarded, and the
FedAvg update math.

No chain, storage or secret sharing here: client agents and the committee call these
functions, and the launcher runs :func:`plaintext_fedavg` as the baseline of a demo.

Names are loaded on first use: the task loader imports PyTorch (about 1.3 s and 170 MB), which a
committee member, the keeper and a node's config need not pay for (``DEFAULT_TASK`` lives in
:mod:`agents.learning.defaults`, the update math in :mod:`agents.learning.fedavg`, neither of
which imports it).
"""

from importlib import import_module as _import_module
from typing import TYPE_CHECKING

_LAZY: dict[str, str] = {
    **dict.fromkeys(["DEFAULT_TASK", "EXAMPLES_DIR"], "agents.learning.defaults"),
    **dict.fromkeys(["DEFAULT_CLIP_NORM", "FedAvgRound", "Tensors", "apply_mean_update", "compute_client_update",
                     "compute_delta", "derive_training_seed", "plaintext_fedavg", "round_settings"],
                    "agents.learning.fedavg"),
    **dict.fromkeys(["LoadedTask", "load_task", "load_tensors", "model_tensors"], "agents.learning.task"),
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:
    from .defaults import DEFAULT_TASK, EXAMPLES_DIR
    from .fedavg import (
        DEFAULT_CLIP_NORM,
        FedAvgRound,
        Tensors,
        apply_mean_update,
        compute_client_update,
        compute_delta,
        derive_training_seed,
        plaintext_fedavg,
        round_settings,
    )
    from .task import LoadedTask, load_task, load_tensors, model_tensors


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agents.learning' has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value
