"""Claiming a trial counts the study's trials in the database: with none running, the
trials are not read (the sampler reads them anyway; a read costs milliseconds a trial),
and running trials whose worker is gone are still failed before the count."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

from neural_dsl_tracking.plugins.sweep.study import (WORKER_ATTR, StudySettings, claim, open_study,
                                                     storage_url)
from neural_dsl_tracking.tracking.store import Store


def _statements(study: Any) -> list[str]:
    """The SQL statements the study's database runs from now on (appended as they run)."""
    from sqlalchemy import event

    seen: list[str] = []
    event.listen(study._storage._backend.engine, "before_cursor_execute",  # noqa: SLF001
                 lambda conn, cursor, statement, *rest: seen.append(statement))
    return seen


def test_a_claim_counts_the_trials_and_reads_only_running_ones(tmp_path: Path) -> None:
    from optuna.distributions import CategoricalDistribution

    store = Store(store=str(tmp_path / "runs"))
    settings = StudySettings(storage_url(store), "neural-sweep-claims", "minimize", "random", "none", 0, 1)
    space = {"a": CategoricalDistribution([1, 2])}
    study = open_study(settings, create=True)
    for value in (1.0, 2.0, 3.0):
        study.tell(study.ask(space), value)
    failed: list[int] = []

    statements = _statements(study)
    assert claim(store, settings, 3, space, failed.append) is None and failed == []
    assert [s for s in statements if " trials" in s] == [s for s in statements if "count(" in s] != []

    alive = study.ask(space)
    study._storage.set_trial_system_attr(alive._trial_id, WORKER_ATTR, f"{socket.gethostname()}:1")  # noqa: SLF001
    gone = study.ask(space)
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=30)
    study._storage.set_trial_system_attr(gone._trial_id, WORKER_ATTR,  # noqa: SLF001
                                         f"{socket.gethostname()}:{dead.pid}")
    assert claim(store, settings, 4, space, failed.append) is None  # 3 finished + 1 running
    assert failed == [gone.number]

    trial = claim(store, settings, 5, space, failed.append)
    assert trial is not None and trial.number == gone.number + 1 and failed == [gone.number]


def test_a_trial_run_where_it_is_claimed_gets_its_worker_and_first_beat_in_one_transaction(tmp_path: Path) -> None:
    """Worker and first heartbeat were two Optuna transactions, the beat from the heartbeat's
    thread while the trial's run was opening (about 1.5 ms of CPU a trial, and a second
    writer on the file)."""
    from optuna.distributions import CategoricalDistribution
    from sqlalchemy import event

    from neural_dsl_tracking.plugins.sweep.study import Heartbeat, this_worker

    store = Store(store=str(tmp_path / "runs"))
    settings = StudySettings(storage_url(store), "neural-sweep-beats", "minimize", "random", "none", 0, 1)
    space = {"a": CategoricalDistribution([1, 2])}
    study = open_study(settings, create=True)
    engine = study._storage._backend.engine  # noqa: SLF001
    statements = _statements(study)
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(len(statements)))

    trial = claim(store, settings, 2, space, lambda number: None, runs_here=True)
    beats = [s for s in statements if "INSERT INTO trial_heartbeats" in s]
    attrs = [s for s in statements if "INSERT INTO trial_system_attributes" in s]
    assert len(beats) == len(attrs) == 1
    between = [at for at in commits if statements.index(attrs[0]) < at]
    assert between and statements.index(beats[0]) < between[0]  # committed together
    assert study.trials[trial.number].system_attrs[WORKER_ATTR] == this_worker()

    before = len(statements)
    with Heartbeat(settings, trial._trial_id, beaten=True):
        pass
    assert not [s for s in statements[before:] if "trial_heartbeats" in s]  # no second first beat

    elsewhere = claim(store, settings, 2, space, lambda number: None)
    assert elsewhere is not None and not [s for s in statements if "INSERT INTO trial_heartbeats" in s][1:]
