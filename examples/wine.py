"""Your own task: logistic regression on scikit-learn's wine data (13 measurements, 3 cultivars).

    fedtss demo --task examples/wine.py --name wine --set alpha=1.0 --set momentum=0.9   (the defaults)

A client's data: an .npz file with x (n, 13), y (n,) in 0..2 and the mean and std that standardize x
(partition stores the training set's; without them, x's own), or a .csv file (no header, label last).
"""

import numpy as np
import torch
from torch import nn


def model() -> nn.Module:
    return nn.Linear(13, 3)


def load_data(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    if source.endswith(".csv"):
        table = np.loadtxt(source, delimiter=",", ndmin=2)
        arrays = {"x": table[:, :-1], "y": table[:, -1]}
    else:
        with np.load(source, allow_pickle=False) as file:
            arrays = dict(file)
    x = arrays["x"]
    x = (x - arrays.get("mean", x.mean(axis=0))) / arrays.get("std", x.std(axis=0) + 1e-8)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(arrays["y"], dtype=torch.int64)


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
    """20% held out (stratified); the rest split non-IID (Dirichlet), at least 8 samples each."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    from fedtss.partition import partition_dirichlet

    x, y = load_wine(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    scaler = {"mean": x_train.mean(axis=0), "std": x_train.std(axis=0)}  # the test set uses the same
    parts = partition_dirichlet(y_train, num_clients, alpha=settings.get("alpha", 1.0), seed=seed, min_samples=8)
    return [{"x": x_train[p], "y": y_train[p], **scaler} for p in parts], {"x": x_test, "y": y_test, **scaler}
