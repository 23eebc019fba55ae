"""The Optuna study of a sweep: in the experiment store's own database, shared by every
process working on the sweep.

An embedded store's study lives in its SQLite file (``<store>/store.db``), a PostgreSQL
store's in the same database; Optuna's tables (``studies``, ``trials``, ``trial_*``,
``version_info``, ``alembic_version``) sit beside the store's, none of whose names they
take. Trials are claimed one at a time under a lock (a file lock next to an embedded
store, an advisory lock on PostgreSQL): the claim counts the trials finished or running
and asks Optuna for a new one only while that is below the requested number (and, for a
grid, while a point is left to try: see :func:`_grid_sampler`), so several
processes (``neural sweep --resume`` twice, ``parallel: N``, Ray tasks) split the trials
between them, and no trial number is given twice.

A running trial records a heartbeat in Optuna's ``trial_heartbeats`` every
:data:`HEARTBEAT` seconds and its worker (``host:pid``); a claim first fails the running
trials whose worker is gone (a process of this machine that no longer exists, or no
heartbeat for :data:`GRACE` seconds), in Optuna and in the store (trial ``failed``, its
run ``crashed``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import threading
import warnings
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

from neural_dsl_tracking.plugins.sweep import space as spaces
from neural_dsl_tracking.tracking.db import SQLITE_FILE
from neural_dsl_tracking.tracking.store import Store

HEARTBEAT = 10
"""Seconds between a running trial's heartbeats."""
GRACE = 30
"""Seconds without a heartbeat after which a running trial is failed."""
WORKER_ATTR = "neural:worker"
"""Optuna system attribute of a trial: ``host:pid`` of the process running it."""
MEDIAN_STARTUP_TRIALS = 2
"""Trials the median pruner lets finish before it compares (Optuna's default is 5)."""
GRID_ATTEMPTS = 2
"""Trials a grid point gets at most: one that failed is tried once more, then left."""


@dataclass(frozen=True)
class StudySettings:
    """What a process needs to open a sweep's study (plain data: a Ray task can get it)."""

    storage: str
    study_name: str
    direction: str
    sampler: str
    pruner: str
    seed: int | None
    epochs: int
    grid: dict[str, list[Any]] | None = None


def storage_url(store: Store) -> str:
    """The SQLAlchemy URL of the store's database (a PostgreSQL URL keeps its password)."""
    if store.db.dialect == "postgresql":
        url = store.db._url  # noqa: SLF001 - the unredacted URL the store was opened with
        scheme, rest = url.split("://", 1)
        return f"postgresql+psycopg://{rest}"
    return f"sqlite:///{(Path(store.db.location) / SQLITE_FILE).resolve()}"


def _storage(url: str) -> Any:
    """One RDBStorage per database and process (creating it checks Optuna's schema): a
    worker forked from the driver opens its own connections, never the driver's."""
    return _storage_of(url, os.getpid())


@lru_cache(maxsize=8)
def _storage_of(url: str, pid: int) -> Any:
    """:func:`_storage` of process ``pid`` (the inherited ones stay referenced, never closed here)."""
    import optuna

    _optuna_logs_as_notes()
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    with _quiet():
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT,
                                             grace_period=GRACE)
    if url.startswith("sqlite"):
        _like_the_store(storage.engine)
    return storage


@lru_cache(maxsize=1)
def _optuna_logs_as_notes() -> None:
    """Optuna's warnings (and worse) as one ``note: optuna: ...`` line each on stderr, not its
    own ``[W date] ...`` lines; its info lines (each trial told) left out."""
    import logging

    import optuna

    class Notes(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            print(f"note: optuna: {' '.join(record.getMessage().split())}", file=sys.stderr)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    logging.getLogger("optuna").addHandler(Notes())


def _like_the_store(engine: Any) -> None:
    """Optuna's SQLite connections commit as the store's do (WAL, ``synchronous = NORMAL``:
    no fsync per commit, durable across a crash of the process)."""
    from sqlalchemy import event

    def configure(connection: Any, record: Any) -> None:
        connection.execute("PRAGMA synchronous = NORMAL")

    event.listen(engine, "connect", configure)
    engine.dispose()  # the connections opened while creating the storage


def sampler(settings: StudySettings) -> Any:
    """The Optuna sampler ``tpe``, ``random`` or ``grid`` names, seeded."""
    import optuna

    if settings.sampler == "grid":
        return _grid_sampler()(settings.grid or {}, seed=settings.seed)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=settings.seed)
    return optuna.samplers.TPESampler(seed=settings.seed)


@lru_cache(maxsize=1)
def _grid_sampler() -> type:
    """Optuna's GridSampler, telling grid points by their values, not by Optuna's grid ids
    (which index the grid as the seed shuffled it, and a process resuming or joining a sweep
    has a seed of its own). A trial takes a point with no finished or running trial, a point
    whose trial failed (a crash, a killed worker) only after every untried one, and at most
    :data:`GRID_ATTEMPTS` times: never a point already done, so Optuna never re-evaluates
    one. The last point's ``tell`` does not call ``study.stop()`` (which only works inside
    ``optimize``); the claims end when no point is left (:func:`claim`)."""
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        def before_trial(self, study: Any, trial: Any) -> None:
            if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
                return
            grid_id, failed = self.points_left(study)[0]  # the claim, under its lock, saw one left
            if failed:
                point = dict(zip(self._param_names, self._all_grids[grid_id]))
                values = " ".join(spaces.overrides(spaces.config_values(point)))
                print(f"note: trial {trial.number} tries {values} again (trial {failed[-1]} failed there); "
                      f"a grid point is tried at most {GRID_ATTEMPTS} times", file=sys.stderr)
            storage = study._storage  # noqa: SLF001 - as Optuna's own before_trial records the point
            storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)  # noqa: SLF001
            storage.set_trial_system_attr(trial._trial_id, "grid_id", grid_id)  # noqa: SLF001

        def points_left(self, study: Any) -> list[tuple[int, list[int]]]:
            """(grid id, numbers of its failed trials) of each point a new trial may take,
            untried ones first, each group in the grid's order."""
            from optuna.trial import TrialState

            failed: dict[tuple[Any, ...], list[int]] = {}
            taken: set[tuple[Any, ...]] = set()
            for past in study._storage.get_all_trials(study._study_id, deepcopy=False):  # noqa: SLF001
                if not all(name in past.params for name in self._param_names):
                    continue  # the trial being created
                point = tuple(past.params[name] for name in self._param_names)
                if past.state == TrialState.FAIL:
                    failed.setdefault(point, []).append(past.number)
                elif past.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
                    taken.add(point)
            left = [(grid_id, failed.get(point, [])) for grid_id, point in enumerate(self._all_grids)
                    if point not in taken and len(failed.get(point, [])) < GRID_ATTEMPTS]
            return sorted(left, key=lambda item: len(item[1]))

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return GridSampler


def pruner(settings: StudySettings) -> Any:
    """``none``, ``median`` (after two finished trials) or ``hyperband`` (epochs as resource)."""
    import optuna

    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS)
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(settings.epochs, 1))
    return optuna.pruners.NopPruner()


_studies: dict[tuple[str, str, int], Any] = {}


def open_study(settings: StudySettings, create: bool = False) -> Any:
    """The study (created when ``create``), one object per process."""
    import optuna

    key = (settings.storage, settings.study_name, os.getpid())
    if key not in _studies:
        storage = _storage(settings.storage)
        with _quiet():
            if create:
                study = optuna.create_study(storage=storage, study_name=settings.study_name,
                                            direction=settings.direction, sampler=sampler(settings),
                                            pruner=pruner(settings), load_if_exists=True)
            else:
                study = optuna.load_study(study_name=settings.study_name, storage=storage,
                                          sampler=sampler(settings), pruner=pruner(settings))
        _studies[key] = study
    return _studies[key]


@contextmanager
def _quiet() -> Iterator[None]:
    """Without Optuna's experimental-feature warnings (heartbeats used with ask-and-tell)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------- claiming trials


def claim(store: Store, settings: StudySettings, wanted: int, distributions: dict[str, Any],
          on_failed: Callable[[int], None], *, runs_here: bool = False) -> Any | None:
    """A new trial when fewer than ``wanted`` are finished or running, else None.

    Under the sweep's lock: the running trials of vanished workers are failed first
    (``on_failed(number)`` for each), then the count, then Optuna's ``ask``. The trial is
    recorded as this process's; when it ``runs_here`` (at once, in this process) its first
    heartbeat is recorded with that, in the same transaction.
    """
    from optuna.trial import TrialState

    study = open_study(settings)
    with _claim_lock(store, settings.study_name):
        counts = _state_counts(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if counts["RUNNING"] else []
        failed = fail_vanished(study, running) if running else []
        for number in failed:
            on_failed(number)
        if counts["COMPLETE"] + counts["PRUNED"] + counts["RUNNING"] - len(failed) >= wanted:
            return None
        if settings.sampler == "grid" and not study.sampler.points_left(study):
            return None  # every point done, or failed GRID_ATTEMPTS times
        with _quiet():
            trial = study.ask(distributions)
        _record_worker(study, trial._trial_id, first_beat=runs_here)  # noqa: SLF001
        _claimed.clear()
        _claimed[(os.getpid(), trial._trial_id)] = trial  # noqa: SLF001
        return trial


def _state_counts(study: Any) -> dict[str, int]:
    """The study's trials by state name, counted in the database (one small query; reading
    the trials themselves costs milliseconds, and the sampler reads them again anyway)."""
    from optuna.storages._rdb.models import TrialModel
    from sqlalchemy import func, select

    query = (select(TrialModel.state, func.count()).where(TrialModel.study_id == study._study_id)  # noqa: SLF001
             .group_by(TrialModel.state))
    storage = study._storage  # noqa: SLF001 - Optuna's cache around the RDBStorage
    with getattr(storage, "_backend", storage).engine.connect() as connection:
        return Counter({state.name: count for state, count in connection.execute(query)})


def _record_worker(study: Any, trial_id: int, first_beat: bool) -> None:
    """Record this process as the trial's worker and, with ``first_beat``, the trial's first
    heartbeat, in one transaction (two of Optuna's would cost twice as much)."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    backend = getattr(study._storage, "_backend", study._storage)  # noqa: SLF001 - Optuna's cache around the RDBStorage
    with _create_scoped_session(backend.scoped_session, True) as session:
        backend._set_trial_attr_without_commit(session, models.TrialSystemAttributeModel,  # noqa: SLF001
                                               trial_id, WORKER_ATTR, this_worker())
        if first_beat:
            session.add(models.TrialHeartbeatModel(trial_id=trial_id))


_claimed: dict[tuple[int, int], Any] = {}
"""The last trial this process claimed, by (process id, trial id), until it runs here."""


def claimed_trial(trial_id: int) -> Any | None:
    """The trial ``trial_id`` when this process claimed it last (no trial object built again)."""
    return _claimed.pop((os.getpid(), trial_id), None)


def fail_vanished(study: Any, running: list[Any]) -> list[int]:
    """Fail those of the ``running`` trials whose process is gone (on this machine, or no
    heartbeat for :data:`GRACE` seconds); returns their numbers."""
    storage = study._storage  # noqa: SLF001
    stale = set(storage._get_stale_trial_ids(study._study_id))  # noqa: SLF001 - Optuna's heartbeat check
    return [trial.number for trial in running
            if (trial._trial_id in stale or _vanished(trial.system_attrs.get(WORKER_ATTR)))  # noqa: SLF001
            and _set_failed(storage, trial._trial_id)]  # noqa: SLF001


def _set_failed(storage: Any, trial_id: int) -> bool:
    import optuna
    from optuna.trial import TrialState

    try:
        return bool(storage.set_trial_state_values(trial_id, state=TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # finished meanwhile, or failed by another process


def this_worker() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _vanished(worker: str | None) -> bool:
    """True for a worker of this machine whose process no longer exists."""
    if not worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except OSError as error:
        return error.errno == errno.ESRCH
    return False


@contextmanager
def _claim_lock(store: Store, study_name: str) -> Iterator[None]:
    """The sweep's claim lock: a file lock next to an embedded store, else an advisory lock."""
    if store.db.dialect == "postgresql":
        key = zlib.crc32(f"neural-sweep:{study_name}".encode())
        store.db.write(lambda cur: cur.execute("SELECT pg_advisory_lock(?)", (key,)))
        try:
            yield
        finally:
            store.db.write(lambda cur: cur.execute("SELECT pg_advisory_unlock(?)", (key,)))
        return
    with open(store.files_dir / ".sweep-claims.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------- heartbeats


class Heartbeat:
    """Records a trial's heartbeat every :data:`HEARTBEAT` seconds while the block runs, the
    first as it starts unless ``beaten`` (the claim in this process recorded it)."""

    def __init__(self, settings: StudySettings, trial_id: int, beaten: bool = False) -> None:
        self._storage = _storage(settings.storage)
        self._trial_id = trial_id
        self._beaten = beaten
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="neural-sweep-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        if self._beaten:
            self._stop.wait(HEARTBEAT)
        while not self._stop.is_set():
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next one
                pass
            self._stop.wait(HEARTBEAT)
