"""The seeded Dirichlet split of a labelled dataset across clients (fedtss.partition)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fedtss.errors import ConfigError
from fedtss.partition import partition_dirichlet, synthetic_clients

LABELS = np.random.default_rng(0).integers(0, 10, size=1000)
BALANCED = np.repeat(np.arange(10), 144)  # about the digits training set: 10 labels, ~1440 samples


def test_partition_covers_every_sample_exactly_once() -> None:
    parts = partition_dirichlet(LABELS, 10, alpha=0.5, seed=7, min_samples=20)
    assert len(parts) == 10
    together = np.concatenate(parts)
    assert np.array_equal(np.sort(together), np.arange(1000))
    assert min(len(part) for part in parts) >= 20
    assert all(np.array_equal(part, np.sort(part)) for part in parts)  # each sorted


def test_partition_is_deterministic_for_a_seed_and_changes_with_it() -> None:
    first = partition_dirichlet(LABELS, 10, alpha=0.5, seed=7, min_samples=20)
    second = partition_dirichlet(LABELS, 10, alpha=0.5, seed=7, min_samples=20)
    other = partition_dirichlet(LABELS, 10, alpha=0.5, seed=8, min_samples=20)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_one_client_gets_everything() -> None:
    (only,) = partition_dirichlet(LABELS, 1, alpha=0.5, seed=0, min_samples=1)
    assert np.array_equal(only, np.arange(1000))


def _label_skew(alpha: float, min_samples: int) -> float:
    """Mean over clients of the largest label's share of the client's samples."""
    parts = partition_dirichlet(BALANCED, 10, alpha=alpha, seed=0, min_samples=min_samples)
    return float(np.mean([np.bincount(BALANCED[p], minlength=10).max() / len(p) for p in parts]))


def test_small_alpha_skews_labels_and_large_alpha_does_not() -> None:
    assert _label_skew(0.1, 10) > 0.4  # most clients are dominated by one or two labels
    assert _label_skew(0.5, 20) > 0.2  # the default alpha is non-IID too
    assert _label_skew(1000.0, 20) < 0.2  # close to the uniform 0.1


def test_impossible_minimum_is_refused_with_a_fix() -> None:
    labels = np.zeros(100, dtype=np.int64)
    with pytest.raises(ConfigError, match="10 clients x 11 min_samples exceeds the 100 training samples: "
                                          "at most 9 clients can have 11 each; lower num_clients"):
        partition_dirichlet(labels, 10, alpha=0.5, seed=0, min_samples=11)


def test_a_minimum_no_draw_meets_is_refused_with_a_fix() -> None:
    # Three clients can have 33 of 99 samples only if both cuts land exactly: with alpha this
    # small, one client takes nearly everything in every draw.
    labels = np.zeros(99, dtype=np.int64)
    with pytest.raises(ConfigError, match="in 1000 draws; the largest number of clients that got one here is "
                                          r"(\d+): use at most \1 clients, raise alpha") as info:
        partition_dirichlet(labels, 3, alpha=0.01, seed=0, min_samples=33)
    feasible = int(re.search(r"use at most (\d+)", str(info.value)).group(1))
    assert 1 <= feasible < 3
    assert len(partition_dirichlet(labels, feasible, alpha=0.01, seed=0, min_samples=33)) == feasible  # it works


def test_the_digits_split_names_the_most_clients_it_can_serve_and_that_number_works() -> None:
    from sklearn.datasets import load_digits

    labels = load_digits().target[:1437]  # the examples' 80% training split
    with pytest.raises(ConfigError, match=r"use at most (\d+) clients") as info:
        partition_dirichlet(labels, 60, alpha=0.5, seed=0, min_samples=20)
    feasible = int(re.search(r"use at most (\d+)", str(info.value)).group(1))
    assert len(partition_dirichlet(labels, feasible, alpha=0.5, seed=0, min_samples=20)) == feasible


def test_synthetic_clients_serve_a_thousand_clients_each_with_its_samples_and_a_skewed_label_mix() -> None:
    clients, (x_test, y_test) = synthetic_clients(1000, samples_per_client=30, features=8, classes=4, alpha=0.3,
                                                  seed=5)
    assert len(clients) == 1000 and all(x.shape == (30, 8) and y.shape == (30,) for x, y in clients)
    assert all(x.dtype == np.float32 and y.dtype == np.int64 for x, y in clients)
    assert x_test.shape == (2000, 8) and set(np.unique(y_test)) == {0, 1, 2, 3}
    dominant = np.mean([np.bincount(y, minlength=4).max() / 30 for _, y in clients])
    assert dominant > 0.6  # non-IID: with alpha 0.3 most of a client's samples share one label
    again, _ = synthetic_clients(1000, samples_per_client=30, features=8, classes=4, alpha=0.3, seed=5)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(clients, again))


def test_synthetic_classes_are_learnable_a_nearest_mean_rule_beats_chance() -> None:
    clients, (x_test, y_test) = synthetic_clients(50, samples_per_client=40, features=10, classes=3, alpha=1.0,
                                                  seed=1)
    x = np.concatenate([c[0] for c in clients])
    y = np.concatenate([c[1] for c in clients])
    means = np.stack([x[y == k].mean(axis=0) for k in range(3)])
    predicted = np.argmin(((x_test[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
    assert np.mean(predicted == y_test) > 0.6  # chance is 1/3


@pytest.mark.parametrize("kwargs, message", [
    ({"num_clients": 0}, "num_clients must be at least 1"),
    ({"alpha": 0.0}, "alpha must be > 0"),
    ({"alpha": float("nan")}, "alpha must be > 0"),
])
def test_out_of_range_parameters_are_refused(kwargs: dict, message: str) -> None:
    arguments = {"num_clients": 10, "alpha": 0.5, "seed": 0, "min_samples": 1} | kwargs
    num_clients = arguments.pop("num_clients")
    with pytest.raises(ConfigError, match=message):
        partition_dirichlet(LABELS, num_clients, **arguments)
