"""Two sweeps of the same network in one process (the Python API, tests), each from its own
folder: the compiled program's path, ``build/.cache/<hash>/train.py``, is the same relative
path in both, and the second sweep trained the first folder's program, into the first
folder's store."""

from __future__ import annotations

from pathlib import Path

import pytest

from neural_dsl_tracking.cli import main
from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import write_network


def test_a_sweep_in_another_folder_trains_that_folders_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
        write_network(tmp_path / folder, "runs", epochs=1, trials=1, sampler="random", pruner="none")
        monkeypatch.chdir(tmp_path / folder)
        assert main(["sweep", "model.neural", "data=synthetic", "data.samples=64"]) == 0
    assert len(ExperimentManager(store=str(tmp_path / "second" / "runs")).list_experiments()) == 1
    assert len(ExperimentManager(store=str(tmp_path / "first" / "runs")).list_experiments()) == 1
