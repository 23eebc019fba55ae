"""Sweeps in the store (issue 13, item 3): a sweep record with its trials, each linked to the
run it trained, on SQLite and PostgreSQL; the best trial and the counts respect the direction."""

from __future__ import annotations

import math
import time

import pytest

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.store import Store

SPACE = {"lr": {"type": "log_range", "low": 1e-4, "high": 1e-2}, "units": {"type": "choice", "values": [32, 64]}}


@pytest.fixture
def store(store_kwargs):
    opened = Store(store_kwargs["base_dir"], store_kwargs["store"])
    yield opened
    opened.close()


def new_sweep(store: Store, direction: str = "maximize", **extra) -> str:
    return store.create_sweep(experiment="digits", objective="val_accuracy", direction=direction,
                              sampler="tpe", pruner="median", space=SPACE,
                              study_storage="sqlite:////tmp/x/store.db", study_name="digits-sweep",
                              requested_trials=4, **extra)


def add_trials(store: Store, sweep_id: str, make_tracker) -> list[str]:
    """Four trials: 0 complete 0.7, 1 complete 0.9, 2 pruned (0.2 so far), 3 failed; each a run."""
    runs = []
    for number, (state, value) in enumerate([("complete", 0.7), ("complete", 0.9),
                                             ("pruned", 0.2), ("failed", None)]):
        tracker = make_tracker("digits", run_name=f"trial-{number}")
        params = {"lr": 10 ** -(number + 2), "units": 32 * (number % 2 + 1)}
        tracker.log_hyperparameters(params)
        store.record_trial(sweep_id, number, state="running", run_id=tracker.run_id, params=params)
        tracker.finish({"complete": "completed", "pruned": "pruned", "failed": "failed"}[state])
        store.record_trial(sweep_id, number, state=state, value=value)
        runs.append(tracker.run_id)
    return runs


def test_a_sweep_and_its_trials_read_back(store, make_tracker, manager):
    sweep_id = new_sweep(store, source_file="model.neural", source_sha256="ab" * 32)
    runs = add_trials(store, sweep_id, make_tracker)
    sweep = manager.get_sweep(sweep_id[:6])
    assert (sweep.sweep_id, sweep.experiment, sweep.objective, sweep.direction) == \
        (sweep_id, "digits", "val_accuracy", "maximize")
    assert (sweep.sampler, sweep.pruner, sweep.space, sweep.requested_trials) == ("tpe", "median", SPACE, 4)
    assert (sweep.study_storage, sweep.study_name, sweep.source_file) == \
        ("sqlite:////tmp/x/store.db", "digits-sweep", "model.neural")
    assert [t.number for t in sweep.trials] == [0, 1, 2, 3]
    assert [t.run_id for t in sweep.trials] == runs  # the update kept the run id and the params
    assert sweep.trials[0].params == {"lr": 0.01, "units": 32}
    assert sweep.counts == {"running": 0, "complete": 2, "pruned": 1, "failed": 1}
    assert sweep.best_trial.number == 1 and sweep.best_trial.value == 0.9
    assert [t.number for t in sweep.ranked_trials()] == [1, 0, 2, 3]
    assert manager.get_experiment(runs[2]).status == "pruned"
    assert [r.run_id for r in manager.list_experiments(status="pruned")] == [runs[2]]


def test_the_best_trial_follows_the_direction(store):
    sweep_id = new_sweep(store, direction="minimize")
    for number, value in enumerate([0.5, 0.1, 0.3]):
        store.record_trial(sweep_id, number, state="complete", value=value, params={"x": number})
    store.record_trial(sweep_id, 3, state="pruned", value=0.01)  # pruned: never the best
    sweep = store.get_sweep(sweep_id)
    assert sweep.best_trial.number == 1
    assert [t.number for t in sweep.ranked_trials()] == [3, 1, 2, 0]


def test_sweeps_list_newest_first_and_by_experiment(store, manager):
    first = new_sweep(store, created_at=time.time() - 10)
    second = store.create_sweep(experiment="cifar", objective="val_loss", direction="minimize",
                                sampler="random", pruner="none", space={}, study_storage="s",
                                study_name="n", requested_trials=1, name="cifar-search")
    assert [s.sweep_id for s in manager.list_sweeps()] == [second, first]
    assert [s.sweep_id for s in manager.list_sweeps("digits")] == [first]
    assert manager.get_sweep("cifar-search").sweep_id == second
    assert manager.list_sweeps()[1].trials == ()


def test_a_killed_trial_reads_failed(store, manager):
    """A trial still 'running' whose run stopped beating (its process was SIGKILLed) is failed."""
    sweep_id = new_sweep(store)
    run_id = store.create_run(experiment="digits", run_name="killed")
    store.record_trial(sweep_id, 0, state="running", run_id=run_id, params={})
    assert manager.get_sweep(sweep_id).trials[0].state == "running"
    store.db.write(lambda cur: cur.execute("UPDATE runs SET heartbeat = ? WHERE run_id = ?",
                                           (time.time() - 3600, run_id)))
    assert manager.get_sweep(sweep_id).trials[0].state == "failed"


def test_deleting_a_trial_run_keeps_the_trial(store, manager):
    sweep_id = new_sweep(store)
    run_id = store.create_run(experiment="digits", run_name="t0", status="completed")
    store.record_trial(sweep_id, 0, state="complete", run_id=run_id, value=0.5, params={"x": 1})
    manager.delete_experiment(run_id)
    trial = manager.get_sweep(sweep_id).trials[0]
    assert (trial.run_id, trial.value, trial.params) == (None, 0.5, {"x": 1})


def test_a_nan_value_is_no_value(store):
    sweep_id = new_sweep(store)
    store.record_trial(sweep_id, 0, state="failed", value=math.nan)
    assert store.get_sweep(sweep_id).trials[0].value is None
    assert store.get_sweep(sweep_id).best_trial is None


@pytest.mark.parametrize("change, message", [
    ({"direction": "up"}, "direction must be one of minimize, maximize, got 'up'"),
    ({"requested_trials": 0}, "requested_trials must be a whole number >= 1, got 0"),
    ({"objective": "m" * 300}, "objective"),
])
def test_bad_sweep_settings_are_refused(store, change, message):
    settings = dict(experiment="e", objective="loss", direction="minimize", sampler="tpe",
                    pruner="none", space={}, study_storage="s", study_name="n", requested_trials=3)
    with pytest.raises(TrackingError, match=message):
        store.create_sweep(**{**settings, **change})


def test_bad_trials_are_refused(store, manager):
    sweep_id = new_sweep(store)
    with pytest.raises(TrackingError, match="trial state must be one of running, complete, pruned, failed"):
        store.record_trial(sweep_id, 0, state="done")
    with pytest.raises(TrackingError, match="no sweep 'nope'"):
        store.record_trial("nope", 0, state="running")
    with pytest.raises(TrackingError, match="no sweep 'zz'"):
        manager.get_sweep("zz")


def test_no_store_no_sweeps(tmp_path):
    from neural_dsl_tracking.tracking import ExperimentManager

    manager = ExperimentManager(base_dir=tmp_path / "none")
    assert manager.list_sweeps() == []
    with pytest.raises(TrackingError, match="no sweep 'abc': there is no experiment store"):
        manager.get_sweep("abc")
    assert not (tmp_path / "none").exists()
