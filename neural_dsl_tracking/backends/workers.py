"""MirrorWorkers: feeds every mirror from its own background thread, never blocking the caller.

This is the engine; :class:`~neural_dsl_tracking.backends.mirrorset.MirrorSet` runs it in a
child process so that the SDKs' CPU work never competes with training for the GIL.

Each mirror gets one daemon thread and one queue. A call on the set only appends to the
queues. A worker sends its queue in order, in batches of at most the mirror's
``metrics_per_call`` points (consecutive small flushes are merged). When a call fails:

* a permanent error (SDK not installed, input the service rejects) drops that call, or
  disables the mirror if it could not even start;
* any other error (server down, timeout) is retried with exponential backoff
  (0.5 s doubling to 30 s), keeping everything queued behind it, up to
  ``MAX_PENDING_POINTS`` metric points.

Either way the first failure logs one warning (``neural_dsl_tracking.backends`` logger)
and is reported through ``on_failure``; the local store, written independently by the
tracker, keeps every point. Until ``finish``, the workers share a
:class:`~neural_dsl_tracking.backends.pacing.Pacer` budget of busy time, so that they trail
training rather than compete with it; ``finish`` drains the queues at full speed within a
time bound and returns, per mirror, what could not be sent.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neural_dsl_tracking.dotted import flatten
from neural_dsl_tracking.backends.base import (
    LOG,
    ArtifactRef,
    MetricColumns,
    MetricPoint,
    Mirror,
    OnFailure,
    as_points,
    describe_error,
)
from neural_dsl_tracking.backends.pacing import Pacer

FIRST_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 30.0
MAX_PENDING_POINTS = 2_000_000
FINISH_ATTEMPTS = 3
"""After ``finish``, consecutive failed attempts before giving up (1 if already failing)."""
FINISH_NOTICE_SECONDS = 1.0
"""``finish`` says how much it is sending when that should take at least this long."""
HASH_CHUNK = 1 << 20
MAX_FAILURE_REPORTS = 5
"""``on_failure`` is called once per failure episode (a run of failed attempts), at most
this many times per mirror; the warning is logged only once."""


_STARTING = threading.Lock()
"""Mirrors start one at a time: their SDKs import shared packages (NumPy, protobuf, ...) as
they start, and two threads importing one package at once can get it half-initialised."""
START_TURN_WAIT = 15.0
"""Seconds a mirror waits for another one's start (importing takes a few) before starting
anyway: a start stuck on an unreachable service must not hold the others up."""


@dataclass
class _Op:
    kind: str  # "params" | "metrics" | "artifact" | "figure" | "finish"
    payload: Any


@dataclass
class _Unsent:
    """What one mirror could not send, for ``finish``'s report."""

    points: int = 0
    param_keys: int = 0
    artifacts: list[str] = field(default_factory=list)
    figures: set[str] = field(default_factory=set)
    end_status: str | None = None
    reasons: list[str] = field(default_factory=list)

    def add(self, op: _Op) -> None:
        if op.kind == "metrics":
            self.points += len(op.payload)
        elif op.kind == "params":
            self.param_keys += len(flatten(op.payload))
        elif op.kind == "artifact":
            self.artifacts.append(f"{op.payload.name} v{op.payload.version}")
        elif op.kind == "figure":
            self.figures.add(op.payload[1])
        else:
            self.end_status = op.payload

    def reason(self, text: str) -> None:
        if text not in self.reasons:
            self.reasons.append(text)

    def describe(self, mirror: str) -> str | None:
        parts = []
        if self.points:
            parts.append(f"{self.points} metric points")
        if self.param_keys:
            parts.append(f"{self.param_keys} parameters")
        if self.artifacts:
            parts.append("artifacts " + ", ".join(self.artifacts))
        if self.figures:
            parts.append("plots " + ", ".join(sorted(self.figures)))
        if self.end_status:
            parts.append(f"the run's end (status {self.end_status})")
        if not parts:
            return None
        why = "; ".join(self.reasons)
        return f"{mirror}: not sent: {', '.join(parts)}" + (f" ({why})" if why else "")


class ArtifactChangedError(ValueError):
    """The file behind a logged artifact version no longer has that version's SHA-256."""


def check_unchanged(artifact: ArtifactRef) -> None:
    """Refuse to publish bytes other than the version's own (the file was overwritten)."""
    digest = hashlib.sha256()
    with artifact.path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != artifact.sha256:
        raise ArtifactChangedError(
            f"{artifact.path} changed after {artifact.name} v{artifact.version} was logged; "
            "its original bytes are in the local store only"
        )


class _Worker:
    """One mirror, its queue and the thread that drains it."""

    def __init__(self, mirror: Mirror, on_failure: OnFailure, pacer: Pacer) -> None:
        self.mirror = mirror
        self._on_failure = on_failure
        self._pacer = pacer
        self._seconds_per_point = 0.0  # learnt from the metrics calls, for the pacer
        self._ops: deque[_Op] = deque()
        self._cond = threading.Condition()
        self._pending_points = 0
        self._unsent = _Unsent()
        self._started = False
        self._closing = False
        self._deadline = float("inf")
        self._finish_attempts = FINISH_ATTEMPTS
        self._stopped = False
        self._error: str | None = None
        self._warned = False
        self._reports = 0
        self._thread = threading.Thread(
            target=self._run, name=f"neural-mirror-{mirror.name}", daemon=True
        )
        self._thread.start()

    # -- caller side -------------------------------------------------------------------
    def put(self, op: _Op) -> None:
        overflow = f"backlog over {MAX_PENDING_POINTS} points"
        with self._cond:
            if self._closing:
                LOG.debug("%s mirror: %s after finish() ignored", self.mirror.name, op.kind)
                return
            if self._stopped:
                self._unsent.add(op)
                return
            full = op.kind == "metrics" and (
                self._pending_points + len(op.payload) > MAX_PENDING_POINTS
            )
            first_overflow = full and overflow not in self._unsent.reasons
            if full:
                self._unsent.add(op)
                self._unsent.reason(overflow)
            else:
                self._pending_points += len(op.payload) if op.kind == "metrics" else 0
                self._ops.append(op)
                self._cond.notify()
        if first_overflow:
            self._report(f"{self.mirror.name} mirror is too far behind ({overflow}); newer "
                         "points are kept in the local store only")

    def backlog(self) -> tuple[int, float]:
        """Queued metric points and the estimated seconds to send them."""
        with self._cond:
            return self._pending_points, self._lag()

    def request_finish(self, status: str, deadline: float) -> None:
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._deadline = deadline
            if self._error is not None:
                self._finish_attempts = 1
            if self._stopped:
                self._unsent.add(_Op("finish", status))
            else:
                self._ops.append(_Op("finish", status))
            self._cond.notify()

    def wait(self, deadline: float, timeout: float) -> str | None:
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            if not self._stopped:
                self._abandon(f"finish timed out after {timeout:g} s")
            return self._unsent.describe(self.mirror.name)

    # -- worker side -------------------------------------------------------------------
    def _run(self) -> None:
        delay = FIRST_RETRY_DELAY
        while True:
            with self._cond:
                while not self._ops and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                pause = self._pause()
                if pause:
                    self._cond.wait(pause)
                    continue
                op = self._next_op()
            try:
                if not self._started:
                    self._start_mirror()
                    self._started = True
                    if self._stopped:  # finish gave up on us while the start hung
                        return
                started_at = time.perf_counter()
                self._apply(op)
            except Exception as error:  # noqa: BLE001 - any SDK error must not kill the worker
                if self._failed(op, error, delay):
                    return
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            self._account(op, time.perf_counter() - started_at)
            delay = FIRST_RETRY_DELAY
            if self._done(op):
                return

    def _start_mirror(self) -> None:
        has_turn = _STARTING.acquire(timeout=START_TURN_WAIT)
        try:
            self.mirror.start()
        finally:
            if has_turn:
                _STARTING.release()

    def _pause(self) -> float:
        """Seconds to wait before the next call (the pacer's budget); 0 once finishing.
        Caller holds the lock."""
        if self._closing:
            return 0.0
        self._pacer.report_lag(id(self), self._lag())
        return self._pacer.delay()

    def _lag(self) -> float:
        """Estimated seconds to send the queued points. Caller holds the lock."""
        return self._pending_points * self._seconds_per_point

    def _account(self, op: _Op, seconds: float) -> None:
        """Charge a successful call to the pacer and learn the cost of a metric point."""
        self._pacer.spent(seconds)
        if op.kind == "metrics":
            per_point = seconds / max(1, len(op.payload))
            learnt = self._seconds_per_point
            self._seconds_per_point = per_point if not learnt else 0.8 * learnt + 0.2 * per_point

    def _next_op(self) -> _Op:
        """The head of the queue, as a batch of at most ``metrics_per_call`` points."""
        head = self._ops[0]
        if head.kind != "metrics":
            return head
        limit = self.mirror.metrics_per_call
        points = head.payload
        if len(points) > limit:
            self._ops[0] = _Op("metrics", points[limit:])
            points = points[:limit]
            self._ops.appendleft(_Op("metrics", points))
            return self._ops[0]
        while len(points) < limit and len(self._ops) > 1 and self._ops[1].kind == "metrics":
            following = self._ops[1].payload
            room = limit - len(points)
            points = [*points, *following[:room]]
            if len(following) > room:
                self._ops[1] = _Op("metrics", following[room:])
            else:
                del self._ops[1]
        self._ops[0] = _Op("metrics", points)
        return self._ops[0]

    def _apply(self, op: _Op) -> None:
        mirror = self.mirror
        if op.kind == "params":
            mirror.log_params(op.payload)
        elif op.kind == "metrics":
            mirror.log_metrics(op.payload)
        elif op.kind == "artifact":
            check_unchanged(op.payload)
            mirror.log_artifact(op.payload)
        elif op.kind == "figure":
            mirror.log_figure(*op.payload)
        else:
            mirror.finish(op.payload)

    def _done(self, op: _Op) -> bool:
        with self._cond:
            if self._stopped:
                return True
            self._ops.popleft()
            if op.kind == "metrics":
                self._pending_points -= len(op.payload)
            recovered, self._error = self._error, None
            self._finish_attempts = FINISH_ATTEMPTS
            if op.kind == "finish":
                self._stopped = True
        if recovered:
            LOG.info("%s mirror recovered; sending the queued data", self.mirror.name)
        return op.kind == "finish"

    def _failed(self, op: _Op, error: Exception, delay: float) -> bool:
        """Handle a failed call; True when the worker should stop."""
        name = self.mirror.name
        message = describe_error(error)
        permanent = self.mirror.is_permanent(error)
        with self._cond:
            if self._stopped:
                return True
            episode_start = self._error is None
            self._error = message
            if permanent and not self._started:
                self._unsent.reason(f"disabled: {message}")
                self._give_up()
                report = f"{name} mirror disabled, nothing will be mirrored: {message}"
            elif permanent:
                self._ops.popleft()
                if op.kind == "metrics":
                    self._pending_points -= len(op.payload)
                self._unsent.add(op)
                self._unsent.reason(f"rejected: {message}")
                self._stopped = op.kind == "finish"
                report = f"{name} mirror rejected {op.kind}: {message}"
            else:
                report = (
                    f"{name} mirror failed, retrying with backoff "
                    f"(the local store keeps everything): {message}"
                )
                if self._closing:
                    self._finish_attempts -= 1
                if self._closing and (
                    self._finish_attempts <= 0 or time.monotonic() >= self._deadline
                ):
                    self._unsent.reason(f"unreachable: {message}")
                    self._give_up()
                    report = f"{name} mirror failed at finish, giving up: {message}"
        if episode_start or permanent:
            self._report(report)
        with self._cond:
            if self._stopped:
                return True
            if not permanent:
                self._cond.wait(min(delay, max(0.0, self._deadline - time.monotonic())))
        return False

    def _give_up(self) -> None:
        """Stop for good, counting everything still queued as unsent. Caller holds the lock."""
        for op in self._ops:
            self._unsent.add(op)
        self._ops.clear()
        self._pending_points = 0
        self._stopped = True
        self._cond.notify_all()

    def _abandon(self, reason: str) -> None:
        self._unsent.reason(reason + (f"; last error {self._error}" if self._error else ""))
        self._give_up()

    def _report(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            LOG.warning(message)
        else:
            LOG.debug(message)
        if self._reports >= MAX_FAILURE_REPORTS:
            return
        self._reports += 1
        try:
            self._on_failure(self.mirror.name, message)
        except Exception:  # noqa: BLE001 - a broken callback must not stop mirroring
            LOG.exception("on_failure callback raised for %s", self.mirror.name)


class MirrorWorkers:
    """The mirrors of one run, one thread each. Every method returns at once; ``finish``
    waits, bounded."""

    def __init__(self, mirrors: Iterable[Mirror], on_failure: OnFailure,
                 pacer: Pacer | None = None) -> None:
        pacer = pacer or Pacer()
        self._workers = [_Worker(mirror, on_failure, pacer) for mirror in mirrors]
        self._finished = False

    @property
    def names(self) -> list[str]:
        return [worker.mirror.name for worker in self._workers]

    def __len__(self) -> int:
        return len(self._workers)

    def params(self, params: Mapping[str, Any]) -> None:
        """Queue hyperparameters (nested dicts allowed); they are copied now."""
        try:
            snapshot = copy.deepcopy(dict(params))
        except Exception:  # noqa: BLE001 - uncopyable values: keep the flattened leaves
            snapshot = flatten(params)
        self._put("params", snapshot)

    def metrics(self, batch: Sequence[MetricPoint] | MetricColumns) -> None:
        """Queue flushed points ``(key, step, value, unix seconds)`` or columns per key; a
        list is not copied, so the caller must not change it afterwards."""
        points = as_points(batch)
        if points:
            self._put("metrics", points)

    def artifact(
        self,
        path: str | Path,
        name: str,
        version: int,
        sha256: str,
        aliases: Iterable[str] = (),
        filename: str | None = None,
    ) -> None:
        """Queue one stored artifact version. ``path`` is read when sent, so it should be
        the immutable stored object; ``filename`` is the name the file was logged with."""
        ref = ArtifactRef(Path(path), name, int(version), sha256, tuple(aliases), filename)
        self._put("artifact", ref)

    def figure(self, path: str | Path, name: str) -> None:
        """Queue a plot image; the file is read when sent, so the newest version wins."""
        self._put("figure", (Path(path), name))

    def finish(self, status: str = "completed", timeout: float = 30.0) -> list[str]:
        """Send what is queued and close the runs, within ``timeout`` seconds overall.

        Returns one line per mirror that could not send everything. A mirror that is
        already failing gets one more attempt; one that fails while draining gets
        ``FINISH_ATTEMPTS`` consecutive attempts with backoff, so a dead service does not
        cost the whole bound.
        """
        if self._finished:
            return []
        self._finished = True
        deadline = time.monotonic() + timeout
        behind = {w.mirror.name: w.backlog() for w in self._workers}
        seconds = sum(estimate for _, estimate in behind.values())
        if seconds >= FINISH_NOTICE_SECONDS:
            LOG.info("sending the queued metric points (%s), about %.0f s",
                     ", ".join(f"{name} {points}" for name, (points, _) in behind.items() if points),
                     seconds)
        for worker in self._workers:
            worker.request_finish(status, deadline)
        reports = [worker.wait(deadline, timeout) for worker in self._workers]
        for report in filter(None, reports):
            LOG.info(report)
        return [report for report in reports if report]

    def _put(self, kind: str, payload: Any) -> None:
        op = _Op(kind, payload)
        for worker in self._workers:
            worker.put(op)
