"""A user's task, loaded and guarded: what the agents and the launcher call instead of the task itself.

:func:`load_task` imports a task (a ``.py`` file or a module name, see :mod:`fedtss.task`) and
returns a :class:`LoadedTask`, whose methods call the user's functions and check what comes
back. Anything a task does wrong (a missing function, an exception, a wrong return value, a
model whose tensors are not float32) becomes one :class:`~fedtss.errors.TaskError` line that
starts with the task's name and says what to change, so a client's log never ends in a user's
traceback.

The model crosses the wire as its float tensors (:func:`model_tensors`): every floating-point
entry of ``state_dict()``, parameters and buffers alike. Integer buffers stay as the freshly
built model has them (:func:`load_tensors`); see :mod:`fedtss.task` for why.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import operator
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from fedtss.errors import FedTSSError, FormatError, TaskError
from fedtss.formats import ModelLayout, model_layout
from fedtss.task import Settings

from .defaults import DEFAULT_TASK, EXAMPLES_DIR

__all__ = [
    "DEFAULT_TASK",
    "EXAMPLES_DIR",
    "LoadedTask",
    "Tensors",
    "load_task",
    "load_tensors",
    "model_tensors",
]

Tensors = dict[str, np.ndarray]
_REQUIRED = ("model", "load_data", "train", "evaluate")
_MESSAGE_CHARS = 300


def load_task(reference: str) -> LoadedTask:
    """Import the task ``reference``: a path to a ``.py`` file, or an importable module name."""
    reference = str(reference).strip()
    if not reference:
        raise TaskError("task: empty name; pass a .py file or an importable module name")
    is_file = reference.endswith(".py") or "/" in reference or "\\" in reference
    module = _import_file(reference) if is_file else _import_module(reference)
    missing = [name for name in _REQUIRED if not callable(getattr(module, name, None))]
    if missing:
        raise TaskError(f"task {reference}: defines no {', '.join(f'{m}()' for m in missing)}; a task needs "
                        f"model(), load_data(source), train(model, data, settings) and evaluate(model, data) "
                        "(see fedtss.task)")
    partition = getattr(module, "partition", None)
    if partition is not None and not callable(partition):
        raise TaskError(f"task {reference}: partition is not a function; define partition(num_clients, seed, "
                        "settings) or remove the name")
    location = str(Path(reference).resolve()) if is_file else reference
    return LoadedTask(name=reference, location=location, module=module)


def _import_file(reference: str) -> ModuleType:
    path = Path(reference).expanduser().resolve()
    if not path.is_file():
        raise TaskError(f"task {reference}: no such file; pass the path of a .py file or an importable module name")
    # A name unique to the file, so that two tasks with the same file name never collide.
    name = f"fedtss_task_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TaskError(f"task {reference}: cannot be imported as Python; pass a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a module up by name while it runs
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        if not isinstance(exc, Exception):
            raise
        raise TaskError(f"task {reference}: importing it raised {_describe(exc, path)}") from exc
    return module


def _import_module(reference: str) -> ModuleType:
    try:
        return importlib.import_module(reference)
    except ModuleNotFoundError as exc:
        if exc.name and (reference == exc.name or reference.startswith(exc.name + ".")):
            raise TaskError(f"task {reference}: no such module; pass the path of a .py file or an importable "
                            "module name") from exc
        raise TaskError(f"task {reference}: importing it raised {_describe(exc, None)}") from exc
    except Exception as exc:
        raise TaskError(f"task {reference}: importing it raised {_describe(exc, None)}") from exc


def _describe(exc: BaseException, path: Path | None) -> str:
    """``ValueError: message (file.py:12)``, on one line, cut to a readable length."""
    message = " ".join(str(exc).split())
    if len(message) > _MESSAGE_CHARS:
        message = message[: _MESSAGE_CHARS - 3] + "..."
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:  # raised by the compiler: no frame in the file
        message = " ".join(str(exc.msg).split())
        return f"{type(exc).__name__}: {message} ({Path(exc.filename).name}:{exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    if path is not None:
        frames = [f for f in frames if Path(f.filename).resolve() == path] or frames
    if frames:
        where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


@dataclass(frozen=True)
class LoadedTask:
    """A user's task behind checks: every call returns what fedtss expects, or raises TaskError."""

    name: str  # as the user wrote it, for messages
    location: str  # an absolute file path or a module name: what a node config stores
    module: ModuleType = field(repr=False)

    @property
    def has_partition(self) -> bool:
        return callable(getattr(self.module, "partition", None))

    def _call(self, function: str, *args: Any) -> Any:
        try:
            return getattr(self.module, function)(*args)
        except FedTSSError as exc:
            if isinstance(exc, TaskError):
                raise
            raise TaskError(f"task {self.name}: {function}() raised {_describe(exc, self._path)}") from exc
        except Exception as exc:
            raise TaskError(f"task {self.name}: {function}() raised {_describe(exc, self._path)}") from exc

    @property
    def _path(self) -> Path | None:
        file = getattr(self.module, "__file__", None)
        return Path(file).resolve() if file else None

    # --------------------------------------------------------------- the model

    def build_model(self) -> nn.Module:
        """A fresh ``model()``, checked to be a module whose float tensors are all float32."""
        model = self._call("model")
        if not isinstance(model, nn.Module):
            raise TaskError(f"task {self.name}: model() must return a torch.nn.Module, got {type(model).__name__}")
        float_layout(model, task=self.name)  # checks dtypes and names
        return model

    def layout(self) -> ModelLayout:
        """The names and shapes of the tensors the federation exchanges for this task's model."""
        return float_layout(self.build_model(), task=self.name)

    def initial_tensors(self, seed: int) -> Tensors:
        """The round-1 model: ``model()`` built under ``torch.manual_seed(seed)`` (global RNG restored)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tensors = model_tensors(self.build_model(), task=self.name)
        for name, array in tensors.items():
            if not np.all(np.isfinite(array)):
                raise TaskError(f"task {self.name}: model() starts with non-finite values in tensor {name}; "
                                "initialize it with finite numbers")
        return tensors

    def model_from(self, tensors: Mapping[str, np.ndarray]) -> nn.Module:
        """A fresh model holding ``tensors`` (which must have exactly this task's layout)."""
        model = self.build_model()
        load_tensors(model, tensors, task=self.name)
        return model

    # ----------------------------------------------------------------- the data

    def load_data(self, source: str) -> Any:
        return self._call("load_data", str(source))

    def partition(self, num_clients: int, seed: int, settings: Settings) -> tuple[list[Tensors], Tensors | None]:
        """Per-client arrays and a test set (or None), checked to be saveable with ``numpy.savez``."""
        if not self.has_partition:
            raise TaskError(f"task {self.name}: defines no partition(num_clients, seed, settings), which a local "
                            "federation needs to split data among its clients; define it, or give each client "
                            "its own data")
        result = self._call("partition", num_clients, seed, settings)
        if not isinstance(result, tuple) or len(result) != 2:
            raise TaskError(f"task {self.name}: partition() must return (clients, test): a list of "
                            "{name: array} per client and one for the test set (or None)")
        clients, test = result
        if not isinstance(clients, Sequence) or len(clients) != num_clients:
            raise TaskError(f"task {self.name}: partition({num_clients}, ...) must return {num_clients} client "
                            f"parts, got {len(clients) if isinstance(clients, Sequence) else type(clients).__name__}")
        parts = [self._arrays(part, f"client {i}'s part") for i, part in enumerate(clients)]
        return parts, None if test is None else self._arrays(test, "the test set")

    def _arrays(self, part: object, what: str) -> Tensors:
        if not isinstance(part, Mapping) or not part:
            raise TaskError(f"task {self.name}: partition() gave {what} as {type(part).__name__}; give a "
                            "non-empty {name: numpy array} mapping")
        arrays = {}
        for key, value in part.items():
            array = np.asarray(value)
            if not isinstance(key, str) or not key.isidentifier() or array.dtype.kind not in "biuf":
                raise TaskError(f"task {self.name}: partition() gave {what} an entry {key!r:.40} that is not a "
                                "named numeric array")
            arrays[key] = array
        return arrays

    # -------------------------------------------------------- training, metrics

    def train(self, model: nn.Module, data: Any, settings: Settings) -> int:
        """Train in place; the number of examples used (an int > 0).

        torch's global RNG is seeded with ``settings.seed`` for the call (and restored after), so
        a task that shuffles with a plain ``DataLoader(shuffle=True)`` is deterministic too.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            examples = self._call("train", model, data, settings)
        try:
            count = operator.index(examples)
        except TypeError:
            count = 0
        if isinstance(examples, bool) or count < 1:
            raise TaskError(f"task {self.name}: train() must return the number of examples it used "
                            f"(an int > 0), got {examples!r:.40}")
        return count

    def evaluate(self, model: nn.Module, data: Any) -> dict[str, float]:
        """Metrics with at least ``loss``, each a finite float."""
        with torch.no_grad():
            metrics = self._call("evaluate", model, data)
        if not isinstance(metrics, Mapping) or "loss" not in metrics:
            raise TaskError(f"task {self.name}: evaluate() must return a dict of metrics with at least 'loss', "
                            f"got {metrics!r:.60}")
        checked = {}
        for key, value in metrics.items():
            try:
                number = float(value) if isinstance(value, (int, float, np.number, torch.Tensor)) else math.nan
            except (TypeError, ValueError, RuntimeError):  # a tensor of several values, for one
                number = math.nan
            if not isinstance(key, str) or not math.isfinite(number):
                raise TaskError(f"task {self.name}: evaluate() gave metric {key!r:.40} = {value!r:.40}; metrics "
                                "are finite numbers named by strings")
            checked[key] = number
        return checked

    def call(self, function: str, *args: Any) -> Any:
        """Call another function of the task's module, with the same error wrapping."""
        return self._call(function, *args)


def float_layout(model: nn.Module, *, task: str = "model") -> ModelLayout:
    """The layout (names and shapes) of the model's floating-point state, read without copying it.

    Integer buffers are left out (they are not federated). A floating tensor of another dtype
    is refused: averaging it as float32 would silently change it.
    """
    shapes = []
    for name, value in model.state_dict().items():
        if not value.is_floating_point():
            continue
        if value.dtype != torch.float32:
            raise TaskError(f"task {task}: model tensor {name} is {value.dtype}; build the model in float32 "
                            "(e.g. call .float() on it)")
        shapes.append((name, tuple(value.shape)))
    if not shapes:
        raise TaskError(f"task {task}: model() has no float tensors to train")
    try:
        return ModelLayout(tuple(sorted(shapes)))
    except FormatError as exc:
        raise TaskError(f"task {task}: its model cannot be exchanged: {exc}") from exc


def model_tensors(model: nn.Module, *, task: str = "model") -> Tensors:
    """The model's floating-point state (parameters and buffers) as float32 numpy arrays, by name
    (checked as :func:`float_layout` checks it)."""
    float_layout(model, task=task)
    return {name: np.ascontiguousarray(value.detach().cpu().numpy(), dtype=np.float32).copy()
            for name, value in model.state_dict().items() if value.is_floating_point()}


def load_tensors(model: nn.Module, tensors: Mapping[str, np.ndarray], *, task: str = "model") -> None:
    """Put ``tensors`` into ``model``'s float state; its integer buffers keep their values."""
    state = model.state_dict()
    expected = float_layout(model, task=task)
    difference = model_layout(dict(tensors)).difference(expected)
    if difference is not None:
        raise TaskError(f"task {task}: the federation's model does not fit its model(): {difference}")
    for name, array in tensors.items():
        state[name] = torch.from_numpy(np.array(array, dtype=np.float32))
    model.load_state_dict(state, strict=True)

