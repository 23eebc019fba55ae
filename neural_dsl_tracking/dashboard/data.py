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

A read of a long series (more than ``RAW_POINTS`` points) also gives it a fine level
(``FineLevels``: min and max per ~``len / FINE_POINTS`` points), which a wide zoom is bucketed
from: built from the arrays already read, on a background thread, so the first zoom after the
overview (or after the server's warm-up) reads nothing again and need not build it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator
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
RAW_POINTS = 32_768  # a zoom holding up to this many points of a series reads them from the store
FINE_POINTS = 65_536  # a longer series is zoomed from its fine level: buckets of about len / FINE_POINTS points
FINE_SERIES = 32  # fine levels kept (about 1.6 MB each)
FINE_PENDING_POINTS = 16_000_000  # points of series read and waiting for their fine level (24 bytes each)
FINE_IDLE_SECONDS = 0.05  # fine levels are built once no request has read the store for this long


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


SeriesKey = tuple[str, str, int]  # (run id, metric key, points stored)


class FineLevels:
    """The fine levels of long series, by (run id, key, points stored): each series bucketed to
    about ``FINE_POINTS`` points (every bucket's min and max kept), which a wide zoom is
    bucketed from.

    A long series read for the overview is ``offer``-ed: its arrays wait in a queue (at most
    ``FINE_PENDING_POINTS`` points; a series read in bulk holds its batch's arrays until built)
    for one background thread, which builds their levels once no request has read for
    ``FINE_IDLE_SECONDS`` (``reading``): builds running beside the request's own reads slowed
    them by about their length (they share the GIL, and on a busy machine the cores: the
    overview of 10 x 1,000,000 points took 60-80 ms longer, about the ten builds' time).
    ``get`` returns a kept level, builds a queued one itself from the arrays held (no read;
    the background thread then starts on the others at once, so a zoom of many runs has two
    builders), waits for one being built, and reads the store only for a series never
    offered. The last ``FINE_SERIES`` levels used are kept, one per series (the last built
    replaces the others).
    """

    def __init__(self) -> None:
        self._kept: OrderedDict[SeriesKey, DrawnSeries] = OrderedDict()
        self._queued: OrderedDict[SeriesKey, Any] = OrderedDict()  # histories waiting for a build
        self._queued_points = 0
        self._building: dict[SeriesKey, threading.Event] = {}  # set once built (or failed)
        self._reads = 0  # requests reading now
        self._read_at = 0.0  # when the last of them ended (time.monotonic)
        self._asked = False  # a zoom is waiting for queued levels: build now (until the next read)
        self._changed = threading.Condition()
        self._worker: threading.Thread | None = None

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Around a request's store reads: no build starts meanwhile, nor ``FINE_IDLE_SECONDS`` after."""
        with self._changed:
            self._reads += 1
            self._asked = False
        try:
            yield
        finally:
            with self._changed:
                self._reads -= 1
                self._read_at = time.monotonic()
                self._changed.notify_all()

    def offer(self, series: SeriesKey, history: Any, evict: bool = True) -> None:
        """Queue ``history`` (just read) for the build of ``series``' fine level, unless it is
        short, kept, queued or being built, the queue holds its budget of points, or, with
        ``evict`` false, the levels kept and to come already reach ``FINE_SERIES``."""
        points = len(history)
        with self._changed:
            known = series in self._kept or series in self._queued or series in self._building
            coming = len(self._kept) + len(self._queued) + len(self._building)
            if points <= RAW_POINTS or known or self._queued_points + points > FINE_PENDING_POINTS \
                    or not evict and coming >= FINE_SERIES:
                return
            self._queued[series] = history
            self._queued_points += points
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="fine-levels", daemon=True)
                self._worker.start()
            self._changed.notify_all()

    def get(self, series: SeriesKey, read: Callable[[], Any]) -> DrawnSeries:
        """The fine level of ``series``: kept; queued, built now from the arrays held; being
        built, waited for (building other runs' queued levels of the same key meanwhile: a
        zoom of many runs wants them next); else built from ``read()`` (the whole history)."""
        while True:
            with self._changed:
                found = self._kept.get(series)
                if found is not None:
                    self._kept.move_to_end(series)
                    return found
                building = self._building.get(series)
                wanted = series if building is None else next(  # another run's: the same chart's
                    (other for other in self._queued if other[1] == series[1]), None)
                history = None if wanted is None else self._take(wanted)
                if self._queued:  # wanted soon: the background thread builds them meanwhile
                    self._asked = True
                    self._changed.notify_all()
            if building is None:
                return self._build(series, history if history is not None else read())
            if history is not None:
                self._build(wanted, history)
            else:
                building.wait()

    def _take(self, series: SeriesKey) -> Any:
        """The queued history of ``series`` (None if none), now being built (the lock is held)."""
        history = self._queued.pop(series, None)
        if history is not None:
            self._queued_points -= len(history)
            self._building[series] = threading.Event()
        return history

    def _work(self) -> None:
        """The background thread: build the queued levels, oldest first, while no request reads;
        end when the queue is empty (or a build failed: the next ``offer`` starts another)."""
        try:
            while True:
                with self._changed:
                    while self._queued and (wait := self._idle_wait()) > 0:
                        self._changed.wait(wait)
                    if not self._queued:
                        self._worker = None
                        return
                    series = next(iter(self._queued))
                    history = self._take(series)
                self._build(series, history)
        finally:
            with self._changed:
                if self._worker is threading.current_thread():
                    self._worker = None

    def _idle_wait(self) -> float:
        """Seconds until builds may start (the lock is held)."""
        if self._asked:
            return 0.0
        return FINE_IDLE_SECONDS if self._reads else self._read_at + FINE_IDLE_SECONDS - time.monotonic()

    def _build(self, series: SeriesKey, history: Any) -> DrawnSeries:
        """Bucket ``history`` to the fine level and keep it in the step that ends its build (a
        failed build just ends: a ``get`` waiting for it reads the store)."""
        fine: DrawnSeries | None = None
        try:
            fine = draw(history.steps, history.values, history.timestamps,
                        bucket_size_for(len(history), FINE_POINTS))[0]
            return fine
        finally:
            with self._changed:
                if fine is not None:
                    self._keep(series, fine)
                building = self._building.pop(series, None)
                if building is not None:
                    building.set()

    def _keep(self, series: SeriesKey, fine: DrawnSeries) -> None:
        """Keep ``fine`` in place of any other level of the same series (the lock is held)."""
        for stale in [kept for kept in self._kept if kept[:2] == series[:2]]:
            del self._kept[stale]
        self._kept[series] = fine
        while len(self._kept) > FINE_SERIES:
            self._kept.popitem(last=False)


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
        self._fine = FineLevels()
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

        ``count`` (points stored) keys the cache: one store read serves every level, and a
        long series' fine level (``FineLevels.offer``).
        """
        points = points or self.levels[0]
        cache_key = (run_id, key, int(count))
        with self._lock:
            cached = self._cache.get(cache_key)
            if cached is not None:
                self._cache.move_to_end(cache_key)
                return cached[points]
        with self._fine.reading():
            history = self.manager().get_metric_history(run_id, key)
            self._fine.offer(cache_key, history)
            return self._keep(cache_key, history)[points]

    def overview(self, run_id: str, key: str, count: int) -> DrawnSeries | None:
        """The series at the largest level if it is cached (None if not): nothing is read."""
        with self._lock:
            cached = self._cache.get((run_id, key, int(count)))
        return None if cached is None else cached[self.levels[0]]

    def prefetch(self, wanted: Iterable[tuple[str, str, int]], warming: bool = False) -> int:
        """Read and downsample the (run id, key, count) series not cached yet, in bulk.

        A few runs per store query; the series of one batch are downsampled on a thread
        pool while the next batch is read, and a long one's fine level is queued for its
        background build (``FineLevels.offer``; in the order wanted, so the first are built
        first). Returns how many series were read. ``warming`` (the server's warm-up, newest
        runs first): their fine levels evict none kept, so the newest runs keep theirs.
        """
        with self._lock:
            missing = [(run_id, key, int(count)) for run_id, key, count in wanted
                       if (run_id, key, int(count)) not in self._cache]
        counts: dict[str, dict[str, int]] = {}
        for run_id, key, count in missing:
            counts.setdefault(run_id, {})[key] = count
        runs = list(counts)
        done = 0
        with self._fine.reading(), ThreadPoolExecutor(max_workers=DRAW_THREADS) as pool:
            in_flight: list[Future] = []
            for start in range(0, len(runs), RUNS_PER_READ):
                batch = runs[start:start + RUNS_PER_READ]
                keys = sorted({key for run_id in batch for key in counts[run_id]})
                histories = self.manager().get_metric_histories(batch, keys)
                read = [((run_id, key, count), histories[run_id, key]) for run_id in batch  # in the order wanted
                        for key, count in counts[run_id].items() if (run_id, key) in histories]
                for cache_key, history in read:
                    self._fine.offer(cache_key, history, evict=not warming)
                drawing = [pool.submit(self._keep, cache_key, history) for cache_key, history in read]
                for future in in_flight:  # at most two batches of arrays in memory
                    future.result()
                in_flight = drawing
                done += len(drawing)
            for future in in_flight:
                future.result()
        return done

    def _keep(self, cache_key: SeriesKey, history: Any) -> dict[int, DrawnSeries]:
        """Downsample a history to every level and cache the variants."""
        drawn = draw(history.steps, history.values, history.timestamps,
                     bucket_size_for(len(history), self.max_points), len(LEVEL_DIVISORS))
        variants = dict(zip(self.levels, drawn))
        self._remember(cache_key, variants)
        return variants

    def fine_level(self, run_id: str, key: str, count: int) -> DrawnSeries:
        """The series of ``key`` bucketed to about ``FINE_POINTS`` points (``FineLevels.get``):
        built from the overview's read when there was one, else read from the store now."""
        return self._fine.get((run_id, key, int(count)), lambda: self.manager().get_metric_history(run_id, key))

    def points_after(self, run_id: str, key: str, after_step: int | None) -> tuple[np.ndarray, ...]:
        """Points logged at a step after ``after_step`` (all when None): steps, values, times."""
        history = self.manager().get_metric_history(run_id, key, after_step=after_step)
        return history.steps, history.values, history.timestamps

    def _remember(self, cache_key: SeriesKey, variants: dict[int, DrawnSeries]) -> None:
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
        cache is full (the fine levels of the newest long series too, up to ``FINE_SERIES``);
        returns how many."""
        done = 0
        runs = self.runs()
        for start in range(0, len(runs), RUNS_PER_READ):
            if stop is not None and stop.is_set() or self._cached_bytes >= self._cache_bytes:
                break  # stopped, or the cache is full: reading on would evict the newest runs' series
            done += self.prefetch([(run.run_id, key, summary.get("count", 0))
                                   for run in runs[start:start + RUNS_PER_READ]
                                   for key, summary in run.metrics.items()], warming=True)
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
