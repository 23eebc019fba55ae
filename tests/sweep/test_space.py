"""How the compiled ``hpo.space`` maps to Optuna distributions (macros, optimizer arguments
and schedules included), the grid, and trial values as Hydra overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from neural_dsl_tracking.compiler import compile_network
from neural_dsl_tracking.errors import ConfigError
from neural_dsl_tracking.language import parse_text
from neural_dsl_tracking.plugins.sweep import space

TEXT = """define Block(width) {
  Dense(width, activation="relu")
  Dropout(HPO(range(0.1, 0.5, step=0.1)))
}
network Spaces {
  input: (8, 8, 1)
  layers:
    Conv2D(HPO(range(4, 16, step=4)), (3, 3), padding="same")
    Flatten()
    Block(HPO(log_range(16, 256)))
    Dense(HPO(range(8, 12)))
    Output(10, "softmax")
  loss: "sparse_categorical_crossentropy"
  optimizer: SGD(learning_rate=ExponentialDecay(HPO(log_range(1e-4, 1e-2)), 100, HPO(range(0.8, 0.99))),
                 momentum=HPO(choice(0.0, 0.9)))
  train { epochs: 1 batch_size: HPO(choice(32, 64)) }
}
"""


@pytest.fixture(scope="module")
def compiled_space(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("spaces")
    source = folder / "model.neural"
    source.write_text(TEXT, encoding="utf-8")
    train_py = compile_network(parse_text(TEXT, str(source)).network(None), source, folder / "program")
    return yaml.safe_load((Path(train_py).parent / "conf" / "config.yaml").read_text())["hpo"]["space"]


def test_every_hpo_expression_becomes_an_optuna_distribution(compiled_space: dict) -> None:
    found = space.distributions(space.searched(compiled_space))
    assert found["model.conv2d_1.filters"] == IntDistribution(4, 16, step=4)
    assert found["model.dense_1.units"] == IntDistribution(16, 256, log=True)  # through the macro
    assert found["model.dropout_1.rate"] == FloatDistribution(0.1, 0.5, step=0.1)
    assert found["model.dense_2.units"] == IntDistribution(8, 12)  # range without a step: every integer
    assert found["optimizer.lr"] == FloatDistribution(1e-4, 1e-2, log=True)  # inside the schedule
    assert found["schedule.decay_rate"] == FloatDistribution(0.8, 0.99)
    assert found["optimizer.momentum"] == CategoricalDistribution([0.0, 0.9])  # an optimizer argument
    assert found["train.batch_size"] == CategoricalDistribution([32, 64])
    assert space.distribution("x", {"type": "choice", "values": [[3, 3], [5, 5]]}) == \
        CategoricalDistribution(["json:[3, 3]", "json:[5, 5]"])  # options Optuna cannot hold as they are
    assert space.config_values({"x": "json:[5, 5]"}) == {"x": [5, 5]}


def test_values_on_a_float_step_grid_are_the_grid_values_as_written() -> None:
    """Optuna proposes low + k * step, so range(0.0, 0.5, step=0.1) gave 0.30000000000000004:
    printed in the trial's overrides, stored as the run's parameter, and missed by a query
    params.model.dropout_1.rate = 0.3. A trial's config values are the grid's values."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rate = space.distribution("rate", {"type": "range", "start": 0.0, "stop": 0.5, "step": 0.1})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    proposed = {space.config_values(study.ask({"rate": rate}).params)["rate"] for _ in range(60)}
    assert proposed == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}
    lr = space.distribution("lr", {"type": "log_range", "low": 0.0001, "high": 0.01})
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask({"lr": lr})
    assert space.config_values(trial.params)["lr"] == pytest.approx(trial.params["lr"], rel=1e-11)


def test_overridden_settings_and_repeat_counts_are_not_searched() -> None:
    entries = {"optimizer.lr": {"type": "log_range", "low": 0.001, "high": 0.1},
               "train.batch_size": {"type": "choice", "values": [16, 32]},
               "repeat.model.neural:4:5": {"type": "choice", "values": [2, 4], "layer": "Dense"}}
    assert list(space.searched(entries, {"optimizer.lr"})) == ["train.batch_size"]


def test_the_grid_enumerates_finite_spaces_and_names_a_continuous_one() -> None:
    grid = space.grid({"model.dropout_1.rate": {"type": "range", "start": 0.1, "stop": 0.3, "step": 0.1},
                       "train.batch_size": {"type": "choice", "values": [16, 32]}})
    assert grid == {"model.dropout_1.rate": [0.1, 0.2, 0.3], "train.batch_size": [16, 32]}
    assert space.grid_size(grid) == 6
    with pytest.raises(ConfigError, match="optimizer.lr: the grid sampler needs a finite set"):
        space.grid({"optimizer.lr": {"type": "log_range", "low": 0.001, "high": 0.1}})


def test_trial_values_are_overrides_hydra_reads_back() -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    values = {"a.b": 0.001, "a.c": 64, "a.d": [3, 3], "a.e": "it's", "a.f": True}
    parsed = OverridesParser.create().parse_overrides(space.overrides(values))
    assert {o.key_or_group: o.value() for o in parsed} == values
