"""Hostile text in a network never becomes code: it is rejected or stays a string constant."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from neural_dsl_tracking.compiler import compile_network, compile_program
from neural_dsl_tracking.errors import CompileError, NeuralError
from neural_dsl_tracking.language import parse_text
from neural_dsl_tracking.language.spec import InputSpec, LayerSpec, ModelSpec, OptimizerSpec
from neural_dsl_tracking.plugins.tracking.spec import TrackingSpec

PAYLOAD = "'); __import__('os').system('touch /tmp/pwned') #"
DANGEROUS = {"os", "system", "__import__", "eval", "exec", "subprocess", "compile", "open", "getattr"}


def identifiers(tree: ast.AST) -> set[str]:
    """Every name the code uses (not string contents)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.alias):
            found.update(filter(None, [node.name, node.asname]))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.keyword) and node.arg:
            found.add(node.arg)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update(node.module.split("."))
    return found


def assert_safe(train_py: Path) -> None:
    tree = ast.parse(train_py.read_text())
    names = identifiers(tree)
    assert not names & DANGEROUS, names & DANGEROUS
    assert not any("pwned" in name or "touch" in name for name in names)
    assert not any(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DANGEROUS
                   for node in ast.walk(tree))


def _spec(**changes: object) -> ModelSpec:
    base = dict(name="Net", input=InputSpec(shape=[4]),
                layers=[LayerSpec(type="Dense", params={"units": 3, "activation": "relu"}),
                        LayerSpec(type="Output", params={"units": 2, "activation": "softmax"})])
    base.update(changes)
    return ModelSpec(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", [
    _spec(name="Net(nn.Module):\n    import os\nclass X"),
    _spec(name="__import__"),
    _spec(layers=[LayerSpec(type="Dense(1)\nimport os\n#", params={"units": 3})]),
    _spec(layers=[LayerSpec(type="Dense", params={"units": 3, "activation": "relu); __import__('os').system('x')"})]),
    _spec(layers=[LayerSpec(type="Dense", params={"units": 3, "x') or os.system('y": 1})]),
    _spec(layers=[LayerSpec(type="Dense", params={"units": "3); os.system('x'"})]),
    _spec(layers=[LayerSpec(type="Conv2D", params={"filters": 2, "kernel_size": 1, "padding": PAYLOAD})],
          input=InputSpec(shape=[4, 4, 1])),
    _spec(optimizer=OptimizerSpec(type="Adam(learning_rate=__import__('os').system('x'))")),
    _spec(optimizer=OptimizerSpec(type="Adam", params={"lr); os.system('x": 0.1})),
    _spec(loss=PAYLOAD),
], ids=["class-name", "dunder-name", "layer-type", "activation", "param-key", "param-value", "padding",
        "optimizer-text", "optimizer-key", "loss"])
def test_hostile_spec_values_are_rejected(spec: ModelSpec) -> None:
    with pytest.raises(CompileError):
        compile_program(spec, "hostile.neural")


def test_hostile_strings_stay_data(tmp_path: Path) -> None:
    """Strings that are allowed (tracking names, tags, store) go to the config, never the code."""
    tracking = TrackingSpec(experiment=PAYLOAD, run_name="line1\nline2 \"quoted\" ${oc.env:HOME}",
                            tags=[PAYLOAD, "os.system('x')", "${now:%Y}"], store="store'\"\n")
    spec = _spec(plugins={"tracking": tracking})
    source = tmp_path / "we'ird\nname.neural"
    source.write_text("network Net {}\n")
    train_py = compile_network(spec, source, tmp_path / "out")
    assert_safe(train_py)
    text = train_py.read_text()
    assert "pwned" not in text and "oc.env" not in text
    config = yaml.safe_load((tmp_path / "out" / "conf" / "config.yaml").read_text())
    resolved = OmegaConf.to_container(OmegaConf.create(config), resolve=True)
    assert resolved["tracking"]["experiment"] == PAYLOAD
    assert resolved["tracking"]["run_name"] == "line1\nline2 \"quoted\" ${oc.env:HOME}"  # not interpolated
    assert resolved["tracking"]["tags"] == [PAYLOAD, "os.system('x')", "${now:%Y}"]
    assert resolved["tracking"]["store"] == "store'\"\n"


def test_hostile_dsl_text_is_rejected_or_inert(tmp_path: Path) -> None:
    texts = [
        'network X { input: (4,) layers: Dense(3, activation="relu\')\\nimport os") }',
        "network X { input: (4,) layers: __import__(3) }",
        'network X { input: (4,) layers: Output(2) tracking < experiment: "' + PAYLOAD.replace('"', "") + '" > }',
        'network X { input: (4,) layers: Output(2) tracking < tags: ["a\\nimport os", "${oc.env:HOME}"] > }',
        'network X { input: (4,) layers: Output(2) loss: "mse\'); os.system(\'x" }',
        "network X { input: (4,) layers: Output(2) optimizer: \"Adam(lr=os.system('x'))\" }",
    ]
    compiled = 0
    for index, text in enumerate(texts):
        try:
            spec = parse_text(text, "hostile.neural").networks[0]
            train_py = compile_network(spec, _write(tmp_path / f"{index}.neural", text), tmp_path / f"out{index}")
        except NeuralError:
            continue
        compiled += 1
        assert_safe(train_py)
    assert compiled >= 2  # the tracking-string cases compile, with the strings only in the config


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
