"""What a user writes to train their own model with fedtss: a *task*.

A task is one Python file (or importable module) with four functions, and optionally a fifth;
it needs nothing from fedtss (``settings`` arrives as an argument)::

    def model() -> torch.nn.Module: ...
    def load_data(source: str) -> Data: ...                      # this client's own data
    def train(model, data, settings: Settings) -> int: ...       # in place; examples used
    def evaluate(model, data) -> dict[str, float]: ...           # at least "loss"
    def partition(num_clients, seed, settings) -> (clients, test): ...   # optional

:class:`Task` states this as a Protocol. ``Data`` is whatever ``load_data`` returns: fedtss
only hands it back to ``train`` and ``evaluate``. ``partition`` is only for local
federations (``fedtss demo --task``): it returns one mapping ``name -> numpy array`` per client
and one for a held-out test set (or None); fedtss writes each to an ``.npz`` file
(``numpy.savez``) and every client later reads its own with ``load_data(path)``, exactly as a
client of a real federation reads the file its node config names.

What fedtss does with a task (``agents.learning.task``):

- **The model travels as its float tensors.** Every floating-point parameter *and* buffer of
  ``model().state_dict()`` (BatchNorm's running mean and variance included) is sent, averaged
  and stored, as float32. Integer buffers (BatchNorm's ``num_batches_tracked``) are *not*
  federated: every node keeps the value its freshly built ``model()`` has. They matter only to
  BatchNorm with ``momentum=None``.
- **The federation agrees on the layout.** The names and shapes of those tensors are the
  model's *layout*; the deployment fixes it (``[model]`` in the deployment config), and a
  client whose ``model()`` builds another layout refuses to start.
- **Training is deterministic.** ``settings.seed`` differs per round and client and is the same
  in every process; fedtss seeds torch's global RNG with it around ``train()`` (and restores it
  after), so ``torch.randperm``, dropout or a ``DataLoader(shuffle=True)`` repeat exactly, and the
  secure result matches plaintext FedAvg run on the same seeds. (A task that draws from another
  generator, numpy's say, seeds it from ``settings.seed`` itself.)

Errors from a task (a missing function, one that raises, a wrong return type) become one-line
:class:`~fedtss.errors.TaskError` messages that name the task and what to change.

This module imports neither torch nor numpy at run time: it is the typed description of the
interface, and ``Settings``, the one value fedtss passes in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from fedtss.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["Settings", "Task", "Partition"]

_T = TypeVar("_T", int, float, str, bool)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: What ``partition`` returns: one mapping of arrays per client, and a test set or None.
Partition = tuple["Sequence[Mapping[str, np.ndarray]]", "Mapping[str, np.ndarray] | None"]


@dataclass(frozen=True)
class Settings:
    """How to train this round: the usual hyper-parameters and the task's own ``options``.

    ``epochs``, ``lr`` and ``batch_size`` come from the client's node config (``fedtss demo``'s
    ``--epochs``, ``--lr``, ``--batch-size``); ``options`` holds the task-specific
    ``key = value`` settings (``--set key=value``) as strings, read with :meth:`get`.
    ``seed`` is derived per (federation seed, round, client), ``round`` is the round number
    (0 outside a round, e.g. in ``partition``).
    """

    epochs: int = 5
    lr: float = 0.05
    batch_size: int = 16
    seed: int = 0
    round: int = 0
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs must be a whole number >= 1, got {self.epochs!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a whole number >= 1, got {self.batch_size!r}")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not self.lr > 0:
            raise ConfigError(f"lr must be a number > 0, got {self.lr!r}")
        for key, value in self.options.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ConfigError(f"task settings are key = value strings; got {key!r} = {value!r}")

    def get(self, key: str, default: _T) -> _T:
        """The option ``key`` converted to the type of ``default`` (``default`` when unset).

        ``settings.get("momentum", 0.9)`` reads ``--set momentum=0.5`` as the float 0.5; a value
        that does not convert is a ConfigError naming the key.
        """
        raw = self.options.get(key)
        if raw is None:
            return default
        kind = type(default)
        try:
            if kind is bool:
                lowered = raw.strip().lower()
                if lowered not in _TRUE | _FALSE:
                    raise ValueError(raw)
                return lowered in _TRUE  # type: ignore[return-value]
            return kind(raw)  # type: ignore[return-value]
        except ValueError:
            raise ConfigError(f"task setting {key} = {raw!r} is not a {kind.__name__} "
                              f"(as its default {default!r} is)") from None

    def to_json(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size, "seed": self.seed,
                "round": self.round, "options": dict(self.options)}


@runtime_checkable
class Task(Protocol):
    """The functions a task module defines (``partition`` is optional, see :data:`Partition`)."""

    def model(self) -> torch.nn.Module:
        """A freshly built model. Only its layout matters on a client: its values are replaced by
        the federation's; the round-1 model is built once, under ``torch.manual_seed(seed)``."""
        ...

    def load_data(self, source: str) -> Any:
        """This client's own data, from the path or URI its node config names."""
        ...

    def train(self, model: torch.nn.Module, data: Any, settings: Settings) -> int:
        """Train ``model`` in place on ``data``; return how many examples it used (the weight
        of this client's update in the average, > 0)."""
        ...

    def evaluate(self, model: torch.nn.Module, data: Any) -> dict[str, float]:
        """Metrics of ``model`` on ``data``: at least ``loss``; ``accuracy`` is shown when given."""
        ...
