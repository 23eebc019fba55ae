"""A full disk: clear errors, nothing half-written, and no lost points once space returns.

Uses a small tmpfs mount (``small_disk`` in tests/conftest.py), so it needs root; skipped otherwise.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pytest

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker


def test_artifact_on_a_full_disk_is_a_clear_error_and_leaves_nothing(small_disk, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(12 * 1024 * 1024))
    tracker = ExperimentTracker("full", base_dir=small_disk / "store", auto_visualize=False)
    with pytest.raises(TrackingError, match="No space left on device"):
        tracker.log_artifact(source)
    assert not any((small_disk / "store" / "objects").rglob(".incoming-*"))
    assert tracker.list_artifact_versions("big.bin") == []
    tracker.log_metrics({"loss": 1.0})
    tracker.finish()
    assert ExperimentManager(base_dir=small_disk / "store").get_experiment(tracker.run_id).status == "completed"


def test_metrics_wait_in_memory_until_space_returns(small_disk, fill_disk):
    base = small_disk / "store"
    tracker = ExperimentTracker("full", base_dir=base, auto_visualize=False, flush_interval=0.05)
    filler = fill_disk(small_disk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(30_000):
            tracker.log_metrics({"loss": float(step)})
        deadline = time.monotonic() + 30
        while tracker._writer.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert tracker._writer.last_error is not None
    assert any("keeping them in memory" in str(w.message) for w in caught)
    os.unlink(filler)
    tracker.finish()
    history = ExperimentManager(base_dir=base).get_metric_history(tracker.run_id, "loss")
    assert np.array_equal(history.values, np.arange(30_000, dtype=float))
