"""Run models and fingerprints: stored on SQLite and PostgreSQL, found again, stable under
cosmetic edits of the .neural file and changed by real ones; ``neural run --skip-if-done``."""

from __future__ import annotations

import time

SPEC = {"network": "Net", "input": [4], "output": [2], "params": 10, "macs": 8,
        "layers": [{"name": "dense_1", "type": "Dense", "depth": 0, "params": {"units": 2},
                    "input": [4], "output": [2], "param_count": 10, "macs": 8},
                   {"name": "dropout_1", "type": "Dropout", "depth": 0, "params": {"rate": 0.1},
                    "input": [2], "output": [2], "param_count": 0, "macs": 0},
                   {"name": "dense_2", "type": "Dense", "depth": 0, "params": {"units": 2},
                    "input": [2], "output": [2], "param_count": 6, "macs": 4}]}


def test_run_model_round_trip_twins_and_delete(make_tracker, manager):
    first = make_tracker(run_name="first")
    first.log_model_spec(SPEC, fingerprint="f" * 64)
    first.finish()
    time.sleep(0.01)
    second = make_tracker(run_name="second")
    second.log_model_spec(SPEC, fingerprint="f" * 64)
    second.finish("failed")
    other = make_tracker(run_name="other")
    other.log_model_spec({**SPEC, "params": 11}, fingerprint="e" * 64)
    plain = make_tracker(run_name="plain")
    ids = [t.run_id for t in (first, second, other, plain)]

    model = manager.get_run_model("second")
    assert (model.spec, model.params, model.macs, model.fingerprint) == (SPEC, 10, 8, "f" * 64)
    assert manager.get_run_model("plain") is None
    assert set(manager.run_models(ids)) == set(ids[:3])
    assert manager.fingerprint_twins(ids) == {first.run_id: second.run_id, second.run_id: first.run_id}
    assert manager.completed_run_with_fingerprint("f" * 64) == first.run_id
    assert manager.completed_run_with_fingerprint("e" * 64) is None  # still running

    store = manager._open()
    counts = store.db.read(lambda cur: cur.all(
        "SELECT layer_type, n FROM run_layer_counts WHERE run_id = ? ORDER BY layer_type", (first.run_id,)))
    assert [tuple(row) for row in counts] == [("Dense", 2), ("Dropout", 1)]
    manager.delete_experiment(first.run_id)
    assert manager.fingerprint_twins(ids[1:]) == {}
    assert store.db.read(lambda cur: cur.all("SELECT * FROM run_layer_counts WHERE run_id = ?", (first.run_id,))) == []
