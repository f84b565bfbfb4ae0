"""The model leaves fedtss: ``fedtss model export`` and ``fedtss task layout``.

    fedtss model export latest --out model.pt                 (the newest finalized model of runs/demo)
    fedtss model export 3 --out round3.pt --task examples/digits_cnn.py --store runs/cnn/store \\
        --deployment runs/cnn/deployment.json
    fedtss task layout examples/digits_cnn.py                 (the [model] table for a deployment config)

An exported file is a PyTorch state dict (``torch.save``) that the task's ``model()`` loads::

    net = task.model(); net.load_state_dict(torch.load("model.pt")); net.eval()

The store holds only the federated (float) tensors; the task's freshly built ``model()`` gives the
integer buffers, which are not federated (:mod:`fedtss.task`). Before anything is written, the
blob is checked against the deployment's layout and the task's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from typing import TYPE_CHECKING

from fedtss.chain import ModelTerms, RoundFinalized, RoundsContract
from fedtss.errors import ConfigError, TaskError
from fedtss.formats import ModelLayout, decode_model, model_layout

if TYPE_CHECKING:
    from agents.learning import LoadedTask

__all__ = ["MODEL_MAX_BYTES", "export_model", "finalized_model_cid", "layout_toml", "task_model_terms"]

#: The largest model blob read (4 GiB: a billion float32 values).
MODEL_MAX_BYTES = 1 << 32


def finalized_model_cid(contract: RoundsContract, which: str) -> tuple[int, str]:
    """``(round, CID)`` of the model round ``which`` finalized, or of the newest (``latest``; round
    0 is the initial model before any round finalized)."""
    if which == "latest":
        round_, cid = contract.latest_model()
        if cid is None:
            raise ConfigError("no model yet: training has not started on this contract")
        return round_, cid
    if not which.isascii() or not which.isdigit() or int(which) < 1:
        raise ConfigError(f"ROUND: {which!r} is not a round number (1, 2, ...) or 'latest'")
    round_ = int(which)
    finalized = contract.get_round_events(round_, RoundFinalized)
    if not finalized:
        raise ConfigError(f"round {round_} did not finalize a model (see `fedtss rounds`); pick another or 'latest'")
    return round_, finalized[-1].model_cid


def export_model(blob: bytes, task_reference: str, out: Path, *, fixed: ModelLayout | None) -> int:
    """Write the state dict of the model in ``blob`` to ``out`` (atomically); its number of values."""
    import torch

    from agents.learning import load_task

    tensors = decode_model(blob, max_bytes=MODEL_MAX_BYTES)
    difference = None if fixed is None else model_layout(tensors).difference(fixed)
    if difference is not None:
        raise ConfigError(f"the stored model does not have the deployment's layout: {difference}")
    task = load_task(task_reference)
    difference = model_layout(tensors).difference(task.layout())
    if difference is not None:
        raise TaskError(f"task {task.name}: its model() does not fit this federation's model: {difference}; "
                        "pass the federation's --task")
    state = task.model_from(tensors).state_dict()
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return sum(int(array.size) for array in tensors.values())


def layout_toml(terms: ModelTerms, task_name: str) -> str:
    """The ``[model]`` table of a deployment config that fixes ``terms`` (layout and metrics) of task ``task_name``."""
    lines = [f"# The model of task {task_name}: every agent checks models against this layout, and clients",
             "# share their evaluation of each round's model by these metrics (federated evaluation).",
             "[model]", "tensors = ["]
    lines += [f'  {{ name = "{name}", shape = {list(shape)} }},' for name, shape in terms.layout.tensors]
    lines.append("]")
    if terms.metrics:
        lines.append("metrics = [" + ", ".join(f'"{name}"' for name in terms.metrics) + "]")
    return "\n".join(lines) + "\n"


def task_model_terms(task: LoadedTask, data_source: str | None) -> ModelTerms:
    """The layout of ``task``'s model and, given some data, the names of the metrics its
    ``evaluate`` gives (evaluating a freshly built model on that data)."""
    layout = task.layout()
    if data_source is None:
        return ModelTerms(layout)
    metrics = task.evaluate(task.build_model(), task.load_data(data_source))
    return ModelTerms(layout, tuple(sorted(metrics)))
