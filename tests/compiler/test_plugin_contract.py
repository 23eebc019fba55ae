"""The plugin contract on the config side: each plugin block the network declares reaches
the generated config as its own section (with its Hydra config group) and is validated
there by the plugin's spec model; the core names no plugin, so removing one (here with
``NEURAL_DISABLE_PLUGINS``, in real ``neural`` processes) leaves the others working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from neural_dsl_tracking.compiler import compile_program
from neural_dsl_tracking.compiler.runconfig import validate_run_config
from neural_dsl_tracking.errors import ConfigError
from neural_dsl_tracking.language import parse_text

from .conftest import run_program

NETWORK = """network Tiny {{
  input: (8, 8, 1)
  layers: Flatten() Dense(HPO(choice(8, 16)), "relu") Output(10, "softmax")
  loss: "sparse_categorical_crossentropy"
  train {{ epochs: 1 batch_size: 64 }}
  {blocks}
}}
"""
BLOCKS = {
    "tracking": "tracking < monitor: val_accuracy; mode: max; visualize_every: 0 >",
    "sweep": "sweep < trials: 3; pruner: none >",
}


def neural(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neural_dsl_tracking", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_every_declared_plugin_block_is_a_section_of_the_generated_config() -> None:
    spec = parse_text(NETWORK.format(blocks=" ".join(BLOCKS.values())), "m.neural").network()
    config = compile_program(spec, "m.neural").config
    assert config["sweep"] == {"trials": 3, "sampler": "tpe", "pruner": "none", "parallel": 1,
                               "objective": "val_accuracy", "direction": "maximize", "seed": None,
                               "launcher": "local", "address": None, "timeout": None}
    assert config["tracking"]["monitor"] == "val_accuracy"
    assert {"sweep": None} in config["defaults"] and {"tracking": None} in config["defaults"]


def test_a_plugin_section_is_validated_by_its_spec_model_when_the_program_runs() -> None:
    spec = parse_text(NETWORK.format(blocks=BLOCKS["sweep"]), "m.neural").network()
    program = compile_program(spec, "m.neural")
    composed = {key: value for key, value in program.config.items() if key not in ("defaults", "hydra")}
    composed["data"] = {"name": "digits"}
    kinds, family = program.model.kinds, "cross_entropy"

    assert validate_run_config(composed, kinds, family, ("sweep",)).sweep.trials == 3
    composed["sweep"] = {**composed["sweep"], "trials": 0, "sampler": "anneal"}
    with pytest.raises(ConfigError) as info:
        validate_run_config(composed, kinds, family, ("sweep",))
    assert "sweep.trials=0: Input should be greater than or equal to 1" in str(info.value)
    assert "sweep.sampler='anneal'" in str(info.value)
    with pytest.raises(ConfigError, match="tracking: this program was compiled from a network without a "
                                          "tracking block"):
        validate_run_config({**composed, "tracking": {"backend": ["local"]}}, kinds, family, ("sweep",))


@pytest.mark.slow
@pytest.mark.parametrize(("removed", "kept"), [("sweep", "tracking"), ("tracking", "sweep")])
def test_without_one_plugin_the_other_still_checks_compiles_and_trains(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, removed: str, kept: str) -> None:
    monkeypatch.setenv("NEURAL_DISABLE_PLUGINS", removed)  # for every process started below
    source = tmp_path / "model.neural"
    source.write_text(NETWORK.format(blocks=BLOCKS[kept]))
    checked = neural("check", str(source), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    compiled = neural("compile", str(source), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    config = yaml.safe_load((tmp_path / "out" / "conf" / "config.yaml").read_text())
    assert kept in config and removed not in config

    store = tmp_path / "store"
    tracked = [f"tracking.store={store}"] if kept == "tracking" else []
    trained = run_program(tmp_path / "out" / "train.py", "data=digits", *tracked, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "epoch 1/1" in trained.stdout + trained.stderr
    assert store.is_dir() is (kept == "tracking")

    source.write_text(NETWORK.format(blocks=BLOCKS[removed]))
    refused = neural("check", str(source), cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith(
        f"error: {source}:6:3: unknown block '{removed} < ... >': no installed plugin provides it "
        f"(it is disabled by NEURAL_DISABLE_PLUGINS) (plugin blocks: {kept})")
    assert "^~~" in refused.stderr
