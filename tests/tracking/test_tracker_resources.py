"""A finished tracker holds no store connection and no reference cycle: a process can run
any number of trackers in a row (a sweep in one process, a test suite) without running out
of PostgreSQL connections or file descriptors, with the garbage collector off. What a
finished tracker still answers (best metric, history, artifact versions, plots) keeps working."""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

import pytest

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import ExperimentTracker

TRACKERS = 300


@pytest.fixture
def no_gc():
    """The cycle collector off for the test: only reference counting frees objects."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _postgres_connections(url: str) -> int:
    """Connections to the database of ``url`` besides the one asking."""
    import psycopg

    with psycopg.connect("postgresql://" + url.split("://", 1)[1], autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND pid <> pg_backend_pid()").fetchone()[0]


def _one_run(store_kwargs: dict, index: int, artifact: Path) -> ExperimentTracker:
    """A short run, finished by finish() or by leaving its with block (every other one)."""
    tracker = ExperimentTracker("many", **store_kwargs, auto_visualize=False)
    if index % 2:
        with tracker:
            tracker.log_metrics({"loss": 1.0 / (index + 1)})
    else:
        tracker.log_metrics({"loss": 1.0 / (index + 1)})
        if index % 50 == 0:
            tracker.log_artifact(artifact, name="weights")
        tracker.finish()
    return tracker


def _held(store_kwargs: dict) -> int:
    """What the process holds on the store: PostgreSQL connections, or open descriptors."""
    if store_kwargs["store"]:
        return _postgres_connections(store_kwargs["store"])
    return _open_fds()


def test_trackers_in_a_row_hold_no_store_connection(store_kwargs, tmp_path, no_gc):
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(b"w" * 1000)
    _one_run(store_kwargs, 0, artifact)  # the store exists, the modules are loaded
    before = _held(store_kwargs)
    finished = []  # kept: a finished tracker must not hold its connection either
    for index in range(1, TRACKERS + 1):
        finished.append(_one_run(store_kwargs, index, artifact))
        if index % 100 == 0:
            assert _held(store_kwargs) <= before + 2, f"after {index} trackers"
    assert _held(store_kwargs) <= before + 2
    # the finished ones still answer what needs the store, and give their connection back
    first, with_artifact = finished[0], finished[49]
    assert first.get_best_metric("loss") == pytest.approx(0.5)
    assert first.get_metric_history("loss").values.tolist() == pytest.approx([0.5])
    assert [v.version for v in with_artifact.list_artifact_versions("weights")] == [1]
    assert with_artifact.get_artifact_version("weights").path.read_bytes() == b"w" * 1000
    assert _held(store_kwargs) <= before + 2


def test_a_finished_tracker_is_freed_without_the_garbage_collector(store_kwargs, no_gc):
    tracker = ExperimentTracker("freed", **store_kwargs, auto_visualize=False)
    tracker.log_metrics({"loss": 1.0})
    tracker.finish()
    gone = weakref.ref(tracker)
    del tracker
    assert gone() is None, "a reference cycle keeps the finished tracker (and its store) alive"


def test_a_finished_tracker_still_draws_and_reads(store_kwargs):
    with ExperimentTracker("reads", **store_kwargs, auto_visualize=False) as tracker:
        for step in range(5):
            tracker.log_metrics({"loss": 1.0 / (step + 1), "accuracy": step / 5})
    assert tracker.status == "completed"
    assert tracker.get_best_metric("accuracy", mode="max") == pytest.approx(0.8)
    assert tracker.get_best_metric("never") is None
    assert {p.name for p in tracker.generate_visualizations()} >= {"metric_loss.png", "all_metrics.png"}
    with pytest.raises(TrackingError, match="no artifact named 'none'"):
        tracker.list_artifact_versions("none") or tracker.get_artifact_version("none")
    with pytest.raises(TrackingError, match="is finished"):
        tracker.log_hyperparameters({"lr": 0.1})
