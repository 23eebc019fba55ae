"""Pacing: while training runs, the mirrors trail it instead of competing with it.

The SDKs need 0.1-0.2 ms of CPU per metric point (MLflow's SQLAlchemy store, W&B's one
message per history row). Scheduling the mirror process at ``SCHED_IDLE`` keeps it off a busy
core, but on a small machine a mirror process busy on the other core still slows training
through shared caches and memory (measured: the training loop 1.04-1.20x slower, logging
calls 1.10-1.13x). So the mirrors of one process share a budget: together they may be busy
``share`` of the wall time (a token bucket refilled at ``share`` seconds per second, holding
at most ``burst`` seconds). What does not fit waits in the queues, and goes out at full speed
as soon as the run finishes, or while the mirrors are more than ``max_lag`` seconds of their
own work behind (so a long run never piles up more than ``finish()`` can send).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

SHARE = 0.25
"""Fraction of the wall time the mirrors may spend sending while training runs."""
MAX_LAG = 10.0
"""Seconds of estimated sending work queued beyond which pacing stops until caught up."""
BURST = 1.0
"""Seconds of sending the mirrors may do at once after a quiet spell."""


class Pacer:
    """A token bucket of busy time shared by the workers of one MirrorWorkers."""

    def __init__(self, share: float = SHARE, max_lag: float = MAX_LAG, burst: float = BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share
        self.max_lag = max_lag
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = burst
        self._refilled_at = clock()
        self._lags: dict[int, float] = {}

    def spent(self, seconds: float) -> None:
        """Charge ``seconds`` of sending to the budget."""
        with self._lock:
            self._refill()
            self._tokens -= seconds

    def report_lag(self, worker: int, seconds: float) -> None:
        """Record how many seconds of work ``worker`` (any stable id) has queued."""
        with self._lock:
            self._lags[worker] = seconds

    def delay(self) -> float:
        """Seconds to wait before the next call: 0 within the budget or when too far behind."""
        with self._lock:
            if self.share >= 1 or sum(self._lags.values()) > self.max_lag:
                return 0.0
            self._refill()
            return max(0.0, -self._tokens / self.share)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled_at) * self.share)
        self._refilled_at = now
