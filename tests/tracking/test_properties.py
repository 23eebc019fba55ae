"""Property tests: whatever is logged comes back exactly, and migrations apply in order."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker

keys = st.text(min_size=1, max_size=12)
calls = st.lists(st.dictionaries(keys, st.floats(allow_nan=True, allow_infinity=True),
                                 min_size=1, max_size=4), min_size=1, max_size=60)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=calls)
def test_every_logged_point_reads_back_exactly(tmp_path_factory, calls):
    base = tmp_path_factory.mktemp("prop")
    with ExperimentTracker("prop", base_dir=base, auto_visualize=False) as tracker:
        for step, metrics in enumerate(calls):
            tracker.log_metrics(metrics, step=step)
    manager = ExperimentManager(base_dir=base)
    expected: dict[str, list[tuple[int, float]]] = {}
    for step, metrics in enumerate(calls):
        for key, value in metrics.items():
            expected.setdefault(key, []).append((step, value))
    assert manager.metric_keys(tracker.run_id) == sorted(expected)
    record = manager.get_experiment(tracker.run_id)
    for key, points in expected.items():
        history = manager.get_metric_history(tracker.run_id, key)
        assert history.steps.tolist() == [s for s, _ in points]
        assert np.array_equal(history.values, np.array([v for _, v in points]), equal_nan=True)
        summary = record.metrics[key]
        assert summary["count"] == len(points)
        latest = points[-1][1]
        assert (math.isnan(summary["latest"]) and math.isnan(latest)) or summary["latest"] == latest
        known = [v for _, v in points if not math.isnan(v)]
        assert summary["min"] == (min(known) if known else None)
        assert summary["max"] == (max(known) if known else None)


def test_an_existing_store_is_migrated_in_order(tmp_path, monkeypatch):
    from neural_dsl_tracking.tracking import schema
    from neural_dsl_tracking.tracking.store import Store

    with ExperimentTracker("old", base_dir=tmp_path, auto_visualize=False) as tracker:
        tracker.log_metrics({"loss": 1.0})
    later = [*schema.MIGRATIONS, ["ALTER TABLE runs ADD COLUMN note TEXT",
                                  "UPDATE runs SET note = 'migrated'"]]
    monkeypatch.setattr(schema, "MIGRATIONS", later)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(later))
    monkeypatch.setattr("neural_dsl_tracking.tracking.store.SCHEMA_VERSION", len(later))
    store = Store(tmp_path, create=False)
    assert schema.installed_version(store.db) == len(later)
    assert store.db.read(lambda cur: cur.one("SELECT note FROM runs"))[0] == "migrated"
    assert store.metric_history(tracker.run_id, "loss").values.tolist() == [1.0]
