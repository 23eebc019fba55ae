"""A sweep shared by two ``neural sweep`` processes, one of them SIGKILLed mid-trial: the
other (started with ``--resume``) splits the trials with it, fails the killed trial (in
Optuna and in the store, its run crashed) and goes on to the requested number; on SQLite
and on PostgreSQL."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import load_study, start_sweep, sweep_command, environment, write_network

pytestmark = pytest.mark.slow
TRIALS = 4


def _lines_until(process: subprocess.Popen, pattern: str, seen: list[str], seconds: float = 180) -> re.Match:
    """Read the process's output until a line matches ``pattern`` (bounded in time)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs")
    return request.getfixturevalue("postgres_url")


def test_a_killed_sweep_is_resumed_by_a_second_process_that_shares_it(tmp_path: Path, store: str) -> None:
    write_network(tmp_path, store, epochs=4, trials=TRIALS, sampler="random", pruner="none")
    first, seen = start_sweep(tmp_path, "model.neural"), []
    try:
        sweep_id = _lines_until(first, r"--resume ([0-9a-f]{8})", seen).group(1)
        with open(tmp_path / "second.log", "w") as log:
            second = subprocess.Popen(sweep_command("model.neural", "--resume", sweep_id), cwd=tmp_path,
                                      env=environment(), stdout=log, stderr=subprocess.STDOUT, text=True)
            try:
                _lines_until(first, r"^trial \d+ complete", seen)
                _lines_until(first, r"^epoch 1/", seen)  # inside its next trial
                first.send_signal(signal.SIGKILL)
                first.wait(30)
                assert second.wait(240) == 0, (tmp_path / "second.log").read_text()
            finally:
                second.kill()
    finally:
        first.kill()
        first.wait(30)

    manager = ExperimentManager(base_dir=tmp_path / "files", store=store)
    (sweep,) = manager.list_sweeps()
    study = load_study(sweep)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == TRIALS and states.count("FAIL") == 1, states
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    killed = next(t for t in study.trials if t.state.name == "FAIL")
    assert killed.system_attrs["neural:worker"].endswith(f":{first.pid}")
    workers = {t.system_attrs["neural:worker"] for t in study.trials if t.state.name == "COMPLETE"}
    assert {w.rpartition(":")[2] for w in workers} == {str(first.pid), str(second.pid)}
    rates = [t.params["optimizer.lr"] for t in study.trials]
    assert len(set(rates)) == len(rates)  # the joining process's sampler is seeded apart

    by_number = {t.number: t for t in sweep.trials}
    assert by_number[killed.number].state == "failed"
    assert manager.get_experiment(by_number[killed.number].run_id).status == "crashed"
    assert sum(t.state == "complete" for t in sweep.trials) == TRIALS
