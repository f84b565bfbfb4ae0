"""Seeded digits split, Dirichlet partition and loading a client's own data file."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from agents.learning.data import (
    NUM_CLASSES,
    NUM_FEATURES,
    DataConfig,
    load_client_file,
    load_digits_split,
    make_federation,
    partition_dirichlet,
)
from fedtss.errors import ConfigError, FormatError


def test_digits_split_is_scaled_stratified_and_seeded() -> None:
    train, test = load_digits_split(test_fraction=0.2, seed=3)
    again_train, _ = load_digits_split(test_fraction=0.2, seed=3)
    assert train.x.min() >= 0.0 and train.x.max() <= 1.0
    assert train.num_samples + test.num_samples == 1797
    assert np.array_equal(train.x, again_train.x) and np.array_equal(train.y, again_train.y)
    # Stratified: every digit's share of the test set matches its share of the data.
    test_share = np.bincount(test.y, minlength=NUM_CLASSES) / test.num_samples
    train_share = np.bincount(train.y, minlength=NUM_CLASSES) / train.num_samples
    assert np.max(np.abs(test_share - train_share)) < 0.01


def test_partition_covers_every_sample_exactly_once() -> None:
    labels = np.random.default_rng(0).integers(0, 10, size=1000)
    parts = partition_dirichlet(labels, 10, alpha=0.5, seed=7, min_samples=20)
    together = np.concatenate(parts)
    assert np.array_equal(np.sort(together), np.arange(1000))
    assert min(len(part) for part in parts) >= 20


def test_partition_is_deterministic_for_a_seed_and_changes_with_it() -> None:
    labels = np.random.default_rng(0).integers(0, 10, size=1000)
    first = partition_dirichlet(labels, 10, alpha=0.5, seed=7, min_samples=20)
    second = partition_dirichlet(labels, 10, alpha=0.5, seed=7, min_samples=20)
    other = partition_dirichlet(labels, 10, alpha=0.5, seed=8, min_samples=20)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def _label_skew(config: DataConfig) -> float:
    """Mean over clients of the largest label's share of the client's samples."""
    federation = make_federation(config)
    return float(
        np.mean([np.bincount(c.y, minlength=10).max() / c.num_samples for c in federation.clients])
    )


def test_small_alpha_skews_labels_and_large_alpha_does_not() -> None:
    skewed = _label_skew(DataConfig(alpha=0.1, min_samples=10))
    near_iid = _label_skew(DataConfig(alpha=1000.0))
    assert skewed > 0.4  # most clients are dominated by one or two digits
    assert _label_skew(DataConfig()) > 0.2  # the default setup is non-IID too
    assert near_iid < 0.2  # close to the uniform 0.1


def test_federation_clients_partition_the_training_split() -> None:
    config = DataConfig(num_clients=10, seed=5)
    federation = make_federation(config)
    train, test = load_digits_split(test_fraction=config.test_fraction, seed=config.seed)
    assert len(federation.clients) == 10
    assert sum(c.num_samples for c in federation.clients) == train.num_samples
    assert np.array_equal(federation.test.y, test.y)


def test_impossible_minimum_is_refused_with_a_fix() -> None:
    labels = np.zeros(100, dtype=np.int64)
    with pytest.raises(ConfigError, match="min_samples"):
        partition_dirichlet(labels, 10, alpha=0.5, seed=0, min_samples=11)


@pytest.mark.parametrize(
    "field, value", [("num_clients", 0), ("alpha", 0.0), ("test_fraction", 1.0), ("min_samples", 0)]
)
def test_data_config_rejects_out_of_range_values(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        DataConfig(**{field: value})


def _features(n: int) -> np.ndarray:
    return np.random.default_rng(1).random((n, NUM_FEATURES))


def test_client_npz_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    np.savez(path, x=_features(5), y=np.array([0, 1, 2, 3, 9]))
    data = load_client_file(path)
    assert data.x.dtype == np.float32 and data.y.tolist() == [0, 1, 2, 3, 9]


def test_client_csv_file_with_header_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    header = ",".join([f"f{i}" for i in range(NUM_FEATURES)] + ["label"])
    rows = [",".join(map(str, list(row) + [label])) for row, label in zip(_features(3), [4, 5, 6])]
    path.write_text("\n".join([header, *rows]) + "\n")
    data = load_client_file(path)
    assert data.num_samples == 3 and data.y.tolist() == [4, 5, 6]
    assert np.allclose(data.x, _features(3))


def test_npz_with_pickled_objects_is_refused_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([object()], dtype=object), y=np.array([1]))
    with pytest.raises(FormatError, match="not a valid .npz"):
        load_client_file(path)


def test_raw_pickle_named_npz_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(FormatError, match="not a valid .npz"):
        load_client_file(path)


def test_npz_without_labels_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nolabels.npz"
    np.savez(path, x=_features(2))
    with pytest.raises(FormatError, match=r"missing \['y'\]"):
        load_client_file(path)


def test_truncated_npz_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, x=_features(2), y=np.array([1, 2]))
    path = tmp_path / "cut.npz"
    path.write_bytes(buffer.getvalue()[:100])
    with pytest.raises(FormatError):
        load_client_file(path)
    assert not zipfile.is_zipfile(path)


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros((2, 10)), np.array([1, 2]), "shape"),
        (np.zeros((2, NUM_FEATURES)), np.array([1]), "labels must have shape"),
        (np.full((1, NUM_FEATURES), np.nan), np.array([1]), "finite"),
        (np.zeros((1, NUM_FEATURES)), np.array([10]), r"labels must be in \[0, 10\)"),
        (np.zeros((1, NUM_FEATURES)), np.array([1.5]), "whole numbers"),
        (np.zeros((0, NUM_FEATURES)), np.zeros(0), "no samples"),
    ],
)
def test_npz_with_bad_arrays_is_refused_with_the_reason(
    tmp_path: Path, x: np.ndarray, y: np.ndarray, message: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, x=x, y=y)
    with pytest.raises(FormatError, match=message):
        load_client_file(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no data rows"),
        ("a,b\n", "no data rows"),
        ("1,2,3\n1,2\n", "row 2 has 2 columns"),
        ("1,2,3\n1,x,3\n", "row 2 is not numeric"),
        ("1,2,3\n", "features must have shape"),
    ],
)
def test_malformed_csv_is_refused_with_the_row(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(FormatError, match=message):
        load_client_file(path)


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("1," * 100)
    with pytest.raises(FormatError, match="exceeds the 10-byte limit"):
        load_client_file(path, max_bytes=10)


def test_missing_file_and_unknown_kind_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_client_file(tmp_path / "absent.npz")
    other = tmp_path / "data.json"
    other.write_text("{}")
    with pytest.raises(ConfigError, match=".npz or .csv"):
        load_client_file(other)
