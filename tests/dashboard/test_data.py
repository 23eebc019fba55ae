"""The dashboard's read layer on a real store: downsampled series, cache, new points, artifacts."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from neural_dsl_tracking.dashboard.data import DashboardData, StoreUnavailable
from neural_dsl_tracking.errors import ArtifactCorruptedError, TrackingError


def test_long_series_is_downsampled_keeping_the_spike(store, logged):
    data = DashboardData(store.path)
    drawn = data.series(store.ids["beta"], "loss", logged.long_steps)
    assert drawn.count == logged.long_steps and drawn.last_step == logged.long_steps - 1
    assert len(drawn.steps) <= 2000
    assert drawn.steps[0] == 0 and drawn.steps[-1] == logged.long_steps - 1
    assert drawn.values.max() == logged.spike_value
    assert drawn.steps[drawn.values.argmax()] == logged.spike_step
    assert drawn.bucket_counts.sum() == logged.long_steps
    assert np.all(np.diff(drawn.times) >= 0)


def test_series_are_cached_per_point_count(store, logged):
    data = DashboardData(store.path)
    first = data.series(store.ids["beta"], "loss", logged.long_steps)
    assert data.series(store.ids["beta"], "loss", logged.long_steps) is first
    assert data.series(store.ids["beta"], "loss", logged.long_steps + 1) is not first  # new points: re-read


def test_short_series_are_drawn_exactly(store):
    data = DashboardData(store.path)
    drawn = data.series(store.ids["alpha"], "loss", 200)
    assert drawn.steps.tolist() == list(range(200))
    assert drawn.values.tolist() == [1.0 / (step + 1) for step in range(200)]


def test_points_after_returns_only_the_new_ones(store):
    data = DashboardData(store.path)
    steps, values, _ = data.points_after(store.ids["alpha"], "loss", after_step=189)
    assert steps.tolist() == list(range(190, 200))
    assert values.tolist() == [1.0 / (step + 1) for step in range(190, 200)]


def test_artifact_versions_and_verified_reads(store, logged):
    data = DashboardData(store.path)
    versions = data.artifact_versions(store.ids["alpha"])
    assert [(v.name, v.version) for v in versions] == [("checkpoint", 1), ("checkpoint", 2)]
    assert [v.sha256 for v in versions] == [hashlib.sha256(c).hexdigest() for c in logged.checkpoints]
    found, handle = data.open_artifact(store.ids["alpha"], "checkpoint", 2)
    with handle:
        assert found.version == 2 and handle.read() == logged.checkpoints[1]
    with pytest.raises(TrackingError):
        data.open_artifact(store.ids["alpha"], "checkpoint", 7)
    with pytest.raises(TrackingError):
        data.open_artifact(store.ids["alpha"], "../../store.db", 1)


def test_corrupted_artifact_is_refused(tmp_path, serve):
    from urllib.error import HTTPError
    from urllib.request import urlopen

    from neural_dsl_tracking.dashboard.app import create_app
    from neural_dsl_tracking.tracking import ExperimentTracker

    base_dir = tmp_path / "neural_experiments"
    source = tmp_path / "weights.bin"
    source.write_bytes(b"weights")
    with ExperimentTracker("c", base_dir=str(base_dir), auto_visualize=False) as tracker:
        version = tracker.log_artifact(source, name="weights")
    version.path.chmod(0o644)
    version.path.write_bytes(b"tampered")
    with pytest.raises(ArtifactCorruptedError):
        DashboardData(base_dir).open_artifact(tracker.run_id, "weights", 1)
    with serve(create_app(base_dir=base_dir)) as url:
        with pytest.raises(HTTPError) as error:
            urlopen(f"{url}/artifacts/{tracker.run_id}/1/weights")
        assert error.value.code == 500


def test_missing_store_is_reported_and_never_created(tmp_path):
    missing = tmp_path / "absent"
    data = DashboardData(missing)
    with pytest.raises(StoreUnavailable, match="no experiment store"):
        data.runs()
    assert not missing.exists()


def test_sqlite_and_postgresql_stores_read_the_same(store_kwargs, tmp_path):
    from neural_dsl_tracking.tracking import ExperimentTracker

    values = np.linspace(1.0, 0.0, 5000)
    values[4321] = 99.0
    source = tmp_path / "model.pt"
    source.write_bytes(b"model bytes")
    with ExperimentTracker("shared", **store_kwargs, run_name="team-run", auto_visualize=False) as tracker:
        tracker.log_hyperparameters({"lr": 0.1})
        for step, value in enumerate(values.tolist()):
            tracker.log_metrics({"loss": value}, step=step)
        tracker.log_artifact(source, name="model")
    data = DashboardData(store_kwargs["base_dir"], store_kwargs["store"])
    (run,) = data.runs()
    assert (run.run_name, run.status, run.hyperparameters) == ("team-run", "completed", {"lr": 0.1})
    drawn = data.series(run.run_id, "loss", run.metrics["loss"]["count"])
    assert len(drawn.steps) <= 2000 and drawn.values.max() == 99.0 and 4321 in drawn.steps
    _, handle = data.open_artifact(run.run_id, "model", 1)
    with handle:
        assert handle.read() == b"model bytes"


def test_database_password_is_never_shown(tmp_path):
    data = DashboardData(tmp_path, "postgresql+psycopg://ada:hunter2@db.example:5432/runs")
    assert data.location == "postgresql+psycopg://ada:***@db.example:5432/runs"


def test_prefetch_reads_in_bulk_what_series_would_read_one_by_one(store):
    bulk, single = DashboardData(store.path), DashboardData(store.path)
    runs = [run for run in bulk.runs() if run.metrics]
    wanted = [(run.run_id, key, summary["count"]) for run in runs for key, summary in run.metrics.items()]
    assert bulk.prefetch(wanted) == len(wanted) > 3
    assert bulk.prefetch(wanted) == 0  # all cached now
    for run_id, key, count in wanted:
        for points in bulk.levels:
            ours, theirs = bulk.series(run_id, key, count, points), single.series(run_id, key, count, points)
            assert np.array_equal(ours.steps, theirs.steps) and np.array_equal(ours.values, theirs.values,
                                                                                 equal_nan=True)
            assert np.array_equal(ours.bucket_means, theirs.bucket_means, equal_nan=True)


def test_warm_reads_every_series(store):
    data = DashboardData(store.path)
    expected = sum(len(run.metrics) for run in data.runs())
    assert data.warm() == expected and data.prefetch(
        (run.run_id, key, summary["count"]) for run in data.runs() for key, summary in run.metrics.items()) == 0
