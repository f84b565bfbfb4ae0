"""The default task (examples/digits_mlp.py) and its local federation, as the launcher builds it.

The launcher calls the task's ``partition``, writes every part with ``numpy.savez`` and each
client reads its own file back with ``task.load_data``; the fixtures below do the same, once
per session, with the real defaults (10 clients, seed 0, ``Settings()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.learning import DEFAULT_TASK, LoadedTask, Tensors, load_task
from fedtss.task import Settings

NUM_CLIENTS = 10
SEED = 0


@dataclass(frozen=True)
class DigitsFederation:
    """The default task's clients and test set: the arrays partition() gave, their files, the
    values load_data read back."""

    task: LoadedTask
    parts: list[dict[str, np.ndarray]]
    test_part: dict[str, np.ndarray]
    clients: list[Any]  # task.load_data of each client's file, by client index
    test: Any
    paths: list[Path]


def save_part(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="session")
def digits() -> LoadedTask:
    return load_task(DEFAULT_TASK)


@pytest.fixture(scope="session")
def federation(digits: LoadedTask, tmp_path_factory: pytest.TempPathFactory) -> DigitsFederation:
    directory = tmp_path_factory.mktemp("digits")
    parts, test_part = digits.partition(NUM_CLIENTS, SEED, Settings())
    assert test_part is not None
    paths = [save_part(directory / f"client-{i}.npz", part) for i, part in enumerate(parts)]
    test_path = save_part(directory / "test.npz", test_part)
    return DigitsFederation(
        task=digits,
        parts=parts,
        test_part=test_part,
        clients=[digits.load_data(str(path)) for path in paths],
        test=digits.load_data(str(test_path)),
        paths=paths,
    )


@pytest.fixture(scope="session")
def start(digits: LoadedTask) -> Tensors:
    """The round-1 model of a federation with seed 0."""
    return digits.initial_tensors(SEED)
