"""Optuna's own log lines (``[W 2026-12-03 23:14:35,905] ...``) do not reach a sweep's user:
a warning Optuna logs once a sweep has opened its study is one ``note: optuna:`` line."""

from __future__ import annotations

from pathlib import Path

import pytest

from neural_dsl_tracking.plugins.sweep.study import StudySettings, open_study, storage_url
from neural_dsl_tracking.tracking.store import Store


def test_an_optuna_warning_is_one_note_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import optuna

    store = Store(store=str(tmp_path / "runs"))
    open_study(StudySettings(storage_url(store), "neural-sweep-notes", "minimize", "tpe", "none", 0, 1), create=True)
    capfd.readouterr()
    optuna.logging.get_logger("optuna.storages._rdb.storage").warning(
        "Caught an error from sqlalchemy: too many\nvariables. Falling back to a slower alternative.")
    optuna.logging.get_logger("optuna.study.study").info("Trial 0 finished with value: 0.5")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "note: optuna: Caught an error from sqlalchemy: too many variables. "
                              "Falling back to a slower alternative.\n")
