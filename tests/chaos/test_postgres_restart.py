"""PostgreSQL restarted (fast: clients disconnected; immediate: like a crash) under three
writers logging metrics, hyperparameters and artifacts. They wait for the server and go
on: no call fails, nothing is lost, SIGTERM closes them ``interrupted`` and SIGKILL leaves
them ``crashed`` with everything flushed; the store is whole and takes new runs. (With
``synchronous_commit = on``, PostgreSQL's default: off, a crash may lose acknowledged commits.)"""

from __future__ import annotations

import signal
import time

import pytest

from .conftest import (
    LOSS_WINDOW,
    Victim,
    Writer,
    assert_no_traceback,
    assert_store_takes_new_runs,
    assert_writer_kept,
    check_store,
    wait_until_stale,
)

SIGNALS = [signal.SIGTERM, signal.SIGTERM, signal.SIGKILL]


def commit_durably(url: str) -> None:
    """The suite's server runs with ``synchronous_commit = off`` (fast, but a crash may lose
    the last commits it acknowledged); this database gets PostgreSQL's default, ``on``."""
    import psycopg

    server, name = ("postgresql://" + url.split("://", 1)[1]).rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restarts_under_writers(mode, postgres_cluster, make_store, spawn_writer, rng):
    spec = make_store("postgresql")
    commit_durably(spec.store)
    victims = [Victim(i, *spawn_writer(spec, seed=rng.randrange(1 << 20))) for i in range(len(SIGNALS))]
    for victim in victims:
        victim.wait_for("run ")
    time.sleep(rng.uniform(0.2, 0.8))
    postgres_cluster.restart(mode)
    time.sleep(rng.uniform(0.5, 1.5))
    for victim, sig in zip(victims, SIGNALS):
        victim.read()
        victim.send(sig)
    for victim in victims:
        assert victim.wait() == -victim.signal, f"{victim.describe()}\n{victim.stderr()[-2000:]}"
    wait_until_stale(victims)
    manager = spec.manager()
    for victim in victims:
        assert_no_traceback(victim.stderr())
        writer = Writer.parse(victim)
        assert not writer.refused, victim.describe()
        if victim.signal == signal.SIGTERM:
            run = assert_writer_kept(victim, writer, manager, writer.last_logged())
            assert run.status == "interrupted", victim.describe()
        else:
            kept = max(writer.flushed, writer.last_logged(before=victim.signalled_at - LOSS_WINDOW))
            run = assert_writer_kept(victim, writer, manager, kept)
            assert run.status == "crashed", victim.describe()
    check_store(spec)
    assert_store_takes_new_runs(spec)
