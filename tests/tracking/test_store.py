"""The store suite: every test runs on embedded SQLite and on PostgreSQL."""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np
import pytest

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import ExperimentManager, MetricHistory, RunRecord


def test_run_record_has_everything_logged(make_tracker, manager):
    tracker = make_tracker("mnist", run_name="first", tags=["baseline", "cpu"],
                           config={"train": {"epochs": 2}})
    tracker.log_hyperparameters({"lr": np.float32(0.5), "layers": [64, 10], "opt": "adam"})
    for step in range(5):
        tracker.log_metrics({"loss": 1.0 / (step + 1), "accuracy": step / 10}, step=step)
    tracker.finish()

    record = manager.get_experiment(tracker.run_id)
    assert isinstance(record, RunRecord)
    assert (record.experiment, record.run_name, record.status) == ("mnist", "first", "completed")
    assert record.tags == ["baseline", "cpu"]
    assert record.hyperparameters == {"lr": 0.5, "layers": [64, 10], "opt": "adam"}
    assert record.config == {"train": {"epochs": 2}}
    assert record.start_time <= record.end_time
    assert record.metrics["loss"] == {"latest": 0.2, "best": 0.2, "min": 0.2, "max": 1.0, "count": 5}
    # accuracy is a score: best means highest
    assert record.metrics["accuracy"]["best"] == pytest.approx(0.4)
    assert record.mirror_failures == []


def test_a_hyperparameter_that_cannot_be_json_is_a_type_error_naming_it(make_tracker, manager):
    tracker = make_tracker()
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(TypeError, match="hyperparameter 'cfg'.*[Cc]ircular"):
        tracker.log_hyperparameters({"lr": 0.1, "cfg": loop})
    tracker.finish()
    assert manager.get_experiment(tracker.run_id).hyperparameters == {}


def test_history_comes_back_as_numpy_arrays_in_logging_order(make_tracker, manager):
    tracker = make_tracker()
    before = time.time()
    for step in range(20_000):
        tracker.log_metrics({"loss": float(step)}, step=step * 2)
    tracker.finish()
    history = manager.get_metric_history(tracker.run_id, "loss")
    assert isinstance(history, MetricHistory)
    assert history.steps.dtype == np.int64 and history.values.dtype == np.float64
    assert np.array_equal(history.steps, np.arange(0, 40_000, 2))
    assert np.array_equal(history.values, np.arange(20_000, dtype=float))
    assert history.timestamps.min() >= before - 1 and np.all(np.diff(history.timestamps) >= 0)


def test_many_small_flushes_read_back_complete(make_tracker, manager):
    tracker = make_tracker(flush_interval=0.01)
    for step in range(3000):
        tracker.log_metrics({"a": float(step)})
        if step % 300 == 0:
            time.sleep(0.03)
    tracker.finish()
    history = manager.get_metric_history(tracker.run_id, "a")
    assert np.array_equal(history.steps, np.arange(3000))
    assert np.array_equal(history.values, np.arange(3000, dtype=float))


def test_nan_and_infinities_are_kept(make_tracker, manager):
    tracker = make_tracker()
    values = [1.0, float("nan"), float("inf"), -float("inf"), 2.0, float("nan")]
    for value in values:
        tracker.log_metrics({"loss": value})
    tracker.finish()
    history = manager.get_metric_history(tracker.run_id, "loss")
    assert np.array_equal(history.values, np.array(values), equal_nan=True)
    summary = manager.get_experiment(tracker.run_id).metrics["loss"]
    assert math.isnan(summary["latest"])
    assert summary["min"] == -math.inf and summary["max"] == math.inf and summary["count"] == 6


def test_metric_names_step_and_timestamp_do_not_collide(make_tracker, manager):
    tracker = make_tracker()
    tracker.log_metrics({"step": 100.0, "timestamp": 7.0, "loss": 0.5}, step=3)
    tracker.finish()
    assert manager.metric_keys(tracker.run_id) == ["loss", "step", "timestamp"]
    step_metric = manager.get_metric_history(tracker.run_id, "step")
    assert step_metric.steps.tolist() == [3] and step_metric.values.tolist() == [100.0]
    assert manager.get_metric_history(tracker.run_id, "timestamp").values.tolist() == [7.0]


def test_a_metric_name_with_a_nul_character_never_loses_the_other_points(make_tracker, manager,
                                                                         store_kwargs):
    tracker = make_tracker()
    tracker.log_metrics({"ok": 1.0})
    tracker.log_metrics({"bad\x00name": 3.0, "ok": 2.0})
    if store_kwargs["store"] is None:
        tracker.finish()
        kept = ["bad\x00name", "ok"]
    else:  # PostgreSQL text cannot hold NUL: that name is dropped, not the whole flush
        with pytest.warns(RuntimeWarning, match=r"'bad\\x00name'.*NUL.*dropped"):
            tracker.finish()
        kept = ["ok"]
    run = manager.get_experiment(tracker.run_id)
    assert run.status == "completed" and sorted(run.metrics) == kept
    assert manager.get_metric_history(run.run_id, "ok").values.tolist() == [1.0, 2.0]


def test_steps_default_to_the_next_step_and_keys_may_differ_per_call(make_tracker, manager):
    tracker = make_tracker()
    tracker.log_metrics({"loss": 1.0})
    tracker.log_metrics({"loss": 0.9, "val_loss": 1.2}, step=10)
    tracker.log_metrics({"loss": 0.8})
    tracker.finish()
    assert manager.get_metric_history(tracker.run_id, "loss").steps.tolist() == [0, 10, 11]
    assert manager.get_metric_history(tracker.run_id, "val_loss").steps.tolist() == [10]


def test_best_metric_follows_the_requested_mode(make_tracker):
    tracker = make_tracker()
    for value in (3.0, 1.0, 2.0):
        tracker.log_metrics({"score": value})
    assert tracker.get_best_metric("score", mode="min") == 1.0
    assert tracker.get_best_metric("score", mode="max") == 3.0
    assert tracker.get_best_metric("missing") is None
    with pytest.raises(TrackingError):
        tracker.get_best_metric("score", mode="best")


def test_list_filters_by_experiment_status_and_tag(make_tracker, manager):
    a = make_tracker("cnn", tags=["gpu"])
    b = make_tracker("cnn")
    c = make_tracker("mlp", tags=["gpu"])
    a.finish()
    b.finish("failed")
    assert {r.run_id for r in manager.list_experiments()} == {a.run_id, b.run_id, c.run_id}
    assert {r.run_id for r in manager.list_experiments(experiment="cnn")} == {a.run_id, b.run_id}
    assert [r.run_id for r in manager.list_experiments(status="failed")] == [b.run_id]
    assert [r.run_id for r in manager.list_experiments(status="running")] == [c.run_id]
    assert {r.run_id for r in manager.list_experiments(tag="gpu")} == {a.run_id, c.run_id}
    assert manager.list_experiments(experiment="cnn", tag="gpu")[0].run_id == a.run_id


def test_run_ids_resolve_from_unique_prefixes(make_tracker, manager):
    tracker = make_tracker(run_name="named-run")
    tracker.finish()
    assert manager.get_experiment(tracker.run_id[:6]).run_id == tracker.run_id
    assert manager.get_experiment("named-run").run_id == tracker.run_id


def test_a_run_name_that_is_also_another_runs_id_prefix_is_ambiguous(make_tracker, manager):
    first = make_tracker()
    first.finish()
    named = make_tracker(run_name=first.run_id[:6])  # e.g. sweep runs named "1", "2", ...
    named.finish()
    with pytest.raises(TrackingError, match=rf"ambiguous.*{first.run_id[:12]}.*{named.run_id[:12]}"
                       rf"|ambiguous.*{named.run_id[:12]}.*{first.run_id[:12]}"):
        manager.get_experiment(first.run_id[:6])
    assert manager.get_experiment(first.run_id[:8]).run_id == first.run_id
    assert manager.get_experiment(named.run_id).run_id == named.run_id


def test_a_single_tag_given_as_a_string_is_one_tag(make_tracker, manager):
    tracker = make_tracker(tags="baseline")
    tracker.finish()
    make_tracker(run_id=tracker.run_id, tags="resumed").finish()
    assert manager.get_experiment(tracker.run_id).tags == ["baseline", "resumed"]


def test_get_experiment_never_creates_anything(tmp_path):
    base = tmp_path / "nothing_here"
    manager = ExperimentManager(base_dir=base)
    with pytest.raises(TrackingError, match="no run 'abc'"):
        manager.get_experiment("abc")
    assert manager.list_experiments() == []
    assert not base.exists()


RECORD_ONE_RUN = """import sys
from neural_dsl_tracking.tracking import ExperimentTracker
with ExperimentTracker("ro", base_dir=sys.argv[1], run_name="old", auto_visualize=False) as tracker:
    tracker.log_metrics({"loss": 0.5})
"""


@contextmanager
def read_only_folder(path):
    """``path`` and its files unwritable, as on a read-only mount: chattr +i for root, mode
    bits for other users."""
    entries = [path, *path.iterdir()]
    if os.geteuid() != 0:
        for entry in entries:
            entry.chmod(entry.stat().st_mode & 0o555)
    elif shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", *map(str, entries)], capture_output=True).returncode:
        pytest.skip("cannot make a folder read-only for root here (chattr +i)")
    try:
        yield path
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", *map(str, entries)], check=True)
        for entry in entries:
            entry.chmod(entry.stat().st_mode | 0o200)


@pytest.mark.parametrize("pending_wal", [False, True])
def test_a_store_in_a_read_only_folder_can_be_read(tmp_path, pending_wal):
    live, base = tmp_path / "live", tmp_path / "store"
    subprocess.run([sys.executable, "-c", RECORD_ONE_RUN, str(live)], check=True)  # closed: no -wal
    writer = sqlite3.connect(live / "store.db", isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    if pending_wal:  # a change still only in store.db-wal: copied while a writer is open
        writer.execute("UPDATE runs SET run_name = 'renamed'")
        shutil.copytree(live, base)
    writer.close()
    if not pending_wal:
        shutil.copytree(live, base)
    before = sorted(p.name for p in base.iterdir())
    with read_only_folder(base):
        manager = ExperimentManager(base_dir=base)
        run = manager.get_experiment("old" if not pending_wal else "renamed")
        assert run.run_name == ("renamed" if pending_wal else "old")
        assert manager.get_metric_history(run.run_id, "loss").values.tolist() == [0.5]
        with pytest.raises(TrackingError, match="store"):
            manager.delete_experiment(run.run_id)
        manager.close()
        assert sorted(p.name for p in base.iterdir()) == before


def test_get_experiment_on_an_existing_store_raises_and_adds_no_run(make_tracker, manager):
    tracker = make_tracker()
    tracker.finish()
    with pytest.raises(TrackingError, match="no run"):
        manager.get_experiment("ffffffffffff")
    assert [r.run_id for r in manager.list_experiments()] == [tracker.run_id]


def test_unknown_metric_is_a_clear_error(make_tracker, manager):
    tracker = make_tracker()
    tracker.log_metrics({"loss": 1.0})
    tracker.finish()
    with pytest.raises(TrackingError, match="no metric 'acc'.*loss"):
        manager.get_metric_history(tracker.run_id, "acc")


def test_resume_continues_steps_and_keeps_earlier_points(make_tracker, manager):
    first = make_tracker("resumable")
    for step in range(3):
        first.log_metrics({"loss": float(step)})
    first.finish("interrupted")
    again = make_tracker("ignored-name", run_id=first.run_id)
    assert again.status == "running" and again.experiment_name == "resumable"
    again.log_metrics({"loss": 9.0})
    again.finish()
    history = manager.get_metric_history(first.run_id, "loss")
    assert history.steps.tolist() == [0, 1, 2, 3]
    assert manager.get_experiment(first.run_id).status == "completed"


def test_resume_takes_the_id_prefix_or_name_that_ls_shows(make_tracker, manager):
    first = make_tracker(run_name="to-resume")
    first.log_metrics({"loss": 1.0})
    first.finish()
    for ref in (first.run_id[:8], "to-resume"):
        resumed = make_tracker(run_id=ref)
        assert resumed.run_id == first.run_id
        resumed.finish()
    assert len(manager.list_experiments()) == 1


def test_resuming_an_unknown_run_is_an_error(make_tracker):
    with pytest.raises(TrackingError, match="cannot resume: no run 'nope' in the experiment store"):
        make_tracker(run_id="nope")


def test_delete_removes_the_run_and_its_plots(make_tracker, manager):
    tracker = make_tracker()
    tracker.log_metrics({"loss": 1.0})
    tracker.finish()
    tracker.generate_visualizations()
    assert any(tracker.run_dir.joinpath("plots").iterdir())
    manager.delete_experiment(tracker.run_id)
    assert manager.list_experiments() == []
    assert not tracker.run_dir.exists()
    with pytest.raises(TrackingError):
        manager.get_metric_history(tracker.run_id, "loss")


def test_a_live_run_deleted_under_it_leaves_no_rows_behind(make_tracker, manager, tmp_path):
    tracker = make_tracker()
    tracker.log_metrics({"loss": 1.0})
    tracker.get_metric_history("loss")  # flushed
    manager.delete_experiment(tracker.run_id)  # `neural experiments rm --force`
    tracker.log_metrics({"loss": 2.0})
    with pytest.warns(RuntimeWarning, match="deleted"):
        tracker.get_metric_history("loss")
    tracker.log_metrics({"loss": 3.0})
    for write in (lambda: tracker.log_hyperparameters({"lr": 0.1}),
                  lambda: tracker.log_artifact(tmp_path / "w.pt")):
        (tmp_path / "w.pt").write_bytes(b"w")
        with pytest.raises(TrackingError, match="deleted"):
            write()
    tracker.finish()
    store = manager._open()
    for table in ("metric_chunks", "metric_summary", "params", "artifact_versions", "artifact_aliases"):
        assert store.db.read(lambda cur: cur.all(f"SELECT * FROM {table}")) == [], table
    assert not list(store.objects.root.glob("??/*"))


def test_schema_is_versioned(make_tracker, store_kwargs):
    from neural_dsl_tracking.tracking.schema import SCHEMA_VERSION, installed_version
    from neural_dsl_tracking.tracking.store import Store

    make_tracker().finish()
    store = Store(**store_kwargs, create=False)
    assert installed_version(store.db) == SCHEMA_VERSION
    store.db.write(lambda cur: cur.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (SCHEMA_VERSION + 1, 0.0)))
    store.close()
    with pytest.raises(TrackingError, match="newer than"):
        Store(**store_kwargs, create=False)


def test_logging_after_finish_is_an_error(make_tracker):
    tracker = make_tracker()
    tracker.finish()
    with pytest.raises(TrackingError, match="finished"):
        tracker.log_metrics({"loss": 1.0})


def test_history_after_a_step_reads_only_later_points(make_tracker, manager):
    tracker = make_tracker()
    for step in range(70_000):  # more than one stored chunk
        tracker.log_metrics({"loss": float(step)}, step=step)
    tracker.log_metrics({"loss": -1.0}, step=5)  # logged last at an earlier step
    tracker.log_metrics({"loss": -2.0}, step=70_001)
    tracker.finish()
    later = manager.get_metric_history(tracker.run_id, "loss", after_step=69_990)
    assert later.steps.tolist() == [*range(69_991, 70_000), 70_001]
    assert later.values.tolist() == [*map(float, range(69_991, 70_000)), -2.0]
    assert later.timestamps.shape == later.steps.shape
    assert manager.get_metric_history(tracker.run_id, "loss", after_step=4).steps[-2:].tolist() == [5, 70_001]
    whole = manager.get_metric_history(tracker.run_id, "loss")
    assert len(manager.get_metric_history(tracker.run_id, "loss", after_step=-1)) == len(whole) == 70_002
    nothing = manager.get_metric_history(tracker.run_id, "loss", after_step=70_001)
    assert len(nothing) == 0 and nothing.steps.dtype == np.int64 and nothing.values.dtype == np.float64


def test_history_after_a_step_checks_its_arguments(make_tracker, manager):
    tracker = make_tracker()
    tracker.log_metrics({"loss": 1.0})
    tracker.finish()
    with pytest.raises(TrackingError, match="no metric 'acc'"):
        manager.get_metric_history(tracker.run_id, "acc", after_step=0)
    with pytest.raises(TrackingError, match="after_step: step must be an integer"):
        manager.get_metric_history(tracker.run_id, "loss", after_step="ten")


def test_histories_of_many_runs_read_in_bulk_match_one_by_one(make_tracker, manager):
    runs = []
    for index in range(3):
        tracker = make_tracker(run_name=f"bulk-{index}")
        for step in range(1000 * (index + 1)):
            metrics = {"loss": 1.0 / (step + 1 + index), "acc": step / 1000}
            if index == 0:
                metrics["lr"] = 0.1
            tracker.log_metrics(metrics, step=step)
        tracker.finish()
        runs.append(tracker.run_id)
    bulk = manager.get_metric_histories(runs, ["loss", "lr", "never"])
    assert set(bulk) == {(run, "loss") for run in runs} | {(runs[0], "lr")}  # never logged: absent
    for (run, key), history in bulk.items():
        single = manager.get_metric_history(run, key)
        assert history.key == key
        for name in ("steps", "values", "timestamps"):
            assert np.array_equal(getattr(history, name), getattr(single, name))
    every = manager.get_metric_histories(runs)
    assert len(every) == 7 and len(every[(runs[2], "acc")]) == 3000
    # run ids resolve like everywhere else and key the result as given
    named = manager.get_metric_histories(["bulk-1", runs[2][:8]], ["acc"])
    assert set(named) == {("bulk-1", "acc"), (runs[2][:8], "acc")}
    assert manager.get_metric_histories([], ["loss"]) == {}
    assert manager.get_metric_histories(runs, []) == {}


def test_bulk_histories_refuse_unknown_runs_and_strings(make_tracker, manager):
    tracker = make_tracker()
    tracker.log_metrics({"loss": 1.0})
    tracker.finish()
    with pytest.raises(TrackingError, match="no run 'ffffffffffff'"):
        manager.get_metric_histories([tracker.run_id, "ffffffffffff"], ["loss"])
    with pytest.raises(TrackingError, match="run_ids must be a list"):
        manager.get_metric_histories(tracker.run_id, ["loss"])
    with pytest.raises(TrackingError, match="keys must be a list"):
        manager.get_metric_histories([tracker.run_id], "loss")


def test_bulk_histories_without_a_store_are_a_clear_error(tmp_path):
    manager = ExperimentManager(base_dir=tmp_path / "absent")
    with pytest.raises(TrackingError, match="no experiment store"):
        manager.get_metric_histories(["abc"], ["loss"])
    assert not (tmp_path / "absent").exists()


def test_bulk_decoding_grows_when_more_points_arrive_than_counted():
    from neural_dsl_tracking.tracking.store import _stream_histories

    def chunk(run, key, steps):
        steps = np.asarray(steps, dtype="<i8")
        return run, key, steps.tobytes(), (steps * 0.5).astype("<f8").tobytes(), steps.astype("<f8").tobytes()

    rows = [chunk("r1", "a", [0, 1]), chunk("r1", "a", [2]), chunk("r1", "b", [7]), chunk("r2", "a", [3, 4, 5])]
    for capacity in (0, 1, 7, 100):  # a flush between counting and reading adds points
        found = _stream_histories(iter(rows), capacity)
        assert {pair: h.steps.tolist() for pair, h in found.items()} == {
            ("r1", "a"): [0, 1, 2], ("r1", "b"): [7], ("r2", "a"): [3, 4, 5]}
        assert found[("r2", "a")].values.tolist() == [1.5, 2.0, 2.5] and found[("r1", "b")].key == "b"
