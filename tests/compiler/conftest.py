"""Helpers for the compiler tests: compile DSL text, import the generated program, run it."""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from neural_dsl_tracking.compiler import compile_network
from neural_dsl_tracking.language import parse_text

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("NEURAL_CORPUS", REPO.parent / "shared" / "corpus" / "neural-dsl-examples"))
DIGITS = REPO / "examples" / "digits.neural"
_counter = itertools.count()


def compile_text(text: str, out_dir: Path, network: str | None = None) -> Path:
    """Write ``text`` to ``out_dir/model.neural``, compile it there, return train.py."""
    out_dir.mkdir(parents=True, exist_ok=True)
    source = out_dir / "model.neural"
    source.write_text(text, encoding="utf-8")
    spec = parse_text(text, str(source)).network(network)
    return compile_network(spec, source, out_dir / "program")


def import_program(train_py: Path) -> ModuleType:
    """Import a generated train.py as a module (its ``__main__`` block does not run)."""
    name = f"generated_program_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, train_py)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_model(module: ModuleType, train_py: Path):  # type: ignore[no-untyped-def]
    """The program's network built with the defaults of its conf/config.yaml."""
    import yaml

    from neural_dsl_tracking.compiler import runtime

    config = yaml.safe_load((train_py.parent / "conf" / "config.yaml").read_text())
    return network_class(module)(runtime.hyperparameters(config["model"]))


def network_class(module: ModuleType) -> type:
    """The network class of an imported program."""
    return next(value for value in vars(module).values()
                if isinstance(value, type) and hasattr(value, "head_activation"))


def run_program(train_py: Path, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a generated program like a user would, one CPU thread, no progress bar."""
    env = {**os.environ, "NEURAL_NO_PROGRESS": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(train_py), "execution.threads=1", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def compile_in(tmp_path: Path):  # type: ignore[no-untyped-def]
    def compile_(text: str, network: str | None = None) -> Path:
        return compile_text(text, tmp_path / f"c{next(_counter)}", network)

    return compile_


def model_spec(text: str, out_dir: Path, **model_overrides: dict) -> dict:
    """The run's model spec of the network in ``text``: compiled into ``out_dir``, built with
    its config's model section (updated by ``model_overrides``: layer -> {param: value}) and
    described as its program describes it at run start."""
    import yaml

    from neural_dsl_tracking.compiler import runtime
    from neural_dsl_tracking.compiler.summary import describe_model

    train_py = compile_text(text, out_dir)
    module = import_program(train_py)
    section = yaml.safe_load((train_py.parent / "conf" / "config.yaml").read_text())["model"]
    for layer, values in model_overrides.items():
        section[layer].update(values)
    hp = runtime.hyperparameters(section)
    return describe_model(network_class(module)(hp), module.model_layers(hp), 16, module.TOKENS)
