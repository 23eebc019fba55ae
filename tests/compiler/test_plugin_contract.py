"""The plugin contract on the config side: each plugin block the network declares reaches
the generated config as its own section (with its Hydra config group) and is validated
there by the plugin's spec model; the core names no plugin, so removing one (here with
``NEURAL_DISABLE_PLUGINS``, in real ``neural`` processes) leaves the others working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from neural_dsl_tracking.compiler import compile_program
from neural_dsl_tracking.compiler.runconfig import run_config_model, validate_run_config
from neural_dsl_tracking.errors import ConfigError
from neural_dsl_tracking.language import parse_text

from .conftest import compile_text, run_program

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


def test_a_programs_config_model_is_built_once_per_program_and_installed_plugins(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep validates a config per trial: the model is not rebuilt for the same program,
    and is another model for other layers, another loss family or other installed plugins."""
    from neural_dsl_tracking.plugins import discover_plugins

    kinds = {"dense_1": {"units": "width"}}
    model = run_config_model(kinds, "cross_entropy", ("sweep",))
    assert run_config_model({"dense_1": {"units": "width"}}, "cross_entropy", ("sweep",)) is model
    assert run_config_model({"dense_1": {"units": "width"}, "dropout_1": {"rate": "rate"}},
                            "cross_entropy", ("sweep",)) is not model
    assert run_config_model(kinds, "regression", ("sweep",)) is not model
    monkeypatch.setenv("NEURAL_DISABLE_PLUGINS", "tracking")
    discover_plugins.cache_clear()
    try:
        without_tracking = run_config_model(kinds, "cross_entropy", ("sweep",))
        assert without_tracking is not model and "tracking" not in without_tracking.model_fields
    finally:
        monkeypatch.delenv("NEURAL_DISABLE_PLUGINS")
        discover_plugins.cache_clear()
    assert run_config_model(kinds, "cross_entropy", ("sweep",)) is model


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


@pytest.mark.slow
def test_a_program_whose_plugin_is_gone_refuses_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train_py = compile_text(NETWORK.format(blocks=BLOCKS["sweep"]), tmp_path)
    monkeypatch.setenv("NEURAL_DISABLE_PLUGINS", "sweep")
    result = run_program(train_py, "data=digits", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: sweep: this program was compiled with the 'sweep' plugin, which is "
                                    "not installed (or is disabled by NEURAL_DISABLE_PLUGINS)")


NOTES_PLUGIN = '''
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from neural_dsl_tracking.plugins.base import Plugin

HERE = Path(__file__).resolve().parent


class NotesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    author: str = "nobody"
    reviewed: bool = False


def check(spec, network, program):
    where = network.plugin_pos["notes"]
    return [] if spec.author != "nobody" else [(where[""], "a notes block needs an author")]


plugin = Plugin(keyword="notes", grammar_file=str(HERE / "notes.lark"), spec_model=NotesSpec,
                config_group=str(HERE / "conf" / "notes"), check=check)
'''


def install_notes_plugin(site: Path) -> None:
    """A third-party plugin outside the package (its grammar, spec, check and presets), installed
    as a distribution on ``site`` (a folder on PYTHONPATH)."""
    (site / "conf" / "notes").mkdir(parents=True)
    (site / "notes_plugin.py").write_text(NOTES_PLUGIN)
    (site / "notes.lark").write_text('notes_block: "notes" "<" entries ">"\n')
    (site / "conf" / "notes" / "reviewed.yaml").write_text("reviewed: true\n")
    dist = site / "notes_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: notes-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[neural_dsl_tracking.plugins]\nnotes = notes_plugin:plugin\n")


@pytest.mark.slow
def test_a_third_party_plugin_gets_its_section_presets_validation_and_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_notes_plugin(tmp_path / "site")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path / "site"),
                                                                   os.environ.get("PYTHONPATH")])))
    source = tmp_path / "model.neural"
    source.write_text(NETWORK.format(blocks="notes < >"))
    refused = neural("check", str(source), cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {source}:6:3: a notes block needs an author\n  6 |   notes < >")

    source.write_text(NETWORK.format(blocks="notes < author: ada >"))
    assert neural("compile", str(source), "-o", str(tmp_path / "out"), cwd=tmp_path).returncode == 0
    config = yaml.safe_load((tmp_path / "out" / "conf" / "config.yaml").read_text())
    assert config["notes"] == {"author": "ada", "reviewed": False} and {"notes": None} in config["defaults"]
    train_py = tmp_path / "out" / "train.py"
    shown = run_program(train_py, "notes=reviewed", "--cfg", "job", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout)["notes"] == {"author": "ada", "reviewed": True}
    bad = run_program(train_py, "notes.reviewed=maybe", cwd=tmp_path)
    assert bad.returncode == 1 and "notes.reviewed='maybe': Input should be a valid boolean" in bad.stderr


def test_a_plugins_config_group_folder_is_named_after_its_keyword(tmp_path: Path) -> None:
    from pydantic import BaseModel

    from neural_dsl_tracking.errors import NeuralError
    from neural_dsl_tracking.plugins import _check
    from neural_dsl_tracking.plugins.base import Plugin

    (tmp_path / "presets").mkdir()
    misnamed = Plugin(keyword="notes", grammar_file="notes.lark", spec_model=BaseModel,
                      config_group=str(tmp_path / "presets"))
    with pytest.raises(NeuralError, match=r"plugin 'notes': its config group folder .*presets must be named 'notes'"):
        _check("notes", misnamed)
