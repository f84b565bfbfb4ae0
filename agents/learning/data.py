"""The data a federation trains on: scikit-learn's digits, split non-IID across clients.

Every step is seeded, so the launcher (which runs the plaintext baseline in its own
process) and each client process (which loads only its own part) see the same samples.
A client may instead bring its own ``.npz`` (keys ``x``, ``y``) or CSV file (last column
is the label); such a file is untrusted input and is parsed by :func:`load_client_file`.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedtss.errors import ConfigError, FormatError

__all__ = [
    "NUM_FEATURES",
    "NUM_CLASSES",
    "MAX_CLIENT_FILE_BYTES",
    "ClientData",
    "DataConfig",
    "Federation",
    "load_digits_split",
    "partition_dirichlet",
    "make_federation",
    "load_client_file",
]

NUM_FEATURES = 64
NUM_CLASSES = 10
# A client's own data file is read whole into memory; refuse anything absurd up front.
MAX_CLIENT_FILE_BYTES = 256 * 1024 * 1024
# Dirichlet draws that leave a client below the minimum are redrawn this many times at most.
_MAX_PARTITION_ATTEMPTS = 1000


@dataclass(frozen=True)
class ClientData:
    """Features ``x`` (float32, shape (n, features)) and labels ``y`` (int64, shape (n,))."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.ndim != 1 or self.x.shape[0] != self.y.shape[0]:
            raise FormatError(
                f"client data needs x of shape (n, features) and y of shape (n,); "
                f"got x {self.x.shape} and y {self.y.shape}"
            )
        if self.x.dtype != np.float32 or self.y.dtype != np.int64:
            raise FormatError(
                f"client data needs float32 x and int64 y; got {self.x.dtype} and {self.y.dtype}"
            )

    @property
    def num_samples(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class DataConfig:
    """How the digits are split: held-out test share, clients, skew and seed."""

    num_clients: int = 10
    alpha: float = 0.5
    test_fraction: float = 0.2
    min_samples: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_clients < 1:
            raise ConfigError(f"num_clients must be at least 1, got {self.num_clients}")
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be > 0 (smaller is more skewed), got {self.alpha}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.min_samples < 1:
            raise ConfigError(f"min_samples must be at least 1, got {self.min_samples}")


@dataclass(frozen=True)
class Federation:
    """The clients' training sets (client index order) and the shared held-out test set."""

    clients: tuple[ClientData, ...]
    test: ClientData


def load_digits_split(*, test_fraction: float, seed: int) -> tuple[ClientData, ClientData]:
    """Return (train, test): digits scaled to [0, 1], split stratified by label.

    Stratifying keeps every digit in the test set in its natural proportion, so accuracy
    is comparable across seeds.
    """
    # Imported here: scikit-learn takes ~1 s to import, and a client that brings its own
    # file never needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return ClientData(x_train, y_train), ClientData(x_test, y_test)


def partition_dirichlet(
    labels: np.ndarray, num_clients: int, *, alpha: float, seed: int, min_samples: int
) -> list[np.ndarray]:
    """Split sample indices across clients, label by label, in Dirichlet(alpha) proportions.

    Each label's samples are dealt to clients in proportions drawn from Dirichlet(alpha):
    a small alpha gives each client few dominant labels (the non-IID case FedAvg must
    survive). Draws that leave any client below ``min_samples`` are redrawn. Returns one
    sorted index array per client; together they cover every index exactly once.
    """
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


def make_federation(config: DataConfig) -> Federation:
    """Build the whole seeded federation: every client's training data and the test set."""
    train, test = load_digits_split(test_fraction=config.test_fraction, seed=config.seed)
    parts = partition_dirichlet(
        train.y,
        config.num_clients,
        alpha=config.alpha,
        seed=config.seed,
        min_samples=config.min_samples,
    )
    clients = tuple(ClientData(train.x[part], train.y[part]) for part in parts)
    return Federation(clients=clients, test=test)


def load_client_file(
    path: str | Path,
    *,
    num_features: int = NUM_FEATURES,
    num_classes: int = NUM_CLASSES,
    max_bytes: int = MAX_CLIENT_FILE_BYTES,
) -> ClientData:
    """Load a client's own data from ``.npz`` (keys x, y) or ``.csv`` (last column = label).

    The file is untrusted: it is size-limited, never unpickled, and checked for shape,
    finite features and labels in ``[0, num_classes)``. Raises FormatError naming the
    problem, or ConfigError if the file is missing or of an unknown kind.
    """
    path = Path(path)
    raw = _read_limited(path, max_bytes)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        x, y = _parse_npz(raw, path)
    elif suffix == ".csv":
        x, y = _parse_csv(raw, path)
    else:
        raise ConfigError(f"{path}: client data must be a .npz or .csv file, got {suffix!r}")
    return _checked_client_data(x, y, path, num_features=num_features, num_classes=num_classes)


def _read_limited(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read client data file ({exc.strerror})") from exc
    if size > max_bytes:
        raise FormatError(f"{path}: {size} bytes exceeds the {max_bytes}-byte limit")
    return path.read_bytes()


def _parse_npz(raw: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            missing = {"x", "y"} - set(archive.files)
            if missing:
                raise FormatError(
                    f"{path}: .npz must hold arrays 'x' and 'y'; missing {sorted(missing)}"
                )
            return archive["x"], archive["y"]
    except FormatError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        # np.load raises ValueError for object (pickled) arrays and for non-npz bytes.
        raise FormatError(f"{path}: not a valid .npz of numeric arrays ({exc})") from exc


def _parse_csv(raw: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse numeric CSV rows; a first row that is not numeric is taken as a header."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: CSV is not UTF-8 text") from exc
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if rows and not _is_numeric_row(rows[0]):
        rows = rows[1:]
    if not rows:
        raise FormatError(f"{path}: CSV holds no data rows")
    width = len(rows[0])
    if width < 2:
        raise FormatError(f"{path}: CSV rows need features then a label; row 1 has {width} column")
    values = np.empty((len(rows), width), dtype=np.float64)
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise FormatError(f"{path}: data row {number} has {len(row)} columns, expected {width}")
        try:
            values[number - 1] = [float(cell) for cell in row]
        except ValueError as exc:
            raise FormatError(f"{path}: data row {number} is not numeric ({exc})") from exc
    return values[:, :-1], values[:, -1]


def _is_numeric_row(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


def _checked_client_data(
    x: np.ndarray, y: np.ndarray, path: Path, *, num_features: int, num_classes: int
) -> ClientData:
    if x.ndim != 2 or x.shape[1] != num_features:
        raise FormatError(f"{path}: features must have shape (n, {num_features}); got {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise FormatError(f"{path}: labels must have shape ({x.shape[0]},); got {y.shape}")
    if x.shape[0] == 0:
        raise FormatError(f"{path}: holds no samples")
    if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
        raise FormatError(f"{path}: features and labels must be numeric; got {x.dtype}, {y.dtype}")
    if np.iscomplexobj(x) or not np.all(np.isfinite(x)):
        raise FormatError(f"{path}: features must be finite real numbers")
    labels = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(labels)) or not np.array_equal(labels, np.round(labels)):
        raise FormatError(f"{path}: labels must be whole numbers")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise FormatError(
            f"{path}: labels must be in [0, {num_classes}); got {labels.min():g}..{labels.max():g}"
        )
    return ClientData(np.ascontiguousarray(x, dtype=np.float32), labels.astype(np.int64))
