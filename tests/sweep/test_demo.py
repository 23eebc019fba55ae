"""``make demo``'s last step: the sweep of examples/cnn_hpo.neural (its sweep block) into the
demo's store, then the best trial and the commands that look at the sweep."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import environment

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_demo_sweeps_the_cnn_example_and_prints_its_best_trial(tmp_path: Path) -> None:
    store = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-m", "neural_dsl_tracking.compiler.demo", "--store", str(store), "--epochs", "1",
         "--example", str(EXAMPLES / "digits.neural"), "--sweep-example", str(EXAMPLES / "cnn_hpo.neural"),
         "--sweep-epochs", "1", "--trials", "2"],
        cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    (sweep,) = ExperimentManager(store=str(store)).list_sweeps()
    assert (sweep.experiment, sweep.objective, sweep.direction, sweep.sampler, sweep.pruner) == (
        "DigitsCNN", "val_accuracy", "maximize", "tpe", "median")
    assert sweep.requested_trials == 2 and len(sweep.trials) == 2
    assert set(sweep.space) == {"model.dense_1.units", "model.dropout_1.rate", "optimizer.lr", "train.batch_size"}
    best = sweep.best_trial
    summary = done.stdout[done.stdout.rindex("== sweep"):]
    assert f"best trial {best.number}: val_accuracy {best.value:.4f} (run {best.run_id[:8]})" in summary
    assert f"experiments show {sweep.sweep_id[:8]} --store {store}" in summary
    assert "Sweeps tab" in summary and f"optuna-dashboard sqlite:///{store}/store.db" in summary
