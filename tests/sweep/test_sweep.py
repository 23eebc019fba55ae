"""``neural sweep`` end to end on the digits: every trial a tracked run linked to the sweep,
pruned trials ending ``pruned`` with their metrics, N trials at once with ``parallel: N``
(through ``neural run --sweep``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import environment, load_study, run_sweep, write_network

pytestmark = pytest.mark.slow


def test_trials_are_tracked_runs_and_a_bad_trial_is_pruned(tmp_path: Path) -> None:
    store = tmp_path / "runs"
    # the grid sampler with seed 3 tries 0.03, then 0.05, then 1e-07 (checked below): the third,
    # far behind the median of the first two after epoch 1, is pruned there
    write_network(tmp_path, str(store), units="16", lr="HPO(choice(0.05, 0.03, 0.0000001))", epochs=3,
                  trials=3, sampler="grid", pruner="median", seed=3)
    done = run_sweep(tmp_path, "model.neural")
    assert done.returncode == 0, done.stdout + done.stderr

    manager = ExperimentManager(store=str(store))
    (sweep,) = manager.list_sweeps()
    assert (sweep.objective, sweep.direction, sweep.sampler, sweep.pruner) == (
        "val_accuracy", "maximize", "grid", "median")
    assert [t.params["optimizer.lr"] for t in sweep.trials] == [0.03, 0.05, 1e-07]
    assert [t.state for t in sweep.trials] == ["complete", "complete", "pruned"]
    for trial in sweep.trials:
        run = manager.get_experiment(trial.run_id)
        assert run.hyperparameters["optimizer.lr"] == trial.params["optimizer.lr"]
        assert run.status == {"complete": "completed", "pruned": "pruned"}[trial.state]
        history = manager.get_metric_history(run.run_id, "val_accuracy")
        assert list(history.steps) == ([1, 2, 3] if trial.state == "complete" else [1])
        assert trial.value == pytest.approx(history.values[-1])
        assert not (store / "runs" / run.run_id / "plots").exists()  # no plots on a trial's path
    assert sweep.best_trial.number in (0, 1)
    best = manager.get_artifact_version(sweep.best_trial.run_id, "checkpoint", "best")
    assert best.metadata["monitor"]["key"] == "val_accuracy"  # the run's best epoch by the objective
    assert f"best checkpoint: run {sweep.best_trial.run_id[:8]}, checkpoint version {best.version}" in done.stdout

    study = load_study(sweep)
    assert [(t.number, t.state.name) for t in study.trials] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "PRUNED")]
    assert study.trials[2].intermediate_values.keys() == {1}
    assert "trial 2 pruned" in done.stdout and f"best trial {sweep.best_trial.number}" in done.stdout


def test_parallel_trials_run_at_once_with_the_cpus_shared(tmp_path: Path) -> None:
    store = tmp_path / "runs"
    write_network(tmp_path, str(store), epochs=3, trials=2, sampler="random", pruner="none", parallel=2)
    done = subprocess.run([sys.executable, "-m", "neural_dsl_tracking.cli", "run", "model.neural", "--sweep",
                           "data=synthetic", "data.samples=512"],
                          cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    manager = ExperimentManager(store=str(store))
    (sweep,) = manager.list_sweeps()
    assert sorted(t.number for t in sweep.trials) == [0, 1]
    assert {t.state for t in sweep.trials} == {"complete"}
    runs = [manager.get_experiment(t.run_id) for t in sweep.trials]
    assert {run.config["execution"]["threads"] for run in runs} == {max(1, (os.cpu_count() or 1) // 2)}
    workers = {trial.system_attrs["neural:worker"] for trial in load_study(sweep).trials}
    assert len(workers) == 2  # two worker processes, one trial each
