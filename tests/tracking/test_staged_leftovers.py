"""An artifact is staged as ``objects/.incoming-*`` before it is placed; a process killed in
between leaves that file behind. Such leftovers are removed once they are an hour old, the
next time the store stages or frees an object; a fresh one (a copy still in progress in
another process) is never touched."""

from __future__ import annotations

import os
import time
from pathlib import Path

from neural_dsl_tracking.tracking.objects import STALE_INCOMING


def _leftovers(objects: Path) -> tuple[Path, Path]:
    """An old and a fresh staged file, as a killed and a working process leave them."""
    objects.mkdir(parents=True, exist_ok=True)
    old, fresh = objects / ".incoming-killed", objects / ".incoming-copying"
    old.write_bytes(b"half a checkpoint")
    fresh.write_bytes(b"a copy in progress")
    past = time.time() - STALE_INCOMING - 60
    os.utime(old, (past, past))
    return old, fresh


def test_logging_an_artifact_removes_old_staged_leftovers_only(make_tracker, store_kwargs, tmp_path):
    old, fresh = _leftovers(store_kwargs["base_dir"] / "objects")
    source = tmp_path / "w.bin"
    source.write_bytes(b"weights")
    make_tracker().log_artifact(source)
    assert not old.exists()
    assert fresh.read_bytes() == b"a copy in progress"


def test_freeing_objects_removes_old_staged_leftovers_only(make_tracker, manager, store_kwargs,
                                                           tmp_path):
    source = tmp_path / "w.bin"
    source.write_bytes(b"weights of a run to delete")
    tracker = make_tracker()
    tracker.log_artifact(source)
    tracker.finish()
    old, fresh = _leftovers(store_kwargs["base_dir"] / "objects")
    assert manager.delete_experiment(tracker.run_id) == len(b"weights of a run to delete")
    assert not old.exists()
    assert fresh.exists()
