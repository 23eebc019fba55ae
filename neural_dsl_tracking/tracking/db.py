"""One database connection over sqlite3 or psycopg, with short retried transactions.

SQL is written once with ``?`` placeholders and portable types; this layer adapts it to
the dialect. SQLite runs in WAL mode with a long busy timeout and ``BEGIN IMMEDIATE``
write transactions, so several processes can write one file; PostgreSQL transactions
are retried on serialization failures and deadlocks.
"""

from __future__ import annotations

import random
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import lifecycle

T = TypeVar("T")

SQLITE_FILE = "store.db"
_RETRIES = 60
_SQLITE_MMAP_BYTES = 1 << 30  # reads map the file instead of copying it page by page
_POSTGRES_PREFIXES = ("postgresql+psycopg://", "postgresql://", "postgres://")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_database_url(location: str) -> bool:
    """True for a PostgreSQL URL, False for a directory path."""
    return str(location).startswith(_POSTGRES_PREFIXES)


def check_store_location(location: str) -> None:
    """TrackingError for a URL of a kind no store can live at (``sqlite://``, ``mysql://``,
    ``file://``...): an embedded store is a folder path, a database store a PostgreSQL URL."""
    text = str(location)
    if _URL_SCHEME.match(text) and not is_database_url(text):
        raise TrackingError(
            f"unsupported store URL {redact(text)}: give a folder path for an embedded SQLite "
            "store (e.g. neural_experiments), or a PostgreSQL URL "
            "(postgresql+psycopg://user:password@host:5432/dbname)")


class StoreAbsent(TrackingError):
    """Opening for reading found no store (reading never creates one)."""


class Cursor:
    """What a transaction body receives: ``execute``, ``executemany``, ``one``, ``all``, ``rows``."""

    def __init__(self, raw: Any, adapt: Callable[[str], str]) -> None:
        self._raw = raw
        self._adapt = adapt

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._raw.execute(self._adapt(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(row) for row in rows]
        if rows:
            self._raw.executemany(self._adapt(sql), rows)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        self._raw.execute(self._adapt(sql), tuple(params))
        return list(self._raw.fetchall())

    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        """The result rows one at a time (each is dropped before the next is made)."""
        self._raw.execute(self._adapt(sql), tuple(params))
        return iter(self._raw)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        self._raw.execute(self._adapt(sql), tuple(params))
        return self._raw.fetchone()


class Database:
    """A single connection shared by the threads of one process, guarded by a lock."""

    dialect: str
    location: str

    def __init__(self, location: str, *, create: bool) -> None:
        self.location = redact(str(location)) if is_database_url(str(location)) else str(location)
        self._lock = threading.RLock()
        if is_database_url(self.location):
            self.dialect = "postgresql"
            self._url = str(location)
            self._conn = _connect_postgres(self._url)
        else:
            self.dialect = "sqlite"
            self._conn = _connect_sqlite(Path(self.location), create=create)
        self.blob = "BYTEA" if self.dialect == "postgresql" else "BLOB"

    def _adapt(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def write(self, body: Callable[[Cursor], T], *, lock_key: int | None = None) -> T:
        """Run ``body`` in one write transaction, retrying when the database is busy."""
        return self._retrying(lambda: self._write_once(body, lock_key))

    def read(self, body: Callable[[Cursor], T]) -> T:
        """Run ``body`` for reading (one consistent snapshot on PostgreSQL)."""
        return self._retrying(lambda: self._read_once(body))

    def _retrying(self, once: Callable[[], T]) -> T:
        for attempt in range(_RETRIES):
            # a SIGTERM handled in here must not re-enter the connection: it closes the runs after
            with lifecycle.sigterm_deferred(), self._lock:
                try:
                    return once()
                except Exception as error:  # noqa: BLE001 - classified by _recover
                    if attempt == _RETRIES - 1 or not self._recover(error):
                        raise self._as_tracking_error(error) from error
            _backoff(attempt)
        raise AssertionError("unreachable")

    def _read_once(self, body: Callable[[Cursor], T]) -> T:
        if self.dialect == "postgresql":
            with self._conn.transaction(), self._conn.cursor() as raw:
                return body(Cursor(raw, self._adapt))
        raw = self._conn.cursor()
        try:
            return body(Cursor(raw, self._adapt))
        finally:
            raw.close()

    def _write_once(self, body: Callable[[Cursor], T], lock_key: int | None) -> T:
        if self.dialect == "postgresql":
            with self._conn.transaction(), self._conn.cursor() as raw:
                if lock_key is not None:
                    raw.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
                return body(Cursor(raw, self._adapt))
        raw = self._conn.cursor()
        try:
            raw.execute("BEGIN IMMEDIATE")
            result = body(Cursor(raw, self._adapt))
            raw.execute("COMMIT")
            return result
        except BaseException:
            if self._conn.in_transaction:
                self._conn.rollback()
            raise
        finally:
            raw.close()

    def _recover(self, error: Exception) -> bool:
        """True when a retry may succeed: busy, serialization failure, or a dropped connection
        (reconnected here, or on a later retry while the server is away)."""
        if isinstance(error, sqlite3.OperationalError):
            return _sqlite_busy(error)
        if self.dialect != "postgresql":
            return False
        import psycopg

        if isinstance(error, (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)):
            return True
        if isinstance(error, psycopg.OperationalError) and (self._conn.closed or self._conn.broken):
            try:
                self._conn = _connect_postgres(self._url)
            except TrackingError:
                pass
            return True
        return False

    def _as_tracking_error(self, error: Exception) -> Exception:
        if isinstance(error, TrackingError):
            return error
        if isinstance(error, sqlite3.Error) or type(error).__module__.startswith("psycopg"):
            return TrackingError(f"experiment store {self.location}: {error}")
        return error

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _connect_sqlite(directory: Path, *, create: bool) -> sqlite3.Connection:
    path = directory / SQLITE_FILE
    if directory.exists() and not directory.is_dir():
        raise TrackingError(f"{directory} is a file, not an experiment store folder")
    if create:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrackingError(f"cannot create the experiment store {directory}: {error}") from None
    elif not path.exists():
        raise StoreAbsent(f"no experiment store at {directory} (no {SQLITE_FILE})")
    try:
        conn = _open_sqlite(str(path))
        mode = _switch_to_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.OperationalError as error:
        if create:
            raise TrackingError(f"cannot open the experiment store {path}: {error}") from None
        return _open_read_only(path, error)
    except sqlite3.Error as error:
        raise TrackingError(f"cannot open the experiment store {path}: {error}") from None
    if str(mode).lower() != "wal":
        raise TrackingError(f"cannot put the experiment store {path} in WAL mode (got {mode})")
    return conn


def _backoff(attempt: int) -> None:
    """Sleep before retrying: from 10 ms doubling up to 1 s, jittered so openers spread out."""
    time.sleep(min(1.0, 0.01 * 2 ** min(attempt, 7)) * random.uniform(0.5, 1.5))


def _sqlite_busy(error: sqlite3.OperationalError) -> bool:
    """True for SQLite's "database is locked" / "busy": another connection holds a lock."""
    text = str(error).lower()
    return "locked" in text or "busy" in text


def _switch_to_wal(conn: sqlite3.Connection) -> str:
    """Put the database in WAL mode; returns the mode it is in. Switching a new database
    takes an exclusive lock that SQLite's busy timeout does not wait for (it fails at once
    while another opener holds the file), so a busy switch is retried here."""
    for attempt in range(_RETRIES):
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as error:
            if attempt == _RETRIES - 1 or not _sqlite_busy(error):
                raise
        _backoff(attempt)
    raise AssertionError("unreachable")


def _open_sqlite(target: str, *, uri: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(target, timeout=60.0, isolation_level=None, check_same_thread=False,
                           uri=uri)
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute(f"PRAGMA mmap_size = {_SQLITE_MMAP_BYTES}")
    return conn


def _open_read_only(path: Path, error: sqlite3.Error) -> sqlite3.Connection:
    """A store in a folder this process cannot write (a read-only mount, someone else's
    store): read-only, or immutable when no write-ahead log holds changes it would miss."""
    wal = path.with_name(path.name + "-wal")
    pending = wal.exists() and wal.stat().st_size > 0
    for mode in ("mode=ro", *(() if pending else ("immutable=1",))):
        try:
            conn = _open_sqlite(f"{path.resolve().as_uri()}?{mode}", uri=True)
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error:
            continue
    raise TrackingError(f"cannot open the experiment store {path}: {error}") from None


def _connect_postgres(url: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise TrackingError(
            "a PostgreSQL store needs psycopg: pip install 'neural-dsl-tracking[postgres]'"
        ) from None
    conninfo = "postgresql://" + url.split("://", 1)[1]
    try:
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as error:
        raise TrackingError(f"cannot connect to the experiment store {redact(url)}: {error}") from None


def redact(url: str) -> str:
    """The URL without its password."""
    scheme, rest = url.split("://", 1)
    if "@" in rest:
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{creds}@{host}"
    return url
