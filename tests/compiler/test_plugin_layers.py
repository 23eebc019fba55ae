"""Layers a plugin provides (``Plugin.layers``): checked by the language like built-in ones,
built by the compiler through the same emitter, and without the plugin a custom layer the
compiler refuses by name.

The plugin is a real distribution: a package and its ``.dist-info`` (with the entry point)
in a temporary folder put on ``sys.path``, found by the ordinary entry-point discovery.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from pydantic import BaseModel

from neural_dsl_tracking.errors import CompileError, NeuralError, NeuralValidationError
from neural_dsl_tracking.language import parse_text
from neural_dsl_tracking.plugins.base import Plugin
from tests.compiler.conftest import compile_text, default_model, import_program

MODULES_SOURCE = '''
import torch
from torch import nn


class LearnedScale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(factor))

    def forward(self, x):
        return x * self.factor
'''

PLUGIN_SOURCE = '''
from pydantic import BaseModel

from neural_dsl_tracking.compiler.codegen import Expr, call, lit
from neural_dsl_tracking.compiler.shapes import code_of
from neural_dsl_tracking.plugins.base import Plugin
from neural_dsl_tracking.plugins.layers import Param, PluginLayer


def emit_swish(em, layer, name, x):
    em.comment(f"{name}: Swish")
    em.forward("x = x * torch.sigmoid(x)")
    return x


def emit_scale(em, layer, name, x):
    factor = float(em.param(layer, name, "factor"))
    if not em.param(layer, name, "learned"):
        em.forward(f"x = x * {lit(factor).code}")
        return x
    em.import_module("layerkit.modules")
    em.module(name, call("layerkit.modules.LearnedScale", factor), x.shape, x.shape)
    em.forward(f"x = self.{name}(x)")
    return x


def emit_bottleneck(em, layer, name, x):
    x = em.to_layout(x, "last")
    features, units = x.shape[-1], em.param(layer, name, "units")
    em.module(f"{name}_down", call("nn.Linear", code_of(features), code_of(units)), x.shape, x.shape[:-1] + (units,))
    em.module(f"{name}_up", call("nn.Linear", code_of(units), code_of(features)), x.shape[:-1] + (units,), x.shape)
    activation = em.activation_code(em.param(layer, name, "activation"), call(f"self.{name}_down", Expr("x")), x, layer)
    em.forward(f"x = self.{name}_up({activation.code})")
    return x


class LayerkitSpec(BaseModel):
    pass


LAYERS = {
    "Swish": PluginLayer(emit_swish, {}),
    "Scale": PluginLayer(emit_scale, {"factor": Param("float"), "learned": Param("bool", False)}, positional=("factor",)),
    "Bottleneck": PluginLayer(emit_bottleneck, {"units": Param("width"), "activation": Param("activation", "relu")}),
}

plugin = Plugin(keyword="layerkit", grammar_file=__file__.replace("__init__.py", "layerkit.lark"),
                spec_model=LayerkitSpec, layers="layerkit:LAYERS")
'''

NET = """network Kit {{
  input: (6)
  layers:
    Dense(8)
    {layers}
    Output(3, "softmax")
  loss: "categorical_crossentropy"
  optimizer: Adam()
}}
"""


def _write_plugin(root: Path) -> None:
    package = root / "layerkit"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    (package / "modules.py").write_text(textwrap.dedent(MODULES_SOURCE))
    (package / "layerkit.lark").write_text('layerkit_block: "layerkit" "<" entries ">"\n')
    info = root / "layerkit-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: layerkit\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[neural_dsl_tracking.plugins]\nlayerkit = layerkit:plugin\n")


def _forget_plugins() -> None:
    from neural_dsl_tracking.language.grammar import get_parser
    from neural_dsl_tracking.plugins import discover_plugins
    from neural_dsl_tracking.plugins.layers import _layers_of

    for cached in (discover_plugins, get_parser, _layers_of):
        cached.cache_clear()
    for name in ("layerkit", "layerkit.modules"):
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``layerkit`` plugin installed (on ``sys.path``) for the tests that use it."""
    root = tmp_path_factory.mktemp("site")
    _write_plugin(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        _forget_plugins()
        yield root
    _forget_plugins()


def test_without_the_plugin_the_compile_error_names_the_layer(tmp_path: Path) -> None:
    """Runs before the plugin is installed (the first test using ``plugin_dir``)."""
    with pytest.raises(CompileError, match="layer Swish: is a custom layer .*no installed plugin provides it"):
        compile_text(NET.format(layers="Swish()"), tmp_path)


def test_plugin_layers_check_compile_and_run_like_built_in_ones(plugin_dir: Path, tmp_path: Path) -> None:
    import torch
    from torch import nn

    text = NET.format(layers="Swish()\n    Bottleneck(4, activation=\"tanh\")\n    Scale(0.5)\n    Scale(3, learned=true)")
    net = parse_text(text).networks[0]
    assert [(layer.type, layer.params) for layer in net.layers[1:5]] == [
        ("Swish", {}), ("Bottleneck", {"units": 4, "activation": "tanh"}), ("Scale", {"factor": 0.5}),
        ("Scale", {"factor": 3, "learned": True})]
    train_py = compile_text(text, tmp_path)
    model = default_model(import_program(train_py), train_py)

    dense, down, up, head = nn.Linear(6, 8), nn.Linear(8, 4), nn.Linear(4, 8), nn.Linear(8, 3)
    scale = nn.Parameter(torch.tensor(3.0))  # the plugin's own module: one learned factor
    expected = nn.ParameterList([*dense.parameters(), *down.parameters(), *up.parameters(), scale,
                                 *head.parameters()])
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in expected.parameters()) == 160
    with torch.no_grad():
        for ours, theirs in zip(model.parameters(), expected.parameters(), strict=True):
            ours.copy_(theirs)
        x = torch.randn(5, 6)
        h = dense(x)
        h = h * torch.sigmoid(h)
        h = up(torch.tanh(down(h))) * 0.5 * scale
        torch.testing.assert_close(model(x), head(h))
    assert "hp.bottleneck_1.units" in train_py.read_text()  # a size, tunable like units


def test_a_plugin_layer_size_is_a_tunable_hyperparameter(plugin_dir: Path, tmp_path: Path) -> None:
    import yaml

    train_py = compile_text(NET.format(layers="Bottleneck(HPO(choice(4, 16)))"), tmp_path)
    config = yaml.safe_load((train_py.parent / "conf" / "config.yaml").read_text())
    assert config["model"]["bottleneck_1"]["units"] == 4
    space = config["hpo"]["space"]["model.bottleneck_1.units"]
    assert (space["type"], space["values"]) == ("choice", [4, 16])
    with pytest.raises(NeuralValidationError, match="'factor' must be a positive number"):
        parse_text(NET.format(layers="Scale(HPO(choice(1, -1)))"))


@pytest.mark.parametrize(("layer", "message"), [
    ("Bottleneck()", "Bottleneck needs 'units'"),
    ("Bottleneck(0)", "'units' must be a positive integer"),
    ("Bottleneck(4, activaton=\"relu\")", "Bottleneck has no parameter 'activaton'; did you mean 'activation'"),
    ("Scale(-2)", "'factor' must be a positive number"),
    ("Swish(1)", "Swish takes no positional arguments"),
    ("Scale(2, true)", "Scale takes at most 1 positional argument"),
    ("Scale(2, learned=1)", "'learned' must be true or false"),
])
def test_plugin_layer_arguments_are_checked_like_built_in_ones(plugin_dir: Path, layer: str,
                                                                message: str) -> None:
    with pytest.raises(NeuralValidationError, match=message):
        parse_text(NET.format(layers=layer))


def test_a_macro_cannot_take_the_name_of_a_plugin_layer(plugin_dir: Path) -> None:
    with pytest.raises(NeuralValidationError, match="macro 'Swish' has the name of a layer a plugin provides"):
        parse_text("define Swish { Dense(2) }\n" + NET.format(layers="Swish"))


def test_lambda_stays_refused_with_layer_plugins_installed(plugin_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CompileError, match="layer Lambda: its code string is never run"):
        compile_text(NET.format(layers='Lambda("x * 2")'), tmp_path)


def test_neural_check_notes_only_layers_no_plugin_provides(plugin_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "kit.neural"
    source.write_text(NET.format(layers="Swish()\n    Gizmo(3)"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "check", str(source)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "'Gizmo' is not a built-in layer" in done.stderr
    assert "Swish" not in done.stderr
    assert "layers: Dense, Swish, Gizmo, Output" in done.stdout


_tables = itertools.count()


def _table_plugin(root: Path, table: str) -> Plugin:
    """A plugin (not installed) whose ``layers`` is ``table``, a Python expression."""
    keyword = f"kit{next(_tables)}"  # its own module and cache entry
    (root / f"{keyword}_layers.py").write_text(
        "from neural_dsl_tracking.plugins.layers import Param, PluginLayer\n"
        f"def emit(em, layer, name, x):\n    return x\nLAYERS = {table}\n")
    (root / f"{keyword}.lark").write_text(f'{keyword}_block: "{keyword}" "<" entries ">"\n')
    return Plugin(keyword=keyword, grammar_file=str(root / f"{keyword}.lark"), spec_model=BaseModel,
                  layers=f"{keyword}_layers:LAYERS")


@pytest.mark.parametrize(("tables", "message"), [
    (['{"Dense": PluginLayer(emit, {}), "Gizmo": PluginLayer(emit, {})}'],
     "a plugin provides the layer 'Dense', which is the name of the built-in layer 'Dense'"),
    (['{"Gizmo": PluginLayer(emit, {})}', '{"Gizmo": PluginLayer(emit, {})}'],
     "plugins 'kit.*' and 'kit.*' both provide the layer 'Gizmo'"),
    (['{"gizmo": PluginLayer(emit, {})}'], "layer 'gizmo': a layer type is a capitalised identifier"),
    (['{"Gizmo": emit}'], "layer 'Gizmo' is not a PluginLayer with an emit function"),
    (['{"Gizmo": PluginLayer(emit, {"k": Param("colour")})}'], "parameter 'k' needs Param\\(kind\\) with a kind among"),
    (['{"Gizmo": PluginLayer(emit, {"k": Param("int")}, positional=("j",))}'],
     "positional parameter 'j' is not one of its parameters"),
    (['[PluginLayer(emit, {})]'], "is not a mapping of layer types"),
    (['undefined_name'], "layers 'kit.*_layers:LAYERS' cannot be loaded: NameError"),
])
def test_a_broken_layer_table_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 tables: list[str], message: str) -> None:
    from neural_dsl_tracking.language.grammar import build_parser
    from neural_dsl_tracking.language.parser import parse_with

    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = {plugin.keyword: plugin for plugin in (_table_plugin(tmp_path, table) for table in tables)}
    with pytest.raises(NeuralError, match=message):
        parse_with(build_parser(plugins), NET.format(layers="Gizmo()"))
