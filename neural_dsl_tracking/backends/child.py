"""The mirror process: runs :class:`MirrorWorkers` for a MirrorSet in the parent process.

Started as ``python -m neural_dsl_tracking.backends.child IN_FD OUT_FD`` in its own session
(a Ctrl-C in the terminal reaches the training program, which then finishes the run and
with it this process), at a lower CPU priority than training (nice +10). Reads frames from IN_FD: first ``("open", [(name, run, options)])``,
then ``(method, *args)`` calls and finally ``("finish", status, deadline)``; writes
``("failure", backend, message)``, ``("log", level, message)`` and at the end
``("finished", reports)`` to OUT_FD. If the parent disappears without finishing, the runs
are closed with status ``crashed``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, BinaryIO

from neural_dsl_tracking.backends import frames
from neural_dsl_tracking.backends.registry import create_mirror
from neural_dsl_tracking.backends.base import LOG, describe_error
from neural_dsl_tracking.backends.workers import MirrorWorkers
from neural_dsl_tracking.child_process import yield_cpu_to_training

ORPHAN_FINISH_TIMEOUT = 30.0
CALLS = ("params", "metrics", "artifact", "figure")


class _Replies:
    """Thread-safe writer of frames to the parent; silent once the parent is gone."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        data = frames.encode(message)
        with self._lock:
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass


class _ForwardToParent(logging.Handler):
    def __init__(self, replies: _Replies) -> None:
        super().__init__(logging.DEBUG)
        self._replies = replies

    def emit(self, record: logging.LogRecord) -> None:
        self._replies.send(("log", record.levelno, record.getMessage()))


def serve(inbox: BinaryIO, outbox: BinaryIO) -> None:
    replies = _Replies(outbox)
    LOG.addHandler(_ForwardToParent(replies))
    LOG.setLevel(logging.DEBUG)
    LOG.propagate = False  # the parent logs it, once
    opening = frames.read(inbox)
    if opening is None:
        return
    _, specs = opening
    workers = MirrorWorkers(
        [create_mirror(name, run, options) for name, run, options in specs],
        lambda backend, message: replies.send(("failure", backend, message)),
    )
    status, deadline = "crashed", time.time() + ORPHAN_FINISH_TIMEOUT
    while (message := frames.read(inbox)) is not None:
        if message[0] == "finish":
            _, status, deadline = message
            break
        if message[0] in CALLS:
            getattr(workers, message[0])(*message[1:])
    reports = workers.finish(status, max(0.0, deadline - time.time()))
    replies.send(("finished", reports))


def main(argv: list[str]) -> int:
    yield_cpu_to_training()
    # Metric batches arrive as NumPy arrays, and unpickling the first one would import NumPy
    # in this thread while the mirror threads import their SDKs, which import it too: two
    # threads importing one package can get it half-initialised (ImportError). So import it
    # before any thread starts.
    import numpy  # noqa: F401

    in_fd, out_fd = int(argv[1]), int(argv[2])
    with os.fdopen(in_fd, "rb") as inbox, os.fdopen(out_fd, "wb") as outbox:
        try:
            serve(inbox, outbox)
        except Exception as error:  # noqa: BLE001 - told to the parent, not dumped on its console
            LOG.error("the mirror process failed: %s", describe_error(error))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
