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

__all__ = ["partition_dirichlet"]

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
    if num_clients * min_samples > labels.shape[0]:
        raise ConfigError(
            f"{num_clients} clients x {min_samples} min_samples exceeds the "
            f"{labels.shape[0]} training samples; lower min_samples or num_clients"
        )
    rng = np.random.default_rng(seed)
    for _ in range(_MAX_PARTITION_ATTEMPTS):
        parts = _draw_dirichlet_partition(labels, num_clients, alpha, rng)
        if min(part.shape[0] for part in parts) >= min_samples:
            return parts
    raise ConfigError(
        f"no Dirichlet(alpha={alpha}) partition gave every one of {num_clients} clients "
        f"{min_samples} samples in {_MAX_PARTITION_ATTEMPTS} draws; "
        "raise alpha or lower min_samples"
    )


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
