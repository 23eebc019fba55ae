"""Small artifacts (up to objects.SMALL_OBJECT bytes): staged from memory, and not copied
again when the store already holds the same bytes (every run of a sweep logs the same source)."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

from neural_dsl_tracking.tracking.objects import ObjectStore, hash_regular_file


def test_a_small_file_the_store_holds_is_not_copied_again(make_tracker, store_kwargs, tmp_path):
    source = tmp_path / "net.neural"
    source.write_text("network N { }\n")
    first = make_tracker().log_artifact(source, name="source")
    placed = os.stat(first.path)
    second = make_tracker().log_artifact(source, name="source")
    assert second.sha256 == first.sha256 and second.path == first.path
    assert os.stat(second.path).st_ino == placed.st_ino  # the object in place, not a new copy
    assert second.path.read_bytes() == source.read_bytes()
    objects = Path(store_kwargs["base_dir"]) / "objects"
    assert not [p for p in objects.iterdir() if p.name.startswith(".incoming")]


def test_a_small_object_freed_after_staging_is_written_again(tmp_path):
    objects = ObjectStore(tmp_path / "objects")
    source = tmp_path / "config.json"
    source.write_bytes(b'{"lr": 0.1}\n')
    with objects.stage(source) as staged:
        staged.place()
    with objects.stage(source) as again:  # found in the store: nothing staged
        assert again.temp is None
        os.unlink(again.target)  # freed by another process's delete meanwhile
        again.place()
    assert again.target.read_bytes() == source.read_bytes()
    assert not [p for p in objects.root.iterdir() if p.name.startswith(".incoming")]


def test_a_damaged_small_object_is_replaced_when_staged_again(tmp_path):
    objects = ObjectStore(tmp_path / "objects")
    source = tmp_path / "config.json"
    source.write_bytes(b"settings" * 10)
    with objects.stage(source) as staged:
        staged.place()
    os.chmod(staged.target, 0o644)
    staged.target.write_bytes(b"garbage!" * 10)  # same size, other bytes
    with objects.stage(source) as again:
        assert again.temp is not None
        again.place()
    assert again.target.read_bytes() == source.read_bytes()


def test_hashing_a_small_file_reads_it_into_a_small_buffer(tmp_path):
    """Hashing a run's source file (every run does) cleared a 4 MiB buffer for 30 bytes."""
    source = tmp_path / "net.neural"
    source.write_text("network N { }\n")
    tracemalloc.start()
    try:
        digest = hash_regular_file(source, "source file")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert peak < 64 * 1024
