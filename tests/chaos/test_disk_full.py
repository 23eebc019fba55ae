"""A writer whose disk fills up (an 8 MB tmpfs) at a random moment, then SIGTERM after the
space returns, or SIGKILL while the disk is still full.

While full: parameters, artifacts and flushing reads fail with a clear message (no
traceback) and metrics wait in memory. Then nothing flushed is lost, the run closes with
the right status, and the store passes its integrity check and takes new runs.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from .conftest import (
    LOSS_WINDOW,
    StoreSpec,
    Victim,
    Writer,
    assert_no_traceback,
    assert_store_takes_new_runs,
    assert_writer_kept,
    check_store,
    wait_until_stale,
)

FULL_DISK_MESSAGES = ("No space left on device", "database or disk is full")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_disk_fills_up_under_a_writer(sig, small_disk, fill_disk, spawn_writer, rng):
    spec = StoreSpec(small_disk / "store")
    victim = Victim(0, *spawn_writer(spec, seed=rng.randrange(1 << 20)))
    victim.wait_for("run ")
    time.sleep(rng.uniform(0.1, 0.6))
    filler = fill_disk(small_disk)
    full_at = time.monotonic()
    time.sleep(rng.uniform(1.0, 2.0))
    victim.read()
    flushed_before_full = max((int(w[0]) for at, w in victim.said("flushed") if at < full_at), default=-1)
    if sig == signal.SIGTERM:
        os.unlink(filler)
        time.sleep(rng.uniform(0.5, 1.0))
        victim.send(sig)
    else:
        victim.send(sig)
        victim.wait()
        os.unlink(filler)
    assert victim.wait() == -sig, f"{victim.describe()}\n{victim.stderr()[-2000:]}"
    stderr = victim.stderr()
    assert_no_traceback(stderr)
    writer = Writer.parse(victim)
    assert writer.refused, f"nothing was refused while the disk was full: {victim.describe()}"
    for line in writer.refused:
        assert any(message in line for message in FULL_DISK_MESSAGES), line
    wait_until_stale([victim])
    manager = spec.manager()
    if sig == signal.SIGTERM:
        run = assert_writer_kept(victim, writer, manager, writer.last_logged())
        assert run.status == "interrupted", victim.describe()
    else:
        run = assert_writer_kept(victim, writer, manager, max(flushed_before_full,
                                                                writer.last_logged(before=full_at - LOSS_WINDOW)))
        assert run.status == "crashed", victim.describe()
    check_store(spec)
    assert_store_takes_new_runs(spec)
