"""Fixtures shared by every test area.

``postgres_cluster`` starts a throwaway PostgreSQL 15 for the session (the recipe in
environment.md: initdb in a temp dir, loopback only, fsync off) and can restart it;
``postgres_server`` is its (host, port); ``postgres_url`` gives each test a fresh database in
it, ``new_postgres_url()`` one more. ``store_kwargs`` runs a test once against an embedded
SQLite store and once against PostgreSQL. ``small_disk`` is an 8 MB tmpfs (needs root), and
``fill_disk(folder)`` fills the file system of ``folder``. ``browser`` is the session's one
headless Chromium (Playwright's sync API allows one per process, so it lives here for every
test area that drives a page).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

for _name, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                      "WANDB_MODE": "offline", "WANDB_SILENT": "true",
                      "WANDB_DISABLE_GIT": "true"}.items():
    os.environ.setdefault(_name, _value)

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
PG_BIN = Path(os.environ.get("NEURAL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its binaries as the ``postgres`` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@dataclass(frozen=True)
class PostgresCluster:
    """The session's PostgreSQL server: where it listens and its data folder."""

    host: str
    port: int
    data: Path
    log: Path

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(_as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]),
                              check=True, capture_output=True, timeout=120)

    def restart(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: like a crash) and start it again."""
        self.pg_ctl("-m", mode, "-l", str(self.log), "-w", "-t", "60", "restart")


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL server that lives for the test session."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (`make test` installs postgresql-15)")
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    root = Path(tempfile.mkdtemp(prefix="pgtest."))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    data = root / "data"
    subprocess.run(_as_postgres_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                                      "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
                   check=True, capture_output=True)
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off")
    cluster = PostgresCluster("127.0.0.1", port, data, root / "log")
    cluster.pg_ctl("-l", str(cluster.log), "-w", "-t", "60", "-o", options, "start")
    try:
        yield cluster
    finally:
        subprocess.run(_as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                          "-w", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(postgres_cluster) -> tuple[str, int]:
    """(host, port) of the session's PostgreSQL server."""
    return postgres_cluster.host, postgres_cluster.port


@pytest.fixture
def new_postgres_url(postgres_server):
    """``new_postgres_url()``: a ``postgresql+psycopg://`` URL of a new, empty database."""
    import psycopg

    host, port = postgres_server

    def create() -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host={host} port={port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@{host}:{port}/{name}"

    return create


@pytest.fixture
def postgres_url(new_postgres_url) -> str:
    """A ``postgresql+psycopg://`` URL of a new, empty database."""
    return new_postgres_url()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_kwargs(request, tmp_path) -> dict:
    """``base_dir``/``store`` arguments for a tracker or manager: embedded SQLite, then PostgreSQL."""
    base_dir = tmp_path / "experiments"
    if request.param == "sqlite":
        return {"base_dir": base_dir, "store": None}
    return {"base_dir": base_dir, "store": request.getfixturevalue("postgres_url")}


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs mounted for the test (needs root, as in CI's containers; skipped otherwise)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _fill(directory: Path) -> Path:
    """Write ``directory/filler`` until the file system is full; returns the filler."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:  # unbuffered: closing has nothing left to write
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


@pytest.fixture
def fill_disk():
    """``fill_disk(folder)``: fill the file system of ``folder``; returns the filler file."""
    return _fill


@pytest.fixture(scope="session")
def browser():
    """The session's headless Chromium, driven through Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()
