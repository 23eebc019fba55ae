"""Ctrl-C or SIGTERM to a sweep with ``parallel: 2`` stops the trials its workers run, as it
stops the trial of a one-process sweep: each trial's run ends ``interrupted``, its Optuna
trial failed, a ``trial N failed ... (interrupted)`` line for each, and the driver ends as
the one-process sweep does (by SIGTERM, or exit 130 after Ctrl-C). The workers trained on to
their last epoch, and their runs were recorded ``completed``."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import load_study, start_sweep, write_network

pytestmark = pytest.mark.slow
EPOCHS = 2000


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_interrupts_the_trials_of_the_workers(tmp_path: Path, sig: signal.Signals) -> None:
    store = tmp_path / "runs"
    write_network(tmp_path, str(store), epochs=EPOCHS, trials=4, sampler="random", pruner="none", parallel=2)
    driver, seen = start_sweep(tmp_path, "model.neural", "data=synthetic", "data.samples=128"), []
    try:
        deadline = time.monotonic() + 120
        while "".join(seen).count("epoch 2/") < 2 and time.monotonic() < deadline:
            line = driver.stdout.readline()  # both workers print their epochs (lines may interleave)
            if not line:
                break
            seen.append(line)
        assert "".join(seen).count("epoch 2/") == 2, "".join(seen)
        driver.send_signal(sig)
        stopped = time.monotonic()
        output, _ = driver.communicate(timeout=30)
        took = time.monotonic() - stopped
    finally:
        driver.kill()
        driver.wait(30)
    output = "".join(seen) + output
    assert driver.returncode == (-signal.SIGTERM if sig == signal.SIGTERM else 130), output
    assert took < 20, output
    assert len(re.findall(r"trial \d+ ", output)) == 2, output  # a worker's line may end unfinished
    assert len(re.findall(r"trial \d+ failed .*\(interrupted\)$", output, re.MULTILINE)) == 2, output
    assert output.rstrip().endswith("terminated" if sig == signal.SIGTERM else "interrupted")

    manager = ExperimentManager(store=str(store))
    (sweep,) = manager.list_sweeps()
    assert [trial.state for trial in sweep.trials] == ["failed", "failed"]
    assert {manager.get_experiment(trial.run_id).status for trial in sweep.trials} == {"interrupted"}
    assert [trial.state.name for trial in load_study(sweep).trials] == ["FAIL", "FAIL"]
