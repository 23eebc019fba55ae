"""Random SIGKILL and SIGTERM against processes logging metrics, hyperparameters and
artifacts through the tracker, a few at a time, into stores attacked again and again.

After SIGTERM: the run is ``interrupted`` and holds every step, parameter and artifact
version the writer logged. After SIGKILL: the run reads ``crashed`` once its heartbeat is
stale, and holds everything that was flushed and every step logged more than LOSS_WINDOW
before the kill. Always: no traceback, the stores pass their integrity check and take new runs.
"""

from __future__ import annotations

import signal

import pytest

from .conftest import (
    LOSS_WINDOW,
    Writer,
    assert_no_traceback,
    assert_store_takes_new_runs,
    assert_writer_kept,
    attack,
    check_store,
    wait_until_stale,
)

TRIALS = {"sqlite": 50, "postgresql": 12}
STORES = 3  # each store is attacked by every third trial
PARALLEL = 8


def moment(rng) -> tuple[str, float]:
    """Half the signals land anywhere in the first 1.5 s, half within 20 ms after the writer
    says it is about to log an artifact (storing the object, then its version)."""
    return ("run ", rng.uniform(0.0, 1.5)) if rng.random() < 0.5 else ("put ", rng.uniform(0.0, 0.02))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_random_signals_against_writers(sig, store_kind, make_store, spawn_writer, rng):
    stores = [make_store(store_kind) for _ in range(STORES)]
    victims = attack(lambda i: spawn_writer(stores[i % STORES], seed=i), TRIALS[store_kind],
                     parallel=PARALLEL, rng=rng, signals=[sig],
                     timing=moment)
    wait_until_stale(victims)
    managers = [spec.manager() for spec in stores]
    for victim in victims:
        writer = Writer.parse(victim)
        stderr = victim.stderr()
        assert_no_traceback(stderr)
        assert victim.returncode == -sig, f"{victim.describe()}\n{stderr[-2000:]}"
        assert "could not close run" not in stderr, f"{victim.describe()}\n{stderr[-2000:]}"
        assert not writer.refused, victim.describe()
        manager = managers[victim.index % STORES]
        if sig == signal.SIGTERM:
            run = assert_writer_kept(victim, writer, manager,
                                     writer.last_logged())
            assert run.status == "interrupted", victim.describe()
        else:
            kept = max(writer.flushed, writer.last_logged(before=victim.signalled_at - LOSS_WINDOW))
            run = assert_writer_kept(victim, writer, manager, kept)
            assert run.status == "crashed", victim.describe()
    for spec in stores:
        check_store(spec)
        assert_store_takes_new_runs(spec)
