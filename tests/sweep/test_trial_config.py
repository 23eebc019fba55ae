"""A trial's config: this process's OmegaConf object of the sweep's config, its values set
again for each trial (a copy of it cost about 1.6 ms a trial), never carrying a value of an
earlier trial or of another sweep of the same config."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from neural_dsl_tracking.plugins.sweep.study import StudySettings
from neural_dsl_tracking.plugins.sweep.trial import TrialJob, trial_config

CONFIG = {"model": {"dense_1": {"units": 8}, "dropout_1": {"rate": 0.0}}, "optimizer": {"lr": 0.001},
          "execution": {"threads": None},
          "tracking": {"monitor": "val_loss", "mode": "min"}, "train": {"batch_size": "${model.dense_1.units}"}}


def _job(values: dict[str, Any], number: int, threads: int | None = None) -> TrialJob:
    study = StudySettings("sqlite:///unused.db", "neural-sweep-test", "maximize", "random", "none", 0, 1)
    return TrialJob(program="train.py", config=CONFIG, values=values, number=number, trial_id=number,
                    study=study, sweep_id="s", store={"base_dir": None, "store": "runs"},
                    objective="val_accuracy", threads=threads)


def test_each_trial_sets_its_values_in_the_one_config_object() -> None:
    first = trial_config(_job({"model.dense_1.units": 16, "optimizer.lr": 0.01}, 0, threads=1))
    assert OmegaConf.to_container(first, resolve=True)["train"] == {"batch_size": 16}
    second = trial_config(_job({"model.dense_1.units": 32, "optimizer.lr": 0.02}, 1, threads=1))
    assert second is first  # not copied for each trial
    resolved = OmegaConf.to_container(second, resolve=True)
    assert resolved["model"]["dense_1"] == {"units": 32} and resolved["optimizer"] == {"lr": 0.02}
    assert resolved["train"] == {"batch_size": 32} and resolved["execution"] == {"threads": 1}
    assert resolved["tracking"] == {"monitor": "val_accuracy", "mode": "max"}
    assert CONFIG["model"]["dense_1"] == {"units": 8}  # the job's config is untouched


def test_a_sweep_of_the_same_config_searching_less_keeps_no_earlier_value() -> None:
    trial_config(_job({"model.dense_1.units": 64, "optimizer.lr": 0.05}, 0))
    other = OmegaConf.to_container(trial_config(_job({"optimizer.lr": 0.03}, 0)), resolve=True)
    assert other["model"]["dense_1"] == {"units": 8} and other["optimizer"] == {"lr": 0.03}
    assert other["execution"] == {"threads": None}
