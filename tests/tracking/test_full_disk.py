"""A full disk: clear errors, nothing half-written, and no lost points once space returns.

Uses a small tmpfs mount, so it needs root (as in CI's containers); skipped otherwise.
"""

from __future__ import annotations

import os
import subprocess
import time
import warnings

import numpy as np
import pytest

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _fill(directory) -> os.PathLike:
    filler = directory / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return filler


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


def test_metrics_wait_in_memory_until_space_returns(small_disk):
    base = small_disk / "store"
    tracker = ExperimentTracker("full", base_dir=base, auto_visualize=False, flush_interval=0.05)
    filler = _fill(small_disk)
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
