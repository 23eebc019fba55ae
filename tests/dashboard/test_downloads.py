"""Artifact downloads serve only the store's own objects, checked on the file that is sent."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.tracking import ExperimentTracker

from ..tracking.replacing import HASHES, NAME, read_while_replacing

pytestmark = pytest.mark.slow

CONTENT = os.urandom(256 * 1024)  # hashing it takes long enough for a swap to land in between
DOWNLOADS = 400
SWAP_SECONDS = 120.0


def logged_artifact(tmp_path: Path) -> tuple[Path, str, Path]:
    """A store with one artifact: (store, run id, the object's path)."""
    base_dir = tmp_path / "neural_experiments"
    source = tmp_path / "weights.bin"
    source.write_bytes(CONTENT)
    with ExperimentTracker("downloads", base_dir=str(base_dir), auto_visualize=False) as tracker:
        version = tracker.log_artifact(source, name="weights")
    return base_dir, tracker.run_id, version.path


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_an_object_swapped_for_a_symlink_while_downloading_never_serves_the_link(tmp_path, serve):
    base_dir, run_id, object_path = logged_artifact(tmp_path)
    secret = tmp_path / "outside" / "secret"
    secret.parent.mkdir()
    secret.write_bytes(b"SECRET outside the store\n" * 100)
    keep = tmp_path / "kept-object"
    os.link(object_path, keep)
    stop = threading.Event()
    swaps = 0

    def swap() -> None:
        nonlocal swaps
        incoming = object_path.with_name(".swap")
        deadline = time.monotonic() + SWAP_SECONDS
        while not stop.is_set() and time.monotonic() < deadline:
            os.symlink(secret, incoming)
            os.replace(incoming, object_path)
            time.sleep(0.0005)
            os.link(keep, incoming)
            os.replace(incoming, object_path)
            swaps += 1
            time.sleep(0.0005)

    answers: dict[int, int] = {}
    with serve(create_app(base_dir=base_dir)) as url:
        swapper = threading.Thread(target=swap, daemon=True)
        swapper.start()
        try:
            for _ in range(DOWNLOADS):
                status, body = fetch(f"{url}/artifacts/{run_id}/1/weights")
                assert b"SECRET" not in body
                assert status in (200, 500), status
                if status == 200:
                    assert body == CONTENT
                answers[status] = answers.get(status, 0) + 1
        finally:
            stop.set()
            swapper.join(10)
    assert swaps > DOWNLOADS / 4 and answers.get(200, 0) > 0, (swaps, answers)


@pytest.mark.parametrize("where", ["object", "folder"])
def test_a_symlinked_object_or_object_folder_is_refused(tmp_path, serve, where):
    base_dir, run_id, object_path = logged_artifact(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / object_path.name).write_bytes(CONTENT)  # even with the right content
    if where == "object":
        object_path.unlink()
        object_path.symlink_to(outside / object_path.name)
    else:
        object_path.unlink()
        object_path.parent.rmdir()
        object_path.parent.symlink_to(outside)
    with serve(create_app(base_dir=base_dir)) as url:
        status, body = fetch(f"{url}/artifacts/{run_id}/1/weights")
    assert status == 500 and b"corrupted" in body and CONTENT not in body
    assert str(tmp_path).encode() not in body


def test_a_fifo_in_place_of_an_object_is_refused_at_once(tmp_path, serve):
    base_dir, run_id, object_path = logged_artifact(tmp_path)
    object_path.unlink()
    os.mkfifo(object_path)
    with serve(create_app(base_dir=base_dir)) as url:
        started = time.monotonic()
        status, body = fetch(f"{url}/artifacts/{run_id}/1/weights")
    assert status == 500 and b"corrupted" in body and time.monotonic() - started < 10


def test_a_corrupted_object_is_refused_without_showing_store_paths(tmp_path, serve, caplog):
    base_dir, run_id, object_path = logged_artifact(tmp_path)
    object_path.chmod(0o644)
    object_path.write_bytes(b"tampered")
    with serve(create_app(base_dir=base_dir)) as url:
        status, body = fetch(f"{url}/artifacts/{run_id}/1/weights")
    assert status == 500
    text = body.decode()
    assert "weights v1 is corrupted" in text
    assert str(tmp_path) not in text and "objects" not in text
    assert str(object_path) in caplog.text  # the detail is in the server's log


def test_the_server_log_escapes_control_characters_of_an_artifact_name(tmp_path, serve, caplog):
    base_dir = tmp_path / "neural_experiments"
    source = tmp_path / "weights.bin"
    source.write_bytes(b"weights")
    with ExperimentTracker("downloads", base_dir=str(base_dir), auto_visualize=False) as tracker:
        version = tracker.log_artifact(source, name="evil\x1b]0;title\x07")
    version.path.unlink()
    with serve(create_app(base_dir=base_dir)) as url:
        status, _ = fetch(f"{url}/artifacts/{tracker.run_id}/1/evil%1B%5D0%3Btitle%07")
    assert status == 500
    assert "evil\\x1b]0;title\\x07" in caplog.text and "\x1b" not in caplog.text


def test_an_artifact_named_with_a_newline_downloads(tmp_path, serve):
    """Werkzeug's <path:> converter stops at a newline: such a name answered 404."""
    source = tmp_path / "weights.bin"
    source.write_bytes(b"weights")
    with ExperimentTracker("downloads", base_dir=str(tmp_path / "store"), auto_visualize=False) as tracker:
        tracker.log_artifact(source, name="two\nlines")
    with serve(create_app(base_dir=tmp_path / "store")) as url:
        status, body = fetch(f"{url}/artifacts/{tracker.run_id}/1/two%0Alines")
    assert (status, body) == (200, b"weights")


def download_until(url: str, done: threading.Event, failures: list, bodies: list) -> None:
    """Download version 1 of the replaced artifact until ``done``: 200, one of the written
    contents, and the SHA-256 the response names (its ETag)."""
    while not done.is_set() and len(failures) < 5:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body, etag = response.read(), response.headers["ETag"].strip('"')
        except urllib.error.HTTPError as error:
            failures.append(f"{error.code}: {error.read()[:200]!r}")
            continue
        digest = hashlib.sha256(body).hexdigest()
        if digest != etag or HASHES.get(digest) != body:
            failures.append(f"{len(body)} bytes, SHA-256 {digest}, ETag {etag}")
        bodies.append(digest)


def test_downloads_never_fail_while_a_versionless_artifact_is_replaced(store_kwargs, tmp_path, serve):
    """version=False frees the replaced object: a download that finds it gone serves the
    version replacing it (it answered 500 "corrupted" about one time in ten)."""
    with serve(create_app(**store_kwargs)) as url:
        read_while_replacing(store_kwargs, tmp_path / "ckpt.bin", lambda run_id, *rest: download_until(
            f"{url}/artifacts/{run_id}/1/{NAME}", *rest))
