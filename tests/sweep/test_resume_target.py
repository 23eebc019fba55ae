"""``--resume SWEEP`` with a new number of trials (``--trials N`` or ``sweep.trials=N``) runs the
sweep to it and records it as the sweep's target; a plain ``--resume`` keeps the recorded target,
whatever the block's ``trials`` says."""

from __future__ import annotations

from pathlib import Path

import pytest

from neural_dsl_tracking.cli import main
from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import write_network

FAST = ["data=synthetic", "data.samples=64", "sweep.parallel=1"]


def _sweep(*args: str):  # type: ignore[no-untyped-def]
    assert main(["sweep", "model.neural", *FAST, "--store", "rz", *args]) == 0
    (sweep,) = ExperimentManager(store="rz").list_sweeps()
    return sweep


def _finished(sweep) -> int:  # type: ignore[no-untyped-def]
    return sum(trial.state in ("complete", "pruned") for trial in sweep.trials)


def test_a_resumed_sweep_records_its_new_number_of_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    write_network(tmp_path, "runs", epochs=1, trials=3, sampler="random", pruner="none")
    monkeypatch.chdir(tmp_path)
    sweep = _sweep("--trials", "2")
    assert (sweep.requested_trials, _finished(sweep)) == (2, 2)

    sweep = _sweep("--resume", sweep.sweep_id[:8], "--trials", "3")
    assert (sweep.requested_trials, _finished(sweep)) == (3, 3)

    sweep = _sweep("--resume", sweep.sweep_id[:8], "sweep.trials=4")  # the same as --trials 4
    assert (sweep.requested_trials, _finished(sweep)) == (4, 4)

    capsys.readouterr()
    sweep = _sweep("--resume", sweep.sweep_id[:8])  # the block's trials: 3 changes nothing
    assert (sweep.requested_trials, _finished(sweep)) == (4, 4)
    assert ": 4 trials of " in capsys.readouterr().out


def test_the_resume_line_repeats_the_store_option_as_the_look_line_names_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """It showed ``'tracking.store='"'"'rz'"'"''`` (the override --store became, quoted for a
    shell twice over) with the relative path, where the look-at-it line has the absolute one."""
    write_network(tmp_path, "runs", epochs=1, trials=1)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "model.neural", "--store", "rz", "data=synthetic", "data.samples=64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    hint = next(line for line in lines if line.startswith("resume or join it: "))
    look = next(line for line in lines if line.startswith("look at it: "))
    sweep_id = look.split()[6]
    assert hint == (f"resume or join it: neural sweep model.neural data=synthetic data.samples=64 "
                    f"--store {tmp_path / 'rz'} --resume {sweep_id}")
    assert look.endswith(f"--store {tmp_path / 'rz'}")
