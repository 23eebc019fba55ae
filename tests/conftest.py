"""Fixtures shared by every test area.

``postgres_server`` starts a throwaway PostgreSQL 15 for the session (the recipe in
environment.md: initdb in a temp dir, loopback only, fsync off); ``postgres_url`` gives
each test a fresh database in it. ``store_kwargs`` runs a test once against an embedded
SQLite store and once against PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

for _name, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                      "WANDB_MODE": "offline", "WANDB_SILENT": "true",
                      "WANDB_DISABLE_GIT": "true"}.items():
    os.environ.setdefault(_name, _value)

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


@pytest.fixture(scope="session")
def postgres_server():
    """(host, port) of a PostgreSQL server that lives for the test session."""
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
    subprocess.run(_as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
                                      "-w", "-t", "60", "-o", options, "start"]),
                   check=True, capture_output=True)
    try:
        yield "127.0.0.1", port
    finally:
        subprocess.run(_as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                          "-w", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A ``postgresql+psycopg://`` URL of a new, empty database."""
    import psycopg

    host, port = postgres_server
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"host={host} port={port} user=postgres dbname=postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@{host}:{port}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_kwargs(request, tmp_path) -> dict:
    """``base_dir``/``store`` arguments for a tracker or manager: embedded SQLite, then PostgreSQL."""
    base_dir = tmp_path / "experiments"
    if request.param == "sqlite":
        return {"base_dir": base_dir, "store": None}
    return {"base_dir": base_dir, "store": request.getfixturevalue("postgres_url")}
