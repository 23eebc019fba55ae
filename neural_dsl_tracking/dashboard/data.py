"""The dashboard's read-only view of the store, with a cache of downsampled series.

Everything goes through ``ExperimentManager``; nothing here writes to the store. A
series is read once per (run, key, number of points): a finished run's series is read
and downsampled once, a live one again only when new points were flushed. The Metrics tab
reads the series it lacks in bulk (``prefetch``: a few runs per store query, downsampled
on two threads); live updates read only the points after the last drawn step.

Each read keeps three downsampled variants (``max_points``, half, a quarter). A chart
overlaying many runs uses a smaller one so it stays under ``CHART_POINT_BUDGET`` points:
with 100 runs, 1,000 points per series, which is still the minimum and maximum of every
bucket, about one bucket per pixel column of a chart, so no spike is lost.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Iterable
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from neural_dsl_tracking.dashboard.download import open_object
from neural_dsl_tracking.dashboard.tables import search_text
from neural_dsl_tracking.tracking.downsample import DEFAULT_MAX_POINTS, bucket_size_for, bucketize_levels
from neural_dsl_tracking.errors import NeuralError, TrackingError

_STORE_FILE = "store.db"
LEVEL_DIVISORS = (1, 2, 4)  # series are kept at about max_points, half and a quarter of it
CHART_POINT_BUDGET = 100_000  # points drawn per chart before series get fewer points each
RUNS_PER_READ = 8  # runs per bulk store read: about 60 MB of arrays with 3 x 100k-point series each
DRAW_THREADS = 2  # numpy releases the GIL while downsampling
REFRESH_SECONDS = 0.5  # the store is asked whether its runs changed at most this often


@dataclass(frozen=True)
class RunSnapshot:
    """Every run as last read, newest first, and when each changed.

    ``version`` grows by one at every refresh that changed a run; ``changed`` holds the
    version at which each run last changed, so a view can tell whether its runs did.
    """

    runs: list[Any]
    by_id: dict[str, Any]
    version: int
    changed: dict[str, int]
    models: dict[str, Any] = field(default_factory=dict)  # run id -> its ModelFacts (runs with a model)

    def changed_since(self, run_ids: Iterable[str], version: int | None) -> bool:
        """Whether any of ``run_ids`` changed (or vanished) after ``version`` (None: never seen)."""
        if version is None:
            return True
        return any(self.changed.get(run_id, self.version) > version for run_id in run_ids)

    @cached_property
    def forks(self) -> dict[str, list[str]]:
        """The ids of the runs forked from each run (by the parent's id), oldest first: made
        once per snapshot from each fork's own record, so a parent's count follows its forks
        as they arrive (the parent's record is not read again when a fork is added)."""
        found: dict[str, list[str]] = {}
        for run in reversed(self.runs):  # oldest first
            if run.parent is not None:
                found.setdefault(run.parent.run_id, []).append(run.run_id)
        return found

    @cached_property
    def twins(self) -> dict[str, str]:
        """For each run whose model fingerprint another run shares, the oldest such run
        (``oldest_twins``, the rule of ``neural experiments ls``): made once per snapshot."""
        from neural_dsl_tracking.tracking.records import oldest_twins

        printed = sorted((run for run in self.runs if run.run_id in self.models),
                         key=lambda run: (run.start_time, run.run_id))
        return oldest_twins({run_id: facts.fingerprint for run_id, facts in self.models.items()},
                            ((run.run_id, self.models[run.run_id].fingerprint) for run in printed))


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


def _newest_first(run: Any) -> tuple[float, str]:
    """The store's order: newest start first, then by run id."""
    return -run.start_time.timestamp(), run.run_id


def _snapshot(runs: list[Any], old: RunSnapshot | None, models: dict[str, Any]) -> RunSnapshot:
    """A snapshot of ``runs``, one version after ``old``, if any run differs from it. A run
    counts as changed when it gained or lost a fork too (its fork count changed)."""
    by_id = {run.run_id: run for run in runs}
    models = {run_id: facts for run_id, facts in models.items() if run_id in by_id}  # ModelFacts by run id
    if old is None:
        return RunSnapshot(runs, by_id, 0, dict.fromkeys(by_id, 0), models)
    differing = [run_id for run_id, run in by_id.items()
                 if (old.by_id.get(run_id) is not run and old.by_id.get(run_id) != run)
                 or old.models.get(run_id) != models.get(run_id)]
    if not differing and len(by_id) == len(old.by_id):
        return RunSnapshot(runs, by_id, old.version, old.changed, old.models)
    version = old.version + 1
    changed = {run_id: old.changed.get(run_id, version) for run_id in by_id}
    gone = [run_id for run_id in old.by_id if run_id not in by_id]
    changed.update(dict.fromkeys(differing + _refathered(differing + gone, by_id, old.by_id), version))
    return RunSnapshot(runs, by_id, version, changed, models)


def _refathered(run_ids: list[str], now: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """The runs of ``now`` that gained or lost a fork among ``run_ids`` (runs added, gone or
    changed): the parents, before and now, of those whose parent is not the one it was."""
    def parent(run: Any) -> str | None:
        return None if run is None or run.parent is None else run.parent.run_id

    moved = [(parent(before.get(run_id)), parent(now.get(run_id))) for run_id in run_ids]
    return [found for pair in moved if pair[0] != pair[1] for found in pair if found in now]


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
        self._cached_key: dict[tuple[str, str], tuple[str, str, int]] = {}  # (run, metric) -> its cache key
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._crash_after = crash_after
        self._chart_budget = chart_budget
        self._manager: Any = None
        self._snapshot: RunSnapshot | None = None
        self._token: tuple[int, float, float] | None = None
        self._checked = 0.0
        self._refresh_lock = threading.Lock()
        self._texts: dict[str, tuple[Any, str]] = {}  # run id -> (its record, its search text)
        self._query_ids: tuple[tuple[str, int], frozenset[str]] | None = None  # (query, version) -> ids

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
        """Every run, most recent first (``snapshot().runs``)."""
        return self.snapshot().runs

    def snapshot(self) -> RunSnapshot:
        """The runs, read once and then refreshed from the store when they changed.

        At most every ``REFRESH_SECONDS`` the store is asked for a cheap token (``runs_version``);
        only when it moved, or while a run is shown running (it may have crashed since), are the
        runs written since the last refresh read again. A run added with an old heartbeat (an
        import) or deleted makes the counts disagree, and everything is read again.
        """
        with self._refresh_lock:
            if self._snapshot is None or time.monotonic() - self._checked >= REFRESH_SECONDS:
                self._refresh()
            assert self._snapshot is not None
            return self._snapshot

    def _refresh(self) -> None:
        manager = self.manager()
        token = manager.runs_version()
        self._checked = time.monotonic()
        old, previous = self._snapshot, self._token
        live = old is not None and any(run.status == "running" for run in old.runs)
        if old is not None and token == previous and not live:
            return
        self._token = token
        if old is None or previous is None:
            self._snapshot = _snapshot(manager.list_experiments(), None, manager.model_facts())
            return
        changed = {run.run_id: run for run in manager.list_experiments(changed_after=previous[1])}
        for run in old.runs:  # a live run whose last write carried an older clock than the newest
            if run.status == "running" and run.run_id not in changed:
                changed.update((found.run_id, found) for found in self._reread(run.run_id))
        merged = {**old.by_id, **changed}
        added = any(run_id not in old.by_id for run_id in changed)
        if token is None or len(merged) != token[0] or (token[2] != previous[2] and not added):
            # a run deleted or imported
            self._snapshot = _snapshot(manager.list_experiments(), old, manager.model_facts())
        else:
            models = {**old.models, **manager.model_facts(changed)} if changed else old.models
            self._snapshot = _snapshot(sorted(merged.values(), key=_newest_first), old, models)

    def search_text(self, run: Any) -> str:
        """``tables.search_text(run)``, computed once per record of the run."""
        cached = self._texts.get(run.run_id)
        if cached is None or cached[0] is not run:
            cached = self._texts[run.run_id] = (run, search_text(run))
        return cached[1]

    def query_ids(self, query: Any) -> frozenset[str]:
        """Ids of the runs a query of the query language matches (``ExperimentManager.query_run_ids``,
        in SQL, without reading the runs); kept for the snapshot version, so paging and sorting
        do not ask again."""
        version = self.snapshot().version
        key = (query.text, version)
        cached = self._query_ids
        if cached is None or cached[0] != key:
            cached = self._query_ids = (key, frozenset(self.manager().query_run_ids(query)))
        return cached[1]

    def _reread(self, run_id: str) -> list[Any]:
        try:
            return [self.manager().get_experiment(run_id)]
        except TrackingError:
            return []

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
        return self._keep(cache_key, self.manager().get_metric_history(run_id, key))[points]

    def prefetch(self, wanted: Iterable[tuple[str, str, int]]) -> int:
        """Read and downsample the (run id, key, count) series not cached yet, in bulk.

        A few runs per store query; the series of one batch are downsampled on a thread
        pool while the next batch is read. Returns how many series were read.
        """
        with self._lock:
            missing = [(run_id, key, int(count)) for run_id, key, count in wanted
                       if (run_id, key, int(count)) not in self._cache]
        counts: dict[str, dict[str, int]] = {}
        for run_id, key, count in missing:
            counts.setdefault(run_id, {})[key] = count
        runs = list(counts)
        done = 0
        with ThreadPoolExecutor(max_workers=DRAW_THREADS) as pool:
            in_flight: list[Future] = []
            for start in range(0, len(runs), RUNS_PER_READ):
                batch = runs[start:start + RUNS_PER_READ]
                keys = sorted({key for run_id in batch for key in counts[run_id]})
                histories = self.manager().get_metric_histories(batch, keys)
                drawing = [pool.submit(self._keep, (run_id, key, counts[run_id][key]), history)
                           for (run_id, key), history in histories.items() if key in counts[run_id]]
                for future in in_flight:  # at most two batches of arrays in memory
                    future.result()
                in_flight = drawing
                done += len(drawing)
            for future in in_flight:
                future.result()
        return done

    def _keep(self, cache_key: tuple[str, str, int], history: Any) -> dict[int, DrawnSeries]:
        """Downsample a history to every level and cache the variants."""
        drawn = draw(history.steps, history.values, history.timestamps,
                     bucket_size_for(len(history), self.max_points), len(LEVEL_DIVISORS))
        variants = dict(zip(self.levels, drawn))
        self._remember(cache_key, variants)
        return variants

    def points_after(self, run_id: str, key: str, after_step: int | None) -> tuple[np.ndarray, ...]:
        """Points logged at a step after ``after_step`` (all when None): steps, values, times."""
        history = self.manager().get_metric_history(run_id, key, after_step=after_step)
        return history.steps, history.values, history.timestamps

    def _remember(self, cache_key: tuple[str, str, int], variants: dict[int, DrawnSeries]) -> None:
        """Cache ``variants``, replacing an older read of the same series and evicting the least
        recently used past the byte budget: constant work per series, whatever the cache holds."""
        with self._lock:
            stale = self._cached_key.get(cache_key[:2])
            if stale is not None:
                self._forget(stale)
            self._cache[cache_key] = variants
            self._cached_key[cache_key[:2]] = cache_key
            self._cached_bytes += sum(drawn.nbytes for drawn in variants.values())
            while self._cached_bytes > self._cache_bytes and len(self._cache) > 1:
                self._forget(next(iter(self._cache)))

    def _forget(self, cache_key: tuple[str, str, int]) -> None:
        """Drop one cached series (the lock is held)."""
        self._cached_bytes -= sum(drawn.nbytes for drawn in self._cache.pop(cache_key).values())
        if self._cached_key.get(cache_key[:2]) == cache_key:
            del self._cached_key[cache_key[:2]]

    def warm(self, stop: threading.Event | None = None) -> int:
        """Read and downsample every series ahead of the first page, newest runs first, until the
        cache is full; returns how many."""
        done = 0
        runs = self.runs()
        for start in range(0, len(runs), RUNS_PER_READ):
            if stop is not None and stop.is_set() or self._cached_bytes >= self._cache_bytes:
                break  # stopped, or the cache is full: reading on would evict the newest runs' series
            done += self.prefetch((run.run_id, key, summary.get("count", 0))
                                  for run in runs[start:start + RUNS_PER_READ]
                                  for key, summary in run.metrics.items())
        return done

    # -- artifacts -----------------------------------------------------------------------
    def artifact_versions(self, run_id: str) -> list[Any]:
        """Every version of every artifact of the run, by name then version."""
        return self.manager().list_artifact_versions(run_id)

    def open_artifact(self, run_id: str, name: str, version: int) -> tuple[Any, BinaryIO]:
        """One artifact version and its object, opened and verified (``download.open_object``).

        ``TrackingError`` when there is no such version, ``ArtifactCorruptedError`` when its
        object is missing, not a regular file of the store or not its recorded content. A
        version replaced meanwhile (``version=False``) serves the version replacing it.
        """
        return self.manager().read_artifact_version(run_id, name, int(version), open_object)
