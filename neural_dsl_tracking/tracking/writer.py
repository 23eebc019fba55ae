"""The background writer: turns buffered ``log_metrics`` calls into chunked appends.

``log_metrics`` appends ``(step, timestamp, {key: float})`` to ``pending`` (a plain list:
appending is atomic, and only this writer removes items, from the front, after they are
committed). A daemon thread flushes every ``interval`` seconds; ``close()`` flushes the rest.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import Counter
from itertools import chain
from operator import itemgetter
from typing import Callable

import numpy as np

from neural_dsl_tracking.tracking import lifecycle
from neural_dsl_tracking.tracking.store import RunDeleted, Series, Store

FLUSH_INTERVAL = 0.5
IDLE_HEARTBEAT = 5.0

_step_of, _time_of, _metrics_of = itemgetter(0), itemgetter(1), itemgetter(2)


def columnize(batch: list[tuple[int, float, dict[str, float]]]) -> dict[str, Series]:
    """Per-key (steps, values, timestamps) arrays from buffered calls, in call order."""
    n = len(batch)
    steps = np.fromiter(map(_step_of, batch), np.int64, n)
    times = np.fromiter(map(_time_of, batch), np.float64, n)
    dicts = list(map(_metrics_of, batch))
    first = dicts[0]
    if sum(map(len, dicts)) == n * len(first):
        try:  # the usual case: every call logged the same keys
            return {key: (steps, np.fromiter(map(itemgetter(key), dicts), np.float64, n), times)
                    for key in first}
        except KeyError:
            pass
    series: dict[str, Series] = {}
    for key, count in Counter(chain.from_iterable(dicts)).items():
        index = np.fromiter((i for i, d in enumerate(dicts) if key in d), np.int64, count)
        values = np.fromiter((dicts[i][key] for i in index.tolist()), np.float64, count)
        series[key] = (steps[index], values, times[index])
    return series


class MetricWriter:
    """Owns the in-memory buffer of one run and flushes it to the store."""

    def __init__(self, store: Store, run_id: str, *, interval: float = FLUSH_INTERVAL,
                 on_flushed: Callable[[dict[str, Series]], None] | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.interval = interval
        self.pending: list[tuple[int, float, dict[str, float]]] = []
        self.on_flushed = on_flushed
        self.last_error: Exception | None = None
        self.run_deleted = False  # the run was deleted from the store: points are dropped
        self._dropped: set[str] = set()  # metric names warned about and dropped
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._last_write = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"neural-tracking-writer-{run_id[:8]}")

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.flush() and time.monotonic() - self._last_write > IDLE_HEARTBEAT:
                    self.store.heartbeat(self.run_id)
                    self._last_write = time.monotonic()
                self.last_error = None
            except Exception as error:  # noqa: BLE001 - keep the buffer, retry next round
                if self.last_error is None:
                    warnings.warn(f"experiment tracking: cannot write metrics yet ({error}); "
                                  "keeping them in memory and retrying", RuntimeWarning,
                                  stacklevel=1)
                self.last_error = error

    def flush(self) -> int:
        """Write everything buffered so far; returns the number of calls written."""
        with lifecycle.sigterm_deferred(), self._flush_lock:  # SIGTERM's close flushes after
            n = len(self.pending)
            if not n:
                return 0
            batch = self.pending[:n]
            series = columnize(batch)
            if self.store.db.dialect == "postgresql" and any("\x00" in key for key in series):
                series = self._without_nul_names(series)
            try:
                self.store.append_metrics(self.run_id, series)
            except RunDeleted as error:
                del self.pending[:n]
                self._warn_deleted(error)
                return n
            del self.pending[:n]
            self._last_write = time.monotonic()
            if self.on_flushed is not None:
                self.on_flushed(series)
        return n

    def _without_nul_names(self, series: dict[str, Series]) -> dict[str, Series]:
        """``series`` without the names PostgreSQL cannot hold (its text refuses NUL)."""
        for key in series:
            if "\x00" in key and key not in self._dropped:
                self._dropped.add(key)
                warnings.warn(f"experiment tracking: metric name {key!r} contains a NUL character, "
                              "which PostgreSQL cannot store; its points are dropped",
                              RuntimeWarning, stacklevel=1)
        return {key: columns for key, columns in series.items() if "\x00" not in key}

    def _warn_deleted(self, error: RunDeleted) -> None:
        if not self.run_deleted:
            warnings.warn(f"experiment tracking: {error}", RuntimeWarning, stacklevel=1)
        self.run_deleted = True

    def close(self) -> None:
        """Stop the thread and write what is left (raises if that last write fails)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self.flush()
