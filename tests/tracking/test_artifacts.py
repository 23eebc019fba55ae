"""Content-addressed, versioned artifacts with aliases and checksum verification."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neural_dsl_tracking.errors import ArtifactCorruptedError, TrackingError
from neural_dsl_tracking.tracking import ExperimentTracker


def _objects(base: Path) -> list[Path]:
    root = base / "objects"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_identical_content_is_stored_once_but_versioned(make_tracker, store_kwargs, tmp_path):
    tracker = make_tracker()
    ckpt = _write(tmp_path / "ckpt.pt", os.urandom(300_000))
    first = tracker.log_artifact(ckpt, name="checkpoint")
    second = tracker.log_artifact(ckpt, name="checkpoint")
    assert (first.version, second.version) == (1, 2)
    assert first.sha256 == second.sha256 and first.size == 300_000
    objects = _objects(store_kwargs["base_dir"])
    assert len(objects) == 1 and objects[0].name == first.sha256
    assert objects[0].read_bytes() == ckpt.read_bytes()
    assert not [p for p in objects[0].parent.parent.iterdir() if p.name.startswith(".incoming")]


def test_versions_aliases_and_lookups(make_tracker, tmp_path):
    tracker = make_tracker()
    versions = [tracker.log_artifact(_write(tmp_path / "m.bin", bytes([i]) * 10), name="model",
                                     aliases=["best"] if i == 1 else [], metadata={"epoch": i})
                for i in range(3)]
    listed = tracker.list_artifact_versions("model")
    assert [v.version for v in listed] == [1, 2, 3]
    assert listed[-1].aliases == ("latest",) and listed[1].aliases == ("best",)
    assert tracker.get_artifact_version("model").version == 3
    assert tracker.get_artifact_version("model", -3).version == 1
    assert tracker.get_artifact_version("model", 2).metadata["epoch"] == 1
    assert tracker.get_artifact_version("model", "best").version == 2
    assert tracker.get_artifact_version("model", "latest").sha256 == versions[2].sha256
    for bad in (0, 4, -4, "champion"):
        with pytest.raises(TrackingError, match="model"):
            tracker.get_artifact_version("model", bad)
    with pytest.raises(TrackingError, match="no artifact named 'other'"):
        tracker.get_artifact_version("other")


def test_monitored_metric_moves_best(make_tracker, tmp_path):
    tracker = make_tracker()
    for epoch, val_loss in enumerate([0.9, 0.5, 0.7, 0.4]):
        tracker.log_metrics({"val_loss": val_loss}, step=epoch)
        tracker.log_artifact(_write(tmp_path / "c.pt", bytes([epoch]) * 4), name="ckpt",
                             monitor="val_loss", mode="min")
    best = tracker.get_artifact_version("ckpt", "best")
    assert best.version == 4 and best.metadata["monitor"]["value"] == 0.4

    tracker.log_metrics({"acc": 0.8})
    tracker.log_artifact(_write(tmp_path / "a.pt", b"x"), name="by_acc", monitor="acc", mode="max")
    tracker.log_metrics({"acc": 0.6})
    tracker.log_artifact(_write(tmp_path / "a.pt", b"y"), name="by_acc", monitor="acc", mode="max")
    assert tracker.get_artifact_version("by_acc", "best").version == 1


def test_corruption_is_detected_on_read(make_tracker, tmp_path):
    tracker = make_tracker()
    version = tracker.log_artifact(_write(tmp_path / "w.bin", b"weights" * 1000), name="w")
    os.chmod(version.path, 0o644)
    data = bytearray(version.path.read_bytes())
    data[10] ^= 0xFF
    version.path.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorruptedError, match="w v1.*corrupted"):
        tracker.get_artifact_version("w")
    version.path.unlink()
    with pytest.raises(ArtifactCorruptedError, match="missing"):
        tracker.get_artifact_version("w")


def test_missing_source_file_is_a_clear_error(make_tracker, tmp_path):
    tracker = make_tracker()
    with pytest.raises(TrackingError, match="does not exist"):
        tracker.log_artifact(tmp_path / "nope.pt")
    with pytest.raises(TrackingError, match="directory"):
        tracker.log_artifact(tmp_path)


def test_unversioned_artifact_replaces_the_previous_content(make_tracker, store_kwargs, tmp_path):
    tracker = make_tracker()
    tracker.log_artifact(_write(tmp_path / "s.txt", b"one"), name="summary", version=False)
    latest = tracker.log_artifact(_write(tmp_path / "s.txt", b"two"), name="summary", version=False)
    assert [v.version for v in tracker.list_artifact_versions("summary")] == [1]
    assert latest.path.read_bytes() == b"two"
    assert len(_objects(store_kwargs["base_dir"])) == 1


def test_model_and_default_name(make_tracker, tmp_path):
    tracker = make_tracker()
    model = tracker.log_model(_write(tmp_path / "net.pt", b"m"))
    assert model.name == "net.pt" and model.metadata["framework"] == "pytorch"
    plain = tracker.log_artifact(_write(tmp_path / "notes.txt", b"n"))
    assert plain.name == "notes.txt"


def test_deleting_a_run_frees_only_unshared_objects(make_tracker, manager, store_kwargs, tmp_path):
    shared = _write(tmp_path / "shared.bin", b"shared")
    own = _write(tmp_path / "own.bin", b"own")
    a, b = make_tracker(), make_tracker()
    a.log_artifact(shared)
    a.log_artifact(own)
    b.log_artifact(shared)
    a.finish()
    b.finish()
    assert len(_objects(store_kwargs["base_dir"])) == 2
    freed = manager.delete_experiment(a.run_id)
    assert freed == len(b"own")
    remaining = _objects(store_kwargs["base_dir"])
    assert [p.read_bytes() for p in remaining] == [b"shared"]
    assert manager.get_artifact_version(b.run_id, "shared.bin").path.read_bytes() == b"shared"


def test_direct_io_falls_back_to_buffered_writes(tmp_path):
    """A buffer direct I/O refuses (misaligned) is still written, through the page cache."""
    import mmap

    from neural_dsl_tracking.tracking.objects import _Destination

    buffer = mmap.mmap(-1, 3 * 4096)
    buffer.write(os.urandom(3 * 4096))
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        destination = _Destination(fd)
        destination.write(memoryview(buffer)[1:4097], 0)
        destination.write(memoryview(buffer)[4097:4100], 4096)
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == bytes(buffer[1:4100])


def test_large_artifact_round_trips(make_tracker, tmp_path):
    data = os.urandom(9 * 1024 * 1024 + 7)  # several chunks and an unaligned tail
    tracker = make_tracker()
    version = tracker.log_artifact(_write(tmp_path / "big.bin", data))
    assert tracker.get_artifact_version(version.name).path.read_bytes() == data


def test_logging_the_content_again_heals_a_damaged_object(make_tracker, tmp_path):
    tracker = make_tracker()
    source = _write(tmp_path / "w.bin", b"weights" * 100)
    first = tracker.log_artifact(source, name="w")
    os.chmod(first.path, 0o644)
    first.path.write_bytes(b"garbage" * 100)
    with pytest.raises(ArtifactCorruptedError):
        tracker.get_artifact_version("w", 1)
    tracker.log_artifact(source, name="w")
    assert tracker.get_artifact_version("w", 1).path.read_bytes() == source.read_bytes()


@pytest.mark.parametrize("kind, make", [
    ("a FIFO", lambda path: os.mkfifo(path)),
    ("a socket", lambda path: _bound_socket(path)),
    ("a directory", lambda path: path.mkdir()),
])
def test_a_special_file_is_named_for_what_it_is(make_tracker, tmp_path, kind, make):
    tracker = make_tracker()
    special = tmp_path / "special"
    keep = make(special)
    try:
        with pytest.raises(TrackingError, match=f"special: it is {kind}; only regular files can be logged"):
            _bounded(lambda: tracker.log_artifact(special))
    finally:
        if keep is not None:
            keep.close()
    assert tracker.list_artifact_versions("special") == []


def test_a_character_device_is_named_for_what_it_is(make_tracker):
    with pytest.raises(TrackingError, match="/dev/null: it is a character device; only regular files"):
        _bounded(lambda: make_tracker().log_artifact("/dev/null"))


@pytest.mark.parametrize("what, make", [
    ("it is a FIFO; only regular files can be logged", lambda path: os.mkfifo(path)),
    ("it is a directory; only regular files can be logged", lambda path: path.mkdir()),
    ("it is a character device; only regular files can be logged", None),
    ("the file does not exist", lambda path: None),
], ids=["fifo", "directory", "dev-null", "missing"])
def test_a_source_file_that_is_not_a_regular_file_is_named_for_what_it_is(
        store_kwargs, manager, tmp_path, what, make):
    """A FIFO, a folder or /dev/null as ``source_file`` was reported as "does not exist"."""
    source = Path("/dev/null") if make is None else tmp_path / "model.neural"
    if make is not None:
        make(source)
    with pytest.raises(TrackingError) as caught:
        _bounded(lambda: ExperimentTracker("src", **store_kwargs, source_file=source,
                                           auto_visualize=False))
    assert str(caught.value) == f"cannot log source file {source}: {what}"
    assert manager.list_experiments() == []  # no run is created


def _bound_socket(path: Path):
    import socket

    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    return listener


def _bounded(call, seconds: float = 20.0):
    """``call()`` in a thread that must return within ``seconds`` (a FIFO must not be waited on)."""
    import threading

    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # noqa: BLE001 - re-raised below in the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
