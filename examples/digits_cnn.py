"""A small convolutional network with BatchNorm on scikit-learn's digits, seen as 1x8x8 images.

    fedtss demo --task examples/digits_cnn.py --name cnn
    fedtss demo --task examples/digits_cnn.py --name cnn --set alpha=0.2 --set momentum=0.5

It trains well with fedtss's defaults (5 epochs of SGD per round, lr 0.05, batch size 16): about
98% test accuracy after 10 rounds with 10 clients. BatchNorm's running mean and variance are
averaged like the weights (fedtss federates every float tensor of the model's state). Its local
training (5 epochs through BatchNorm on batches of 16) magnifies tiny differences, so fedtss's
fixed-point average (off by ~1e-7 per weight) can end a test example or two away from plaintext
FedAvg after a few rounds.
Settings of its own (``--set key=value``): SGD ``momentum`` (0.9) and, for local federations, the
Dirichlet ``alpha`` of the non-IID split (0.5; smaller is more skewed).
"""

import numpy as np
import torch
from torch import nn

CLASSES = 10


def model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),    # 8 x 4 x 4
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),  # 16 x 2 x 2
        nn.Flatten(), nn.Linear(16 * 2 * 2, CLASSES),
    )


def load_data(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A client's .npz file with arrays x (n, 64) in [0, 1] (8x8 pixels, row by row) and y (n,) in 0..9."""
    with np.load(source, allow_pickle=False) as arrays:
        x = torch.tensor(arrays["x"], dtype=torch.float32).reshape(-1, 1, 8, 8)
        return x, torch.tensor(arrays["y"], dtype=torch.int64)


def train(model: nn.Module, data, settings) -> int:
    x, y = data
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.get("momentum", 0.9))
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(y))  # fedtss seeds torch's RNG per round and client
        for start in range(0, len(y), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            if len(batch) < 2:
                continue  # BatchNorm needs two examples to estimate a variance
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
