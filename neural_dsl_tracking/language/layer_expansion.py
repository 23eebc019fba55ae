"""Layer nodes -> LayerSpecs: catalogue lookup, parameter binding and checks, nested
blocks, ``* N`` repeats and ``define`` macros (all expanded), ``@ "device"``."""

from __future__ import annotations

from neural_dsl_tracking.language.diagnostics import DiagnosticSink, did_you_mean
from neural_dsl_tracking.language.layers import LAYERS
from neural_dsl_tracking.language.sections import SectionReader, source_pos
from neural_dsl_tracking.language.spec import LayerSpec
from neural_dsl_tracking.language.syntax import LayerNode, MacroNode, Value
from neural_dsl_tracking.language.values import bind_arguments

MAX_LAYERS = 10_000
"""No network expands to more layers than this (counting nested ones)."""


def layer_count(layers: list[LayerSpec]) -> int:
    """All layers, nested children included."""
    return sum(1 + layer_count(layer.children) for layer in layers)


class LayerExpander:
    """Expands the layer lists of one file; macro bodies are expanded once and copied."""

    def __init__(self, sink: DiagnosticSink, macros: list[MacroNode], sections: SectionReader):
        self.sink = sink
        self.sections = sections
        self.macros: dict[str, MacroNode] = {}
        for macro in macros:
            self._declare(macro)
        self._bodies: dict[str, list[LayerSpec] | None] = {}

    def _declare(self, macro: MacroNode) -> None:
        if macro.name in LAYERS:
            self.sink.error(macro.pos, f"macro '{macro.name}' has the name of a built-in layer")
        elif macro.name in self.macros:
            first = self.macros[macro.name].pos
            self.sink.error(macro.pos, f"macro '{macro.name}' is defined twice (first at line {first.line})")
        else:
            self.macros[macro.name] = macro

    def check_all_macros(self) -> None:
        """Expand every macro once, so that unused ones are checked too."""
        for name in self.macros:
            self._macro_body(name, self.macros[name].pos)

    def expand(self, nodes: list[LayerNode]) -> list[LayerSpec]:
        result: list[LayerSpec] = []
        size = 0
        for node in nodes:
            count = self._repeat_count(node)
            device = self._device(node)
            if node.name in self.macros:
                body = self._macro_use(node)
            else:
                layer = self._layer(node)
                body = [] if layer is None else [layer]
            if device is not None:
                body = [_with_device(layer, device) for layer in body]
            body_size = layer_count(body)
            if size + body_size * count > MAX_LAYERS:
                self.sink.error(node.pos, f"the layers expand to more than {MAX_LAYERS} layers")
                return result
            size += body_size * count
            for copy in range(count):
                result.extend(body if copy == 0 else [layer.model_copy(deep=True) for layer in body])
        return result

    # ------------------------------------------------------------ modifiers
    def _repeat_count(self, node: LayerNode) -> int:
        if not node.repeats:
            return 1
        for extra in node.repeats[1:]:
            self.sink.error(extra.pos, "a layer takes one '* N' repeat")
        value = node.repeats[0]
        if value.kind == "number" and isinstance(value.data, int) and value.data >= 1:
            return value.data
        self.sink.error(value.pos, f"a repeat count must be a positive integer, got {value.text}")
        return 1

    def _device(self, node: LayerNode) -> str | None:
        for extra in node.devices[1:]:
            self.sink.error(extra.pos, "a layer takes one '@ \"device\"' placement")
        if not node.devices:
            return None
        value: Value = node.devices[0]
        return self.sections.device(value.data, value.pos)  # the grammar makes it a string

    # ------------------------------------------------------------ macros
    def _macro_use(self, node: LayerNode) -> list[LayerSpec]:
        if node.arguments:
            self.sink.error(node.arguments[0].pos, f"macro '{node.name}' takes no arguments")
        if node.children is not None:
            self.sink.error(node.pos, f"macro '{node.name}' cannot take a nested block")
        body = self._macro_body(node.name, node.pos)
        return [layer.model_copy(deep=True) for layer in body]

    def _macro_body(self, name: str, use_pos) -> list[LayerSpec]:
        if name in self._bodies:
            body = self._bodies[name]
            if body is None:
                self.sink.error(use_pos, f"macro '{name}' uses itself")
                return []
            return body
        self._bodies[name] = None  # in progress: a use from inside is a cycle
        body = self.expand(self.macros[name].layers)
        self._bodies[name] = body
        return body

    # ------------------------------------------------------------ one layer
    def _layer(self, node: LayerNode) -> LayerSpec | None:
        info = LAYERS.get(node.name)
        if info is None:
            hint = did_you_mean(node.name, [*LAYERS, *self.macros])
            self.sink.error(node.pos, f"unknown layer '{node.name}'{hint}")
            return None
        bound = bind_arguments(
            node.arguments or [], info.positional, node.name, self.sink, known=info.known_params()
        )
        params = {
            name: self.sections.checked_value(
                argument.value, info.kind_of(name), f"{node.name}: '{name}'"
            )
            for name, argument in bound.items()
        }
        missing = [name for name in info.required if name not in bound]
        if missing:
            needs = " and ".join(f"'{m}'" for m in missing)
            self.sink.error(node.pos, f"{node.name} needs {needs}")
        children: list[LayerSpec] = []
        if node.children is not None:
            if info.container:
                children = self.expand(node.children)
            else:
                self.sink.error(node.pos, f"{node.name} does not take a nested {{ }} block")
        return LayerSpec(type=node.name, params=params, children=children, pos=source_pos(node.pos))


def _with_device(layer: LayerSpec, device: str) -> LayerSpec:
    if layer.device is not None:
        return layer
    return layer.model_copy(update={"device": device})
