"""End to end: a user's own task, written outside the repository, trained by real agent processes.

The task below is what a user would write (nothing from fedtss's internals): synthetic tabular
data, and a model with BatchNorm, so that its running statistics must be federated too. The
federation runs two rounds on anvil; the result must be plaintext FedAvg of the same task (every
float tensor, BatchNorm's running mean and variance included), and ``fedtss model export``
must give a state dict that the task's ``model()`` loads.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agents.learning import apply_mean_update, load_task
from fedtss.chain import RoundFinalized
from fedtss.quantize import QuantizationConfig, clip_update, quantization_error_bound
from orchestration.cli import app

from .conftest import ROUND_TIMEOUT

pytestmark = pytest.mark.slow

TASK = '''
import numpy as np
import torch
from torch import nn


def model():
    return nn.Sequential(nn.Linear(5, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 3))


def load_data(source):
    with np.load(source, allow_pickle=False) as arrays:
        return torch.tensor(arrays["x"]), torch.tensor(arrays["y"])


def train(model, data, settings):
    x, y = data
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr)
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(y))
        for start in range(0, len(y), settings.batch_size):
            batch = order[start:start + settings.batch_size]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return len(y)


def evaluate(model, data):
    x, y = data
    model.eval()
    logits = model(x)
    return {"loss": nn.functional.cross_entropy(logits, y).item(),
            "accuracy": (logits.argmax(1) == y).float().mean().item()}


def partition(num_clients, seed, settings):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, settings.get("spread", 2.0), (3, 5))
    def draw(n):
        y = rng.integers(0, 3, n)
        return {"x": (centers[y] + rng.normal(0, 1, (n, 5))).astype(np.float32), "y": y.astype(np.int64)}
    return [draw(30 + 10 * i) for i in range(num_clients)], draw(60)
'''


def _write_task(folder: Path) -> Path:
    path = folder / "elsewhere" / "my_task.py"
    path.parent.mkdir(parents=True)
    path.write_text(textwrap.dedent(TASK), encoding="utf-8")
    return path


def test_a_task_file_outside_the_repository_trains_two_rounds_as_plaintext_fedavg_and_exports(
    small_federation, tmp_path
) -> None:
    task_path = _write_task(tmp_path)
    federation, tracker = small_federation(task=str(task_path), rounds=2)
    tracker.wait_until(lambda t: t.completed, timeout=2 * ROUND_TIMEOUT)
    assert [r.state for r in tracker.records.values()] == ["Finalized", "Finalized"]
    assert tracker.records[2].accuracy is not None and tracker.records[2].loss is not None
    assert set(tracker.records[1].federated) == {"accuracy", "loss"} and tracker.records[2].federated == {}

    # Each round is plaintext FedAvg of the task, BatchNorm's running statistics included.
    spec = federation.spec
    quantization = QuantizationConfig(clip_norm=spec.clip_norm, fractional_bits=spec.fractional_bits)
    model_in = federation.load_model(federation.initial_model_cid)
    assert {"1.running_mean", "1.running_var"} <= set(model_in)
    assert "1.num_batches_tracked" not in model_in  # integer buffers are not federated
    for round_ in (1, 2):
        updates = [federation.client_update(i, round_, model_in) for i in range(spec.clients)]
        total = sum(examples for _, examples in updates)
        expected = apply_mean_update(model_in, sum(clip_update(d, spec.clip_norm) * n for d, n in updates) / total)
        (finalized,) = tracker.round_events(round_, RoundFinalized)
        model_out = federation.load_model(finalized.model_cid)
        bound = quantization_error_bound(quantization, clients=spec.clients, total_samples=total,
                                         weighted_by_members=spec.members_weight_updates)
        for name, value in expected.items():
            assert np.all(np.abs(model_out[name] - value) <= bound + np.spacing(np.abs(value))), (round_, name)
        assert not np.array_equal(model_out["1.running_var"], model_in["1.running_var"])
        # Federated evaluation: the blob carries the example-weighted mean of the clients' own
        # evaluations of the model the round started from (the secret-shared metric coordinates).
        task = federation.task
        evaluations = [task.evaluate(task.model_from(model_in), task.load_data(source))
                       for source in federation.client_sources]
        carried = federation.model_metrics(finalized.model_cid)
        assert set(carried) == {"accuracy", "loss"}
        for name, value in carried.items():
            expected_metric = sum(e[name] * n for e, (_, n) in zip(evaluations, updates)) / total
            assert abs(value - expected_metric) <= bound, (round_, name, value, expected_metric)
        model_in = model_out

    # The last model leaves fedtss as a state dict the task's own model() loads.
    out = tmp_path / "exported" / "model.pt"
    result = CliRunner().invoke(app, ["model", "export", "latest", "--out", str(out), "--task", str(task_path),
                                      "--rpc-url", federation.chain.url,
                                      "--deployment", str(federation.deployment_path)])
    assert result.exit_code == 0, result.output
    assert "round 2's model" in result.output
    state = torch.load(out, weights_only=True)
    net = load_task(str(task_path)).module.model()
    net.load_state_dict(state)  # strict: every parameter and buffer, num_batches_tracked included
    assert torch.equal(state["1.running_mean"], torch.tensor(model_in["1.running_mean"]))


def test_a_client_whose_task_builds_another_layout_refuses_to_start_naming_the_tensor(
    small_federation, tmp_path
) -> None:
    """The deployment fixes the default task's layout; a client pointed at another task stops at start."""
    other = tmp_path / "other_task.py"
    other.write_text(textwrap.dedent(TASK).replace("nn.Linear(5, 12)", "nn.Linear(64, 12)"), encoding="utf-8")
    federation, _ = small_federation(skip=("client-2",), rounds=1)
    config = federation.config_path("client-2")
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(federation.task.location, str(other)), encoding="utf-8")
    process = federation.start("client-2")
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.returncode == 1, federation.log_tail("client-2")
    log = federation.log_path("client-2").read_text(encoding="utf-8")
    assert f"task {other}: its model() does not have the layout the deployment fixes: tensor " in log, log
