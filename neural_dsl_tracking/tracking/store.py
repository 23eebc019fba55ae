"""The experiment store: runs, parameters, chunked metric series, artifact versions.

One class serves an embedded store (a directory with ``store.db`` in WAL mode and
``objects/``) and a PostgreSQL database (``postgresql+psycopg://...``; the files then live
under ``base_dir``). Metric series are kept as chunks of little-endian int64/float64
arrays, so reading 100k points is a handful of blob reads.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.db import (
    Cursor,
    Database,
    StoreAbsent,
    check_store_location,
    is_database_url,
)
from neural_dsl_tracking.tracking.objects import ObjectMissingError, ObjectStore, StagedObject
from neural_dsl_tracking.tracking.records import (
    ArtifactVersion,
    MetricHistory,
    MetricSummary,
    ModelFacts,
    RUN_EVENT_KINDS,
    RunEvent,
    RunModel,
    RunParent,
    RunRecord,
    SweepRecord,
    TrialRecord,
    oldest_twins,
)
from neural_dsl_tracking.tracking.query import Query, order_sql, param_number
from neural_dsl_tracking.tracking.schema import SCHEMA_VERSION, installed_version, migrate
from neural_dsl_tracking.tracking.values import (
    DIRECTIONS,
    MAX_NAME,
    TRIAL_STATES,
    check_name,
    check_param_value,
    metric_mode,
)

STEP_DTYPE = np.dtype("<i8")
FLOAT_DTYPE = np.dtype("<f8")
CHUNK_POINTS = 65536  # largest chunk written
MERGE_BELOW = 4096  # a tail chunk smaller than this is extended instead of starting a new one
DEFAULT_CRASH_AFTER = 30.0
CRASH_AFTER_ENV = "NEURAL_TRACKING_CRASH_AFTER"
_RUNS_PER_QUERY = 500  # well under SQLite's limit of bound parameters per statement
_MANY_ROWS = 2000
"""A query condition met by more runs than this is checked run by run (query.py's _Compiler)."""
_ARTIFACT_READS = 10
"""How many times a read whose object was freed under it (``version=False`` replacing the
artifact) reads the version again; between two that name the same object it waits for the
replacing write to commit (5 ms, doubling: about 2.5 s in all)."""

T = TypeVar("T")

Series = tuple[np.ndarray, np.ndarray, np.ndarray]  # steps, values, timestamps


class NotFound(TrackingError):
    """No run (or sweep) has the id, id prefix or name given."""


class RunDeleted(TrackingError):
    """A write found its run gone (deleted while running, e.g. ``neural experiments rm --force``)."""


def crash_after_default() -> float:
    """Seconds without a heartbeat after which a running run is reported crashed."""
    text = os.environ.get(CRASH_AFTER_ENV, "").strip()
    try:
        seconds = float(text) if text else DEFAULT_CRASH_AFTER
    except ValueError:
        seconds = math.nan
    if not seconds >= 0:
        raise TrackingError(f"{CRASH_AFTER_ENV} must be a number of seconds >= 0, got {text!r}")
    return seconds


def check_crash_after(seconds: float | None) -> float | None:
    """``seconds`` when None or a number >= 0, else a TrackingError."""
    if seconds is not None and not (isinstance(seconds, (int, float)) and seconds >= 0):
        raise TrackingError(f"crash_after must be a number of seconds >= 0, got {seconds!r}")
    return seconds


def store_locations(base_dir: str | Path, store: str | Path | None) -> tuple[str, Path]:
    """(database location, files directory): a URL keeps files in base_dir, a path is both.
    A URL other than PostgreSQL's is a TrackingError."""
    if store is not None:
        check_store_location(str(store))
    if store is not None and is_database_url(str(store)):
        return str(store), Path(base_dir)
    directory = Path(store if store is not None else base_dir)
    return str(directory), directory


def utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=timezone.utc)


def to_json(value: Any) -> str:
    """JSON text for parameters and config; numpy/torch scalars via ``.item()``."""
    return json.dumps(value, default=_json_default, allow_nan=True, sort_keys=False)


def _json_default(value: Any) -> Any:
    for method in ("item", "tolist"):
        convert = getattr(value, method, None)
        if callable(convert):
            try:
                return convert()
            except (ValueError, RuntimeError, TypeError):
                continue
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _param_json(key: Any, value: Any) -> str:
    """A hyperparameter as JSON, or a TypeError naming it (a structure that contains itself),
    or a TrackingError when the JSON is over the length limit."""
    try:
        text = to_json(value)
    except (ValueError, RecursionError) as error:
        raise TypeError(f"hyperparameter {key!r}: {error}") from None
    return check_param_value(str(key), text)


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


class Store:
    """Read and write access to one experiment store."""

    def __init__(self, base_dir: str | Path = "neural_experiments", store: str | Path | None = None,
                 *, create: bool = True) -> None:
        location, files_dir = store_locations(base_dir, store)
        self.files_dir = files_dir
        self.objects = ObjectStore(files_dir / "objects")
        self.db = Database(location, create=create)
        self.location = self.db.location
        version = installed_version(self.db)
        if version is None and not create:
            self.db.close()
            raise StoreAbsent(f"no experiment store at {self.location}")
        if version != SCHEMA_VERSION:
            migrate(self.db)

    def close(self) -> None:
        self.db.close()

    def run_dir(self, run_id: str) -> Path:
        return self.files_dir / "runs" / run_id

    # ---- runs -------------------------------------------------------------------------
    def create_run(self, *, experiment: str, run_name: str | None, tags: Iterable[str] = (),
                   config: dict | None = None, source_file: str | None = None,
                   source_sha256: str | None = None, run_id: str | None = None,
                   start_time: float | None = None, status: str = "running") -> str:
        run_id = run_id or uuid.uuid4().hex
        now = time.time() if start_time is None else start_time
        check_name("experiment name", experiment)
        name = check_name("run name", run_name) if run_name else \
            f"{experiment[:MAX_NAME - 9]}-{run_id[:8]}"
        tag_rows = _tag_rows(run_id, tags)

        def body(cur: Cursor) -> None:
            cur.execute("INSERT INTO experiments (name, created_at) VALUES (?, ?) "
                        "ON CONFLICT (name) DO NOTHING", (experiment, now))
            cur.execute(
                "INSERT INTO runs (run_id, experiment, run_name, status, start_time, heartbeat, "
                "config, source_file, source_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, experiment, name, status, now, time.time(),
                 None if config is None else to_json(config), source_file, source_sha256))
            cur.executemany("INSERT INTO run_tags (run_id, tag) VALUES (?, ?) "
                            "ON CONFLICT DO NOTHING", tag_rows)

        self.db.write(body)
        return run_id

    def reopen_run(self, run_id: str) -> None:
        """Mark an existing run running again (resuming it); a TrackingError while it is still
        running elsewhere (heartbeat fresher than the crash threshold). Check and update are
        one statement, so two processes resuming one crashed run cannot both succeed."""
        crash_after = crash_after_default()

        def body(cur: Cursor) -> tuple | None:
            now = time.time()
            if cur.one("UPDATE runs SET status = 'running', end_time = NULL, heartbeat = ? "
                       "WHERE run_id = ? AND NOT (status = 'running' AND heartbeat >= ?) "
                       "RETURNING run_id", (now, run_id, now - crash_after)):
                return None
            return cur.one("SELECT heartbeat FROM runs WHERE run_id = ?", (run_id,))

        alive = self.db.write(body)
        if alive is not None:
            age = max(0.0, time.time() - alive[0])
            raise TrackingError(
                f"cannot resume run {run_id[:8]}: it is still running elsewhere (last heartbeat "
                f"{age:.0f} s ago); finish or stop that process first. A run whose process is "
                f"gone counts as crashed, and can be resumed, {crash_after:g} s after its last "
                f"heartbeat ({CRASH_AFTER_ENV})")

    def add_tags(self, run_id: str, tags: Iterable[str]) -> None:
        rows = _tag_rows(run_id, tags)
        self.db.write(lambda cur: cur.executemany(
            "INSERT INTO run_tags (run_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING", rows))

    def set_status(self, run_id: str, status: str, end_time: float | None = None) -> None:
        now = time.time()
        self.db.write(lambda cur: cur.execute(
            "UPDATE runs SET status = ?, end_time = ?, heartbeat = ? WHERE run_id = ?",
            (status, end_time if end_time is not None else now, now, run_id)))

    def heartbeat(self, run_id: str) -> None:
        self.db.write(lambda cur: cur.execute(
            "UPDATE runs SET heartbeat = ? WHERE run_id = ?", (time.time(), run_id)))

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        rows = [(run_id, check_name("parameter name", str(key)), text, param_number(text))
                for key, value in params.items() for text in [_param_json(key, value)]]

        def body(cur: Cursor) -> None:
            self._check_run(cur, run_id)
            cur.executemany("INSERT INTO params (run_id, key, value, num) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, "
                            "num = excluded.num", rows)

        self.db.write(body)

    def record_mirror_failure(self, run_id: str, backend: str, message: str) -> None:
        def body(cur: Cursor) -> None:
            self._check_run(cur, run_id)
            cur.execute("INSERT INTO mirror_failures (run_id, backend, message, created_at) "
                        "VALUES (?, ?, ?, ?)", (run_id, str(backend), str(message), time.time()))

        self.db.write(body)

    def _check_run(self, cur: Cursor, run_id: str) -> None:
        """Inside a write: RunDeleted unless the run is still in the store."""
        if cur.one("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)) is None:
            raise RunDeleted(f"run {run_id[:8]} was deleted from the experiment store "
                             f"{self.location}; nothing more is recorded for it")

    def run_exists(self, run_id: str) -> bool:
        return self.db.read(lambda cur: cur.one(
            "SELECT 1 FROM runs WHERE run_id = ?", (run_id,))) is not None

    def resolve_run_id(self, ref: str) -> str:
        """A full run id from an id, a unique id prefix, or a unique run name (a ref that is
        both a prefix of one run's id and another run's name is ambiguous)."""
        return self._resolve("run", "runs", "run_id", "run_name", ref)

    def _resolve(self, kind: str, table: str, id_column: str, name_column: str, ref: str) -> str:
        """The full id in ``table`` of a ``kind`` given by id, unique id prefix or unique name."""
        ref = str(ref).strip()

        def body(cur: Cursor) -> list[str]:
            if cur.one(f"SELECT 1 FROM {table} WHERE {id_column} = ?", (ref,)):
                return [ref]
            found: list[str] = []
            if re.fullmatch(r"[0-9a-f]{1,32}", ref):
                found = [r[0] for r in cur.all(
                    f"SELECT {id_column} FROM {table} WHERE {id_column} LIKE ? ORDER BY {id_column}",
                    (ref + "%",))]
            named = [r[0] for r in cur.all(
                f"SELECT {id_column} FROM {table} WHERE {name_column} = ? ORDER BY {id_column}", (ref,))]
            return list(dict.fromkeys(found + named))

        found = self.db.read(body)
        if not found:
            raise NotFound(f"no {kind} {ref!r} in the experiment store {self.location}")
        if len(found) > 1:
            shown = ", ".join(f[:12] for f in found[:5]) + (", ..." if len(found) > 5 else "")
            raise TrackingError(f"{kind} {ref!r} is ambiguous in {self.location}: it matches {shown}; "
                                f"give more of the {kind} id")
        return found[0]

    def resolve_run_ids(self, refs: Sequence[str]) -> dict[str, str]:
        """``{ref: full run id}`` for several refs: one query when all are full ids."""
        cleaned = {ref: str(ref).strip() for ref in refs}
        wanted, found = list(cleaned.values()), set()
        for start in range(0, len(wanted), _RUNS_PER_QUERY):
            batch = wanted[start:start + _RUNS_PER_QUERY]
            found.update(row[0] for row in self.db.read(lambda cur: cur.all(
                f"SELECT run_id FROM runs WHERE run_id IN ({_marks(batch)})", batch)))
        return {ref: clean if clean in found else self.resolve_run_id(clean)
                for ref, clean in cleaned.items()}

    def get_run(self, run_id: str, crash_after: float | None = None) -> RunRecord:
        records = self._records("r.run_id = ?", (run_id,), crash_after)
        if not records:
            raise TrackingError(f"no run {run_id!r} in the experiment store {self.location}")
        return records[0]

    def list_runs(self, experiment: str | None = None, status: str | None = None,
                  tag: str | None = None, crash_after: float | None = None,
                  changed_after: float | None = None) -> list[RunRecord]:
        """Runs, newest first; with ``changed_after``, only those written at or after that heartbeat
        and those still marked running (whose status may have turned crashed)."""
        clauses, args = ["1 = 1"], []
        if changed_after is not None:
            clauses.append("(r.heartbeat >= ? OR r.status = 'running')")
            args.append(changed_after)
        if experiment is not None:
            clauses.append("r.experiment = ?")
            args.append(experiment)
        if tag is not None:
            clauses.append("r.run_id IN (SELECT run_id FROM run_tags WHERE tag = ?)")
            args.append(tag)
        records = self._records(" AND ".join(clauses), tuple(args), crash_after)
        if status is not None:
            records = [r for r in records if r.status == status]
        return records

    def runs_version(self) -> tuple[int, float, float]:
        """The number of runs, their latest heartbeat and the sum of their start times: a cheap
        token that changes when a run is added, deleted, or writes metrics or its status."""
        row = self.db.read(lambda cur: cur.one("SELECT COUNT(*), MAX(heartbeat), SUM(start_time) FROM runs"))
        return int(row[0]), float(row[1] or 0.0), float(row[2] or 0.0)

    def _records(self, where: str, args: tuple, crash_after: float | None) -> list[RunRecord]:
        crash_after = crash_after_default() if crash_after is None else crash_after
        sub = f"SELECT r.run_id FROM runs r WHERE {where}"

        def body(cur: Cursor) -> list[RunRecord]:
            runs = cur.all(
                "SELECT r.run_id, r.experiment, r.run_name, r.status, r.start_time, r.end_time, "
                "r.heartbeat, r.config, r.source_file, r.source_sha256 FROM runs r "
                f"WHERE {where} ORDER BY r.start_time DESC, r.run_id", args)
            if not runs:
                return []
            params: dict[str, dict] = {}
            for rid, key, value in cur.all(
                    f"SELECT run_id, key, value FROM params WHERE run_id IN ({sub}) "
                    "ORDER BY run_id, key", args):
                params.setdefault(rid, {})[key] = json.loads(value)
            tags: dict[str, list] = {}
            for rid, tag in cur.all(f"SELECT run_id, tag FROM run_tags WHERE run_id IN ({sub}) "
                                    "ORDER BY run_id, tag", args):
                tags.setdefault(rid, []).append(tag)
            metrics: dict[str, dict] = {}
            for row in cur.all(
                    "SELECT run_id, key, n_points, latest, latest_step, min_value, max_value, "
                    f"max_step FROM metric_summary WHERE run_id IN ({sub}) ORDER BY run_id, key",
                    args):
                metrics.setdefault(row[0], {})[row[1]] = _summary(row[1], row[2:]).as_dict()
            artifacts: dict[str, list] = {}
            for rid, name in cur.all(
                    f"SELECT DISTINCT run_id, name FROM artifact_versions WHERE run_id IN ({sub}) "
                    "ORDER BY run_id, name", args):
                artifacts.setdefault(rid, []).append(name)
            failures: dict[str, list] = {}
            for rid, backend, message in cur.all(
                    "SELECT run_id, backend, message FROM mirror_failures "
                    f"WHERE run_id IN ({sub}) ORDER BY created_at", args):
                failures.setdefault(rid, []).append((backend, message))
            parents, children, events = _lineage_rows(cur, sub, args)
            now = time.time()
            out = []
            for (rid, experiment, name, status, start, end, beat, config, src, sha) in runs:
                if status == "running" and now - beat > crash_after:
                    status = "crashed"
                out.append(RunRecord(
                    run_id=rid, experiment=experiment, run_name=name, status=status,
                    start_time=utc(start), end_time=utc(end),
                    hyperparameters=params.get(rid, {}), tags=tags.get(rid, []),
                    metrics=metrics.get(rid, {}), artifacts=artifacts.get(rid, []),
                    mirror_failures=failures.get(rid, []), heartbeat=utc(beat),
                    config=None if config is None else json.loads(config),
                    source_file=src, source_sha256=sha, parent=parents.get(rid),
                    children=tuple(children.get(rid, ())), events=tuple(events.get(rid, ()))))
            return out

        return self.db.read(body)

    def query_runs(self, query: Query | None = None, *, order: str = "-start", limit: int | None = None,
                   offset: int = 0, crash_after: float | None = None) -> list[RunRecord]:
        """The runs matching ``query`` (every run when None), sorted by ``order`` (a field of
        the query language, ``-`` before it for descending; ties newest first), ``limit``
        of them from ``offset``."""
        crash_after = crash_after_default() if crash_after is None else crash_after
        ids = self.query_run_ids(query, order=order, limit=limit, offset=offset, crash_after=crash_after)
        found: dict[str, RunRecord] = {}
        for start in range(0, len(ids), _RUNS_PER_QUERY):
            batch = ids[start:start + _RUNS_PER_QUERY]
            found.update((r.run_id, r) for r in self._records(f"r.run_id IN ({_marks(batch)})",
                                                               tuple(batch), crash_after))
        return [found[run_id] for run_id in ids if run_id in found]

    def query_run_ids(self, query: Query | None = None, *, order: str = "-start", limit: int | None = None,
                      offset: int = 0, crash_after: float | None = None) -> list[str]:
        """The ids of the runs ``query_runs`` gives, in its order, without reading the runs."""
        if (limit is not None and limit < 0) or offset < 0:
            raise TrackingError(f"limit and offset must be >= 0, got limit={limit!r}, offset={offset!r}")
        crash_after = crash_after_default() if crash_after is None else crash_after
        where, args = self._where(query, crash_after)
        terms, order_args = order_sql(order, self.db.dialect, now=time.time(), crash_after=crash_after)
        page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
        if limit is None and offset:
            page = f" LIMIT -1 OFFSET {int(offset)}" if self.db.dialect == "sqlite" else f" OFFSET {int(offset)}"
        return [row[0] for row in self.db.read(lambda cur: cur.all(
            f"SELECT r.run_id FROM runs r WHERE {where} ORDER BY {terms}{page}", [*args, *order_args]))]

    def count_runs(self, query: Query | None = None, crash_after: float | None = None) -> int:
        """How many runs match ``query`` (every run when None)."""
        crash_after = crash_after_default() if crash_after is None else crash_after
        counted = None if query is None else query.count_sql(self.db.dialect, now=time.time(),
                                                              crash_after=crash_after)
        if counted is None:
            where, args = self._where(query, crash_after)
            counted = (f"SELECT COUNT(*) FROM runs r WHERE {where}", args)
        return int(self.db.read(lambda cur: cur.one(*counted))[0])

    def _where(self, query: Query | None, crash_after: float) -> tuple[str, list]:
        if query is None:
            return "1 = 1", []
        # PostgreSQL's planner weighs IN against EXISTS itself; SQLite's cannot tell
        many = self._many if self.db.dialect == "sqlite" else None
        return query.sql(self.db.dialect, now=time.time(), crash_after=crash_after, many=many)

    def _many(self, rows_sql: str, args: list) -> bool:
        """Whether ``rows_sql`` has more than _MANY_ROWS rows (reading at most that many)."""
        row = self.db.read(lambda cur: cur.one(
            f"SELECT COUNT(*) FROM ({rows_sql} LIMIT {_MANY_ROWS + 1}) AS found", args))
        return int(row[0]) > _MANY_ROWS

    def delete_run(self, run_id: str) -> int:
        """Remove a run and its rows; frees objects no other version uses. Returns bytes freed."""

        def body(cur: Cursor) -> int:
            shas = [r[0] for r in cur.all(
                "SELECT DISTINCT sha256 FROM artifact_versions WHERE run_id = ?", (run_id,))]
            cur.execute("UPDATE sweep_trials SET run_id = NULL WHERE run_id = ?", (run_id,))
            for table in ("artifact_aliases", "artifact_versions", "metric_chunks",
                          "metric_summary", "params", "run_tags", "mirror_failures", "run_models",
                          "run_layer_counts", "run_lineage", "run_events", "sync_progress", "runs"):
                cur.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            return shas

        freed = self._free_unreferenced(self.db.write(body))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
        return freed

    # ---- lineage and events ------------------------------------------------------------
    def set_run_parent(self, run_id: str, parent_run_id: str, fork_epoch: int | None,
                       fork_step: int | None) -> None:
        """Record that ``run_id`` was forked from ``parent_run_id`` at that epoch and global
        step (replacing an earlier record)."""
        row = (run_id, parent_run_id, None if fork_epoch is None else int(fork_epoch),
               None if fork_step is None else int(fork_step))

        def body(cur: Cursor) -> None:
            self._check_run(cur, run_id)
            cur.execute("INSERT INTO run_lineage (run_id, parent_run_id, fork_epoch, fork_step) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
                        "parent_run_id = excluded.parent_run_id, fork_epoch = excluded.fork_epoch, "
                        "fork_step = excluded.fork_step", row)

        self.db.write(body)

    def add_run_event(self, run_id: str, kind: str, detail: str, at: float | None = None) -> None:
        """Add an event (one of RUN_EVENT_KINDS) to the run's history."""
        row = (run_id, time.time() if at is None else float(at),
               _one_of("run event kind", kind, RUN_EVENT_KINDS), str(detail))

        def body(cur: Cursor) -> None:
            self._check_run(cur, run_id)
            cur.execute("INSERT INTO run_events (run_id, at, kind, detail) VALUES (?, ?, ?, ?)", row)

        self.db.write(body)

    def lineage(self, run_ids: Sequence[str]) -> dict[str, RunParent]:
        """The parent and fork point of each of ``run_ids`` that was forked, by run id."""
        return _parents(self._rows_of_runs(
            "SELECT run_id, parent_run_id, fork_epoch, fork_step FROM run_lineage WHERE run_id IN ({})", run_ids))

    def _rows_of_runs(self, sql: str, run_ids: Sequence[str]) -> list[tuple]:
        """The rows of ``sql`` (whose ``{}`` is a run id list) for ``run_ids``, read in batches."""
        wanted, rows = list(dict.fromkeys(run_ids)), []
        for start in range(0, len(wanted), _RUNS_PER_QUERY):
            batch = wanted[start:start + _RUNS_PER_QUERY]
            rows.extend(self.db.read(lambda cur: cur.all(sql.format(_marks(batch)), batch)))
        return rows

    def children_of(self, run_id: str) -> list[str]:
        """The ids of the runs forked from ``run_id``, oldest first."""
        return [row[0] for row in self.db.read(lambda cur: cur.all(
            "SELECT l.run_id FROM run_lineage l JOIN runs r ON r.run_id = l.run_id "
            "WHERE l.parent_run_id = ? ORDER BY r.start_time, l.run_id", (run_id,)))]

    # ---- sweeps -----------------------------------------------------------------------
    def create_sweep(self, *, experiment: str, objective: str, direction: str, sampler: str,
                     pruner: str, space: dict[str, Any], study_storage: str, study_name: str,
                     requested_trials: int, name: str | None = None, sweep_id: str | None = None,
                     source_file: str | None = None, source_sha256: str | None = None,
                     created_at: float | None = None) -> str:
        """Record a new sweep (its experiment is created when new); returns its id."""
        sweep_id = sweep_id or uuid.uuid4().hex
        now = time.time() if created_at is None else created_at
        check_name("experiment name", experiment)
        name = check_name("sweep name", name) if name else f"{experiment[:MAX_NAME - 15]}-sweep-{sweep_id[:8]}"
        row = (sweep_id, experiment, name, check_name("objective", objective),
               _one_of("direction", direction, DIRECTIONS), str(sampler), str(pruner), to_json(space),
               str(study_storage), str(study_name), _trial_count(requested_trials), now,
               source_file, source_sha256)

        def body(cur: Cursor) -> None:
            cur.execute("INSERT INTO experiments (name, created_at) VALUES (?, ?) "
                        "ON CONFLICT (name) DO NOTHING", (experiment, now))
            cur.execute("INSERT INTO sweeps (sweep_id, experiment, name, objective, direction, "
                        "sampler, pruner, space, study_storage, study_name, requested_trials, "
                        f"created_at, source_file, source_sha256) VALUES ({_marks(row)})", row)

        self.db.write(body)
        return sweep_id

    def set_requested_trials(self, sweep_id: str, trials: int) -> None:
        """Make ``trials`` the number of trials the sweep runs in all (``--resume --trials N``)."""
        count = _trial_count(trials)
        self.db.write(lambda cur: cur.execute("UPDATE sweeps SET requested_trials = ? WHERE sweep_id = ?",
                                              (count, sweep_id)))

    def record_trial(self, sweep_id: str, number: int, *, state: str, run_id: str | None = None,
                     value: float | None = None, params: dict[str, Any] | None = None) -> None:
        """Add trial ``number`` of a sweep, or update it: its state, and the run id, value and
        params when given (None keeps what was recorded). A NaN value is recorded as None."""
        _one_of("trial state", state, TRIAL_STATES)
        value = None if value is None or math.isnan(float(value)) else float(value)
        params_json = None if params is None else to_json(params)

        def body(cur: Cursor) -> None:
            if cur.one("SELECT 1 FROM sweeps WHERE sweep_id = ?", (sweep_id,)) is None:
                raise TrackingError(f"no sweep {sweep_id!r} in the experiment store {self.location}")
            cur.execute(
                "INSERT INTO sweep_trials (sweep_id, trial_number, run_id, state, value, params, "
                "updated_at) VALUES (?, ?, ?, ?, ?, COALESCE(?, '{}'), ?) "
                "ON CONFLICT (sweep_id, trial_number) DO UPDATE SET state = excluded.state, "
                "run_id = COALESCE(excluded.run_id, sweep_trials.run_id), "
                "value = COALESCE(excluded.value, sweep_trials.value), "
                "params = COALESCE(?, sweep_trials.params), updated_at = excluded.updated_at",
                (sweep_id, int(number), run_id, state, value, params_json, time.time(), params_json))

        self.db.write(body)

    def resolve_sweep_id(self, ref: str) -> str:
        """A full sweep id from an id, a unique id prefix, or a unique sweep name."""
        return self._resolve("sweep", "sweeps", "sweep_id", "name", ref)

    def get_sweep(self, sweep_id: str, crash_after: float | None = None) -> SweepRecord:
        sweeps = self._sweeps("s.sweep_id = ?", (sweep_id,), crash_after)
        if not sweeps:
            raise TrackingError(f"no sweep {sweep_id!r} in the experiment store {self.location}")
        return sweeps[0]

    def list_sweeps(self, experiment: str | None = None,
                    crash_after: float | None = None) -> list[SweepRecord]:
        """Sweeps, newest first, with their trials."""
        if experiment is None:
            return self._sweeps("1 = 1", (), crash_after)
        return self._sweeps("s.experiment = ?", (experiment,), crash_after)

    def _sweeps(self, where: str, args: tuple, crash_after: float | None) -> list[SweepRecord]:
        """The sweeps matching ``where``; a running trial whose run is crashed (still running,
        heartbeat older than ``crash_after``) reads as failed."""
        crash_after = crash_after_default() if crash_after is None else crash_after

        def body(cur: Cursor) -> list[SweepRecord]:
            trials: dict[str, list[TrialRecord]] = {}
            now = time.time()
            for sid, number, rid, state, value, params, updated, beat in cur.all(
                    "SELECT t.sweep_id, t.trial_number, t.run_id, t.state, t.value, t.params, "
                    "t.updated_at, r.heartbeat FROM sweep_trials t "
                    "LEFT JOIN runs r ON r.run_id = t.run_id AND r.status = 'running' "
                    f"WHERE t.sweep_id IN (SELECT s.sweep_id FROM sweeps s WHERE {where}) "
                    "ORDER BY t.sweep_id, t.trial_number", args):
                if state == "running" and beat is not None and now - beat > crash_after:
                    state = "failed"
                trials.setdefault(sid, []).append(TrialRecord(
                    sweep_id=sid, number=int(number), run_id=rid, state=state,
                    value=None if value is None else float(value),
                    params=json.loads(params) or {}, updated_at=utc(updated)))
            return [SweepRecord(
                sweep_id=r[0], experiment=r[1], name=r[2], objective=r[3], direction=r[4],
                sampler=r[5], pruner=r[6], space=json.loads(r[7]), study_storage=r[8],
                study_name=r[9], requested_trials=int(r[10]), created_at=utc(r[11]),
                source_file=r[12], source_sha256=r[13], trials=tuple(trials.get(r[0], ())))
                for r in cur.all(
                    "SELECT s.sweep_id, s.experiment, s.name, s.objective, s.direction, s.sampler, "
                    "s.pruner, s.space, s.study_storage, s.study_name, s.requested_trials, "
                    "s.created_at, s.source_file, s.source_sha256 FROM sweeps s "
                    f"WHERE {where} ORDER BY s.created_at DESC, s.sweep_id", args)]

        return self.db.read(body)

    def _lock_objects(self, cur: Cursor, shas: Iterable[str]) -> None:
        """Inside a write: serialise it with every other write placing or freeing one of these
        objects (SQLite write transactions are serialised already)."""
        if self.db.dialect == "postgresql":
            for sha in sorted(set(shas)):  # one order everywhere: no deadlock
                cur.execute("SELECT pg_advisory_xact_lock(?)", (int(sha[:15], 16),))

    def _free_unreferenced(self, shas: Iterable[str]) -> int:
        """After the write that dropped their versions has committed: delete the objects among
        ``shas`` that no artifact version uses; returns bytes freed.

        Its own write transaction, holding the object locks, sees every version another write
        recorded, so an object is never freed under a version that uses it. Freeing inside the
        dropping write would lose objects: a process killed after the unlink and before the
        commit rolls the versions back onto deleted files. Killed here, it leaves at most an
        unused object."""
        shas = list(dict.fromkeys(shas))
        if not shas:
            return 0

        def body(cur: Cursor) -> int:
            self._lock_objects(cur, shas)
            return sum(self.objects.delete(sha) for sha in shas if cur.one(
                "SELECT 1 FROM artifact_versions WHERE sha256 = ? LIMIT 1", (sha,)) is None)

        return self.db.write(body)

    # ---- sync progress ------------------------------------------------------------------
    def sync_state(self, run_id: str, target: str, destination: str) -> str | None:
        """What ``neural experiments sync`` recorded as sent of a run to ``destination`` of
        ``target`` (its JSON state), or None."""
        row = self.db.read(lambda cur: cur.one(
            "SELECT state FROM sync_progress WHERE run_id = ? AND target = ? AND destination = ?",
            (run_id, target, destination)))
        return row[0] if row else None

    def set_sync_state(self, run_id: str, target: str, destination: str, state: str) -> None:
        """Record ``state`` (JSON) as what ``destination`` of ``target`` has of a run."""
        self.db.write(lambda cur: cur.execute(
            "INSERT INTO sync_progress (run_id, target, destination, state, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, target, destination) "
            "DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            (run_id, target, destination, state, time.time())))

    # ---- models -----------------------------------------------------------------------
    def set_run_model(self, run_id: str, spec: dict[str, Any], *, params: int | None = None,
                      macs: int | None = None, fingerprint: str | None = None) -> None:
        """Record (or replace) the model of a run: its normalised spec, total parameters,
        multiply-accumulates per sample, fingerprint, and how many layers of each type it has
        (``spec["layers"]``, nested ones included)."""
        counts: dict[str, int] = {}
        for layer in spec.get("layers", ()):
            counts[layer["type"]] = counts.get(layer["type"], 0) + 1
        row = (run_id, to_json(spec), params, macs, fingerprint)

        def body(cur: Cursor) -> None:
            self._check_run(cur, run_id)
            cur.execute("INSERT INTO run_models (run_id, spec, params, macs, fingerprint) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (run_id) DO UPDATE SET spec = excluded.spec, params = excluded.params, "
                        "macs = excluded.macs, fingerprint = excluded.fingerprint", row)
            cur.execute("DELETE FROM run_layer_counts WHERE run_id = ?", (run_id,))
            cur.executemany("INSERT INTO run_layer_counts (run_id, layer_type, n) VALUES (?, ?, ?)",
                            [(run_id, layer_type, n) for layer_type, n in sorted(counts.items())])

        self.db.write(body)

    def run_models(self, run_ids: Sequence[str]) -> dict[str, RunModel]:
        """The recorded models of these runs, by run id (runs without one are left out)."""
        return {rid: RunModel(rid, json.loads(spec), params, macs, fingerprint)
                for rid, spec, params, macs, fingerprint in self._rows_of_runs(
                    "SELECT run_id, spec, params, macs, fingerprint FROM run_models WHERE run_id IN ({})", run_ids)}

    def runs_with_fingerprint(self, fingerprint: str, status: str | None = None) -> list[str]:
        """The ids of the runs recorded with ``fingerprint`` (only those with the stored
        ``status`` when given), oldest first."""
        sql = ("SELECT r.run_id FROM run_models m JOIN runs r ON r.run_id = m.run_id "
               "WHERE m.fingerprint = ?" + (" AND r.status = ?" if status else "")
               + " ORDER BY r.start_time, r.run_id")
        args = (fingerprint, status) if status else (fingerprint,)
        return [row[0] for row in self.db.read(lambda cur: cur.all(sql, args))]

    def fingerprint_twins(self, run_ids: Sequence[str]) -> dict[str, str]:
        """For each of ``run_ids`` that shares its fingerprint with another run of the store,
        the oldest such other run's id."""
        wanted = {rid: facts.fingerprint for rid, facts in self.model_facts(run_ids).items()}
        prints = sorted({fingerprint for fingerprint in wanted.values() if fingerprint})
        sharing: list[tuple[str, str]] = []  # (run id, fingerprint), oldest first per fingerprint
        for start in range(0, len(prints), _RUNS_PER_QUERY):
            batch = prints[start:start + _RUNS_PER_QUERY]
            sharing += self.db.read(lambda cur: cur.all(
                "SELECT r.run_id, m.fingerprint FROM run_models m JOIN runs r ON r.run_id = m.run_id "
                f"WHERE m.fingerprint IN ({_marks(batch)}) ORDER BY r.start_time, r.run_id", batch))
        return oldest_twins(wanted, sharing)

    def model_facts(self, run_ids: Sequence[str] | None = None) -> dict[str, ModelFacts]:
        """The size and fingerprint of the recorded models of ``run_ids`` (of every run when
        None: one query), by run id, without their specs."""
        sql = "SELECT run_id, params, macs, fingerprint FROM run_models"
        rows = (self.db.read(lambda cur: cur.all(sql)) if run_ids is None
                else self._rows_of_runs(sql + " WHERE run_id IN ({})", run_ids))
        return {rid: ModelFacts(params, macs, fingerprint) for rid, params, macs, fingerprint in rows}

    # ---- metrics ----------------------------------------------------------------------
    def append_metrics(self, run_id: str, series: dict[str, Series]) -> None:
        """Append points per key and update the summaries, in one transaction."""
        for key in series:
            check_name("metric name", key)

        def body(cur: Cursor) -> None:
            self._check_run(cur, run_id)
            for key, (steps, values, times) in series.items():
                if len(steps):
                    self._append_chunks(cur, run_id, key, steps, values, times)
                    self._update_summary(cur, run_id, key, steps, values, times)
            cur.execute("UPDATE runs SET heartbeat = ? WHERE run_id = ?", (time.time(), run_id))

        self.db.write(body)

    def truncate_metrics(self, run_id: str, last_steps: dict[str, int | None]) -> int:
        """Drop the points of each key of ``last_steps`` logged at a step after the one given
        (None: every point), e.g. a resumed run's points past its checkpoint, in one
        transaction, recomputing those keys' summaries; returns how many points were dropped."""

        def body(cur: Cursor) -> int:
            self._check_run(cur, run_id)
            return sum(self._truncate_series(cur, run_id, key, last) for key, last in last_steps.items())

        return self.db.write(body)

    def _truncate_series(self, cur: Cursor, run_id: str, key: str, last: int | None) -> int:
        """Inside a write: drop the points of one series after step ``last`` (None: all of
        them); returns how many."""
        removed = 0
        after = "" if last is None else " AND (max_step IS NULL OR max_step > ?)"
        for seq, *blobs in cur.all(
                "SELECT seq, steps, vals, times FROM metric_chunks WHERE run_id = ? AND key = ?"
                f"{after} ORDER BY seq", (run_id, key) if last is None else (run_id, key, int(last))):
            steps, values, times = (np.frombuffer(blob, dtype)
                                    for blob, dtype in zip(blobs, (STEP_DTYPE, FLOAT_DTYPE, FLOAT_DTYPE)))
            keep = np.zeros(steps.size, bool) if last is None else steps <= last
            removed += int(keep.size - keep.sum())
            if not keep.any():
                cur.execute("DELETE FROM metric_chunks WHERE run_id = ? AND key = ? AND seq = ?", (run_id, key, seq))
            elif not keep.all():
                cur.execute("UPDATE metric_chunks SET n_points = ?, steps = ?, vals = ?, times = ?, min_step = ?, "
                            "max_step = ?, min_time = ?, max_time = ? WHERE run_id = ? AND key = ? AND seq = ?",
                            (int(keep.sum()), steps[keep].tobytes(), values[keep].tobytes(), times[keep].tobytes(),
                             int(steps[keep].min()), int(steps[keep].max()), *_time_range(times[keep]),
                             run_id, key, seq))
        if removed:
            cur.execute("DELETE FROM metric_summary WHERE run_id = ? AND key = ?", (run_id, key))
            history = _read_histories(cur, "WHERE run_id = ? AND key = ?", [run_id, key]).get((run_id, key))
            if history is not None and len(history):
                self._update_summary(cur, run_id, key, history.steps, history.values, history.timestamps)
        return removed

    def _append_chunks(self, cur: Cursor, run_id: str, key: str, steps: np.ndarray,
                       values: np.ndarray, times: np.ndarray) -> None:
        tail = cur.one("SELECT seq, n_points FROM metric_chunks WHERE run_id = ? AND key = ? "
                       "ORDER BY seq DESC LIMIT 1", (run_id, key))
        seq = 0
        if tail is not None:
            seq = int(tail[0]) + 1
            if int(tail[1]) < MERGE_BELOW:
                old = cur.one("SELECT steps, vals, times FROM metric_chunks "
                              "WHERE run_id = ? AND key = ? AND seq = ?", (run_id, key, tail[0]))
                steps = np.concatenate([np.frombuffer(old[0], STEP_DTYPE), steps])
                values = np.concatenate([np.frombuffer(old[1], FLOAT_DTYPE), values])
                times = np.concatenate([np.frombuffer(old[2], FLOAT_DTYPE), times])
                seq = int(tail[0])
        rows = []
        for start in range(0, len(steps), CHUNK_POINTS):
            part = slice(start, start + CHUNK_POINTS)
            rows.append((run_id, key, seq, len(steps[part]),
                         steps[part].astype(STEP_DTYPE, copy=False).tobytes(),
                         values[part].astype(FLOAT_DTYPE, copy=False).tobytes(),
                         times[part].astype(FLOAT_DTYPE, copy=False).tobytes(),
                         int(steps[part].min()), int(steps[part].max()), *_time_range(times[part])))
            seq += 1
        cur.executemany(
            "INSERT INTO metric_chunks (run_id, key, seq, n_points, steps, vals, times, min_step, max_step, "
            "min_time, max_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key, seq) DO UPDATE "
            "SET n_points = excluded.n_points, steps = excluded.steps, vals = excluded.vals, "
            "times = excluded.times, min_step = excluded.min_step, max_step = excluded.max_step, "
            "min_time = excluded.min_time, max_time = excluded.max_time", rows)

    def _update_summary(self, cur: Cursor, run_id: str, key: str, steps: np.ndarray,
                        values: np.ndarray, times: np.ndarray) -> None:
        known = values[~np.isnan(values)]
        low = float(known.min()) if known.size else None
        high = float(known.max()) if known.size else None
        with np.errstate(invalid="ignore"):  # inf + -inf: NaN, stored as no sum
            total = float(known.sum())
        latest = float(values[-1])
        cur.execute(
            "INSERT INTO metric_summary (run_id, key, n_points, latest, latest_step, latest_time, "
            "min_value, max_value, max_step, value_sum, n_values) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, key) DO UPDATE SET "
            "n_points = metric_summary.n_points + excluded.n_points, "
            # a series summarised before sums were kept (n_values NULL) keeps an unknown mean
            "value_sum = metric_summary.value_sum + excluded.value_sum, "
            "n_values = metric_summary.n_values + excluded.n_values, "
            "latest = excluded.latest, latest_step = excluded.latest_step, "
            "latest_time = excluded.latest_time, "
            "min_value = CASE WHEN excluded.min_value IS NULL THEN metric_summary.min_value "
            "WHEN metric_summary.min_value IS NULL OR excluded.min_value < metric_summary.min_value "
            "THEN excluded.min_value ELSE metric_summary.min_value END, "
            "max_value = CASE WHEN excluded.max_value IS NULL THEN metric_summary.max_value "
            "WHEN metric_summary.max_value IS NULL OR excluded.max_value > metric_summary.max_value "
            "THEN excluded.max_value ELSE metric_summary.max_value END, "
            "max_step = CASE WHEN excluded.max_step > metric_summary.max_step "
            "THEN excluded.max_step ELSE metric_summary.max_step END",
            (run_id, key, int(len(steps)), None if latest != latest else latest,
             int(steps[-1]), float(times[-1]), low, high, int(steps.max()),
             None if total != total else total, int(known.size)))

    def metric_history(self, run_id: str, key: str, after_step: int | None = None) -> MetricHistory:
        """Every point of one series, or only those at a step after ``after_step``."""

        def body(cur: Cursor) -> MetricHistory:
            where, args = "WHERE run_id = ? AND key = ?", [run_id, key]
            if after_step is not None:
                # steps first; values and times only of the chunks holding a later step
                later = [seq for seq, steps in cur.rows(
                    f"SELECT seq, steps FROM metric_chunks {where} ORDER BY seq", args)
                    if np.frombuffer(steps, STEP_DTYPE).max() > after_step]
                if not later:
                    return _empty_history(key)
                where, args = f"{where} AND seq IN ({_marks(later)})", [*args, *later]
            history = _read_histories(cur, where, args).get((run_id, key), _empty_history(key))
            if after_step is None:
                return history
            keep = history.steps > after_step
            return MetricHistory(key, history.steps[keep], history.values[keep], history.timestamps[keep])

        return self.db.read(body)

    def metric_histories(self, run_ids: Sequence[str], keys: Sequence[str] | None = None,
                         steps: tuple[int, int] | None = None, times: tuple[float, float] | None = None
                         ) -> dict[tuple[str, str], MetricHistory]:
        """The series of ``keys`` (every key when None) of ``run_ids``, by (run id, key), read
        in one transaction, one query per batch of runs. Pairs never logged are absent; the
        histories of one batch are slices of one array per column. With ``steps`` (low, high),
        only the points at steps from low to high, reading only the chunks that hold such steps;
        with ``times`` (low, high, seconds since the epoch), the same for the points' times."""
        run_ids, keys = list(dict.fromkeys(run_ids)), None if keys is None else list(dict.fromkeys(keys))
        if keys is not None and not keys:
            return {}
        key_clause = "" if keys is None else f" AND key IN ({_marks(keys)})"
        steps = None if steps is None else (int(steps[0]), int(steps[1]))
        ranges = [(column, bounds) for column, bounds in (("step", steps), ("time", times)) if bounds is not None]
        range_clause = "".join(f" AND (min_{column} IS NULL OR min_{column} <= ? AND max_{column} >= ?)"
                              for column, _ in ranges)  # chunks written before the ranges: always read
        range_args = [bound for _, (low, high) in ranges for bound in (high, low)]

        def body(cur: Cursor) -> dict[tuple[str, str], MetricHistory]:
            out: dict[tuple[str, str], MetricHistory] = {}
            for start in range(0, len(run_ids), _RUNS_PER_QUERY):
                batch = run_ids[start:start + _RUNS_PER_QUERY]
                out.update(_read_histories(cur, f"WHERE run_id IN ({_marks(batch)}){key_clause}{range_clause}",
                                           [*batch, *(keys or ()), *range_args]))
            return out

        read = self.db.read(body)
        return read if not ranges else {pair: _within(history, steps, times) for pair, history in read.items()}

    def metric_keys(self, run_id: str) -> list[str]:
        return [r[0] for r in self.db.read(lambda cur: cur.all(
            "SELECT key FROM metric_summary WHERE run_id = ? ORDER BY key", (run_id,)))]

    def metric_summaries(self, run_id: str) -> dict[str, MetricSummary]:
        rows = self.db.read(lambda cur: cur.all(
            "SELECT key, n_points, latest, latest_step, min_value, max_value, max_step "
            "FROM metric_summary WHERE run_id = ?", (run_id,)))
        return {row[0]: _summary(row[0], row[1:]) for row in rows}

    # ---- artifacts --------------------------------------------------------------------
    def add_artifact_version(self, run_id: str, name: str, content: StagedObject, *,
                             filename: str | None, metadata: dict, aliases: Iterable[str],
                             replace: bool = False, created_at: float | None = None) -> int:
        """Record ``content`` as a new version and place its object, in one transaction
        (``replace`` drops the earlier versions; once that has committed, their objects no
        version uses are freed); returns the version number."""
        created = time.time() if created_at is None else created_at
        check_name("artifact name", name)
        aliases = [check_name("alias", alias) for alias in dict.fromkeys(["latest", *aliases])]

        def body(cur: Cursor) -> tuple[int, list[str]]:
            self._check_run(cur, run_id)
            replaced = [r[0] for r in cur.all(
                "SELECT sha256 FROM artifact_versions WHERE run_id = ? AND name = ?",
                (run_id, name))] if replace else []
            self._lock_objects(cur, [content.sha256, *replaced])
            if replace:
                cur.execute("DELETE FROM artifact_aliases WHERE run_id = ? AND name = ?",
                            (run_id, name))
                cur.execute("DELETE FROM artifact_versions WHERE run_id = ? AND name = ?",
                            (run_id, name))
            row = cur.one("SELECT MAX(version) FROM artifact_versions WHERE run_id = ? AND name = ?",
                          (run_id, name))
            version = int(row[0] or 0) + 1
            cur.execute(
                "INSERT INTO artifact_versions (run_id, name, version, sha256, size, created_at, "
                "filename, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, name, version, content.sha256, content.size, created, filename,
                 to_json(metadata)))
            cur.executemany(
                "INSERT INTO artifact_aliases (run_id, name, alias, version) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_id, name, alias) DO UPDATE SET version = excluded.version",
                [(run_id, name, alias, version) for alias in aliases])
            content.place()
            return version, replaced

        version, replaced = self.db.write(body)
        self._free_unreferenced(replaced)
        return version

    def artifact_versions(self, run_id: str, name: str | None = None) -> list[ArtifactVersion]:
        where, args = ("v.run_id = ?", (run_id,)) if name is None else (
            "v.run_id = ? AND v.name = ?", (run_id, name))

        def body(cur: Cursor) -> list[ArtifactVersion]:
            aliases: dict[tuple[str, int], list[str]] = {}
            for alias_name, version, alias in cur.all(
                    f"SELECT v.name, v.version, v.alias FROM artifact_aliases v WHERE {where} "
                    "ORDER BY v.alias", args):
                aliases.setdefault((alias_name, int(version)), []).append(alias)
            rows = cur.all(
                "SELECT v.name, v.version, v.sha256, v.size, v.created_at, v.metadata, v.filename "
                f"FROM artifact_versions v WHERE {where} ORDER BY v.name, v.version", args)
            return [ArtifactVersion(
                name=r[0], version=int(r[1]), sha256=r[2], size=int(r[3]),
                created_at=utc(r[4]), path=self.objects.path(r[2]),
                metadata={**json.loads(r[5]), **({"filename": r[6]} if r[6] else {})},
                aliases=tuple(aliases.get((r[0], int(r[1])), ())), run_id=run_id) for r in rows]

        return self.db.read(body)

    def read_artifact_version(self, run_id: str, name: str, ref: int | str,
                              read: Callable[[ArtifactVersion], T]) -> tuple[ArtifactVersion, T]:
        """``find_artifact_version`` and ``read(version)`` on it (which opens its object).

        When ``read`` finds the object missing (``ObjectMissingError``) because a
        ``version=False`` write replaced the artifact meanwhile and freed it, the version is
        found again and the replacing one read, up to ``_ARTIFACT_READS`` times; only a
        version that still names a missing object is reported missing."""
        found = self.find_artifact_version(run_id, name, ref)
        for attempt in range(_ARTIFACT_READS):
            try:
                return found, read(found)
            except ObjectMissingError:
                if attempt == _ARTIFACT_READS - 1:
                    raise
            again = self.find_artifact_version(run_id, name, ref)
            if again.sha256 == found.sha256:  # freed by a write not committed yet, or lost
                time.sleep(0.005 * 2 ** attempt)
            found = again
        raise AssertionError("unreachable")

    def find_artifact_version(self, run_id: str, name: str, ref: int | str = -1) -> ArtifactVersion:
        """A version by number (1, 2, ...), negative index (-1 newest) or alias."""
        versions = self.artifact_versions(run_id, name)
        if not versions:
            raise TrackingError(f"run {run_id[:8]} has no artifact named {name!r}")
        if isinstance(ref, str) and not re.fullmatch(r"-?\d+", ref.strip()):
            for version in versions:
                if ref in version.aliases:
                    return version
            known = sorted({a for v in versions for a in v.aliases})
            raise TrackingError(f"artifact {name!r} has no alias {ref!r} (aliases: {', '.join(known)})")
        number = int(ref)
        if number < 0:
            if -number > len(versions):
                raise TrackingError(
                    f"artifact {name!r} has {len(versions)} versions; index {number} is out of range")
            return versions[number]
        for version in versions:
            if version.version == number:
                return version
        raise TrackingError(f"artifact {name!r} has no version {number} "
                            f"(versions: {', '.join(str(v.version) for v in versions)})")


def _parents(rows: Iterable[tuple]) -> dict[str, RunParent]:
    """{run id: RunParent} from (run_id, parent_run_id, fork_epoch, fork_step) rows."""
    return {rid: RunParent(parent, None if epoch is None else int(epoch), None if step is None else int(step))
            for rid, parent, epoch, step in rows}


def _lineage_rows(cur: Cursor, sub: str, args: tuple) -> tuple[dict[str, RunParent], dict[str, list[str]],
                                                                  dict[str, list[RunEvent]]]:
    """The parents, children and events of the runs ``sub`` selects, by run id."""
    parents = _parents(cur.all("SELECT run_id, parent_run_id, fork_epoch, fork_step FROM run_lineage "
                               f"WHERE run_id IN ({sub})", args))
    children: dict[str, list[str]] = {}
    for parent, child in cur.all(
            "SELECT l.parent_run_id, l.run_id FROM run_lineage l JOIN runs c ON c.run_id = l.run_id "
            f"WHERE l.parent_run_id IN ({sub}) ORDER BY c.start_time, l.run_id", args):
        children.setdefault(parent, []).append(child)
    events: dict[str, list[RunEvent]] = {}
    for rid, at, kind, detail in cur.all(
            f"SELECT run_id, at, kind, detail FROM run_events WHERE run_id IN ({sub}) "
            "ORDER BY run_id, at", args):
        events.setdefault(rid, []).append(RunEvent(utc(at), kind, detail))
    return parents, children, events


def _tag_rows(run_id: str, tags: Iterable[str] | str) -> list[tuple[str, str]]:
    """(run_id, tag) rows, each tag once; a single string is one tag, not its characters."""
    tags = [tags] if isinstance(tags, str) else tags
    return [(run_id, check_name("tag", str(tag))) for tag in dict.fromkeys(tags)]


def _one_of(what: str, value: str, allowed: Sequence[str]) -> str:
    """``value`` when it is one of ``allowed``, else a TrackingError naming ``what``."""
    if value not in allowed:
        raise TrackingError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _trial_count(count: Any) -> int:
    """A requested number of trials (an int >= 1), else a TrackingError."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise TrackingError(f"requested_trials must be a whole number >= 1, got {count!r}")
    return count


def _marks(items: Sequence[Any]) -> str:
    """``?, ?, ...``: one placeholder per item."""
    return ", ".join("?" * len(items))


def _empty_history(key: str) -> MetricHistory:
    return MetricHistory(key, np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64))


def _within(history: MetricHistory, steps: tuple[int, int] | None, times: tuple[float, float] | None
            ) -> MetricHistory:
    """The points of ``history`` at steps in ``steps`` and times in ``times`` (either None: any)."""
    keep = np.ones(len(history.steps), bool)
    for column, bounds in ((history.steps, steps), (history.timestamps, times)):
        if bounds is not None:
            keep &= (column >= bounds[0]) & (column <= bounds[1])
    return MetricHistory(history.key, history.steps[keep], history.values[keep], history.timestamps[keep])


def _time_range(times: np.ndarray) -> tuple[float | None, float | None]:
    """A chunk's first and last time (None, None when one is NaN: the chunk is then always read)."""
    low, high = float(times.min()), float(times.max())
    return (None, None) if math.isnan(low) or math.isnan(high) else (low, high)


def _read_histories(cur: Cursor, where: str, args: Sequence[Any]) -> dict[tuple[str, str], MetricHistory]:
    """The histories of the chunks matching ``where``: one array per column for all of them,
    filled as the chunks stream in, so a large read costs few fresh pages."""
    capacity = cur.one(f"SELECT SUM(n_points) FROM metric_chunks {where}", args)[0]
    return _stream_histories(cur.rows(f"SELECT run_id, key, steps, vals, times FROM metric_chunks "
                                      f"{where} ORDER BY run_id, key, seq", args), int(capacity or 0))


def _stream_histories(rows: Iterable[tuple], capacity: int) -> dict[tuple[str, str], MetricHistory]:
    """Histories from (run_id, key, steps, vals, times) chunk rows ordered by run, key, seq,
    copied into one array per column sized ``capacity`` points (grown if more arrive)."""
    columns = [np.empty(capacity, dtype) for dtype in (STEP_DTYPE, FLOAT_DTYPE, FLOAT_DTYPE)]
    spans: dict[tuple[str, str], list[int]] = {}
    end = 0
    for run_id, key, *blobs in rows:
        parts = [np.frombuffer(blob, column.dtype) for blob, column in zip(blobs, columns)]
        size = parts[0].size
        if end + size > columns[0].size:  # points flushed since the summary was read
            columns = [np.concatenate([column[:end], np.empty(max(end + size, 2 * end), column.dtype)])
                       for column in columns]
        for column, part in zip(columns, parts):
            column[end:end + size] = part
        spans.setdefault((run_id, key), [end, end])[1] = end + size
        end += size
    return {(run_id, key): MetricHistory(key, *(column[first:last] for column in columns))
            for (run_id, key), (first, last) in spans.items()}


def _summary(key: str, row: tuple) -> MetricSummary:
    count, latest, latest_step, low, high, max_step = row
    low = None if low is None else float(low)
    high = None if high is None else float(high)
    return MetricSummary(
        latest=_nan_if_none(latest) if count else float("nan"),
        best=low if metric_mode(key) == "min" else high,
        min=low, max=high, count=int(count), latest_step=int(latest_step),
        max_step=int(max_step))
