"""Helpers for the sweep engine's tests: a tiny network, ``neural sweep`` run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NETWORK = """network Tiny {{
  input: (8, 8, 1)
  layers:
    Flatten()
    Dense({units}, activation="relu")
    Output(10, "softmax")
  loss: "sparse_categorical_crossentropy"
  optimizer: Adam(learning_rate={lr})
  train {{ epochs: {epochs} batch_size: 64 validation_split: 0.25 }}
  tracking < monitor: val_accuracy; mode: max; store: "{store}" >
  sweep < trials: {trials}; sampler: {sampler}; pruner: {pruner}; seed: {seed}; parallel: {parallel} >
}}
"""


def write_network(folder: Path, store: str, *, units: str = "HPO(choice(8, 16))",
                  lr: str = "HPO(log_range(0.003, 0.05))", epochs: int = 2, trials: int = 3,
                  sampler: str = "tpe", pruner: str = "median", seed: int = 0, parallel: int = 1) -> Path:
    """``folder/model.neural``: an MLP on the digits with the given sweep block."""
    path = folder / "model.neural"
    path.write_text(NETWORK.format(units=units, lr=lr, epochs=epochs, trials=trials, sampler=sampler,
                                   pruner=pruner, seed=seed, parallel=parallel, store=store), encoding="utf-8")
    return path


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "neural_dsl_tracking.cli", "sweep", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "NEURAL_NO_PROGRESS": "1", "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}


def run_sweep(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``neural sweep ARGS`` in ``cwd``, to its end."""
    return subprocess.run(sweep_command(*args), cwd=cwd, env=environment(), capture_output=True, text=True,
                          timeout=timeout)


def start_sweep(cwd: Path, *args: str) -> subprocess.Popen:
    """``neural sweep ARGS`` in ``cwd``, started; its stdout is a pipe of lines."""
    return subprocess.Popen(sweep_command(*args), cwd=cwd, env=environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def load_study(sweep) -> object:  # type: ignore[no-untyped-def]
    """The sweep's Optuna study, opened from the storage its record names."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=sweep.study_name, storage=sweep.study_storage)
