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
