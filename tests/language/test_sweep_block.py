"""The ``sweep < ... >`` block: its keys, defaults, and the defaults it takes from the
rest of the network (the tracking block's monitor/mode, ``train { search_method }``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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


def test_the_tracking_blocks_default_mode_does_not_set_the_direction() -> None:
    spec = sweep_of("tracking < monitor: val_accuracy > sweep < >")
    assert (spec.objective, spec.direction) == ("val_accuracy", "maximize")
    assert sweep_of("tracking < monitor: samples_per_s; mode: max > sweep < >").direction == "maximize"


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


# ---------------------------------------------------------------- checked before the first trial

CHECKED = """network N {{
  input: (8, 8, 1)
  layers: Flatten() Dense(HPO(choice(16, 32)), "relu") Dropout({dropout}) Output(10, "softmax")
  loss: "{loss}"
  optimizer: Adam(learning_rate={lr})
  train {{ epochs: 1 {train} }}
  {blocks}
}}
"""


def checked(blocks: str, *, dropout: str = "0.1", lr: str = "0.001", loss: str = "sparse_categorical_crossentropy",
            train: str = "") -> str:
    """The compile-time problems of the network (``neural check`` runs the same), or ''."""
    from neural_dsl_tracking.compiler.build import check_network
    from neural_dsl_tracking.errors import CompileError

    text = CHECKED.format(blocks=blocks, dropout=dropout, lr=lr, loss=loss, train=train)
    try:
        check_network(parse_text(text, "m.neural").network(), "m.neural", text)
    except CompileError as error:
        return str(error)
    return ""


def test_a_well_formed_sweep_passes() -> None:
    assert checked("sweep < objective: val_accuracy; direction: maximize; sampler: grid >") == ""


def test_the_objective_must_be_a_metric_the_program_logs() -> None:
    message = checked("sweep < objective: val_acuracy >")
    assert message.startswith("m.neural:7:22: sweep objective 'val_acuracy' is not a metric the program "
                              "logs (it logs loss, accuracy, val_loss, val_accuracy, lr, epoch_time, "
                              "samples_per_s); did you mean 'val_accuracy'?")
    assert message.endswith("  7 |   sweep < objective: val_acuracy >\n    |                      ^~~~~~~~~~~")


def test_a_regression_program_logs_no_accuracy() -> None:
    message = checked("sweep < objective: val_accuracy >", loss="mean_squared_error")
    assert "sweep objective 'val_accuracy' is not a metric the program logs (it logs loss, val_loss, lr" in message


def test_a_declared_metric_the_program_does_not_compute_is_refused() -> None:
    text = CHECKED.format(blocks="sweep < objective: f1; direction: maximize >", dropout="0.1", lr="0.001",
                          loss="sparse_categorical_crossentropy", train="").replace("  loss:", '  metrics: ["f1"]\n  loss:')
    from neural_dsl_tracking.compiler.build import check_network
    from neural_dsl_tracking.errors import CompileError

    with pytest.raises(CompileError, match="'f1' is declared in metrics:, but the program computes only loss"):
        check_network(parse_text(text, "m.neural").network(), "m.neural", text)


def test_an_objective_taken_from_the_tracking_block_points_there() -> None:
    message = checked("tracking < monitor: val_f1; mode: max > sweep < trials: 3 >")
    assert message.startswith("m.neural:7:23: sweep objective 'val_f1' (from the tracking block's monitor) "
                              "is not a metric the program logs")


@pytest.mark.parametrize(("blocks", "where", "message"), [
    ("sweep < direction: maximize >", "7:22",
     "direction maximize does not fit the objective 'val_loss' (lower is better); write direction: minimize"),
    ("sweep < objective: accuracy; direction: minimize >", "7:43",
     "direction minimize does not fit the objective 'accuracy' (higher is better); write direction: maximize"),
    ("tracking < monitor: val_loss; mode: max > sweep < >", "7:39",
     "direction maximize (from the tracking block's mode) does not fit the objective 'val_loss'"),
    ("sweep < objective: samples_per_s >", "7:3",
     "cannot tell whether the objective 'samples_per_s' is better lower or higher; write direction: "
     "minimize or direction: maximize"),
])
def test_the_direction_must_fit_the_objective(blocks: str, where: str, message: str) -> None:
    assert checked(blocks).startswith(f"m.neural:{where}: {message}")


def test_an_objective_with_no_known_direction_takes_a_written_one() -> None:
    assert checked("sweep < objective: samples_per_s; direction: maximize >") == ""


@pytest.mark.parametrize(("dropout", "lr", "where", "what"), [
    ("HPO(range(0.1, 0.5))", "0.001", "3:56", "Dropout: 'rate' is HPO(range(0.1, 0.5))"),
    ("0.1", "HPO(log_range(0.0001, 0.01))", "5:14", "Adam: 'learning_rate' is HPO(log_range(0.0001, 0.01))"),
])
def test_a_grid_over_a_continuous_space_names_its_line(dropout: str, lr: str, where: str, what: str) -> None:
    message = checked("sweep < sampler: grid >", dropout=dropout, lr=lr)
    assert message.startswith(f"m.neural:{where}: {what}, a continuous space: the grid sampler needs a "
                              "finite set of values; give the range a step (range(a, b, step=s)) or use choice(...)")
    assert "^" in message


def test_a_grid_over_search_method_grid_is_checked_too() -> None:
    assert "a continuous space" in checked("sweep < >", dropout="HPO(range(0.1, 0.5))",
                                           train='search_method: "grid"')


@pytest.mark.parametrize("dropout", ["HPO(range(0.1, 0.5, step=0.1))", "HPO(choice(0.1, 0.3))"])
def test_a_grid_over_finite_spaces_passes(dropout: str) -> None:
    assert checked("sweep < sampler: grid >", dropout=dropout) == ""


def test_every_mistake_is_reported_at_once() -> None:
    message = checked('sweep < objective: val_f1; sampler: grid; address: "10.0.0.5:6379" >',
                      dropout="HPO(range(0.1, 0.5))")
    assert message.count("m.neural:") == 3


def test_an_unknown_search_method_is_refused_with_a_sweep_block() -> None:
    assert ("train search_method 'evolution' is not a way the sweep searches (known: random, bayesian, grid)"
            in checked("sweep < >", train='search_method: "evolution"'))


def test_an_address_needs_the_ray_launcher() -> None:
    assert checked('sweep < address: "10.0.0.5:6379" >').startswith(
        "m.neural:7:20: address is the Ray cluster's HOST:PORT, used only with launcher: ray")


@pytest.mark.parametrize(("space", "message"), [
    ("Dense(HPO(range(8, 64, step=0.5)))", "Dense: 'units' must be a positive integer; a range with a "
                                           "fractional step does not fit"),
    ("Dense(HPO(choice(64, 32, 0)))", "Dense: 'units' must be a positive integer, got HPO(choice(64, 32, 0))"),
    ("Dense(8) Dropout(HPO(range(0.1, 1)))", "Dropout: 'rate' must be a number from 0 up to (not including) 1"),
    ("Dense(HPO(log_range(0.5, 64)))", "Dense: 'units' must be a positive integer"),
])
def test_the_whole_space_is_validated_like_a_single_value(space: str, message: str) -> None:
    text = NET.format(blocks="sweep < >", train="").replace('Dense(HPO(choice(16, 32)), "relu")', space)
    with pytest.raises(NeuralValidationError, match=re.escape(message)):
        parse_text(text, "m.neural")


def test_neural_check_reports_a_sweep_mistake_with_a_caret(tmp_path: Path) -> None:
    source = tmp_path / "m.neural"
    source.write_text(CHECKED.format(blocks="sweep < direction: maximize >", dropout="0.1", lr="0.001",
                                     loss="sparse_categorical_crossentropy", train=""))
    result = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "check", str(source)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {source}:7:22: direction maximize does not fit the objective "
                                    "'val_loss' (lower is better); write direction: minimize\n"
                                    "  7 |   sweep < direction: maximize >\n"
                                    "    |                      ^~~~~~~~")


def test_every_sweep_key_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "sweeps.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| (\w+) \|", doc, flags=re.MULTILINE))
    assert set(SweepSpec.model_fields) <= documented


@pytest.mark.parametrize(("optimizer", "message"), [
    ("SGD(learning_rate=0.1, momentum=-2)", "momentum must be a number >= 0, got -2"),
    ("SGD(learning_rate=0.1, momentum=HPO(choice(0.9, -2)))", "momentum must be a number >= 0, got HPO(choice(0.9, -2))"),
    ("Adadelta(learning_rate=1.0, rho=HPO(range(0.5, 1.5)))", "rho must be a number from 0 to 1"),
    ("Adam(learning_rate=0.01, beta_2=HPO(choice(0.999, 1)))", "beta_2 must be a number from 0 up to (not including) 1"),
    ("Adam(learning_rate=0.01, epsilon=HPO(log_range(-1, 1e-6)))", "log_range(...): needs 0 < low < high"),
    ("Adam(learning_rate=HPO(choice(0.01, 0)))", "learning_rate must be a positive number"),
])
def test_optimizer_arguments_are_checked_whole_like_a_single_value(optimizer: str, message: str) -> None:
    text = NET.format(blocks="sweep < >", train="").replace("  train", f"  optimizer: {optimizer}\n  train")
    with pytest.raises(NeuralValidationError, match=re.escape(message)):
        parse_text(text, "m.neural")
