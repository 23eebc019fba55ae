"""The ``tracking < ... >`` block in every form a user will type."""

from __future__ import annotations

from pathlib import Path

import pytest

from neural_dsl_tracking.cli import main
from neural_dsl_tracking.language import parse_text
from neural_dsl_tracking.language.spec import to_jsonable
from neural_dsl_tracking.plugins.tracking import TrackingSpec
from neural_dsl_tracking.tracking.values import MAX_NAME

NETWORK = """
network {name} {{
  input: (28, 28, 1)
  layers:
    Flatten()
    Output(10, "softmax")
  {inner}
}}
"""


def tracking_of(inner: str, *, top: str = "") -> TrackingSpec:
    parsed = parse_text(top + NETWORK.format(name="Net", inner=inner), "t.neural")
    spec = parsed.networks[0].plugins.get("tracking")
    assert isinstance(spec, TrackingSpec)
    return spec


def test_one_line_block_from_the_issue() -> None:
    spec = tracking_of("tracking < backend: mlflow; visualize_every: 10; version_artifacts: true >")
    assert spec.backend == ["mlflow"]
    assert spec.visualize_every == 10
    assert spec.version_artifacts is True
    assert spec.experiment == "Net"  # completed by the plugin with the network's name


def test_multi_line_block_with_newlines_as_separators() -> None:
    spec = tracking_of(
        """tracking <
      backend: wandb
      run_name: "first-try"
      visualize_every: 0
      log_every: 5
      checkpoint_every: 3
      monitor: val_accuracy
      mode: max
      store: "postgresql+psycopg://u@127.0.0.1/runs"
      version_artifacts: false
    >"""
    )
    assert spec.backend == ["wandb"]
    assert spec.run_name == "first-try"
    assert (spec.visualize_every, spec.log_every, spec.checkpoint_every) == (0, 5, 3)
    assert (spec.monitor, spec.mode) == ("val_accuracy", "max")
    assert spec.store == "postgresql+psycopg://u@127.0.0.1/runs"
    assert spec.version_artifacts is False


def test_trailing_semicolon_and_mixed_separators() -> None:
    spec = tracking_of("tracking <\n backend: local;\n tags: [a, b];\n>")
    assert spec.backend == ["local"] and spec.tags == ["a", "b"]


def test_empty_block_gives_all_defaults() -> None:
    spec = tracking_of("tracking < >")
    assert spec.model_dump(exclude={"experiment"}) == TrackingSpec().model_dump(exclude={"experiment"})
    assert spec.backend == ["local"] and spec.visualize_every == 10 and spec.store == "neural_experiments"


def test_lists_of_backends_and_tags() -> None:
    spec = tracking_of('tracking < backend: [mlflow, tensorboard]; tags: [baseline, cnn, "v1.2"] >')
    assert spec.backend == ["mlflow", "tensorboard"]
    assert spec.mirrors == ["mlflow", "tensorboard"]
    assert spec.tags == ["baseline", "cnn", "v1.2"]


def test_dotted_keys_set_nested_settings() -> None:
    spec = tracking_of(
        """tracking <
      backend: [mlflow, wandb, tensorboard]
      mlflow.tracking_uri: "sqlite:///m.db"
      mlflow.experiment: "mlflow-exp"
      wandb.project: proj; wandb.entity: team; wandb.mode: offline
      tensorboard.log_dir: "tb/logs"
    >"""
    )
    assert spec.mlflow.tracking_uri == "sqlite:///m.db"
    assert spec.mlflow.experiment == "mlflow-exp"
    assert (spec.wandb.project, spec.wandb.entity, spec.wandb.mode) == ("proj", "team", "offline")
    assert spec.tensorboard.log_dir == "tb/logs"


def test_top_level_block_applies_to_every_network() -> None:
    text = "tracking < backend: mlflow; tags: [shared] >\n" + NETWORK.format(
        name="A", inner=""
    ) + NETWORK.format(name="B", inner="")
    a, b = parse_text(text).networks
    assert a.plugins.get("tracking").backend == ["mlflow"] and b.plugins.get("tracking").backend == ["mlflow"]
    assert a.plugins.get("tracking").experiment == "A" and b.plugins.get("tracking").experiment == "B"
    assert a.plugins.get("tracking") is not b.plugins.get("tracking")


def test_top_level_block_after_the_networks_also_applies() -> None:
    text = NETWORK.format(name="A", inner="") + "tracking < visualize_every: 3 >\n"
    assert parse_text(text).networks[0].plugins.get("tracking").visualize_every == 3


def test_network_block_overrides_top_level_key_by_key() -> None:
    top = 'tracking < backend: mlflow; visualize_every: 7; mlflow.tracking_uri: "sqlite:///a.db" >\n'
    spec = tracking_of('tracking < visualize_every: 2; mlflow.experiment: "mine" >', top=top)
    assert spec.backend == ["mlflow"]  # from the top level
    assert spec.visualize_every == 2  # overridden
    assert spec.mlflow.tracking_uri == "sqlite:///a.db"  # nested keys merge
    assert spec.mlflow.experiment == "mine"


def test_explicit_experiment_is_kept() -> None:
    assert tracking_of('tracking < experiment: "mnist-sweep" >').experiment == "mnist-sweep"


def test_network_without_any_tracking_has_none() -> None:
    assert parse_text(NETWORK.format(name="N", inner="")).networks[0].plugins.get("tracking") is None


def test_block_may_sit_before_the_layers() -> None:
    text = """network N {
      tracking < backend: tensorboard >
      input: (4)
      layers: Dense(2)
    }"""
    assert parse_text(text).networks[0].plugins.get("tracking").backend == ["tensorboard"]


@pytest.mark.parametrize("word,value", [("true", True), ("false", False), ("True", True)])
def test_booleans(word: str, value: bool) -> None:
    assert tracking_of(f"tracking < version_artifacts: {word} >").version_artifacts is value


def test_json_dump_has_every_default() -> None:
    parsed = parse_text(NETWORK.format(name="N", inner="tracking < backend: mlflow >"))
    data = to_jsonable(parsed)["networks"][0]["plugins"]["tracking"]
    assert data == {
        "backend": ["mlflow"], "experiment": "N", "run_name": None, "tags": [],
        "visualize_every": 10, "version_artifacts": True, "log_every": 1,
        "checkpoint_every": 1, "system_metrics": 10, "monitor": "val_loss", "mode": None,
        "store": "neural_experiments",
        "mlflow": {"tracking_uri": None, "experiment": None},
        "wandb": {"project": None, "entity": None, "mode": None},
        "tensorboard": {"log_dir": None}, "resume": None, "fork": None,
    }


# ---- name lengths: the store's limit, refused by `neural check` and as an override -------
LONG = "x" * 10_000
LONG_CASES = [  # (the block, the value as written, the key the message names)
    (f'tracking < experiment: "{LONG}" >', f'"{LONG}"', "experiment"),
    (f"tracking < run_name: {LONG} >", LONG, "run_name"),
    (f'tracking < tags: [ok, "{LONG}"] >', f'"{LONG}"', "tags"),
    (f"tracking < tags: {LONG} >", LONG, "tags"),
]


@pytest.mark.parametrize("block,value,key", LONG_CASES, ids=["experiment", "run_name", "tag", "one-tag"])
def test_neural_check_refuses_a_name_over_the_store_limit_where_it_is_written(
        block: str, value: str, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 10,000-character experiment, run name or tag passed `neural check` and failed only
    when the run started."""
    path = tmp_path / "long.neural"
    path.write_text(NETWORK.format(name="Net", inner=block), encoding="utf-8")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    column = block.index(value) + 3  # the block is indented by two spaces
    assert err.startswith(f"error: {path}:7:{column}: '{key}' has 10,000 characters; "
                          f"the limit is {MAX_NAME}"), err[:300]
    assert "Traceback" not in err and len(err) < 2000


def test_names_up_to_the_limit_pass_the_check(tmp_path: Path) -> None:
    name = "n" * MAX_NAME
    spec = tracking_of(f'tracking < experiment: "{name}"; run_name: {name}; tags: [{name}] >')
    assert spec.experiment == spec.run_name == spec.tags[0] == name


@pytest.mark.slow
def test_a_long_experiment_override_is_one_error_line_before_anything_runs(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from neural_dsl_tracking.compiler import compile_network
    from neural_dsl_tracking.language import parse_file

    digits = Path(__file__).resolve().parents[2] / "examples" / "digits.neural"
    program = compile_network(parse_file(digits).network(), digits, tmp_path / "program")
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, str(program), "tracking.store=store", f"tracking.experiment={LONG}"],
        cwd=work, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NEURAL_NO_PROGRESS": "1", "HYDRA_FULL_ERROR": "0"})
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert lines[0] == "error: invalid setting in the run configuration:", result.stderr[:500]
    assert len(lines) == 2 and f"has 10,000 characters; the limit is {MAX_NAME}" in lines[1], lines
    assert len(lines[1]) < 400
    assert list(work.iterdir()) == []  # no store, no run
