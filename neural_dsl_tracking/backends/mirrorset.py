"""MirrorSet: the mirrors of one run, working in a child process.

The SDKs do real CPU work per point (MLflow's SQLAlchemy store, W&B's history encoding,
protobuf events); in the training process that work would hold the GIL and slow training.
So a MirrorSet starts ``python -m neural_dsl_tracking.backends.child``, which runs one
worker thread per mirror (:mod:`~neural_dsl_tracking.backends.workers`: batching, retries
with backoff, one warning, bounded finish). Here, a call only pickles its arguments and
queues the bytes; a sender thread writes them to the child's pipe and a reader thread
relays the child's failures (to ``on_failure``) and log records (to the
``neural_dsl_tracking.backends`` logger). If the child dies, that is reported as a failure
of every mirror and the run goes on; the local store never depended on it.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from neural_dsl_tracking.backends import frames
from neural_dsl_tracking.backends.base import LOG, MetricColumns, MetricPoint, OnFailure, RunInfo
from neural_dsl_tracking.child_process import spawn_module
from neural_dsl_tracking.dotted import flatten

FINISH_GRACE = 5.0
"""Seconds ``finish`` waits for the child beyond its timeout before ending it."""

MirrorSpec = tuple[str, RunInfo, dict[str, Any]]


class MirrorSet:
    """Mirror one run to the given mirrors. Every method returns at once; ``finish`` waits,
    bounded, and returns one line per mirror that could not send everything."""

    def __init__(self, specs: Sequence[MirrorSpec], on_failure: OnFailure) -> None:
        self.names = [name for name, _, _ in specs]
        self._on_failure = on_failure
        self._outbox: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._finished = False
        self._reports: list[str] | None = None
        self._replied = threading.Event()
        self._stopped_here = False  # finish ended the child: its end is no surprise
        self._process: subprocess.Popen[bytes] | None = None
        if specs:
            self._start(specs)

    def __len__(self) -> int:
        return len(self.names)

    # -- the tracker's calls -----------------------------------------------------------
    def params(self, params: Mapping[str, Any]) -> None:
        """Queue hyperparameters (nested dicts allowed); they are copied now."""
        try:
            self._send(("params", dict(params)))
        except (pickle.PicklingError, TypeError, AttributeError):
            self._send(("params", {k: str(v) for k, v in flatten(params).items()}))

    def metrics(self, batch: Sequence[MetricPoint] | MetricColumns) -> None:
        """Queue flushed points ``(key, step, value, unix seconds)``, or columns per key (NumPy
        arrays pass as raw bytes; the child makes the points, so this costs no per-point work
        here, where it would compete with training for the GIL). Arrays must not change later."""
        if batch:
            self._send(("metrics", batch))

    def artifact(self, path: str | Path, name: str, version: int, sha256: str,
                 aliases: Iterable[str] = (), filename: str | None = None) -> None:
        """Queue one stored artifact version. ``path`` is read when sent, so it should be
        the immutable stored object; ``filename`` is the name the file was logged with.
        A file whose SHA-256 no longer matches is never published."""
        self._send(("artifact", Path(path), name, int(version), sha256, tuple(aliases), filename))

    def figure(self, path: str | Path, name: str) -> None:
        """Queue a plot image; the file is read when sent, so the newest version wins."""
        self._send(("figure", Path(path), name))

    def finish(self, status: str = "completed", timeout: float = 30.0) -> list[str]:
        """Send what is queued and close the runs, within about ``timeout`` seconds."""
        if self._finished or self._process is None:
            self._finished = True
            return []
        self._finished = True
        self._send(("finish", status, time.time() + timeout), final=True)
        if not self._replied.wait(timeout + FINISH_GRACE):
            self._stopped_here = True
            self._end_child()
            report = (f"{', '.join(self.names)}: the mirror process did not finish within "
                      f"{timeout:g} s and was stopped; what it had not sent is lost to the mirrors")
            LOG.warning(report)
            return [report]
        try:
            self._process.wait(FINISH_GRACE)
        except subprocess.TimeoutExpired:
            self._end_child()
        self._from_child.close()
        return list(self._reports or [])  # the child has logged them

    # -- the child process -------------------------------------------------------------
    def _start(self, specs: Sequence[MirrorSpec]) -> None:
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        try:
            self._process = spawn_module(
                "neural_dsl_tracking.backends.child", [str(to_child_read), str(from_child_write)],
                pass_fds=(to_child_read, from_child_write), stdin=subprocess.DEVNULL)
        finally:
            os.close(to_child_read)
            os.close(from_child_write)
        # Raw fd, no buffer: a process forked from this one (a DataLoader worker) must not
        # hold unflushed frames that it could write again at its exit.
        self._to_child = to_child_write
        self._from_child = os.fdopen(from_child_read, "rb")
        self._outbox.append(frames.encode(("open", [(n, r, dict(o)) for n, r, o in specs])))
        for target, name in ((self._write_loop, "send"), (self._read_loop, "receive")):
            threading.Thread(target=target, name=f"neural-mirrors-{name}", daemon=True).start()

    def _send(self, message: tuple[Any, ...], final: bool = False) -> None:
        if self._process is None:
            return
        data = frames.encode(message)
        with self._cond:
            if self._closed:
                return
            self._outbox.append(data)
            self._closed = final
            self._cond.notify()

    def _write_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._outbox and not self._closed:
                        self._cond.wait()
                    if not self._outbox:
                        return
                    chunk = b"".join(self._outbox)
                    self._outbox.clear()
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self._to_child, view):]
        except OSError:
            pass  # the child is gone; the reader reports it
        finally:
            os.close(self._to_child)

    def _read_loop(self) -> None:
        while (message := frames.read(self._from_child)) is not None:
            kind = message[0]
            if kind == "log":
                LOG.log(message[1], message[2])
            elif kind == "failure":
                self._report(message[1], message[2])
            elif kind == "finished":
                self._reports = message[1]
                self._replied.set()
                return
        code = self._process.wait() if self._process else None
        if self._stopped_here:
            return
        message = (f"the mirror process ended unexpectedly (exit code {code}); "
                   "the run continues locally")
        LOG.warning(message)
        for name in self.names:
            self._report(name, message)
        self._reports = [f"{', '.join(self.names)}: not sent: everything after the mirror "
                         f"process ended (exit code {code})"]
        with self._cond:
            self._closed = True
            self._outbox.clear()
            self._cond.notify()
        self._replied.set()

    def _report(self, backend: str, message: str) -> None:
        try:
            self._on_failure(backend, message)
        except Exception:  # noqa: BLE001 - a broken callback must not stop mirroring
            LOG.exception("on_failure callback raised for %s", backend)

    def _end_child(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
