"""Seeded, non-IID splits of a labelled dataset across clients, for local federations.

A task's ``partition(num_clients, seed, settings)`` (see :mod:`fedtss.task`) may call
:func:`partition_dirichlet` to deal its training set out the way federated-learning papers do
(Hsu et al., 2019): each label's samples go to the clients in proportions drawn from
Dirichlet(alpha), so a small alpha gives each client a few dominant labels. Pure: the seed is a
parameter and nothing is read or written.
"""

from __future__ import annotations

import numpy as np

from fedtss.errors import ConfigError

__all__ = ["partition_dirichlet", "synthetic_clients"]

# Draws that leave a client below the minimum are redrawn this many times at most.
_MAX_PARTITION_ATTEMPTS = 1000


def partition_dirichlet(
    labels: np.ndarray, num_clients: int, *, alpha: float, seed: int, min_samples: int
) -> list[np.ndarray]:
    """Split sample indices across clients, label by label, in Dirichlet(alpha) proportions.

    Draws that leave any client below ``min_samples`` are redrawn. Returns one sorted index
    array per client; together they cover every index exactly once.
    """
    if num_clients < 1:
        raise ConfigError(f"num_clients must be at least 1, got {num_clients}")
    if not alpha > 0:
        raise ConfigError(f"alpha must be > 0 (smaller is more skewed), got {alpha}")
    if min_samples < 1:
        raise ConfigError(f"min_samples must be at least 1, got {min_samples}")
    most = labels.shape[0] // min_samples
    if num_clients > most:
        raise ConfigError(
            f"{num_clients} clients x {min_samples} min_samples exceeds the {labels.shape[0]} training "
            f"samples: at most {most} clients can have {min_samples} each; lower num_clients or min_samples, "
            "or use a larger dataset (fedtss.partition.synthetic_clients generates one per client)"
        )
    parts = _first_fitting_draw(labels, num_clients, alpha, np.random.default_rng(seed), min_samples,
                                _MAX_PARTITION_ATTEMPTS)
    if parts is not None:
        return parts
    feasible = _largest_feasible(labels, num_clients, alpha, seed, min_samples)
    raise ConfigError(
        f"no Dirichlet(alpha={alpha}) partition gave every one of {num_clients} clients "
        f"{min_samples} samples in {_MAX_PARTITION_ATTEMPTS} draws; the largest number of clients that "
        f"got one here is {feasible}: use at most {feasible} clients, raise alpha or lower min_samples"
    )


def _first_fitting_draw(labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator,
                        min_samples: int, attempts: int) -> list[np.ndarray] | None:
    for _ in range(attempts):
        parts = _draw_dirichlet_partition(labels, num_clients, alpha, rng)
        if min(part.shape[0] for part in parts) >= min_samples:
            return parts
    return None


def _largest_feasible(labels: np.ndarray, num_clients: int, alpha: float, seed: int, min_samples: int) -> int:
    """The most clients (below ``num_clients``) for which a draw with this seed fits, found by
    bisection with fewer draws per probe; 0 if not even one client fits."""
    low, high = 0, num_clients - 1  # low fits (vacuously at 0); num_clients did not
    while low < high:
        middle = (low + high + 1) // 2
        if _first_fitting_draw(labels, middle, alpha, np.random.default_rng(seed), min_samples, 100) is not None:
            low = middle
        else:
            high = middle - 1
    return low


def synthetic_clients(
    num_clients: int, *, samples_per_client: int, features: int, classes: int, alpha: float, seed: int,
    test_samples: int = 2000, separation: float = 2.0,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """A classification dataset generated per client, for federations of any size.

    Each class is a Gaussian around its own mean (drawn once per seed, ``separation`` apart on
    average); client i draws its label mix from Dirichlet(alpha) over the classes (non-IID, as
    :func:`partition_dirichlet`) and then exactly ``samples_per_client`` samples from it. The
    test set draws its labels uniformly. Returns ``([(x_i, y_i) per client], (x_test, y_test))``
    with float32 features and int64 labels. Pure: the seed decides everything.
    """
    for name, value in (("num_clients", num_clients), ("samples_per_client", samples_per_client),
                        ("features", features), ("test_samples", test_samples)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if classes < 2:
        raise ConfigError(f"classes must be at least 2, got {classes}")
    if not alpha > 0:
        raise ConfigError(f"alpha must be > 0 (smaller is more skewed), got {alpha}")
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, separation / np.sqrt(2.0), size=(classes, features))

    def draw(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = means[labels] + rng.normal(size=(labels.shape[0], features))
        return x.astype(np.float32), labels.astype(np.int64)

    mixes = rng.dirichlet(np.full(classes, alpha), size=num_clients)
    clients = [draw(rng.choice(classes, size=samples_per_client, p=mix)) for mix in mixes]
    return clients, draw(rng.integers(0, classes, size=test_samples))


def _draw_dirichlet_partition(
    labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    buckets: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))
        proportions = rng.dirichlet(np.full(num_clients, alpha))
        cuts = (np.cumsum(proportions)[:-1] * indices.shape[0]).astype(np.int64)
        for client, chunk in enumerate(np.split(indices, cuts)):
            buckets[client].append(chunk)
    return [np.sort(np.concatenate(chunks)) for chunks in buckets]
