"""The median pruner never stops a trial at its last epoch: that saves no training, and a
pruned trial is no candidate for the sweep's best."""

from __future__ import annotations

from pathlib import Path

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import run_sweep, write_network

pytestmark = pytest.mark.slow


def test_a_trial_behind_the_median_at_its_last_epoch_completes(tmp_path: Path) -> None:
    store = tmp_path / "runs"
    # grid, seed 3: 0.03, 0.05, then 1e-07, far behind the median of the first two at epoch 1,
    # which is also the last: pruned there before
    write_network(tmp_path, str(store), units="16", lr="HPO(choice(0.05, 0.03, 0.0000001))", epochs=1,
                  trials=3, sampler="grid", pruner="median", seed=3)
    done = run_sweep(tmp_path, "model.neural")
    assert done.returncode == 0, done.stdout + done.stderr

    (sweep,) = ExperimentManager(store=str(store)).list_sweeps()
    assert [t.params["optimizer.lr"] for t in sweep.trials] == [0.03, 0.05, 1e-07]
    assert [t.state for t in sweep.trials] == ["complete", "complete", "complete"]
