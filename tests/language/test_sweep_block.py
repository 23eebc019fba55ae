"""The ``sweep < ... >`` block: its keys, defaults, and the defaults it takes from the
rest of the network (the tracking block's monitor/mode, ``train { search_method }``)."""

from __future__ import annotations

import pytest

from neural_dsl_tracking.errors import NeuralValidationError
from neural_dsl_tracking.language import parse_text
from neural_dsl_tracking.plugins.sweep import SweepSpec

NET = """network N {{
  input: (8, 8, 1)
  layers: Flatten() Dense(HPO(choice(16, 32)), "relu") Output(10, "softmax")
  loss: "sparse_categorical_crossentropy"
  train {{ epochs: 1 {train} }}
  {blocks}
}}
"""


def sweep_of(blocks: str, train: str = "") -> SweepSpec:
    return parse_text(NET.format(blocks=blocks, train=train), "m.neural").networks[0].plugins["sweep"]


def test_defaults_without_a_tracking_block() -> None:
    spec = sweep_of("sweep < >")
    assert spec == SweepSpec(trials=20, sampler="tpe", pruner="median", parallel=1,
                             objective="val_loss", direction="minimize", seed=None,
                             launcher="local", address=None, timeout=None)


def test_every_key_as_written() -> None:
    spec = sweep_of('sweep < trials: 30; sampler: random; pruner: hyperband; parallel: 2; '
                    'objective: val_accuracy; direction: maximize; seed: 0; launcher: ray; '
                    'address: "10.0.0.5:6379"; timeout: 3600 >')
    assert (spec.trials, spec.sampler, spec.pruner, spec.parallel) == (30, "random", "hyperband", 2)
    assert (spec.objective, spec.direction, spec.seed) == ("val_accuracy", "maximize", 0)
    assert (spec.launcher, spec.address, spec.timeout) == ("ray", "10.0.0.5:6379", 3600)


def test_objective_and_direction_follow_the_tracking_block() -> None:
    spec = sweep_of("tracking < monitor: val_accuracy; mode: max > sweep < trials: 3 >")
    assert (spec.objective, spec.direction) == ("val_accuracy", "maximize")


@pytest.mark.parametrize(("objective", "direction"), [
    ("val_accuracy", "maximize"), ("accuracy", "maximize"), ("loss", "minimize"), ("val_loss", "minimize"),
])
def test_direction_follows_a_written_objective(objective: str, direction: str) -> None:
    # the tracking block monitors something else: its mode says nothing about this objective
    spec = sweep_of(f"tracking < monitor: val_loss; mode: min > sweep < objective: {objective} >")
    assert spec.direction == direction


@pytest.mark.parametrize(("method", "sampler"), [("random", "random"), ("bayesian", "tpe"), ("grid", "grid")])
def test_search_method_sets_the_sampler(method: str, sampler: str) -> None:
    assert sweep_of("sweep < >", train=f'search_method: "{method}"').sampler == sampler


def test_the_sweep_blocks_sampler_wins_over_search_method() -> None:
    assert sweep_of("sweep < sampler: random >", train='search_method: "bayesian"').sampler == "random"


@pytest.mark.parametrize(("block", "message"), [
    ("sweep < trails: 3 >", "m.neural:6:11: unknown sweep key 'trails'; did you mean 'trials'"),
    ("sweep < sampler: tpee >", "'sampler' cannot be \"tpee\"; did you mean 'tpe'"),
    ("sweep < trials: 0 >", "'trials' must be >= 1, got 0"),
    ("sweep < parallel: 0 >", "'parallel' must be >= 1, got 0"),
    ("sweep < pruner: asha >", "(known: none, median, hyperband)"),
    ("sweep < launcher: slurm >", "(known: local, ray)"),
])
def test_mistakes_point_at_the_key_or_value(block: str, message: str) -> None:
    with pytest.raises(NeuralValidationError) as info:
        sweep_of(block)
    assert message in str(info.value)
    assert "^" in str(info.value)
