"""data=digits reads scikit-learn's shipped digits without importing scikit-learn (a second
or more of CPU in every run, and in each worker of a parallel sweep)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

LOAD = """
import sys
from neural_dsl_tracking.compiler.data import NetworkIO, load_data
from types import SimpleNamespace
splits = load_data(SimpleNamespace(name="digits", scale=True), NetworkIO((8, 8, 1), (10,), None, "cross_entropy"),
                   0.25, 0, None)
print(len(splits.x_train), len(splits.x_val), "sklearn" in sys.modules)
"""


def test_digits_load_without_importing_scikit_learn() -> None:
    done = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1348", "449", "False"]


def test_digits_are_scikit_learns() -> None:
    from sklearn.datasets import load_digits

    from neural_dsl_tracking.compiler.data import _digits_arrays

    images, labels = _digits_arrays()
    expected_images, expected_labels = load_digits(return_X_y=True)
    assert np.array_equal(images, expected_images) and np.array_equal(labels, expected_labels)
    assert labels.dtype == expected_labels.dtype
