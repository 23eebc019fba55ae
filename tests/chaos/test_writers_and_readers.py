"""Eight writer processes on one store while readers read it: ExperimentManager (series,
artifacts with their hashes) in this process and ``neural experiments ls`` in others.
Readers never fail and never see a series shrink or a gap; writers lose nothing."""

from __future__ import annotations

import json
import threading

import numpy as np

from .conftest import (
    StoreSpec,
    Writer,
    assert_no_traceback,
    assert_writer_kept,
    attack,
    check_store,
    neural,
)

WRITERS = 8
STEPS = 1500


def read_manager(spec: StoreSpec, seen: dict[str, int]) -> None:
    """One pass of a fresh manager over every run: whole prefixes, growing, hashes right."""
    manager = spec.manager(crash_after=None)
    try:
        for run in manager.list_experiments():
            if "loss" not in run.metrics:
                continue
            history = manager.get_metric_history(run.run_id, "loss")
            count = len(history)
            assert np.array_equal(history.steps, np.arange(count)), run.run_name
            assert np.array_equal(history.values, np.arange(count) / 2), run.run_name
            assert count >= seen.get(run.run_id, 0), f"{run.run_name} shrank"
            seen[run.run_id] = count
            for version in manager.list_artifact_versions(run.run_id, "ckpt")[-2:]:
                manager.get_artifact_version(run.run_id, version.name, version.version)
            # version=False: replaced (its object freed) while this reads it
            if manager.list_artifact_versions(run.run_id, "single"):
                manager.get_artifact_version(run.run_id, "single", 1)
    finally:
        manager.close()


def read_cli(spec: StoreSpec) -> None:
    listed = neural("experiments", "ls", *spec.cli_args())
    assert listed.returncode == 0, listed.stderr
    as_json = neural("experiments", "ls", "--json", *spec.cli_args())
    assert as_json.returncode == 0, as_json.stderr
    assert len(json.loads(as_json.stdout)) <= WRITERS


def keep_reading(read, stop: threading.Event, errors: list[BaseException], passes: list[int]) -> None:
    """``read()`` every 0.1 s until ``stop``; the first error goes to ``errors``."""
    while not stop.wait(0.1):
        try:
            read()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
            return
        passes[0] += 1


def test_eight_writers_with_readers(store_kind, make_store, spawn_writer, rng):
    spec = make_store(store_kind)
    seen: dict[str, int] = {}
    stop, errors = threading.Event(), []
    counts = {"manager": [0], "cli": [0]}
    readers = [threading.Thread(target=keep_reading, args=(read, stop, errors, counts[name]))
               for name, read in (("manager", lambda: read_manager(spec, seen)),
                                  ("cli", lambda: read_cli(spec)))]
    for reader in readers:
        reader.start()
    try:
        writers = attack(lambda i: spawn_writer(spec, seed=i, steps=STEPS), WRITERS, parallel=WRITERS,
                         rng=rng, signals=[None], timing=lambda rng: ("", 0.0), timeout=120)
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=120)
    if errors:
        raise errors[0]
    assert counts["manager"][0] >= 3 and counts["cli"][0] >= 1, counts
    manager = spec.manager()
    for victim in writers:
        assert_no_traceback(victim.stderr())
        assert victim.returncode == 0 and victim.lines[-1][1] == "finished", victim.describe()
        writer = Writer.parse(victim)
        assert not writer.refused, victim.describe()
        run = assert_writer_kept(victim, writer, manager, STEPS - 1)
        assert run.status == "completed" and run.metrics["loss"]["count"] == STEPS
    check_store(spec)
