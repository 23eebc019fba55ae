"""Many processes opening one brand-new store at the same instant (Hydra multirun, parallel
trials): creating and migrating the store and creating runs never fails, on SQLite and
PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

PROCESSES = 8
TRIES = 50

# One worker per process, driven over its pipes: it says "ready", waits for "go LOCATION"
# (sent to every worker at once, the barrier), opens a tracker on that fresh store, logs,
# finishes, and answers "ok" or "fail <error>". SIGALRM bounds its life.
WORKER = """
    import signal, sys, traceback
    signal.alarm(240)
    from neural_dsl_tracking.tracking import ExperimentTracker
    index, base = int(sys.argv[1]), sys.argv[2]
    while True:
        print("ready", flush=True)
        command = sys.stdin.readline().split(maxsplit=1)
        if not command or command[0] != "go":
            break
        location = command[1].strip()
        database = location if "://" in location else None
        try:
            tracker = ExperimentTracker("concurrent", base_dir=database and base or location,
                                        store=database, run_name=f"w{index}",
                                        auto_visualize=False)
            tracker.log_metrics({"loss": float(index)})
            tracker.finish()  # closes its connection: 8 x 50 trackers stay within
            # PostgreSQL's 100 connections
            print("ok", flush=True)
        except Exception:
            print("fail " + traceback.format_exc().strip().splitlines()[-1], flush=True)
"""


def _workers(tmp_path: Path) -> list[subprocess.Popen]:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    return [subprocess.Popen([sys.executable, str(script), str(i), str(tmp_path / "files")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for i in range(PROCESSES)]


def _expect_ready(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        line = worker.stdout.readline()
        assert line == "ready\n", f"worker died: {line!r}, exit {worker.poll()}"


def _open_together(workers: list[subprocess.Popen], locations: list[str]) -> list[str]:
    """Each try: every worker opens the try's fresh store at once; the failures."""
    failures = []
    for location in locations:
        _expect_ready(workers)
        for worker in workers:
            worker.stdin.write(f"go {location}\n")
        for worker in workers:
            worker.stdin.flush()
        answers = [worker.stdout.readline().strip() for worker in workers]
        failures += [f"{location}: {a}" for a in answers if a != "ok"]
    _expect_ready(workers)
    for worker in workers:
        worker.stdin.close()
        worker.wait(timeout=30)
    return failures


def _check_stores(locations: list[str], base: Path) -> None:
    for location in locations:
        database = location if "://" in location else None
        manager = ExperimentManager(base_dir=base if database else location, store=database)
        runs = manager.list_experiments()
        manager.close()
        assert sorted(r.run_name for r in runs) == [f"w{i}" for i in range(PROCESSES)]
        assert all(r.status == "completed" and r.metrics["loss"]["count"] == 1 for r in runs)


def _run(tmp_path: Path, locations: list[str]) -> None:
    workers = _workers(tmp_path)
    try:
        failures = _open_together(workers, locations)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert not failures, f"{len(failures)} of {PROCESSES * len(locations)} opens failed:\n" + \
        "\n".join(failures[:5])
    _check_stores(locations, tmp_path / "files")


def test_eight_processes_open_fresh_sqlite_stores_at_once(tmp_path):
    _run(tmp_path, [str(tmp_path / f"store{i}") for i in range(TRIES)])


@pytest.mark.postgres
def test_eight_processes_open_fresh_postgresql_schemas_at_once(postgres_url, tmp_path):
    import psycopg

    names = [f"try{i}" for i in range(TRIES)]  # a fresh, empty schema per try
    with psycopg.connect("postgresql://" + postgres_url.split("://", 1)[1],
                         autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE SCHEMA "{name}"')
    _run(tmp_path, [f"{postgres_url}?options=-csearch_path%3D{name}" for name in names])
