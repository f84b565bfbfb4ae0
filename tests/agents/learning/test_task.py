"""Loading a user's task and guarding every call into it (agents.learning.task).

Each way a task can be wrong ends in one TaskError line that starts with ``task <name>:`` and
says what to change. Every task here is a small .py file written to tmp_path, outside the
repository, as a user's would be.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from agents.client import build_client_agent
from agents.learning import compute_client_update, load_task, load_tensors, model_tensors
from agents.learning.task import LoadedTask
from fedtss.chain import Aggregation
from fedtss.errors import TaskError
from fedtss.formats import ModelLayout
from fedtss.task import Settings

GOOD = """\
import numpy as np
import torch
from torch import nn


def model():
    return nn.Linear(3, 2)


def load_data(source):
    return torch.ones(4, 3), torch.zeros(4, dtype=torch.int64)


def train(model, data, settings):
    return len(data[1])


def evaluate(model, data):
    return {"loss": 1.0}
"""


def write_task(directory: Path, extra: str = "", *, name: str = "task.py", source: str = GOOD) -> str:
    """A task file: ``source`` followed by ``extra`` (later definitions replace earlier ones)."""
    path = directory / name
    path.write_text(source + "\n" + textwrap.dedent(extra))
    return str(path)


def task_from(directory: Path, extra: str = "", **kwargs) -> LoadedTask:
    return load_task(write_task(directory, extra, **kwargs))


def one_line(excinfo: pytest.ExceptionInfo[TaskError], name: str) -> str:
    """The error's message, checked to be one line that starts with ``task <name>:``."""
    message = str(excinfo.value)
    assert message.startswith(f"task {name}: "), message
    assert "\n" not in message, message
    return message


def test_a_good_task_loads_from_a_file(tmp_path: Path) -> None:
    reference = write_task(tmp_path)
    task = load_task(reference)
    assert task.name == reference and task.location == str(Path(reference).resolve())
    assert not task.has_partition
    assert task.layout().to_json() == [{"name": "bias", "shape": [2]}, {"name": "weight", "shape": [2, 3]}]


def test_a_good_task_loads_by_module_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_task(tmp_path, name="fedtss_test_module_task.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        task = load_task("fedtss_test_module_task")
        assert task.location == "fedtss_test_module_task"
        assert task.evaluate(task.build_model(), None) == {"loss": 1.0}
    finally:
        sys.modules.pop("fedtss_test_module_task", None)


# ------------------------------------------------------------------ loading the task


def test_a_missing_file(tmp_path: Path) -> None:
    reference = str(tmp_path / "absent.py")
    with pytest.raises(TaskError) as excinfo:
        load_task(reference)
    assert "no such file; pass the path of a .py file" in one_line(excinfo, reference)


def test_a_module_name_that_does_not_exist() -> None:
    with pytest.raises(TaskError) as excinfo:
        load_task("fedtss_no_such_task_module")
    assert "no such module; pass the path of a .py file or an importable module name" in one_line(
        excinfo, "fedtss_no_such_task_module")


def test_an_empty_name() -> None:
    with pytest.raises(TaskError, match="^task: empty name; pass a .py file or an importable module name$"):
        load_task("  ")


def test_a_file_whose_import_raises_names_the_exception_and_the_line(tmp_path: Path) -> None:
    reference = write_task(tmp_path, 'raise ValueError("no GPU\\nfound")\n', name="broken.py")
    line = GOOD.count("\n") + 2  # GOOD, the separating newline, then the raise
    with pytest.raises(TaskError) as excinfo:
        load_task(reference)
    message = one_line(excinfo, reference)
    assert message.endswith(f"importing it raised ValueError: no GPU found (broken.py:{line})")


def test_a_failed_import_is_not_cached(tmp_path: Path) -> None:
    reference = write_task(tmp_path, "raise ValueError('first time')\n")
    with pytest.raises(TaskError):
        load_task(reference)
    write_task(tmp_path)  # fixed: the next load imports the file again
    assert load_task(reference).layout().size == 8


def test_a_module_whose_import_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_task(tmp_path, "raise KeyError('CUDA_HOME')\n", name="fedtss_test_raising_task.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TaskError) as excinfo:
        load_task("fedtss_test_raising_task")
    assert "importing it raised KeyError: 'CUDA_HOME' (fedtss_test_raising_task.py:" in one_line(
        excinfo, "fedtss_test_raising_task")


def test_a_module_that_imports_a_missing_module_is_not_called_missing(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fedtss_helperx_task.py").write_text("import fedtss_helperx\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TaskError) as excinfo:
        load_task("fedtss_helperx_task")
    message = one_line(excinfo, "fedtss_helperx_task")
    assert "no such module" not in message and "ModuleNotFoundError" in message


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    reference = write_task(tmp_path, source="x = 1\ndef model(:\n    pass\n", name="typo.py")
    with pytest.raises(TaskError) as excinfo:
        load_task(reference)
    message = one_line(excinfo, reference)
    assert "SyntaxError" in message and "typo.py:2" in message and "frozen" not in message


@pytest.mark.parametrize("removed, named", [("load_data", "load_data()"), ("train, evaluate", "train(), evaluate()")])
def test_a_task_missing_functions_names_them(tmp_path: Path, removed: str, named: str) -> None:
    reference = write_task(tmp_path, f"del {removed}\n")
    with pytest.raises(TaskError) as excinfo:
        load_task(reference)
    message = one_line(excinfo, reference)
    assert f"defines no {named}; a task needs model(), load_data(source), train(model, data, settings)" in message


def test_a_partition_that_is_not_a_function(tmp_path: Path) -> None:
    reference = write_task(tmp_path, "partition = [1, 2]\n")
    with pytest.raises(TaskError) as excinfo:
        load_task(reference)
    assert "partition is not a function" in one_line(excinfo, reference)


# ------------------------------------------------------------------------- the model


def test_model_returning_a_non_module(tmp_path: Path) -> None:
    task = task_from(tmp_path, "def model():\n    return {'weight': 1}\n")
    with pytest.raises(TaskError) as excinfo:
        task.layout()
    assert one_line(excinfo, task.name).endswith("model() must return a torch.nn.Module, got dict")


def test_model_with_a_float64_parameter(tmp_path: Path) -> None:
    task = task_from(tmp_path, "def model():\n    return nn.Linear(3, 2).double()\n")
    with pytest.raises(TaskError) as excinfo:
        task.initial_tensors(0)
    message = one_line(excinfo, task.name)
    assert "model tensor weight is torch.float64; build the model in float32 (e.g. call .float() on it)" in message


def test_model_without_float_tensors(tmp_path: Path) -> None:
    task = task_from(tmp_path, "def model():\n    return nn.ReLU()\n")
    with pytest.raises(TaskError) as excinfo:
        task.layout()
    assert "model() has no float tensors to train" in one_line(excinfo, task.name)


def test_model_raising(tmp_path: Path) -> None:
    task = task_from(tmp_path, "def model():\n    return nn.Linear(3, -2)\n")
    with pytest.raises(TaskError) as excinfo:
        task.build_model()
    assert "model() raised RuntimeError: " in one_line(excinfo, task.name)


def test_load_tensors_with_a_layout_that_does_not_fit_names_the_tensor(tmp_path: Path) -> None:
    task = task_from(tmp_path)
    tensors = {"bias": np.zeros(2, np.float32), "weight": np.zeros((2, 4), np.float32)}
    with pytest.raises(TaskError) as excinfo:
        task.model_from(tensors)
    assert one_line(excinfo, task.name).endswith(
        "the federation's model does not fit its model(): tensor weight has shape [2, 4], the layout says [2, 3]")
    with pytest.raises(TaskError) as excinfo:
        load_tensors(task.build_model(), {"weight": tensors["weight"]}, task=task.name)
    assert one_line(excinfo, task.name).endswith("tensor bias [2] is missing")


# ------------------------------------------------------------------- data, training


def test_load_data_raising_names_it(tmp_path: Path) -> None:
    task = task_from(tmp_path, "def load_data(source):\n    return open(source).read()\n")
    with pytest.raises(TaskError) as excinfo:
        task.load_data(tmp_path / "absent.csv")
    message = one_line(excinfo, task.name)
    assert "load_data() raised FileNotFoundError: " in message and "absent.csv" in message


def test_train_raising_names_train_and_the_exception(tmp_path: Path) -> None:
    task = task_from(tmp_path, "def train(model, data, settings):\n    raise RuntimeError('shapes do not match')\n")
    line = GOOD.count("\n") + 3
    with pytest.raises(TaskError) as excinfo:
        task.train(task.build_model(), None, Settings())
    assert one_line(excinfo, task.name).endswith(f"train() raised RuntimeError: shapes do not match (task.py:{line})")


@pytest.mark.parametrize("returned", ["0", "1.5", "None", "True", "-3", "'4'"])
def test_train_must_return_a_positive_example_count(tmp_path: Path, returned: str) -> None:
    task = task_from(tmp_path, f"def train(model, data, settings):\n    return {returned}\n")
    with pytest.raises(TaskError) as excinfo:
        task.train(task.build_model(), None, Settings())
    assert one_line(excinfo, task.name).endswith(
        f"train() must return the number of examples it used (an int > 0), got {returned}")


def test_train_may_return_a_numpy_integer(tmp_path: Path) -> None:
    task = task_from(tmp_path, "def train(model, data, settings):\n    return np.int64(7)\n")
    count = task.train(task.build_model(), None, Settings())
    assert count == 7 and type(count) is int


def test_train_leaving_non_finite_values(tmp_path: Path) -> None:
    task = task_from(tmp_path, """\
        def train(model, data, settings):
            with torch.no_grad():
                model.weight.fill_(float("inf"))
            return 4
        """)
    with pytest.raises(TaskError) as excinfo:
        compute_client_update(task, task.initial_tensors(0), None, Settings())
    assert "train() left non-finite values in the model; lower the learning rate" in one_line(excinfo, task.name)


@pytest.mark.parametrize(
    "returned, expected",
    [
        ("{'accuracy': 0.5}", "evaluate() must return a dict of metrics with at least 'loss'"),
        ("0.25", "evaluate() must return a dict of metrics with at least 'loss'"),
        ("{'loss': float('nan')}", "evaluate() gave metric 'loss' = nan; metrics are finite numbers"),
        ("{'loss': 1.0, 'accuracy': float('inf')}", "evaluate() gave metric 'accuracy' = inf"),
        ("{'loss': 'low'}", "evaluate() gave metric 'loss' = 'low'"),
    ],
)
def test_evaluate_without_loss_or_with_a_non_finite_metric(tmp_path: Path, returned: str, expected: str) -> None:
    task = task_from(tmp_path, f"def evaluate(model, data):\n    return {returned}\n")
    with pytest.raises(TaskError) as excinfo:
        task.evaluate(task.build_model(), None)
    assert expected in one_line(excinfo, task.name)


def test_evaluate_converts_metrics_to_floats(tmp_path: Path) -> None:
    task = task_from(tmp_path, """\
        def evaluate(model, data):
            return {"loss": torch.tensor(0.5), "accuracy": np.float32(0.25), "count": 3}
        """)
    metrics = task.evaluate(task.build_model(), None)
    assert metrics == {"loss": 0.5, "accuracy": 0.25, "count": 3.0}
    assert all(type(value) is float for value in metrics.values())


def test_evaluate_with_a_multi_element_tensor_metric(tmp_path: Path) -> None:
    task = task_from(tmp_path, "def evaluate(model, data):\n    return {'loss': torch.tensor([1.0, 2.0])}\n")
    with pytest.raises(TaskError) as excinfo:
        task.evaluate(task.build_model(), None)
    assert "evaluate() gave metric 'loss'" in one_line(excinfo, task.name)


# ------------------------------------------------------------------------ partition


PARTITION = """\
def partition(num_clients, seed, settings):
    parts = [{"x": np.full((2, 3), i, np.float32), "y": np.arange(2)} for i in range(num_clients)]
    return parts, None
"""


def test_partition_gives_arrays_per_client(tmp_path: Path) -> None:
    task = task_from(tmp_path, PARTITION)
    parts, test = task.partition(3, 0, Settings())
    assert task.has_partition and test is None and len(parts) == 3
    assert parts[2]["x"][0, 0] == 2 and parts[2]["y"].tolist() == [0, 1]


def test_partition_returning_the_wrong_number_of_clients(tmp_path: Path) -> None:
    task = task_from(tmp_path, PARTITION + "\n_partition = partition\n"
                     "def partition(num_clients, seed, settings):\n"
                     "    parts, test = _partition(num_clients, seed, settings)\n"
                     "    return parts[:-1], test\n")
    with pytest.raises(TaskError) as excinfo:
        task.partition(3, 0, Settings())
    assert one_line(excinfo, task.name).endswith("partition(3, ...) must return 3 client parts, got 2")


@pytest.mark.parametrize(
    "returned, expected",
    [
        ("[{'x': np.zeros(1)}] * num_clients", "partition() must return (clients, test)"),
        ("[{'x': np.zeros(1)}, []], None", "partition() gave client 1's part as list; give a non-empty"),
        ("[{'x': np.zeros(1)}] * 2, {'y': np.array(['a'])}",
         "partition() gave the test set an entry 'y' that is not a named numeric array"),
        ("[{'not a name': np.zeros(1)}] * 2, None", "an entry 'not a name' that is not a named numeric array"),
    ],
)
def test_partition_returning_something_else(tmp_path: Path, returned: str, expected: str) -> None:
    task = task_from(tmp_path, f"def partition(num_clients, seed, settings):\n    return {returned}\n")
    with pytest.raises(TaskError) as excinfo:
        task.partition(2, 0, Settings())
    assert expected in one_line(excinfo, task.name)


def test_partition_when_the_task_has_none(tmp_path: Path) -> None:
    task = task_from(tmp_path)
    with pytest.raises(TaskError) as excinfo:
        task.partition(2, 0, Settings())
    assert "defines no partition(num_clients, seed, settings)" in one_line(excinfo, task.name)


def test_a_long_error_message_is_cut_to_one_readable_line(tmp_path: Path) -> None:
    task = task_from(tmp_path, "def load_data(source):\n    raise ValueError('x\\n' * 1000)\n")
    with pytest.raises(TaskError) as excinfo:
        task.load_data("anything")
    message = one_line(excinfo, task.name)
    assert "..." in message and len(message) < len(task.name) + 400


# -------------------------------------------------------- what travels: BatchNorm


BATCHNORM = """\
def model():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def train(model, data, settings):
    model.train()
    with torch.no_grad():
        model(data[0] * 5 + torch.arange(3.0))  # moves the running statistics
    return len(data[1])
"""


def test_batchnorm_running_statistics_travel_and_the_batch_counter_does_not(tmp_path: Path) -> None:
    task = task_from(tmp_path, BATCHNORM)
    start = task.initial_tensors(0)
    assert sorted(start) == ["0.bias", "0.weight", "1.bias", "1.running_mean", "1.running_var", "1.weight"]
    assert all(array.dtype == np.float32 for array in start.values())

    trained = task.model_from(start)
    task.train(trained, task.load_data("unused"), Settings())
    assert int(trained[1].num_batches_tracked) == 1
    tensors = model_tensors(trained)
    assert not np.array_equal(tensors["1.running_mean"], start["1.running_mean"])

    rebuilt = task.model_from(tensors)
    assert np.array_equal(rebuilt[1].running_mean.numpy(), tensors["1.running_mean"])
    assert np.array_equal(rebuilt[1].running_var.numpy(), tensors["1.running_var"])
    assert int(rebuilt[1].num_batches_tracked) == 0  # as the fresh model has it
    other = task.build_model()
    other[1].num_batches_tracked.fill_(5)
    load_tensors(other, tensors, task=task.name)
    assert int(other[1].num_batches_tracked) == 5

    delta, _ = compute_client_update(task, start, task.load_data("unused"), Settings())
    assert delta.size == task.layout().size == 4 * 3 + 4 * 5  # the running statistics are in the update


# -------------------------------------------------------------- train()'s seeding


RANDPERM = """\
def train(model, data, settings):
    order = torch.randperm(1000)
    with torch.no_grad():
        model.weight.copy_(order[:6].reshape(2, 3).float())
    return 1
"""


def test_train_runs_under_the_settings_seed_and_restores_the_global_rng(tmp_path: Path) -> None:
    task = task_from(tmp_path, RANDPERM)

    def trained(seed: int) -> np.ndarray:
        model = task.build_model()
        task.train(model, None, Settings(seed=seed))
        return model.weight.detach().numpy().copy()

    first = trained(1)
    assert np.array_equal(first, trained(1))
    assert not np.array_equal(first, trained(2))
    reference = torch.randperm(1000, generator=torch.Generator().manual_seed(1))[:6].reshape(2, 3).float()
    assert np.array_equal(first, reference.numpy())  # seeded with exactly settings.seed

    model = task.build_model()
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    task.train(model, None, Settings(seed=1))
    assert torch.equal(torch.rand(3), expected_draw)  # the global RNG is as before the call


# -------------------------------------------------- the client's layout check


def _client_node(task: str, fixed: ModelLayout | None, tmp_path: Path,
                 metrics: tuple[str, ...] = ()) -> SimpleNamespace:
    """What build_client_agent reads of a Node: its [client] table, the deployment's layout and
    metric names and round size, the aggregation mode and the check period (no chain, no store: the checks run
    before the agent follows any event)."""
    client = SimpleNamespace(task=task, data=str(tmp_path / "mine.npz"))
    config = SimpleNamespace(client=client, path=tmp_path / "client-1.toml", federation=SimpleNamespace(max_clients=10))
    deployment = SimpleNamespace(model_layout=fixed, model_metrics=metrics, config=SimpleNamespace(target_clients=10))
    return SimpleNamespace(config=config, deployment=deployment,
                           contract=SimpleNamespace(aggregation=Aggregation,  # the Shamir mode
                                                    check_period=lambda: 0))


def test_a_client_whose_model_has_another_layout_refuses_to_start(tmp_path: Path) -> None:
    # load_data would fail too: the layout is checked first.
    reference = write_task(tmp_path, "def model():\n    return nn.Linear(4, 2)\n"
                           "def load_data(source):\n    raise OSError('not reached')\n")
    fixed = load_task(write_task(tmp_path, name="federation_task.py")).layout()
    with pytest.raises(TaskError) as excinfo:
        build_client_agent(_client_node(reference, fixed, tmp_path))
    assert one_line(excinfo, reference).endswith(
        "its model() does not have the layout the deployment fixes: tensor weight has shape [2, 4], the layout "
        "says [2, 3]; run the federation's task")


def test_a_client_whose_model_has_the_deployments_layout_starts(tmp_path: Path) -> None:
    reference = write_task(tmp_path, "def load_data(source):\n    return source\n")
    fixed = ModelLayout.from_json(load_task(reference).layout().to_json())  # as a deployment record stores it
    agent = build_client_agent(_client_node(reference, fixed, tmp_path))
    assert agent.layout == fixed and agent.data == str(tmp_path / "mine.npz")
    unfixed = build_client_agent(_client_node(reference, None, tmp_path))
    assert unfixed.layout == agent.task.layout()


def test_a_client_whose_evaluate_gives_other_metrics_than_the_deployments_refuses_to_start(tmp_path: Path) -> None:
    reference = write_task(tmp_path, "def load_data(source):\n    return source\n")
    fixed = load_task(reference).layout()
    with pytest.raises(TaskError) as excinfo:
        build_client_agent(_client_node(reference, fixed, tmp_path, metrics=("accuracy", "loss")))
    message = one_line(excinfo, reference)
    assert "evaluate()" in message and "['accuracy', 'loss']" in message and "run the federation's task" in message
