"""Length-prefixed pickle frames: how a MirrorSet and its child process talk over pipes.

Both ends are this package, so pickle is safe here; nothing else writes to these pipes.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, BinaryIO

HEADER = struct.Struct("<I")


def encode(message: Any) -> bytes:
    """``message`` as one frame, ready to write."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


def read(stream: BinaryIO) -> Any | None:
    """The next message, or None at the end of the stream (the other side is gone)."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (length,) = HEADER.unpack(header)
    payload = stream.read(length)
    if len(payload) < length:
        return None
    return pickle.loads(payload)
