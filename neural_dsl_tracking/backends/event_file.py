"""A TensorBoard event file, written directly: TFRecord framing of serialized ``Event`` protos.

TensorBoard's own ``EventFileWriter`` queues every event to a thread that checksums it in pure
Python (about 100 us per event); here each record is framed in the caller's thread with the
C CRC32C of ``google-crc32c`` (about 1 us), and the file is flushed once per batch. Format::

    uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

The file name follows TensorBoard's (``events.out.tfevents.<time>.<host>.<pid>.<n>``), and
the first record is the ``file_version`` event readers expect.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LENGTH = struct.Struct("<Q")
CRC = struct.Struct("<I")
MASK_DELTA = 0xA282EAD8
_file_numbers = itertools.count()


def _crc32c() -> Callable[[bytes], int]:
    """The fastest CRC32C available: google-crc32c's C code, else TensorBoard's Python."""
    try:
        from google_crc32c import value

        return value
    except ImportError:
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c

        return crc32c


def masked_crc32c() -> Callable[[bytes], int]:
    """TFRecord's checksum of some bytes (their CRC32C, rotated and offset), computed with
    the fastest CRC32C available: for writing records and for checking those read."""
    crc32c = _crc32c()

    def masked(data: bytes) -> int:
        crc = crc32c(data)
        return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF

    return masked


class EventFile:
    """One append-only event file in ``log_dir``. ``event_type`` is TensorBoard's Event proto."""

    def __init__(self, log_dir: Path, event_type: Any) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_file_numbers)}")
        self.path = log_dir / name
        self._masked = masked_crc32c()
        self._file = self.path.open("ab")
        self.write(event_type(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def write(self, event: Any) -> None:
        """Append one Event proto (buffered until :meth:`flush`)."""
        data = event.SerializeToString()
        length = LENGTH.pack(len(data))
        self._file.write(length + CRC.pack(self._masked(length)) + data
                         + CRC.pack(self._masked(data)))

    def flush(self) -> None:
        """Hand what is written to the operating system, where readers see it."""
        self._file.flush()

    @property
    def size(self) -> int:
        """Bytes written so far (flushed or not)."""
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
