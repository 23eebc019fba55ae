"""Opening an artifact's object for download: once, without following links, then checked.

The object is opened through its folders' descriptors (``objects/``, then ``ab/`` without
following a link, then the file without following a link and without blocking on a FIFO),
checked to be a regular file of the recorded size and SHA-256, and the same open file is
sent. Swapping the object for a symlink at any moment can only make the download fail.
"""

from __future__ import annotations

import errno
import os
import re
from typing import Any, BinaryIO

from neural_dsl_tracking.errors import ArtifactCorruptedError
from neural_dsl_tracking.tracking.objects import ObjectMissingError, check_content

_SHA256 = re.compile(r"[0-9a-f]{64}")
_NO_LINK = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_REASONS = {errno.ELOOP: "is a symbolic link or lies under one",
            errno.ENOTDIR: "lies under a symbolic link or a file"}


def open_object(version: Any) -> BinaryIO:
    """The object of an ``ArtifactVersion``, open at its start and verified.

    ``ArtifactCorruptedError`` (with the object's path, for the server's log) when the
    object is missing (``ObjectMissingError``), is or sits under a symlink, is not a regular
    file, or does not have the recorded size and SHA-256.
    """
    path = version.path
    label = f"artifact {version.name} v{version.version}: object {path}"
    if not _SHA256.fullmatch(version.sha256) or path.name != version.sha256 or path.parent.name != version.sha256[:2]:
        raise ArtifactCorruptedError(f"{label} is not named by the recorded SHA-256 {version.sha256!r}")
    try:
        fd = _open_below(path.parent.parent, path.parent.name, path.name)
    except FileNotFoundError:
        raise ObjectMissingError(f"{label} is missing") from None
    except OSError as error:
        reason = _REASONS.get(error.errno, error.strerror)
        raise ArtifactCorruptedError(f"{label} {reason}") from None
    handle = os.fdopen(fd, "rb")
    try:
        check_content(handle, version.sha256, version.size, label)
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle


def _open_below(root: Any, folder: str, name: str) -> int:
    """``root/folder/name`` opened read-only; neither ``folder`` nor ``name`` may be a link."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        folder_fd = os.open(folder, _NO_LINK | os.O_DIRECTORY, dir_fd=root_fd)
    finally:
        os.close(root_fd)
    try:
        return os.open(name, _NO_LINK | os.O_NONBLOCK, dir_fd=folder_fd)  # a FIFO must not block
    finally:
        os.close(folder_fd)


