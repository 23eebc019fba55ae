"""Data sources of generated programs (the ``data`` config group).

- ``digits``: scikit-learn's bundled 8x8 digits (real data, no download), scaled to [0, 1]
  and shaped as the network's input (``(8, 8, 1)``, ``(64,)``...).
- ``synthetic``: random inputs of the declared shape (token ids below the vocabulary
  for an Embedding input) and random labels, one class per output unit.
- ``npz``: ``data.path`` with ``x_train``, ``y_train`` and optional ``x_val``, ``y_val``.

Every source returns numpy arrays; the program checks them against the network.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neural_dsl_tracking.compiler.config import DIGITS_CLASSES
from neural_dsl_tracking.errors import ConfigError
from neural_dsl_tracking.humanize import file_size
from neural_dsl_tracking.limits import machine_memory


@dataclass
class Splits:
    """Training and validation arrays (validation may be empty)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    description: str


@dataclass(frozen=True)
class NetworkIO:
    """What the compiled network takes and gives, per sample."""

    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]
    tokens: int | None
    """The Embedding vocabulary when the input is token ids, else None."""
    loss_family: str


def load_data(cfg: Any, io: NetworkIO, validation_split: float, seed: int, launch_dir: Path) -> Splits:
    """The arrays of the configured source, split when the source has no validation set."""
    if cfg.name == "digits":
        x, y = _digits(io, cfg.scale)
        return _split(x, y, validation_split, seed, "scikit-learn digits")
    if cfg.name == "synthetic":
        x, y = _synthetic(io, cfg.samples, cfg.length, seed)
        return _split(x, y, validation_split, seed, f"synthetic ({cfg.samples} samples)")
    return _npz(Path(cfg.path), io, validation_split, seed, launch_dir)


def _digits(io: NetworkIO, scale: bool) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _digits_arrays()
    x = images.astype(np.float32) / (16.0 if scale else 1.0)
    shape = io.input_shape
    if io.tokens is not None or None in shape or math.prod(shape) != 64:  # type: ignore[arg-type]
        raise ConfigError(f"data=digits gives 8x8 images (64 values per sample), but the network takes "
                          f"{_shape(shape)}{' token ids' if io.tokens else ''}; use data=synthetic or data=npz")
    if io.loss_family == "cross_entropy" and io.output_shape[-1:] != (DIGITS_CLASSES,):
        raise ConfigError(f"data=digits has {DIGITS_CLASSES} classes (the digits 0 to 9), but the network outputs "
                          f"{_shape(io.output_shape)}; give its output layer {DIGITS_CLASSES} units, or use "
                          "data=synthetic or data=npz")
    return x.reshape((len(x), *shape)), labels.astype(np.int64)  # type: ignore[arg-type]


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 digits (64 pixel values from 0 to 16 each) and their labels, read
    from the file the package ships without importing it (importing scikit-learn costs a second
    or more of CPU, in every run and in each sweep worker); through ``load_digits`` when the file
    is not where scikit-learn keeps it."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package, does not import it
    shipped = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if shipped is None or not shipped.is_file():
        from sklearn.datasets import load_digits

        return load_digits(return_X_y=True)
    with gzip.open(shipped, "rt", encoding="utf-8") as rows:
        table = np.loadtxt(rows, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


def _synthetic(io: NetworkIO, samples: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = tuple(length if dim is None else dim for dim in io.input_shape)
    out = tuple(length if dim is None else dim for dim in io.output_shape)
    _check_synthetic_size(samples, math.prod(shape) + math.prod(out), None in io.input_shape + io.output_shape)
    if io.tokens is not None:
        x = rng.integers(0, io.tokens, size=(samples, *shape), dtype=np.int64)
    else:
        x = rng.standard_normal((samples, *shape), dtype=np.float32)
    if io.loss_family == "cross_entropy":
        y = rng.integers(0, out[-1], size=(samples, *out[:-1]), dtype=np.int64)
    elif io.loss_family == "binary":
        y = rng.integers(0, 2, size=(samples, *out)).astype(np.float32)
    else:
        y = rng.standard_normal((samples, *out), dtype=np.float32)
    return x, y


def _check_synthetic_size(samples: int, values_per_sample: int, dynamic: bool) -> None:
    """Synthetic data (8 bytes a value at most, copied once when split) must fit in half the memory."""
    needed, memory = samples * values_per_sample * 8, machine_memory()
    if needed > memory // 2:
        lower = "data.samples or data.length" if dynamic else "data.samples"
        raise ConfigError(f"data=synthetic: {samples:,} samples of {values_per_sample:,} values take about "
                          f"{file_size(needed)}, more than half of this machine's {file_size(memory)} of "
                          f"memory; lower {lower}")


def _npz(path: Path, io: NetworkIO, validation_split: float, seed: int, launch_dir: Path) -> Splits:
    path = path if path.is_absolute() else launch_dir / path
    content = _read_npz(path)
    missing = [key for key in ("x_train", "y_train") if key not in content]
    if missing:
        raise ConfigError(f"data.path: {path} lacks {', '.join(missing)} (found: {', '.join(content) or 'nothing'})")
    if ("x_val" in content) != ("y_val" in content):
        raise ConfigError(f"data.path: {path} has {'x_val' if 'x_val' in content else 'y_val'} without its pair; "
                          "give both x_val and y_val, or neither (train.validation_split then splits x_train)")
    for name in ("x_train", "y_train", "x_val", "y_val"):
        if name in content:
            _check_array(path, name, content[name])
    for part in ("train", "val"):
        x, y = content.get(f"x_{part}"), content.get(f"y_{part}")
        if x is not None and y is not None and len(x) != len(y):
            raise ConfigError(f"data.path: x_{part} has {len(x)} samples but y_{part} has {len(y)}")
    x, y = content["x_train"], content["y_train"]
    if "x_val" in content:
        return Splits(x, y, content["x_val"], content["y_val"], f"{path.name}")
    return _split(x, y, validation_split, seed, path.name)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The named arrays of a ``np.savez`` file, or a ConfigError saying what the file is."""
    if path.is_dir():
        raise ConfigError(f"data.path: {path} is a directory, not a .npz file")
    try:
        with path.open("rb") as file:
            magic = file.read(6)
        if magic == b"\x93NUMPY":
            raise ConfigError(f"data.path: {path} holds a single array (.npy); save named arrays with "
                              "np.savez(path, x_train=..., y_train=...)")
        if not magic.startswith(b"PK"):
            raise ConfigError(f"data.path: {path} is not a .npz file (a zip of named arrays written by np.savez)")
        with np.load(path, allow_pickle=False) as arrays:
            return {key: arrays[key] for key in arrays.files}
    except FileNotFoundError:
        raise ConfigError(f"data.path: {path} does not exist") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ConfigError(f"data.path: {path} is not a readable .npz file ({error})") from None


def _check_array(path: Path, name: str, array: np.ndarray) -> None:
    """One sample per entry, real numbers, no NaN or infinity."""
    if array.ndim == 0:
        raise ConfigError(f"data.path: {path}: {name} is a single value; it needs one entry per sample")
    if array.dtype.kind not in "biuf":
        raise ConfigError(f"data.path: {path}: {name} has dtype {array.dtype}; only booleans, integers "
                          "and real floats can be trained on")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ConfigError(f"data.path: {path}: {name} contains NaN or infinite values")


def _split(x: np.ndarray, y: np.ndarray, validation_split: float, seed: int, description: str) -> Splits:
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * validation_split))
    if validation_split > 0 and (n_val < 1 or n_val >= len(x)):
        raise ConfigError(f"train.validation_split={validation_split} leaves no training or no validation "
                          f"samples out of {len(x)}")
    val, train = order[:n_val], order[n_val:]
    return Splits(x[train], y[train], x[val], y[val], description)


def check_arrays(splits: Splits, io: NetworkIO) -> Splits:
    """Data versus network, before training: shapes, label kinds and class counts.

    Returns the arrays in the dtypes training takes: float32 inputs (int64 token ids),
    int64 class ids (also from integral floats or an ``(N, 1)`` column), float32 targets.
    """
    splits = Splits(_inputs(splits.x_train, io), _labels(splits.y_train, io), _inputs(splits.x_val, io),
                    _labels(splits.y_val, io), splits.description)
    for name, x in (("training", splits.x_train), ("validation", splits.x_val)):
        if len(x) and not _fits(x.shape[1:], io.input_shape):
            raise ConfigError(f"the {name} inputs have shape {_shape(x.shape[1:])} per sample, but the "
                              f"network takes {_shape(io.input_shape)} (channels-last); "
                              "reshape the data or change the network's input")
    if io.tokens is not None:
        for x in (splits.x_train, splits.x_val):
            if len(x) and (not np.issubdtype(x.dtype, np.integer) or x.min() < 0 or x.max() >= io.tokens):
                raise ConfigError(f"the inputs must be integer token ids from 0 to {io.tokens - 1} "
                                  "(the Embedding's input_dim)")
    if io.loss_family == "cross_entropy":
        classes = io.output_shape[-1]
        for y in (splits.y_train, splits.y_val):
            if len(y) and np.issubdtype(y.dtype, np.integer) and (y.min() < 0 or (classes and y.max() >= classes)):
                raise ConfigError(f"labels go from {y.min()} to {y.max()}, but the output layer has "
                                  f"{classes} units (one per class)")
    return splits


def _inputs(x: np.ndarray, io: NetworkIO) -> np.ndarray:
    return x if io.tokens is not None else x.astype(np.float32, copy=False)


def _labels(y: np.ndarray, io: NetworkIO) -> np.ndarray:
    """Class ids as int64 and one-hot rows or targets as float32, as the loss takes them."""
    if io.loss_family != "cross_entropy":
        return y.astype(np.float32, copy=False)
    ids_rank = len(io.output_shape)  # class ids: one per output position except the class axis
    if y.dtype.kind == "f" and y.ndim == ids_rank:
        if not np.array_equal(y, np.round(y)):
            raise ConfigError("the labels must be class ids (whole numbers) or one-hot rows, "
                              f"but some are fractional, e.g. {y[y != np.round(y)].flat[0]}")
        y = y.astype(np.int64)
    if y.dtype.kind in "biu" and y.ndim == ids_rank + 1:
        if y.shape[-1] == 1:
            y = y[..., 0]
        elif y.shape[-1] == io.output_shape[-1]:
            return y.astype(np.float32)  # one-hot rows
    return y.astype(np.int64 if y.dtype.kind in "biu" else np.float32, copy=False)


def _fits(actual: tuple[int, ...], declared: tuple[int | None, ...]) -> bool:
    return len(actual) == len(declared) and all(d is None or a == d for a, d in zip(actual, declared))


def _shape(shape: tuple[Any, ...]) -> str:
    inner = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"
