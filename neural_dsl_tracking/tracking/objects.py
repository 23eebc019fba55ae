"""Content-addressed artifact objects: ``objects/ab/abcdef...`` named by their SHA-256.

A file is copied and hashed in one pass into a temporary file inside the objects
directory, synced, then renamed into place, so an object is either complete or absent.
Identical content is stored once.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from neural_dsl_tracking.errors import ArtifactCorruptedError, TrackingError

CHUNK = 8 * 1024 * 1024


class ObjectStore:
    """The ``objects/`` directory of a store."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, source: str | Path) -> tuple[str, int]:
        """Copy ``source`` in as an object; returns (sha256, size). Adds no bytes if present."""
        source = Path(source)
        if not source.is_file():
            what = "is a directory, not a file" if source.is_dir() else "does not exist"
            raise TrackingError(f"cannot log artifact {source}: the file {what}")
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=self.root)
        try:
            digest, size = _copy_and_hash(source, fd)
            target = self.path(digest)
            if target.exists() and target.stat().st_size == size:
                os.unlink(tmp_name)
                return digest, size
            target.parent.mkdir(exist_ok=True)
            os.chmod(tmp_name, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            os.replace(tmp_name, target)
            _fsync_dir(target.parent)
            return digest, size
        except BaseException as error:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            if isinstance(error, OSError):
                raise TrackingError(f"cannot store artifact {source}: {error}") from None
            raise

    def verify(self, sha256: str, size: int, label: str) -> Path:
        """The object's path after checking its length and SHA-256; ArtifactCorruptedError if not."""
        path = self.path(sha256)
        if not path.is_file():
            raise ArtifactCorruptedError(f"artifact {label}: object {path} is missing")
        actual_size = path.stat().st_size
        if actual_size != size:
            raise ArtifactCorruptedError(
                f"artifact {label}: object {path} has {actual_size} bytes, expected {size}")
        actual = hash_file(path)
        if actual != sha256:
            raise ArtifactCorruptedError(
                f"artifact {label}: object {path} is corrupted (SHA-256 {actual}, "
                f"expected {sha256})")
        return path

    def delete(self, sha256: str) -> int:
        """Remove one object; returns the bytes freed."""
        path = self.path(sha256)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size


def hash_file(path: Path) -> str:
    """SHA-256 of a file, read in large chunks."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while True:
            n = handle.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
    return digest.hexdigest()


def _copy_and_hash(source: Path, fd: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    size = 0
    with open(source, "rb", buffering=0) as src, open(fd, "wb", buffering=0) as dst:
        while True:
            n = src.readinto(buffer)
            if not n:
                break
            chunk = view[:n]
            digest.update(chunk)
            written = 0
            while written < n:
                written += dst.write(chunk[written:])
            size += n
        os.fsync(dst.fileno())
    return digest.hexdigest(), size


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
