"""User mistakes of ``neural sweep``: one ``error:`` line naming what is wrong, exit 1, no
traceback, nothing trained; run in this process, the command leaves the signal handlers as it
found them. And a sweep past its timeout starts no trial."""

from __future__ import annotations

import hashlib
import shlex
import signal
from pathlib import Path

import pytest

from neural_dsl_tracking.cli import main
from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import write_network

UNTRACKED = """network Plain {
  input: (8, 8, 1)
  layers:
    Flatten()
    Dense(HPO(choice(8, 16)), "relu")
    Output(10, "softmax")
  loss: "sparse_categorical_crossentropy"
  train { epochs: 1 }
}
"""


def _sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           *args: str) -> str:
    monkeypatch.chdir(tmp_path)
    handlers = [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]
    assert main(["sweep", *args]) == 1
    assert [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] == handlers
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def test_a_network_without_tracking_cannot_be_swept(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "plain.neural").write_text(UNTRACKED, encoding="utf-8")
    err = _sweep(tmp_path, monkeypatch, capsys, "plain.neural")
    assert err.startswith("error: plain.neural: a sweep records each trial as a tracked run; add a tracking block")


def test_overrides_that_fix_every_searched_setting_leave_nothing_to_search(tmp_path, monkeypatch, capsys) -> None:
    write_network(tmp_path, "runs", units="16", lr="HPO(log_range(0.001, 0.01))")
    err = _sweep(tmp_path, monkeypatch, capsys, "model.neural", "optimizer.lr=0.01")
    assert "nothing to search: the network has no HPO(...) expression that the overrides leave free" in err


def test_an_unknown_sweep_to_resume_is_named(tmp_path, monkeypatch, capsys) -> None:
    write_network(tmp_path, "runs")
    err = _sweep(tmp_path, monkeypatch, capsys, "model.neural", "train.epochs=1", "--resume", "nosuchsweep")
    assert "no sweep 'nosuchsweep'" in err
    assert not list((tmp_path / "runs").glob("runs/*"))  # nothing trained


def test_an_unknown_option_after_the_overrides_is_named(tmp_path, monkeypatch, capsys) -> None:
    write_network(tmp_path, "runs")
    err = _sweep(tmp_path, monkeypatch, capsys, "model.neural", "train.epochs=1", "--trails", "3")
    assert "neural sweep: unknown option --trails" in err


@pytest.mark.parametrize("override, message", [
    ("sweep.objective=val_acc", "sweep.objective=val_acc: not a metric the program logs after each epoch "
     "(it logs loss, accuracy, val_loss, val_accuracy, lr, epoch_time, samples_per_s); did you mean 'val_accuracy'?"),
    ("sweep.direction=minimize", "the sweep's direction minimize does not fit its objective 'val_accuracy' "
     "(higher is better); give sweep.direction=maximize"),
    ("sweep.objective=val_loss", "the sweep's direction maximize does not fit its objective 'val_loss' "
     "(lower is better); give sweep.direction=minimize"),
])
def test_an_objective_or_direction_overridden_wrong_is_refused_before_any_trial(
        tmp_path, monkeypatch, capsys, override, message) -> None:
    """The block's objective and direction are checked at compile time; an override of them
    is checked before the first trial too (it used to fail every trial, then the sweep)."""
    write_network(tmp_path, "runs")
    err = _sweep(tmp_path, monkeypatch, capsys, "model.neural", "train.epochs=1", override)
    assert err == f"error: {message}\n"
    assert not list((tmp_path / "runs").glob("runs/*"))  # nothing trained


def test_no_trial_starts_after_the_timeout(tmp_path, monkeypatch, capsys) -> None:
    write_network(tmp_path, "runs")
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "model.neural", "sweep.timeout=0.000001"]) == 0
    out = capsys.readouterr().out
    assert ": no trials\n" in out and "trial 0" not in out


def test_the_resume_hint_is_a_command_that_resumes_the_same_sweep(tmp_path, monkeypatch, capsys) -> None:
    """It named the file alone: for the second network of a file, or with overrides (the data,
    the store), running it compiled another network or composed another config."""
    write_network(tmp_path, "runs")
    text = (tmp_path / "model.neural").read_text()
    (tmp_path / "two.neural").write_text(text + text.replace("network Tiny", "network Other"))
    monkeypatch.chdir(tmp_path)
    args = ["two.neural", "--network", "Other", "data=synthetic", "--store", str(tmp_path / "other runs")]
    assert main(["sweep", *args, "sweep.timeout=0.000001"]) == 0
    hint = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("resume or join it: "))
    command = shlex.split(hint.removeprefix("resume or join it: "))
    assert command[:2] == ["neural", "sweep"]
    assert main(command[1:]) == 0  # the same network, config and store: the sweep goes on
    (sweep,) = ExperimentManager(store=str(tmp_path / "other runs")).list_sweeps()
    assert command[-2:] == ["--resume", sweep.sweep_id[:8]]
    assert "data=synthetic" in command and command[command.index("--network") + 1] == "Other"


def test_the_sweep_records_the_users_file_as_its_source(tmp_path, monkeypatch, capsys) -> None:
    """Not the compiled copy in build/.cache/: show SWEEP names the file the user swept."""
    (tmp_path / "models").mkdir()
    write_network(tmp_path / "models", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "models/model.neural", "sweep.timeout=0.000001"]) == 0
    (sweep,) = ExperimentManager(store=str(tmp_path / "runs")).list_sweeps()
    source = tmp_path / "models" / "model.neural"
    assert (sweep.source_file, sweep.source_sha256) == (
        str(source), hashlib.sha256(source.read_bytes()).hexdigest())


def test_a_network_without_a_sweep_block_is_told_to_add_one(tmp_path, monkeypatch, capsys) -> None:
    write_network(tmp_path, "runs")
    source = (tmp_path / "model.neural").read_text()
    (tmp_path / "model.neural").write_text("\n".join(line for line in source.splitlines()
                                                    if not line.strip().startswith("sweep <")))
    err = _sweep(tmp_path, monkeypatch, capsys, "model.neural")
    assert err.startswith("error: model.neural: the network has no sweep block")


def test_a_mistake_every_trial_makes_stops_the_sweep(tmp_path) -> None:
    """Failed trials do not count towards the sweep's number: without a stop, trials failing
    the same way would be claimed for ever."""
    from concurrent.futures import Future

    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    from neural_dsl_tracking.errors import NeuralError
    from neural_dsl_tracking.plugins.sweep.runner import FAILURES_IN_A_ROW, SweepPlan, drive
    from neural_dsl_tracking.plugins.sweep.spec import SweepSpec
    from neural_dsl_tracking.plugins.sweep.study import StudySettings, open_study, storage_url
    from neural_dsl_tracking.plugins.sweep.trial import TrialResult
    from neural_dsl_tracking.tracking.store import Store

    store = Store(store=str(tmp_path / "runs"))
    settings = StudySettings(storage_url(store), "neural-sweep-failing", "minimize", "random", "none", 0, 1)
    open_study(settings, create=True)
    store.create_sweep(experiment="e", objective="val_loss", direction="minimize", sampler="random",
                       pruner="none", space={}, study_storage=settings.storage, study_name=settings.study_name,
                       requested_trials=5, sweep_id="failing")
    plan = SweepPlan(program="train.py", config={}, distributions={"a": CategoricalDistribution([1, 2])},
                     settings=settings, sweep_id="failing", name="failing", spec=SweepSpec(trials=5),
                     store={"base_dir": None, "store": str(tmp_path / "runs")}, threads=None)

    def failing(job):  # what run_trial does with a trial its program cannot train
        open_study(settings).tell(job.number, state=TrialState.FAIL)
        future = Future()
        future.set_result(TrialResult(job.number, "failed", message="boom"))
        return future

    with pytest.raises(NeuralError, match=f"{FAILURES_IN_A_ROW} trials in a row failed, the last with: boom"):
        drive(plan, store, failing, lambda result: None)
    assert len(open_study(settings).trials) == FAILURES_IN_A_ROW
