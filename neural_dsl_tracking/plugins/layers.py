"""Layers a plugin provides: what the language checks and what the compiler builds.

A plugin's ``layers`` (a ``"module:attribute"`` path, imported only when a network uses a
layer that is not built in) names a mapping ``layer type -> PluginLayer``. The language
checks such a layer's arguments like a built-in one's (positional order, required
parameters, the kind of each value); the compiler calls its ``emit`` function exactly as
it calls its own (see :mod:`neural_dsl_tracking.compiler.layers`), which writes code only
through the safe builders of :mod:`neural_dsl_tracking.compiler.codegen`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from typing import TYPE_CHECKING, Any, Callable, Mapping

from neural_dsl_tracking.errors import NeuralError

if TYPE_CHECKING:
    from neural_dsl_tracking.plugins.base import Plugin

REQUIRED: Any = object()
"""The default of a parameter that must be given."""

PARAM_KINDS = ("width", "rate", "int", "float", "ints", "bool", "activation", "padding")
"""The kinds a plugin layer's parameter may take: ``width`` (a positive integer size, tunable
like ``units``), ``rate`` (0 <= x < 1, tunable), ``int`` (a positive integer), ``float`` (a
positive number), ``ints`` (an integer or a tuple of them), ``bool``, ``activation`` (a Keras
activation name), ``padding`` (``"valid"`` or ``"same"``)."""

_LAYER_NAME = re.compile(r"[A-Z][A-Za-z0-9_]{0,63}\Z")


@dataclass(frozen=True)
class Param:
    """A layer parameter: its kind (how it is checked and emitted) and default."""

    kind: str
    default: Any = REQUIRED


@dataclass(frozen=True)
class PluginLayer:
    """One layer type a plugin provides."""

    emit: Callable[..., Any]
    """``emit(emitter, layer, name, x) -> Tensor``, the contract of the compiler's own layers."""
    params: Mapping[str, Param]
    """Every parameter with its kind and default, in the order they are written."""
    positional: tuple[str, ...] | None = None
    """The parameters that may be written without their name, in order (None: all of them)."""

    def positional_names(self) -> tuple[str, ...]:
        return tuple(self.params) if self.positional is None else self.positional

    def required(self) -> tuple[str, ...]:
        """The parameters without a default."""
        return tuple(name for name, param in self.params.items() if param.default is REQUIRED)


def load_object(path: str, what: str) -> Any:
    """The object a plugin names as ``"module:attribute"``; NeuralError saying ``what`` it is."""
    module_name, _, attribute = path.partition(":")
    try:
        return getattr(import_module(module_name), attribute)
    except Exception as error:  # a broken third-party plugin is an environment problem
        raise NeuralError(f"{what} {path!r} cannot be loaded: {type(error).__name__}: {error}") from error


def plugin_layers(plugins: Mapping[str, "Plugin"]) -> dict[str, PluginLayer]:
    """The layers every plugin in ``plugins`` provides, by type; NeuralError for a layer
    type two plugins claim, or a table that is not one of :class:`PluginLayer`."""
    found: dict[str, PluginLayer] = {}
    owners: dict[str, str] = {}
    for keyword, plugin in plugins.items():
        if plugin.layers is None:
            continue
        for name, layer in _layers_of(keyword, plugin.layers).items():
            if name in found:
                raise NeuralError(f"plugins {owners[name]!r} and {keyword!r} both provide the layer {name!r}")
            found[name], owners[name] = layer, keyword
    return found


@lru_cache(maxsize=None)
def _layers_of(keyword: str, path: str) -> Mapping[str, PluginLayer]:
    """The layers plugin ``keyword`` names at ``path``, imported and checked once per process."""
    table = load_object(path, f"plugin {keyword!r}: layers")
    if not isinstance(table, Mapping):
        raise NeuralError(f"plugin {keyword!r}: layers {path!r} is not a mapping of layer types")
    for name, layer in table.items():
        _check_layer(keyword, name, layer)
    return dict(table)


def _check_layer(keyword: str, name: object, layer: object) -> None:
    where = f"plugin {keyword!r}: layer {name!r}"
    if not isinstance(name, str) or not _LAYER_NAME.match(name):
        raise NeuralError(f"{where}: a layer type is a capitalised identifier (e.g. 'Swish')")
    if not isinstance(layer, PluginLayer) or not callable(layer.emit):
        raise NeuralError(f"{where} is not a PluginLayer with an emit function")
    for pname, param in layer.params.items():
        if not isinstance(param, Param) or param.kind not in PARAM_KINDS:
            raise NeuralError(f"{where}: parameter {pname!r} needs Param(kind) with a kind among "
                              + ", ".join(PARAM_KINDS))
    unknown = [p for p in layer.positional_names() if p not in layer.params]
    if unknown:
        raise NeuralError(f"{where}: positional parameter {unknown[0]!r} is not one of its parameters")
