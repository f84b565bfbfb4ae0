"""A task of a million parameters, to measure what fedtss costs at that size: an MLP on the digits.

    fedtss demo --task examples/million.py --name million --rounds 2 --epochs 1

64 -> 1024 -> 902 -> 10 with ReLU: 66,560 + 924,550 + 9,030 = 1,000,140 float32 parameters (4.0 MB),
every one of them secret-shared each round. The data and its split are digits_mlp's (8x8 digits
scaled to [0, 1], 20% held out, Dirichlet alpha 0.5); one epoch per round (``--epochs 1``) is
enough to train it. Settings of its own (``--set key=value``): SGD ``momentum`` (0.9), ``alpha``.
"""

import numpy as np
import torch
from torch import nn

FEATURES, HIDDEN, CLASSES = 64, (1024, 902), 10


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(FEATURES, HIDDEN[0]), nn.ReLU(), nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU(),
                         nn.Linear(HIDDEN[1], CLASSES))


def load_data(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A client's .npz file with arrays x (n, 64) in [0, 1] and y (n,) in 0..9."""
    with np.load(source, allow_pickle=False) as arrays:
        return torch.tensor(arrays["x"], dtype=torch.float32), torch.tensor(arrays["y"], dtype=torch.int64)


def train(model: nn.Module, data, settings) -> int:
    x, y = data
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.get("momentum", 0.9))
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(y))  # fedtss seeds torch's RNG per round and client
        for start in range(0, len(y), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return len(y)


def evaluate(model: nn.Module, data) -> dict[str, float]:
    x, y = data
    model.eval()
    logits = model(x)
    return {"loss": nn.functional.cross_entropy(logits, y).item(),
            "accuracy": (logits.argmax(dim=1) == y).float().mean().item()}


def partition(num_clients: int, seed: int, settings):
    """Digits scaled to [0, 1]; 20% held out (stratified), the rest split non-IID (Dirichlet)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from fedtss.partition import partition_dirichlet

    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    parts = partition_dirichlet(y_train, num_clients, alpha=settings.get("alpha", 0.5), seed=seed, min_samples=20)
    return [{"x": x_train[p], "y": y_train[p]} for p in parts], {"x": x_test, "y": y_test}
