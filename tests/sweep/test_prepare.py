"""Preparing a sweep composes its config with Hydra once, for the checks ``neural run`` makes,
and uses that config, instead of composing it three times (each compose is about 45 ms on the
path to the first trial; the config with the group overrides alone is composed only to say
which key an override that Hydra refuses got wrong)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import pytest
from hydra import initialize_config_dir
from omegaconf import OmegaConf

from neural_dsl_tracking.compiler import compile_network
from neural_dsl_tracking.language import parse_file
from neural_dsl_tracking.plugins.sweep.runner import prepare
from neural_dsl_tracking.resources import configs_dir

from .conftest import write_network

OVERRIDES = ["train.epochs=3", "sweep.parallel=2", "tracking.experiment=composed-once"]


def _program(folder: Path) -> Path:
    source = write_network(folder, str(folder / "runs"), trials=2, sampler="random", pruner="none")
    compile_network(parse_file(source).network(), source, folder / "program")
    return folder / "program" / "train.py"


def test_the_sweep_config_is_composed_once(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    program = _program(tmp_path)
    composed: list[list[str]] = []
    real = hydra.compose

    def counting(*args: Any, **kwargs: Any) -> Any:
        composed.append(list(kwargs.get("overrides", [])))
        return real(*args, **kwargs)

    monkeypatch.setattr(hydra, "compose", counting)
    plan, _ = prepare(program, list(OVERRIDES), source=str(tmp_path / "model.neural"))
    assert len(composed) == 1 and composed[0][1:] == OVERRIDES  # after the search path
    assert plan.spec.parallel == 2 and plan.config["train"]["epochs"] == 3


def test_the_planned_config_is_what_hydra_composes_from_the_overrides(tmp_path: Path) -> None:
    program = _program(tmp_path)
    plan, _ = prepare(program, list(OVERRIDES), source=str(tmp_path / "model.neural"))
    search = f"hydra.searchpath=[{configs_dir().resolve().as_uri()}]"
    with initialize_config_dir(config_dir=str((program.parent / "conf").resolve()), version_base="1.3"):
        expected = OmegaConf.to_container(hydra.compose(config_name="config", overrides=[search, *OVERRIDES]),
                                          resolve=False)
    assert plan.config == expected and plan.config["tracking"]["experiment"] == "composed-once"
