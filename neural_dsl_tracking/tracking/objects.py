"""Content-addressed artifact objects: ``objects/ab/abcdef...`` named by their SHA-256.

A file is copied and hashed in one pass into a temporary file inside the objects
directory, synced, then renamed into place, so an object is either complete or absent.
Identical content is stored once. A temporary file left by a process killed between the
copy and the rename is removed once it is ``STALE_INCOMING`` old.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
import stat
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

from neural_dsl_tracking.errors import ArtifactCorruptedError, TrackingError

if TYPE_CHECKING:
    from neural_dsl_tracking.tracking.records import ArtifactVersion

CHUNK = 4 * 1024 * 1024
_IN_FLIGHT = 4
_ALIGN = 4096
_DIRECT = getattr(os, "O_DIRECT", 0)
_local = threading.local()
_INCOMING = ".incoming-"
SMALL_OBJECT = 1 << 20
"""Files up to this many bytes are staged from memory in the calling thread (no writer
threads), and not copied at all when the store already holds the same bytes (a run's source
file, logged by every run of a sweep)."""
STALE_INCOMING = 3600.0
"""Seconds since its last write after which a staged file counts as left by a killed process
(a copy in progress writes every few milliseconds, and placing follows its last write within
seconds, minutes at worst on a busy store)."""


class ObjectMissingError(ArtifactCorruptedError):
    """An artifact's object is not in the store (freed by a replacing write, or lost)."""


class ObjectStore:
    """The ``objects/`` directory of a store."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._swept = False

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def stage(self, source: str | Path) -> StagedObject:
        """Copy ``source`` in under a temporary name and hash it (a small file whose bytes the
        store holds already is not copied); ``place()`` on the result (inside the transaction
        that records it) puts it at its content address."""
        source = Path(source)
        with os.fdopen(_open_regular(source), "rb", buffering=0) as src:
            self.root.mkdir(parents=True, exist_ok=True)
            self._sweep_once()
            if os.fstat(src.fileno()).st_size <= SMALL_OBJECT:
                return self._stage_small(src.readall(), source)
            return self._stage(src, source)

    def _sweep_once(self) -> None:
        """The first time this store stages or frees an object: remove stale staged files."""
        if not self._swept:
            self._swept = True
            self.remove_stale_incoming()

    def remove_stale_incoming(self, older_than: float = STALE_INCOMING) -> None:
        """Remove the staged files (``.incoming-*``) last written more than ``older_than``
        seconds ago, left by a process killed between staging and placing. One listing of
        the objects folder's top level; a file it cannot remove is left."""
        limit = time.time() - older_than
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return
        for entry in entries:
            try:
                if (entry.name.startswith(_INCOMING) and entry.is_file(follow_symlinks=False)
                        and entry.stat(follow_symlinks=False).st_mtime < limit):
                    os.unlink(entry.path)
            except OSError:  # placed meanwhile, or not ours to remove: never fails a write
                continue

    def _stage(self, src: BinaryIO, source: Path) -> StagedObject:
        temp, digest, size = self._staged(source, lambda fd: _copy_and_hash(src, fd))
        return StagedObject(temp, self.path(digest), digest, size)

    def _stage_small(self, data: bytes, source: Path) -> StagedObject:
        """A small file's object, written from memory; none staged when the store holds these
        bytes already (placing writes them then only if that object was freed meanwhile)."""
        digest = hashlib.sha256(data).hexdigest()

        def write() -> Path:
            return self._staged(source, lambda fd: _write_synced(fd, data, digest))[0]

        target = self.path(digest)
        if _holds(target, data):
            return StagedObject(None, target, digest, len(data), rewrite=write)
        return StagedObject(write(), target, digest, len(data))

    def _staged(self, source: Path, fill: Callable[[int], tuple[str, int]]) -> tuple[Path, str, int]:
        """A read-only temporary file in ``objects/`` written and synced by ``fill(fd)``, which
        returns the content's SHA-256 and size: (its path, the SHA-256, the size)."""
        fd, tmp_name = tempfile.mkstemp(prefix=_INCOMING, dir=self.root)
        try:
            try:
                digest, size = fill(fd)
            finally:
                os.close(fd)
            os.chmod(tmp_name, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        except BaseException as error:
            os.unlink(tmp_name)
            if isinstance(error, OSError):
                raise TrackingError(f"cannot store artifact {source}: {error}") from None
            raise
        return Path(tmp_name), digest, size

    def verify(self, sha256: str, size: int, label: str) -> Path:
        """The object's path after checking, on one open file, that it is a regular file of
        ``size`` bytes and SHA-256 ``sha256``; ``ObjectMissingError`` when it is not in the
        store, ``ArtifactCorruptedError`` when it is not that content."""
        path = self.path(sha256)
        where = f"artifact {label}: object {path}"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block
        except FileNotFoundError:
            raise ObjectMissingError(f"{where} is missing") from None
        except OSError as error:
            raise ArtifactCorruptedError(f"{where} cannot be read: {error.strerror}") from None
        with os.fdopen(fd, "rb", buffering=0) as handle:
            check_content(handle, sha256, size, where)
        return path

    def verify_version(self, version: ArtifactVersion) -> Path:
        """``verify`` for one artifact version."""
        return self.verify(version.sha256, version.size, f"{version.name} v{version.version}")

    def delete(self, sha256: str) -> int:
        """Remove one object; returns the bytes freed."""
        self._sweep_once()
        path = self.path(sha256)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size


class StagedObject:
    """A complete, synced copy of an artifact in ``objects/`` under a temporary name.

    ``place()`` renames it to ``objects/<ab>/<sha256>``, replacing an existing object (no
    bytes added, and one damaged on disk is healed). Store writes call it inside the
    transaction that adds the version row, under the same lock as freeing an object, so a
    concurrent deletion never removes an object a version was just recorded for. Use it as
    a context manager: leaving removes the copy if it was never placed.
    """

    def __init__(self, temp: Path | None, target: Path, sha256: str, size: int, *,
                 rewrite: Callable[[], Path] | None = None) -> None:
        self.temp, self.target, self.sha256, self.size = temp, target, sha256, size
        self._rewrite = rewrite  # no ``temp``: the object was in the store; stages it again

    def place(self) -> None:
        """Put the object at its address (again after a retried transaction: a no-op)."""
        if self.temp is None and self._rewrite is not None and not self.target.is_file():
            self.temp = self._rewrite()  # the object found when staging was freed since
        if self.temp is None or not self.temp.exists():
            if not self.target.is_file():
                raise TrackingError(f"artifact object {self.target} vanished while being stored")
            return
        self.target.parent.mkdir(exist_ok=True)
        try:
            os.replace(self.temp, self.target)
            _fsync_dir(self.target.parent)
        except OSError as error:
            raise TrackingError(f"cannot store artifact object {self.target}: {error}") from None

    def __enter__(self) -> "StagedObject":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)


def hash_file(path: Path) -> str:
    """SHA-256 of a file, read in large chunks."""
    with open(path, "rb", buffering=0) as handle:
        return _hash_stream(handle)


def hash_regular_file(source: Path, what: str) -> str:
    """SHA-256 of ``source``, or a TrackingError about ``what`` it is unless it is a regular
    file (see ``_open_regular``: a FIFO is never waited on)."""
    with os.fdopen(_open_regular(source, what), "rb", buffering=0) as handle:
        return _hash_stream(handle)


def check_content(handle: BinaryIO, sha256: str, size: int, where: str) -> None:
    """On an object opened once: a regular file of ``size`` bytes and SHA-256 ``sha256``, else
    ``ArtifactCorruptedError`` starting with ``where``. Reads ``handle`` to its end."""
    info = os.fstat(handle.fileno())
    if not stat.S_ISREG(info.st_mode):
        raise ArtifactCorruptedError(f"{where} is not a regular file")
    if info.st_size != size:
        raise ArtifactCorruptedError(f"{where} has {info.st_size} bytes, expected {size}")
    actual = _hash_stream(handle)
    if actual != sha256:
        raise ArtifactCorruptedError(f"{where} is corrupted (SHA-256 {actual}, expected {sha256})")


def _hash_stream(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(min(CHUNK, os.fstat(handle.fileno()).st_size + 1))  # a small file: no 4 MiB to clear
    view = memoryview(buffer)
    while True:
        n = handle.readinto(buffer)
        if not n:
            break
        digest.update(view[:n])
    return digest.hexdigest()


class _Destination:
    """Writes chunks in order; uses O_DIRECT while chunks stay block-aligned.

    Writing through the page cache costs far more than hashing on many machines; direct
    I/O skips it, and falls back to ordinary writes where the file system refuses it.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        self.direct = False
        if _DIRECT:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, self.flags | _DIRECT)
                self.direct = True
            except OSError:
                pass

    def _buffered(self) -> None:
        fcntl.fcntl(self.fd, fcntl.F_SETFL, self.flags)
        self.direct = False

    def write(self, chunk: memoryview, offset: int) -> None:
        if self.direct and len(chunk) % _ALIGN:
            self._buffered()
        written = 0
        while written < len(chunk):
            try:
                written += os.pwrite(self.fd, chunk[written:], offset + written)
            except OSError as error:
                if not (self.direct and error.errno == errno.EINVAL):
                    raise
                self._buffered()


def _buffers() -> list[memoryview]:
    """Page-aligned read buffers, kept per thread (fresh memory is slow to touch on VMs)."""
    views = getattr(_local, "views", None)
    if views is None:
        views = _local.views = [memoryview(mmap.mmap(-1, CHUNK)) for _ in range(_IN_FLIGHT)]
    return views


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is: ``a regular file``, ``a FIFO``, ``a socket``..."""
    kinds = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
             (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def _open_regular(source: Path, what: str = "artifact") -> int:
    """A read descriptor on ``source``, or a TrackingError (``cannot log <what> <source>: ...``)
    unless it is a regular file. Opened non-blocking and checked on the descriptor, so a FIFO
    is never waited on."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TrackingError(f"cannot log {what} {source}: the file does not exist") from None
    except OSError as error:  # a socket cannot be opened at all: say what it is
        try:
            mode = os.stat(source).st_mode
        except OSError:
            mode = stat.S_IFREG
        if stat.S_ISREG(mode):
            raise TrackingError(f"cannot log {what} {source}: {error.strerror or error}") from None
        raise _not_regular(source, mode, what) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(source, mode, what)
    return fd


def _not_regular(source: Path, mode: int, what: str) -> TrackingError:
    return TrackingError(f"cannot log {what} {source}: it is {file_kind(mode)}; "
                         "only regular files can be logged")


def _copy_and_hash(src: BinaryIO, fd: int) -> tuple[str, int]:
    """Copy ``src`` to ``fd`` and hash it in one read pass; two threads write (at their
    offsets, keeping two requests in flight) while this one reads and hashes the next chunk."""
    digest = hashlib.sha256()
    destination = _Destination(fd)
    views = _buffers()
    size = 0
    with ThreadPoolExecutor(2, "neural-write") as writer:
        pending: list[Future | None] = [None] * len(views)
        index = 0
        while True:
            slot = index % len(views)
            if pending[slot] is not None:
                pending[slot].result()
            n = src.readinto(views[slot])
            if not n:
                break
            chunk = views[slot][:n]
            pending[slot] = writer.submit(destination.write, chunk, size)
            digest.update(chunk)
            size += n
            index += 1
        for future in pending:
            if future is not None:
                future.result()
    os.fsync(fd)
    return digest.hexdigest(), size


def _write_synced(fd: int, data: bytes, sha256: str) -> tuple[str, int]:
    """Write ``data`` (of SHA-256 ``sha256``) to ``fd`` and sync it; returns (sha256, size)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)
    return sha256, len(data)


def _holds(path: Path, data: bytes) -> bool:
    """True when ``path`` is a regular file of exactly ``data`` (checked on one open file; a
    FIFO is never waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    with os.fdopen(fd, "rb", buffering=0) as handle:
        try:
            info = os.fstat(fd)
            return stat.S_ISREG(info.st_mode) and info.st_size == len(data) and handle.readall() == data
        except OSError:
            return False


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
