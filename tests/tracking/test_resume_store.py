"""The store's side of resume and fork: dropping a run's points after a step (summaries kept
right), a forked run's parent and fork point, a run's events, and what delete_run removes;
on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.store import Store


def _points(store: Store, run_id: str, key: str, steps: range, scale: float = 1.0) -> None:
    array = np.arange(steps.start, steps.stop, dtype=np.int64)
    store.append_metrics(run_id, {key: (array, array * scale, array + 1e9)})


def test_truncate_drops_points_after_the_step_and_keeps_the_summary_right(store_kwargs) -> None:
    store = Store(**store_kwargs)
    run = store.create_run(experiment="e", run_name="r")
    for start in range(0, 10_000, 1000):  # ten flushes: several chunks, merged and not
        _points(store, run, "batch_loss", range(start, start + 1000), scale=-1.0)
    _points(store, run, "val_loss", range(1, 6))
    _points(store, run, "late", range(50, 60))

    dropped = store.truncate_metrics(run, {"batch_loss": 4321, "val_loss": 3, "late": None})

    assert dropped == (9999 - 4321) + 2 + 10
    history = store.metric_history(run, "batch_loss")
    assert history.steps.tolist() == list(range(4322))
    summary = store.metric_summaries(run)["batch_loss"]
    assert (summary.count, summary.latest, summary.latest_step, summary.max_step) == (4322, -4321.0, 4321, 4321)
    assert (summary.min, summary.max) == (-4321.0, 0.0)
    assert store.metric_history(run, "val_loss").steps.tolist() == [1, 2, 3]
    assert "late" not in store.metric_summaries(run)
    assert len(store.metric_history(run, "late")) == 0
    ranked = store.get_run(run).metrics["val_loss"]
    assert (ranked["count"], ranked["latest"], ranked["max"]) == (3, 3.0, 3.0)

    _points(store, run, "batch_loss", range(4322, 4400))  # logging goes on after the cut
    assert store.metric_history(run, "batch_loss").steps.tolist() == list(range(4400))
    assert store.metric_summaries(run)["batch_loss"].count == 4400
    assert store.truncate_metrics(run, {"batch_loss": 10_000}) == 0
    rows = store.db.read(lambda cur: cur.all(
        "SELECT min_step, max_step, min_time, max_time FROM metric_chunks WHERE run_id = ? AND key = ?",
        (run, "batch_loss")))
    assert max(row[1] for row in rows) == 4399 and max(row[3] for row in rows) == 4399 + 1e9
    assert store.metric_histories([run], ["batch_loss"], times=(4300 + 1e9, 4330 + 1e9))[
        (run, "batch_loss")].steps.tolist() == list(range(4300, 4331))


def test_lineage_children_events_and_delete(store_kwargs) -> None:
    store = Store(**store_kwargs)
    parent = store.create_run(experiment="e", run_name="parent")
    child = store.create_run(experiment="e", run_name="child")
    other = store.create_run(experiment="e", run_name="other")
    store.set_run_parent(child, parent, 2, 1438)
    store.add_run_event(child, "forked", "from run parent at epoch 2")
    store.add_run_event(parent, "resumed", "from its checkpoint at epoch 1", at=1.0)
    store.add_run_event(parent, "resumed", "from its checkpoint at epoch 2", at=2.0)

    record = store.get_run(child)
    assert (record.parent.run_id, record.parent.fork_epoch, record.parent.fork_step) == (parent, 2, 1438)
    assert [e.kind for e in record.events] == ["forked"]
    assert store.get_run(parent).children == (child,)
    assert [e.detail[-7:] for e in store.get_run(parent).events] == ["epoch 1", "epoch 2"]
    assert store.get_run(other).parent is None and store.get_run(other).children == ()
    assert store.lineage([parent, child, other]) == {child: record.parent}
    assert store.children_of(parent) == [child]
    with pytest.raises(TrackingError, match="run event kind"):
        store.add_run_event(child, "teleported", "")

    store.delete_run(child)
    assert store.get_run(parent).children == ()
    assert store.lineage([child]) == {}
    assert store.db.read(lambda cur: cur.all("SELECT * FROM run_events WHERE run_id = ?", (child,))) == []
