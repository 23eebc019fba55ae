"""``data=npz``: files that are not what they should be are one clear error; usable arrays are converted."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest

from neural_dsl_tracking.compiler.data import NetworkIO, Splits, check_arrays, load_data
from neural_dsl_tracking.errors import ConfigError

from .conftest import compile_text, run_program

IO = NetworkIO((8, 8, 1), (10,), None, "cross_entropy")
RNG = np.random.default_rng(0)
X = RNG.random((20, 8, 8, 1), dtype=np.float32)
Y = RNG.integers(0, 10, 20)


def _load(path: Path) -> Splits:
    config = SimpleNamespace(name="npz", path=str(path))
    return check_arrays(load_data(config, IO, 0.25, 0, path.parent), IO)


def _write(content: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content)


def _savez(**arrays: np.ndarray) -> Callable[[Path], None]:
    def save(path: Path) -> None:
        with path.open("wb") as file:
            np.savez(file, **arrays)
    return save


BAD_FILES = {
    "empty": (_write(b""), "is not a .npz file"),
    "text": (_write(b"x_train,y_train\n1,2\n"), "is not a .npz file"),
    "broken zip": (_write(b"PK\x03\x04garbage"), "is not a readable .npz file"),
    "npy": (lambda path: np.save(path.open("wb"), X), "holds a single array (.npy)"),
    "directory": (lambda path: path.mkdir(), "is a directory, not a .npz file"),
    "scalar": (_savez(x_train=np.float32(1), y_train=np.int64(1)), "x_train is a single value"),
    "strings": (_savez(x_train=np.full((20, 8, 8, 1), "a"), y_train=Y), "x_train has dtype <U1"),
    "complex": (_savez(x_train=X.astype(np.complex64), y_train=Y), "x_train has dtype complex64"),
    "nan": (_savez(x_train=np.full_like(X, np.nan), y_train=Y), "x_train contains NaN or infinite values"),
    "x_val alone": (_savez(x_train=X, y_train=Y, x_val=X), "x_val without its pair"),
    "val lengths": (_savez(x_train=X, y_train=Y, x_val=X[:4], y_val=Y[:3]), "x_val has 4 samples but y_val has 3"),
    "fractional labels": (_savez(x_train=X, y_train=Y + 0.5), "some are fractional, e.g. "),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_an_unusable_npz_file_is_one_clear_error(name: str, tmp_path: Path) -> None:
    make, message = BAD_FILES[name]
    path = tmp_path / "d.npz"
    make(path)
    with pytest.raises(ConfigError, match="^data.path: |^the labels") as caught:
        _load(path)
    assert message in str(caught.value)


USABLE = {
    "float class ids": (_savez(x_train=X, y_train=Y.astype(np.float32)), np.int64, ()),
    "integer inputs": (_savez(x_train=(X * 16).astype(np.uint8), y_train=Y), np.int64, ()),
    "a column of class ids": (_savez(x_train=X, y_train=Y.reshape(-1, 1)), np.int64, ()),
    "integer one-hot rows": (_savez(x_train=X, y_train=np.eye(10, dtype=np.int64)[Y]), np.float32, (10,)),
}


@pytest.mark.parametrize("name", list(USABLE))
def test_usable_npz_arrays_get_the_dtypes_training_takes(name: str, tmp_path: Path) -> None:
    make, label_dtype, label_shape = USABLE[name]
    make(tmp_path / "d.npz")
    splits = _load(tmp_path / "d.npz")
    assert splits.x_train.dtype == np.float32 and splits.x_val.dtype == np.float32
    assert splits.y_train.dtype == label_dtype and splits.y_train.shape[1:] == label_shape


def test_labels_that_do_not_fit_the_loss_are_refused_before_training(tmp_path: Path) -> None:
    train_py = compile_text("network N {\n input: (8, 8, 1)\n layers:\n  Flatten()\n  Output(10, \"softmax\")\n}\n",
                            tmp_path / "n")
    np.savez(tmp_path / "d.npz", x_train=X, y_train=RNG.random((20, 3), dtype=np.float32))
    result = run_program(train_py, "data=npz", "data.path=d.npz", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: the training data does not fit the network (inputs (8, 8, 1), "
                                    "labels (3,) per sample)"), result.stderr
