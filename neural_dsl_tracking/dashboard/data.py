"""The dashboard's read-only view of the store, with a cache of downsampled series.

Everything goes through ``ExperimentManager``; nothing here writes to the store. A
series is read once per (run, key, number of points): a finished run's series is read
and downsampled once, a live one again only when new points were flushed.

Each read keeps three downsampled variants (``max_points``, half, a quarter). A chart
overlaying many runs uses a smaller one so it stays under ``CHART_POINT_BUDGET`` points:
with 100 runs, 1,000 points per series, which is still the minimum and maximum of every
bucket, about one bucket per pixel column of a chart, so no spike is lost.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from neural_dsl_tracking.dashboard.downsample import DEFAULT_MAX_POINTS, bucket_size_for, bucketize_levels
from neural_dsl_tracking.errors import NeuralError, TrackingError

_STORE_FILE = "store.db"
LEVEL_DIVISORS = (1, 2, 4)  # series are kept at about max_points, half and a quarter of it
CHART_POINT_BUDGET = 100_000  # points drawn per chart before series get fewer points each


@dataclass(frozen=True)
class DrawnSeries:
    """One metric of one run as drawn: the kept points and the per-bucket statistics."""

    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray
    bucket_size: int
    bucket_steps: np.ndarray  # step of each bucket's last point
    bucket_times: np.ndarray
    bucket_means: np.ndarray
    bucket_counts: np.ndarray
    count: int  # points in the stored series
    last_step: int  # step of the last stored point (-1 when empty)

    @property
    def nbytes(self) -> int:
        arrays = (self.steps, self.values, self.times, self.bucket_steps, self.bucket_times,
                  self.bucket_means, self.bucket_counts)
        return sum(array.nbytes for array in arrays)


def draw(steps: np.ndarray, values: np.ndarray, times: np.ndarray, bucket_size: int,
         levels: int = 1) -> list[DrawnSeries]:
    """Downsample raw arrays with buckets of ``bucket_size`` points (and 2x, 4x... for ``levels``)."""
    return [
        DrawnSeries(
            steps=steps[buckets.keep],
            values=values[buckets.keep],
            times=times[buckets.keep],
            bucket_size=buckets.size,
            bucket_steps=steps[buckets.last],
            bucket_times=times[buckets.last],
            bucket_means=buckets.mean,
            bucket_counts=buckets.count,
            count=int(steps.size),
            last_step=int(steps[-1]) if steps.size else -1,
        )
        for buckets in bucketize_levels(values, bucket_size, levels)
    ]


def _redact(location: str) -> str:
    """A database URL without its password, for display."""
    parts = urlsplit(location)
    if not parts.password:
        return location
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class StoreUnavailable(NeuralError):
    """The store does not exist (yet) or cannot be opened; the page explains why."""


class DashboardData:
    """Runs, downsampled series and artifacts of one store, for the dashboard."""

    def __init__(
        self,
        base_dir: str | Path = "neural_experiments",
        store: str | None = None,
        *,
        max_points: int = DEFAULT_MAX_POINTS,
        cache_bytes: int = 512 * 1024 * 1024,
        crash_after: float | None = None,
        chart_budget: int | None = CHART_POINT_BUDGET,
    ) -> None:
        self.location = _redact(str(store)) if store else str(base_dir)
        self._base_dir = Path(base_dir)
        self._store = store
        self.max_points = max_points
        self._cache_bytes = cache_bytes
        self._cache: OrderedDict[tuple[str, str, int], dict[int, DrawnSeries]] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._crash_after = crash_after
        self._chart_budget = chart_budget
        self._manager: Any = None

    # -- the store ---------------------------------------------------------------------
    def manager(self) -> Any:
        """The ``ExperimentManager``, opened on first use; ``StoreUnavailable`` if absent."""
        if self._manager is not None:
            return self._manager
        directory = None if self._store and "://" in self._store else Path(self._store or self._base_dir)
        if directory is not None and not (directory / _STORE_FILE).is_file():
            raise StoreUnavailable(f"no experiment store at {directory.resolve()}")
        from neural_dsl_tracking.tracking import ExperimentManager

        try:
            manager = ExperimentManager(base_dir=str(self._base_dir), store=self._store,
                                        crash_after=self._crash_after)
        except TrackingError as error:
            raise StoreUnavailable(str(error)) from error
        with self._lock:
            if self._manager is None:
                self._manager = manager
        return self._manager

    def runs(self) -> list[Any]:
        """Every run, most recent first."""
        records = self.manager().list_experiments()
        return sorted(records, key=lambda run: run.start_time, reverse=True)

    # -- metric series -------------------------------------------------------------------
    @property
    def levels(self) -> tuple[int, ...]:
        """The points-per-series budgets kept in the cache, largest first."""
        return tuple(max(4, self.max_points // divisor) for divisor in LEVEL_DIVISORS)

    def points_per_series(self, series_per_chart: int) -> int:
        """The largest level that keeps a chart within the chart point budget."""
        if self._chart_budget is None:
            return self.levels[0]
        for level in self.levels:
            if level * max(1, series_per_chart) <= self._chart_budget:
                return level
        return self.levels[-1]

    def series(self, run_id: str, key: str, count: int, points: int | None = None) -> DrawnSeries:
        """The series of ``key`` downsampled to ``points`` (a level; default the largest).

        ``count`` (points stored) keys the cache: one store read serves every level.
        """
        points = points or self.levels[0]
        cache_key = (run_id, key, int(count))
        with self._lock:
            cached = self._cache.get(cache_key)
            if cached is not None:
                self._cache.move_to_end(cache_key)
                return cached[points]
        history = self.manager().get_metric_history(run_id, key)
        drawn = draw(history.steps, history.values, history.timestamps,
                     bucket_size_for(len(history), self.max_points), len(LEVEL_DIVISORS))
        variants = dict(zip(self.levels, drawn))
        self._remember(cache_key, variants)
        return variants[points]

    def points_after(self, run_id: str, key: str, after_step: int, seen: int) -> tuple[np.ndarray, ...]:
        """Points logged after the first ``seen`` ones (steps, values, times)."""
        history = self.manager().get_metric_history(run_id, key)
        start = min(int(seen), len(history))
        if start and int(history.steps[start - 1]) != after_step:
            start = int(np.searchsorted(history.steps, after_step, side="right"))
        return history.steps[start:], history.values[start:], history.timestamps[start:]

    def _remember(self, cache_key: tuple[str, str, int], variants: dict[int, DrawnSeries]) -> None:
        size = sum(drawn.nbytes for drawn in variants.values())
        with self._lock:
            stale = [key for key in self._cache if key[:2] == cache_key[:2]]
            for key in stale:
                self._cached_bytes -= sum(drawn.nbytes for drawn in self._cache.pop(key).values())
            self._cache[cache_key] = variants
            self._cached_bytes += size
            while self._cached_bytes > self._cache_bytes and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                self._cached_bytes -= sum(drawn.nbytes for drawn in evicted.values())

    def warm(self, stop: threading.Event | None = None) -> int:
        """Read and downsample every series ahead of the first page; returns how many."""
        done = 0
        for run in self.runs():
            for key, summary in run.metrics.items():
                if stop is not None and stop.is_set():
                    return done
                self.series(run.run_id, key, summary.get("count", 0))
                done += 1
        return done

    # -- artifacts -----------------------------------------------------------------------
    def artifact_versions(self, run_id: str) -> list[Any]:
        """Every version of every artifact of the run, by name then version."""
        return self.manager().list_artifact_versions(run_id)

    def artifact_version(self, run_id: str, name: str, version: int) -> Any:
        """One artifact version, its object verified against its SHA-256."""
        return self.manager().get_artifact_version(run_id, name, int(version), verify=True)
