"""The example tasks in examples/: each loads, splits, reads back, trains and evaluates as fedtss
calls it, the wine task stays short enough to quote whole, and a BatchNorm model's running
statistics are averaged like its weights."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.learning import (
    DEFAULT_CLIP_NORM,
    EXAMPLES_DIR,
    LoadedTask,
    compute_client_update,
    load_task,
    model_tensors,
    plaintext_fedavg,
    round_settings,
)
from fedtss.errors import TaskError
from fedtss.task import Settings

EXAMPLES = ["digits_mlp", "digits_cnn", "wine", "million", "synthetic"]
CLIENTS = 4
SEED = 3
#: The million-parameter model trains on a slice this long, to keep its test fast.
TRAIN_SLICE = 48


def test_every_example_file_is_tested() -> None:
    assert sorted(path.stem for path in EXAMPLES_DIR.glob("*.py")) == sorted(EXAMPLES)


@cache
def _task(name: str) -> LoadedTask:
    return load_task(str(EXAMPLES_DIR / f"{name}.py"))


@cache
def _partition(name: str, clients: int = CLIENTS) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    parts, test = _task(name).partition(clients, SEED, Settings())
    assert test is not None
    return parts, test


def _save(arrays: dict[str, np.ndarray], path: Path) -> str:
    np.savez(path, **arrays)
    return str(path)


def _sliced(arrays: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    """The first ``count`` examples of a part (arrays of another length, e.g. a scaler, kept whole)."""
    n = len(arrays["y"])
    return {key: value[:count] if value.ndim and len(value) == n else value for key, value in arrays.items()}


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_loads_as_a_task_with_partition_and_a_float32_model(name: str) -> None:
    task = _task(name)
    assert task.has_partition
    tensors = model_tensors(task.build_model(), task=name)
    assert tensors and all(array.dtype == np.float32 for array in tensors.values())


@pytest.mark.parametrize("name", EXAMPLES)
def test_partition_gives_the_requested_number_of_clients_and_a_test_set(name: str) -> None:
    parts, test = _partition(name)
    assert len(parts) == CLIENTS
    assert all(len(part["y"]) > 0 and len(part["x"]) == len(part["y"]) for part in parts)
    assert len(test["y"]) > 0 and len(test["x"]) == len(test["y"])
    # The clients' parts and the test set split one dataset: no example is dealt twice.
    rows = [tuple(row) for part in [*parts, test] for row in np.asarray(part["x"]).reshape(len(part["y"]), -1)]
    assert len(rows) >= len(set(rows)) > 0.95 * len(rows)  # (the digits have a few identical images)


@pytest.mark.parametrize("name", EXAMPLES)
def test_load_data_reads_back_a_part_saved_with_numpy_savez(name: str, tmp_path: Path) -> None:
    part = _partition(name)[0][1]
    x, y = _task(name).load_data(_save(part, tmp_path / "part.npz"))
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and len(x) == len(part["y"])
    assert torch.equal(y, torch.as_tensor(part["y"], dtype=torch.int64))


@pytest.mark.parametrize("name", EXAMPLES)
def test_train_returns_the_example_count_and_evaluate_a_finite_loss_and_accuracy(name: str, tmp_path: Path) -> None:
    task = _task(name)
    parts, test = _partition(name)
    part = _sliced(parts[0], TRAIN_SLICE) if name == "million" else parts[0]
    data = task.load_data(_save(part, tmp_path / "part.npz"))
    test_data = task.load_data(_save(test, tmp_path / "test.npz"))
    model = task.model_from(task.initial_tensors(SEED))
    before = model_tensors(model)
    examples = task.train(model, data, Settings(epochs=1, seed=11))
    assert examples == len(part["y"])
    assert any(not np.array_equal(before[key], value) for key, value in model_tensors(model).items())
    metrics = task.evaluate(model, test_data)
    assert math.isfinite(metrics["loss"]) and metrics["loss"] >= 0
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_wine_example_is_at_most_60_lines_to_be_quoted_whole() -> None:
    assert len((EXAMPLES_DIR / "wine.py").read_text().splitlines()) <= 60


def test_wine_standardizes_every_part_with_the_training_sets_statistics(tmp_path: Path) -> None:
    task = _task("wine")
    parts, test = _partition("wine")
    xs = [task.load_data(_save(part, tmp_path / f"part{i}.npz"))[0] for i, part in enumerate(parts)]
    train_x = torch.cat(xs).double()
    assert torch.allclose(train_x.mean(dim=0), torch.zeros(13, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(train_x.std(dim=0, unbiased=False), torch.ones(13, dtype=torch.float64), atol=1e-5)
    test_x = task.load_data(_save(test, tmp_path / "test.npz"))[0].double()
    expected = (test["x"] - test["mean"]) / test["std"]
    assert np.allclose(test_x.numpy(), expected, atol=1e-5)


def test_wine_reads_a_csv_whose_last_column_is_the_label(tmp_path: Path) -> None:
    part = _partition("wine")[0][0]
    path = tmp_path / "wine.csv"
    np.savetxt(path, np.column_stack([part["x"], part["y"]]), delimiter=",")
    x, y = _task("wine").load_data(str(path))
    assert x.shape == (len(part["y"]), 13)
    assert torch.equal(y, torch.as_tensor(part["y"], dtype=torch.int64))
    # Without stored statistics a file is standardized with its own.
    assert torch.allclose(x.double().mean(dim=0), torch.zeros(13, dtype=torch.float64), atol=1e-5)


def test_wine_reaches_90_percent_in_10_rounds_with_10_clients(tmp_path: Path) -> None:
    task = _task("wine")
    parts, test = task.partition(10, 0, Settings())
    clients = [task.load_data(_save(part, tmp_path / f"c{i}.npz")) for i, part in enumerate(parts)]
    rounds = plaintext_fedavg(task, task.initial_tensors(0), clients, rounds=10, settings=Settings(),
                              clip_norm=DEFAULT_CLIP_NORM, seed=0, test=task.load_data(_save(test, tmp_path / "t.npz")))
    assert rounds[-1].accuracy >= 0.90


def test_batchnorm_running_statistics_are_federated_as_the_example_weighted_mean(tmp_path: Path) -> None:
    task = _task("digits_cnn")
    parts, _ = _partition("digits_cnn", 3)
    clients = [task.load_data(_save(part, tmp_path / f"c{i}.npz")) for i, part in enumerate(parts)]
    settings = Settings(epochs=1)
    initial = task.initial_tensors(SEED)
    statistics = sorted(name for name in initial if name.endswith(("running_mean", "running_var")))
    assert len(statistics) == 4  # two BatchNorm layers
    assert not any(name.endswith("num_batches_tracked") for name in initial)  # integer buffers stay local

    [result] = plaintext_fedavg(task, initial, clients, rounds=1, settings=settings, clip_norm=1e9, seed=SEED,
                                test=None)

    # Each client's own model after its round-1 training, trained the way the baseline trains it.
    local_models, deltas, counts = [], [], []
    for index, data in enumerate(clients):
        client_settings = round_settings(settings, federation_seed=SEED, round_number=1, client_index=index)
        model = task.model_from(initial)
        counts.append(task.train(model, data, client_settings))
        local_models.append(model_tensors(model))
        delta, examples = compute_client_update(task, initial, data, client_settings)
        deltas.append(delta)
        assert examples == counts[-1] == len(parts[index]["y"])
    weights = np.array(counts, dtype=np.float64) / sum(counts)
    assert np.linalg.norm(np.stack(deltas), axis=1).max() < 1e9  # nothing was clipped
    for name in statistics:
        local = [m[name].astype(np.float64) for m in local_models]
        assert not np.allclose(local[0], local[1])  # the clients saw different data
        expected = sum(w * value for w, value in zip(weights, local, strict=True))
        assert not np.allclose(result.tensors[name], initial[name])
        np.testing.assert_allclose(result.tensors[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_synthetic_task_splits_for_a_thousand_clients_where_the_digits_cannot() -> None:
    from fedtss.task import Settings

    task = _task("synthetic")
    parts, test = task.partition(1000, 0, Settings(options={"samples_per_client": "20"}))
    assert len(parts) == 1000 and all(part["x"].shape == (20, 20) for part in parts)
    with pytest.raises(TaskError, match=r"at most 71 clients can have 20 each"):
        _task("digits_mlp").partition(200, 0, Settings())
