"""Reading a ``version=False`` artifact while its run replaces it: the replaced object is
freed, and a read that finds it gone serves the version replacing it, never an error."""

from __future__ import annotations

import threading
from functools import partial

import pytest

from neural_dsl_tracking.errors import ArtifactCorruptedError
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker

from .replacing import CONTENTS, HASHES, NAME, read_while_replacing


def read_until(store_kwargs: dict, run_id: str, done: threading.Event, failures: list,
               reads: list) -> None:
    """Read the artifact (newest, version 1, alias) with a manager until ``done``."""
    manager = ExperimentManager(**store_kwargs)
    try:
        while not done.is_set() and len(failures) < 5:
            for ref in (-1, 1, "latest"):
                try:
                    found = manager.get_artifact_version(run_id, NAME, ref)
                except BaseException as error:  # noqa: BLE001 - reported by the test
                    failures.append(repr(error))
                    continue
                if HASHES.get(found.sha256) is None or len(HASHES[found.sha256]) != found.size:
                    failures.append(f"read {found.sha256} of {found.size} bytes")
                reads.append(found.sha256)
    finally:
        manager.close()


def test_manager_reads_never_fail_while_the_artifact_is_replaced(store_kwargs, tmp_path):
    """Version 1, newest and ``latest``: about a third of these reads failed ("object ...
    is missing", or a bare FileNotFoundError)."""
    read_while_replacing(store_kwargs, tmp_path / "ckpt.bin", partial(read_until, store_kwargs))


def test_a_version_whose_object_is_lost_is_still_reported_missing(make_tracker, tmp_path):
    source = tmp_path / "ckpt.bin"
    source.write_bytes(CONTENTS[0])
    tracker = make_tracker()
    version = tracker.log_artifact(source, name=NAME, version=False)
    version.path.unlink()
    with pytest.raises(ArtifactCorruptedError, match="is missing"):
        tracker.get_artifact_version(NAME)


def test_tracker_reads_its_replaced_artifact(make_tracker, tmp_path):
    source = tmp_path / "ckpt.bin"
    tracker: ExperimentTracker = make_tracker()
    for content in CONTENTS:
        source.write_bytes(content)
        tracker.log_artifact(source, name=NAME, version=False)
        found = tracker.get_artifact_version(NAME, 1)
        assert found.path.read_bytes() == content and HASHES[found.sha256] == content
