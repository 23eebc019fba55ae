"""The store's schema as numbered migrations; opening a store applies the missing ones."""

from __future__ import annotations

import time
from typing import Callable

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.db import Cursor, Database

_MIGRATION_LOCK = 0x6E65757261  # advisory lock id on PostgreSQL ("neura")


def _fill_param_numbers(cur: Cursor) -> None:
    """``params.num`` of the parameters logged before the column existed."""
    from neural_dsl_tracking.tracking.query import param_number

    cur.executemany("UPDATE params SET num = ? WHERE run_id = ? AND key = ?",
                    [(number, run_id, key) for run_id, key, value in cur.all("SELECT run_id, key, value FROM params")
                     if (number := param_number(value)) is not None])


# Each migration is a list of statements; ``{blob}`` is BLOB on SQLite, BYTEA on PostgreSQL.
# A callable step runs with the migration's cursor (to fill a new column from Python).
MIGRATIONS: list[list[str | Callable[[Cursor], None]]] = [
    [
        """CREATE TABLE experiments (
            name TEXT PRIMARY KEY,
            created_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            experiment TEXT NOT NULL REFERENCES experiments(name),
            run_name TEXT NOT NULL,
            status TEXT NOT NULL,
            start_time DOUBLE PRECISION NOT NULL,
            end_time DOUBLE PRECISION,
            heartbeat DOUBLE PRECISION NOT NULL,
            config TEXT,
            source_file TEXT,
            source_sha256 TEXT)""",
        "CREATE INDEX runs_by_experiment ON runs (experiment, start_time)",
        """CREATE TABLE run_tags (
            run_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (run_id, tag))""",
        "CREATE INDEX run_tags_by_tag ON run_tags (tag)",
        """CREATE TABLE params (
            run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (run_id, key))""",
        """CREATE TABLE metric_chunks (
            run_id TEXT NOT NULL, key TEXT NOT NULL, seq BIGINT NOT NULL,
            n_points BIGINT NOT NULL,
            steps {blob} NOT NULL, vals {blob} NOT NULL, times {blob} NOT NULL,
            PRIMARY KEY (run_id, key, seq))""",
        """CREATE TABLE metric_summary (
            run_id TEXT NOT NULL, key TEXT NOT NULL,
            n_points BIGINT NOT NULL,
            latest DOUBLE PRECISION, latest_step BIGINT NOT NULL,
            latest_time DOUBLE PRECISION NOT NULL,
            min_value DOUBLE PRECISION, max_value DOUBLE PRECISION,
            max_step BIGINT NOT NULL,
            PRIMARY KEY (run_id, key))""",
        """CREATE TABLE artifact_versions (
            run_id TEXT NOT NULL, name TEXT NOT NULL, version BIGINT NOT NULL,
            sha256 TEXT NOT NULL, size BIGINT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL, filename TEXT, metadata TEXT NOT NULL,
            PRIMARY KEY (run_id, name, version))""",
        "CREATE INDEX artifact_versions_by_sha ON artifact_versions (sha256)",
        """CREATE TABLE artifact_aliases (
            run_id TEXT NOT NULL, name TEXT NOT NULL, alias TEXT NOT NULL,
            version BIGINT NOT NULL, PRIMARY KEY (run_id, name, alias))""",
        """CREATE TABLE mirror_failures (
            run_id TEXT NOT NULL, backend TEXT NOT NULL, message TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX mirror_failures_by_run ON mirror_failures (run_id)",
    ],
    [  # 2: sweeps (issue 13) and their trials, each linked to the run it trained
        """CREATE TABLE sweeps (
            sweep_id TEXT PRIMARY KEY,
            experiment TEXT NOT NULL REFERENCES experiments(name),
            name TEXT NOT NULL,
            objective TEXT NOT NULL,
            direction TEXT NOT NULL,
            sampler TEXT NOT NULL,
            pruner TEXT NOT NULL,
            space TEXT NOT NULL,
            study_storage TEXT NOT NULL,
            study_name TEXT NOT NULL,
            requested_trials BIGINT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            source_file TEXT,
            source_sha256 TEXT)""",
        "CREATE INDEX sweeps_by_experiment ON sweeps (experiment, created_at)",
        """CREATE TABLE sweep_trials (
            sweep_id TEXT NOT NULL REFERENCES sweeps(sweep_id),
            trial_number BIGINT NOT NULL,
            run_id TEXT,
            state TEXT NOT NULL,
            value DOUBLE PRECISION,
            params TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (sweep_id, trial_number))""",
        "CREATE INDEX sweep_trials_by_run ON sweep_trials (run_id)",
    ],
    [  # the model of a compiled run (issue 14): its normalised spec, size, fingerprint, layer counts
        """CREATE TABLE run_models (
            run_id TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            params BIGINT,
            macs BIGINT,
            fingerprint TEXT)""",
        "CREATE INDEX run_models_by_fingerprint ON run_models (fingerprint)",
        """CREATE TABLE run_layer_counts (
            run_id TEXT NOT NULL, layer_type TEXT NOT NULL, n BIGINT NOT NULL,
            PRIMARY KEY (run_id, layer_type))""",
        "CREATE INDEX run_layer_counts_by_type ON run_layer_counts (layer_type, n)",
    ],
    [  # the query language (issue 14): runs newest first, params and metrics by key, metric means
        "CREATE INDEX runs_by_start ON runs (start_time, run_id)",
        "CREATE INDEX params_by_key ON params (key)",
        "CREATE INDEX metric_summary_by_key ON metric_summary (key)",
        # the sum and number of a series' non-NaN values; NULL for series summarised before
        # (their mean is unknown)
        "ALTER TABLE metric_summary ADD COLUMN value_sum DOUBLE PRECISION",
        "ALTER TABLE metric_summary ADD COLUMN n_values BIGINT",
    ],
    [  # queries over 100,000 runs (issue 14): a parameter's value as a number when it is one,
        # and indexes that answer a condition on a parameter or a metric without reading rows
        "ALTER TABLE params ADD COLUMN num DOUBLE PRECISION",
        _fill_param_numbers,
        "CREATE INDEX params_by_number ON params (key, num, run_id)",
        "CREATE INDEX metric_summary_by_min ON metric_summary (key, min_value, run_id)",
        "CREATE INDEX metric_summary_by_max ON metric_summary (key, max_value, run_id)",
        "CREATE INDEX metric_summary_by_latest ON metric_summary (key, latest, run_id)",
    ],
    [  # full fidelity on zoom (issue 14): each chunk's step range, so a zoomed chart reads only
        # the chunks it shows; NULL for chunks written before (they are always read)
        "ALTER TABLE metric_chunks ADD COLUMN min_step BIGINT",
        "ALTER TABLE metric_chunks ADD COLUMN max_step BIGINT",
        # the chunks of a range found (and their points counted) without reading past their blobs
        "CREATE INDEX metric_chunks_by_step ON metric_chunks (run_id, key, min_step, max_step, n_points)",
    ],
    [  # counting an `and` over 100,000 runs (issue 14): each condition's runs read in run id
        # order through an index, so the sets are merged, not sorted (query.py, _intersected);
        # the indexes on the key or tag alone are their prefixes and go. Not params.value:
        # PostgreSQL refuses an index entry over 2.7 kB, and a parameter's text may be longer
        "CREATE INDEX params_by_key_run ON params (key, run_id, num)",
        "DROP INDEX params_by_key",
        "CREATE INDEX metric_summary_by_key_run ON metric_summary "
        "(key, run_id, latest, min_value, max_value, n_points, value_sum, n_values)",
        "DROP INDEX metric_summary_by_key",
        "CREATE INDEX run_tags_by_tag_run ON run_tags (tag, run_id)",
        "DROP INDEX run_tags_by_tag",
        "CREATE INDEX run_layer_counts_by_type_run ON run_layer_counts (layer_type, run_id, n)",
        "CREATE INDEX run_models_by_run ON run_models (run_id, params, macs, fingerprint)",
    ],
    [  # resume and fork (issue 15): a forked run's parent and fork point, and what happened
        # to a run after it started (resumed, forked, ...), oldest first
        """CREATE TABLE run_lineage (
            run_id TEXT PRIMARY KEY,
            parent_run_id TEXT NOT NULL,
            fork_epoch BIGINT,
            fork_step BIGINT)""",
        "CREATE INDEX run_lineage_by_parent ON run_lineage (parent_run_id, run_id)",
        """CREATE TABLE run_events (
            run_id TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL)""",
        "CREATE INDEX run_events_by_run ON run_events (run_id, at)",
    ],
    [  # neural experiments sync (issue 15): per run, target and destination, what has been
        # sent (points per metric, last version per artifact, written once the mirror has the
        # batch) and what a killed session left to undo, so a sync continues where it stopped
        """CREATE TABLE sync_progress (
            run_id TEXT NOT NULL,
            target TEXT NOT NULL,
            destination TEXT NOT NULL,
            state TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (run_id, target, destination))""",
    ],
    [  # full fidelity on zoom along the time axes (issue 14): each chunk's time range, so a chart
        # zoomed on wall or relative time reads only the chunks it shows; NULL for chunks written
        # before (they are always read)
        "ALTER TABLE metric_chunks ADD COLUMN min_time DOUBLE PRECISION",
        "ALTER TABLE metric_chunks ADD COLUMN max_time DOUBLE PRECISION",
        "CREATE INDEX metric_chunks_by_time ON metric_chunks (run_id, key, min_time, max_time, n_points)",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)


def current_version(cur: Cursor) -> int:
    row = cur.one("SELECT MAX(version) FROM schema_migrations")
    return int(row[0] or 0) if row else 0


def migrate(db: Database) -> int:
    """Bring the store's schema up to SCHEMA_VERSION; returns the version it had before."""

    def body(cur: Cursor) -> int:
        cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version BIGINT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        found = current_version(cur)
        if found > SCHEMA_VERSION:
            raise TrackingError(
                f"the experiment store {db.location} has schema version {found}, newer than "
                f"this neural-dsl-tracking understands ({SCHEMA_VERSION}); upgrade the package"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                if callable(statement):
                    statement(cur)
                else:
                    cur.execute(statement.format(blob=db.blob))
            cur.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                        (version, time.time()))
        return found

    return db.write(body, lock_key=_MIGRATION_LOCK)


def installed_version(db: Database) -> int | None:
    """The store's schema version, or None when it has no schema at all (cheap read, no lock)."""

    def body(cur: Cursor) -> int | None:
        if db.dialect == "postgresql":
            exists = cur.one("SELECT to_regclass('schema_migrations') IS NOT NULL")[0]
        else:
            exists = cur.one("SELECT COUNT(*) FROM sqlite_master "
                             "WHERE type = 'table' AND name = 'schema_migrations'")[0]
        return current_version(cur) if exists else None

    return db.read(body)
