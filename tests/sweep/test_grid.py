"""A grid sweep runs each grid point once: a failed point is tried once more (a crash, a
killed worker) and then left, never a point that already has a finished trial, and Optuna's
own log lines do not reach the user; processes sharing the sweep with other seeds split
the points between them."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import load_study, run_sweep, write_network

pytestmark = pytest.mark.slow

OUTPUT_SEARCHED = """network G {
  input: (8, 8, 1)
  layers:
    Flatten()
    Dense(16, activation="relu")
    Output(HPO(choice(10, 5)), "softmax")
  loss: "sparse_categorical_crossentropy"
  optimizer: Adam(learning_rate=0.01)
  train { epochs: 1 batch_size: 64 validation_split: 0.25 }
  tracking < monitor: val_accuracy; mode: max; store: "runs" >
  sweep < sampler: grid; pruner: none >
}
"""


def test_a_failed_grid_point_is_tried_once_more_and_a_finished_one_never(tmp_path: Path) -> None:
    """Output(5) cannot train on the ten digits: its point fails twice; 10 runs once."""
    (tmp_path / "grid.neural").write_text(OUTPUT_SEARCHED, encoding="utf-8")
    done = run_sweep(tmp_path, "grid.neural")
    assert done.returncode == 0, done.stdout + done.stderr

    (sweep,) = ExperimentManager(store=str(tmp_path / "runs")).list_sweeps()
    tried = Counter((t.params["model.output_1.units"], t.state) for t in sweep.trials)
    assert tried == {(10, "complete"): 1, (5, "failed"): 2}
    assert "sweep G-sweep-" in done.stdout and ": 1 complete, 2 failed" in done.stdout
    first, retry = sorted(t.number for t in sweep.trials if t.params["model.output_1.units"] == 5)
    assert (f"note: trial {retry} tries model.output_1.units=5 again (trial {first} failed there); "
            "a grid point is tried at most 2 times\n") in done.stderr
    assert "[W " not in done.stderr and "GridSampler" not in done.stderr
    assert len(load_study(sweep).trials) == 3


def test_a_resumed_grid_sweep_with_another_seed_runs_the_points_left(tmp_path: Path) -> None:
    """A process resuming or joining a sweep seeds its sampler apart (the block's seed plus
    its process id), so its grid is shuffled in another order: a point is still one point."""
    write_network(tmp_path, "runs", units="HPO(choice(8, 12, 16, 24, 32))", lr="0.01", epochs=1,
                  trials=5, sampler="grid", pruner="none", seed=7)
    first = run_sweep(tmp_path, "model.neural", "--trials", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    manager = ExperimentManager(store=str(tmp_path / "runs"))
    (sweep,) = manager.list_sweeps()
    more = run_sweep(tmp_path, "model.neural", "--resume", sweep.sweep_id[:8], "--trials", "5")
    assert more.returncode == 0, more.stdout + more.stderr
    units = [t.params["model.dense_1.units"] for t in manager.get_sweep(sweep.sweep_id).trials]
    assert sorted(units) == [8, 12, 16, 24, 32]
    assert "GridSampler" not in first.stderr + more.stderr
