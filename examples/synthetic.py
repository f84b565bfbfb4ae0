"""A task for federations of any size: generated data (fedtss.partition.synthetic_clients), a small MLP.

    fedtss demo --task examples/synthetic.py --clients 100 --set samples_per_client=50 --set alpha=0.5

Each client gets exactly ``samples_per_client`` samples (default 50) of 20 features in 4 classes,
its label mix drawn from Dirichlet(alpha) (default 0.5): non-IID, and no split can run short of
samples, whatever the number of clients. Nothing is downloaded. A client's data is an .npz file
with x (n, 20) and y (n,) in 0..3.
"""

import numpy as np
import torch
from torch import nn

FEATURES, CLASSES = 20, 4


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, CLASSES))


def load_data(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(source, allow_pickle=False) as file:
        return torch.tensor(file["x"], dtype=torch.float32), torch.tensor(file["y"], dtype=torch.int64)


def train(model: nn.Module, data, settings) -> int:
    x, y = data
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.get("momentum", 0.9))
    for _ in range(settings.epochs):
        order = torch.randperm(len(y))  # fedtss seeds torch's RNG per round and client
        for batch in order.split(settings.batch_size):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return len(y)


def evaluate(model: nn.Module, data) -> dict[str, float]:
    x, y = data
    logits = model(x)
    return {"loss": nn.functional.cross_entropy(logits, y).item(),
            "accuracy": (logits.argmax(dim=1) == y).float().mean().item()}


def partition(num_clients: int, seed: int, settings):
    """Generated per client: ``samples_per_client`` each, labels skewed by Dirichlet(alpha)."""
    from fedtss.partition import synthetic_clients

    clients, (x_test, y_test) = synthetic_clients(
        num_clients, samples_per_client=int(settings.get("samples_per_client", 50)), features=FEATURES,
        classes=CLASSES, alpha=float(settings.get("alpha", 0.5)), seed=seed)
    return [{"x": x, "y": y} for x, y in clients], {"x": x_test, "y": y_test}
