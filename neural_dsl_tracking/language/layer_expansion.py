"""Layer nodes -> LayerSpecs: catalogue lookup, parameter binding and checks, nested
blocks, ``* N`` repeats and ``define`` macros (all expanded), ``@ "device"``."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Iterator, Mapping

from neural_dsl_tracking.language.diagnostics import DiagnosticSink, did_you_mean
from neural_dsl_tracking.language.layers import LAYERS, LayerInfo, misplaced, positional_target, typed
from neural_dsl_tracking.language.sections import SectionReader, source_pos
from neural_dsl_tracking.language.spec import LayerSpec, ParamValue
from neural_dsl_tracking.language.syntax import Argument, Call, LayerNode, MacroNode, Value
from neural_dsl_tracking.language.values import bind_arguments
from neural_dsl_tracking.language.layers import canonical_layer_name, check_param, plugin_layer_infos
from neural_dsl_tracking.language.macros import (
    Bindings,
    bind_macro_arguments,
    bindings_key,
    check_definition,
    substitute,
)
from neural_dsl_tracking.language.sections import integral
from neural_dsl_tracking.language.spec import ChoiceHPO, HPOValue, RangeHPO
from neural_dsl_tracking.language.values import dsl_repr
from neural_dsl_tracking.plugins.base import Plugin

MAX_LAYERS = 10_000
"""No network or macro expands to more layers than this (counting nested ones)."""
MAX_FILE_LAYERS = 20_000
"""All the networks of a file together expand to no more layers than this."""
MAX_DEPTH = 64
"""Nested ``{ }`` blocks go no deeper than this, also when macros nest them."""


def layer_count(layers: list[LayerSpec]) -> int:
    """All layers, nested children included."""
    return sum(1 + layer_count(layer.children) for layer in layers)


def layer_depth(layers: list[LayerSpec]) -> int:
    """How many levels of layers: 1 for a flat list, 0 for none."""
    return max((1 + layer_depth(layer.children) for layer in layers), default=0)


@dataclass(frozen=True)
class _Body:
    """Expanded layers (shared by every use) with their count and depth."""

    layers: list[LayerSpec]
    size: int
    depth: int

    @classmethod
    def of(cls, layers: list[LayerSpec]) -> "_Body":
        return cls(layers, layer_count(layers), layer_depth(layers))


class LayerExpander:
    """Expands the layer lists of one file; macro bodies are expanded once.

    Macros are expanded in dependency order with an explicit stack, so a chain of
    thousands of macros does not recurse. An expansion over :data:`MAX_LAYERS` layers
    or :data:`MAX_DEPTH` levels stops everything at once with that one error, before
    any layer is copied."""

    def __init__(self, sink: DiagnosticSink, macros: list[MacroNode], sections: SectionReader,
                 plugins: Mapping[str, Plugin] | None = None):
        self.sink = sink
        self.sections = sections
        self._plugins = plugins or {}
        self._plugin_layers: dict[str, LayerInfo] | None = None
        """The layers the plugins provide, loaded at the first name that is not built in."""
        self.macros: dict[str, MacroNode] = {}
        for macro in macros:
            self._declare(macro)
        self._bodies: dict[str, _Body] = {}
        self._instances: dict[tuple[str, str], _Body] = {}
        """Bodies of macros with parameters, by name and argument values."""
        self._instance_depth = 0
        """How many uses of macros with parameters are being expanded inside each other."""
        self._file_layers = 0
        """Layers of the networks expanded so far."""

    def _declare(self, macro: MacroNode) -> None:
        if self._info(macro.name) is not None:
            built_in = "a built-in layer" if macro.name in LAYERS else "a layer a plugin provides"
            self.sink.error(macro.pos, f"macro '{macro.name}' has the name of {built_in}")
        elif macro.name in self.macros:
            first = self.macros[macro.name].pos
            self.sink.error(macro.pos, f"macro '{macro.name}' is defined twice (first at line {first.line})")
        else:
            self.macros[macro.name] = macro
            check_definition(macro, self.sink)

    def check_all_macros(self) -> None:
        """Expand every macro once, so that unused ones are checked too (a macro with
        parameters when they all have defaults; otherwise where it is used)."""
        for name, macro in self.macros.items():
            self._macro_body(name)
            if macro.params and all(param.default is not None for param in macro.params):
                self._macro_use(LayerNode(name, macro.pos))

    def expand_network(self, nodes: list[LayerNode], name: str) -> list[LayerSpec]:
        """The layers of network ``name``: every layer its own object (macro bodies and
        repeats share theirs while expanding, and are copied once, here, within
        :data:`MAX_FILE_LAYERS` for the whole file)."""
        layers = self.expand(nodes, f"network '{name}'")
        self._file_layers += layer_count(layers)
        if self._file_layers > MAX_FILE_LAYERS:
            self.sink.error(nodes[0].pos, f"the networks of this file expand to more than "
                                          f"{MAX_FILE_LAYERS} layers in all ({self._file_layers} "
                                          f"up to network '{name}')")
            self.sink.raise_if_any()
        return [_fresh(layer) for layer in layers]

    def expand(self, nodes: list[LayerNode], owner: str, depth: int = 0) -> list[LayerSpec]:
        """The layers of ``nodes`` (the list of ``owner``, e.g. "macro 'M'"), nested
        ``depth`` blocks deep, with macros and repeats expanded. Repeated layers are the
        same objects (see :meth:`expand_network`)."""
        result: list[LayerSpec] = []
        size = 0
        for node in nodes:
            count, space, most = self._repeat_count(node)
            device = self._device(node)
            node = self._canonical(node)
            if node.name in self.macros:
                body = self._macro_use(node)
            else:
                body = self._layer_body(node, owner, depth)
            self._check_limits(node, owner, size + body.size * most, depth + body.depth)
            size += body.size * count
            placed = [_with_device(layer, device) for layer in body.layers] if device else body.layers
            if space is not None and placed:  # the space on the first layer of the first copy
                result.extend([placed[0].model_copy(update={"repeat": space}), *placed[1:]])
                count -= 1
            result.extend(placed * count)
        return result

    def _info(self, name: str) -> LayerInfo | None:
        """What the language knows of layer type ``name``: built in, or provided by a plugin."""
        info = LAYERS.get(name)
        if info is not None or not name[:1].isupper():
            return info
        if self._plugin_layers is None:
            self._plugin_layers = plugin_layer_infos(self._plugins)
        return self._plugin_layers.get(name)

    def _canonical(self, node: LayerNode) -> LayerNode:
        """``dense(64)``, ``CONV2D(...)``: a built-in layer in another letter case is read
        as the built-in one, with a warning giving its spelling."""
        if node.name in self.macros or self._info(node.name) is not None:
            return node
        canonical = canonical_layer_name(node.name)
        if canonical is None:
            return node
        self.sink.warn(node.pos, f"layer '{node.name}' is spelled '{canonical}'; read as {canonical}")
        return dataclasses.replace(node, name=canonical)

    def _check_limits(self, node: LayerNode, owner: str, size: int, depth: int) -> None:
        """Stop at the first expansion over a limit (the rest would only repeat it)."""
        if size > MAX_LAYERS:
            self.sink.error(node.pos, f"the layers of {owner} expand to more than {MAX_LAYERS} "
                                      f"layers ({size} up to here)")
        elif depth > MAX_DEPTH:
            self.sink.error(node.pos, f"the layers of {owner} are nested more than {MAX_DEPTH} "
                                      f"deep ({depth} levels here)")
        else:
            return
        self.sink.raise_if_any()

    # ------------------------------------------------------------ modifiers
    def _repeat_count(self, node: LayerNode) -> tuple[int, HPOValue | None, int]:
        """The count, the HPO space of ``* HPO(...)`` (None otherwise) and the largest
        count it allows (what the layer limits are checked with)."""
        if not node.repeats:
            return 1, None, 1
        for extra in node.repeats[1:]:
            self.sink.error(extra.pos, "a layer takes one '* N' repeat")
        value = node.repeats[0]
        if value.kind == "call" and value.data.name == "HPO":
            return self._hpo_repeat(value)
        computed = self.sections.values.number(value)
        if computed is None:
            return 1, None, 1
        count = integral(computed.data) if computed.kind == "number" else None
        if isinstance(count, int) and not isinstance(count, bool) and count >= 1:
            return count, None, count
        shown = computed.text if computed.kind != "number" else repr(computed.data)
        self.sink.error(value.pos, f"a repeat count must be a positive integer, got {shown}")
        return 1, None, 1

    def _hpo_repeat(self, value: Value) -> tuple[int, HPOValue | None, int]:
        """``* HPO(choice(6, 12))`` or ``* HPO(range(2, 8, step=2))``: expanded to the first
        choice (the range's start), the space kept on the first layer."""
        space = self.sections.values.hpo(value)
        if isinstance(space, ChoiceHPO):
            space = integral(space)
            counts = space.options
        elif isinstance(space, RangeHPO):
            counts = [integral(space.start), integral(space.stop)]
            space = RangeHPO(start=counts[0], stop=counts[1],
                             step=None if space.step is None else integral(space.step))
        elif space is not None:
            self.sink.error(value.pos, "a repeat count takes HPO(choice(...)) or HPO(range(...))")
            return 1, None, 1
        else:
            return 1, None, 1
        if check_param("positive_int", space) is not None:
            self.sink.error(value.pos, f"a repeat count must be a positive integer, got {dsl_repr(space)}")
            return 1, None, 1
        return counts[0], space, max(counts)

    def _device(self, node: LayerNode) -> str | None:
        for extra in node.devices[1:]:
            self.sink.error(extra.pos, "a layer takes one '@ \"device\"' placement")
        if not node.devices:
            return None
        value: Value = node.devices[0]
        return self.sections.device(value.data, value.pos)  # the grammar makes it a string

    # ------------------------------------------------------------ macros
    def _macro_use(self, node: LayerNode) -> _Body:
        macro = self.macros[node.name]
        if node.children is not None:
            self.sink.error(node.pos, f"macro '{node.name}' cannot take a nested block")
        if not macro.params:
            if node.arguments:
                self.sink.error(node.arguments[0].pos, f"macro '{node.name}' takes no arguments")
            return self._macro_body(node.name)
        if self._macro_body(node.name) is not _PARAMETRISED:
            return _EMPTY  # on a cycle, reported there
        bindings = bind_macro_arguments(macro, node, self.sink)
        if bindings is None:
            return _EMPTY
        key = (node.name, bindings_key(bindings))
        if key not in self._instances:
            self._instances[key] = self._instance(node, macro, bindings)
        return self._instances[key]

    def _instance(self, node: LayerNode, macro: MacroNode, bindings: Bindings) -> _Body:
        """The layers of ``macro`` with its parameters bound (expanded inside each other
        at most :data:`MAX_DEPTH` deep)."""
        if self._instance_depth >= MAX_DEPTH:
            self.sink.error(node.pos, f"macros with parameters use each other more than {MAX_DEPTH} "
                                      f"deep (at macro '{node.name}')")
            self.sink.raise_if_any()
        self._instance_depth += 1
        try:
            layers = self.expand(substitute(macro.layers, bindings), f"macro '{node.name}'")
        finally:
            self._instance_depth -= 1
        return _Body.of(layers)

    def _macro_body(self, name: str) -> _Body:
        """The expanded body of macro ``name``: the macros it uses are expanded first,
        depth first on an explicit stack; a cycle is reported once, at the use that
        closes it, and leaves the macros on it empty."""
        chain = [name]  # macros being expanded, each one using the next
        uses = [self._uses(name)]  # the uses not yet looked at, for each macro in chain
        on_chain = {name}
        while name not in self._bodies:
            use = next((u for u in uses[-1] if u.name not in self._bodies), None)
            if use is None:
                current = chain.pop()
                uses.pop()
                on_chain.discard(current)
                if self.macros[current].params:
                    self._bodies[current] = _PARAMETRISED  # expanded at each use, with its arguments
                    continue
                layers = self.expand(self.macros[current].layers, f"macro '{current}'")
                self._bodies[current] = _Body.of(layers)
            elif use.name in on_chain:
                cycle = chain[chain.index(use.name):]
                self.sink.error(use.pos, f"macro '{use.name}' uses itself: {_chain([*cycle, use.name])}")
                for member in cycle:
                    self._bodies[member] = _Body([], 0, 0)
                    on_chain.discard(member)
                del chain[-len(cycle):], uses[-len(cycle):]
            else:
                chain.append(use.name)
                uses.append(self._uses(use.name))
                on_chain.add(use.name)
        return self._bodies[name]

    def _uses(self, name: str) -> Iterator[LayerNode]:
        """Where macro ``name`` uses macros (itself too), nested blocks included."""
        pending = list(reversed(self.macros[name].layers))
        while pending:
            node = pending.pop()
            if node.name in self.macros:
                yield node
            pending.extend(reversed(node.children or []))

    # ------------------------------------------------------------ one layer
    def _layer_body(self, node: LayerNode, owner: str, depth: int) -> _Body:
        layer = self._layer(node, owner, depth)
        return _Body.of([] if layer is None else [layer])

    def _layer(self, node: LayerNode, owner: str, depth: int) -> LayerSpec | None:
        info = self._info(node.name)
        if info is None:
            if node.name[:1].isupper():
                return self._custom_layer(node, owner, depth)
            hint = did_you_mean(node.name, [*LAYERS, *self.macros])
            self.sink.error(node.pos, f"unknown layer '{node.name}'{hint}")
            return None
        bound = bind_arguments(
            node.arguments or [], info.positional, node.name, self.sink, known=info.known_params(),
            target=lambda slot, argument: positional_target(info, slot, _string(argument)),
        )
        params: dict[str, ParamValue] = {}
        written: dict[str, str] = {}  # canonical name -> the name it was given under
        children: list[LayerSpec] = []
        for name, argument in bound.items():
            canonical = info.canonical(name)
            if canonical in written:
                self.sink.error(argument.pos, f"{node.name}: '{written[canonical]}' and '{name}' are "
                                              f"the same parameter ('{canonical}'); give it once")
                continue
            written[canonical] = name
            if info.wraps and canonical == "layer":
                children = self._wrapped(node.name, info, argument, owner, depth)
            elif argument.name is None and (problem := misplaced(info, node.name, name, _string(argument))):
                self.sink.error(argument.value.pos, problem)
            else:
                kind = info.kind_of(canonical)
                value = self.sections.checked_value(argument.value, kind, f"{node.name}: '{name}'")
                params[canonical] = typed(kind, value)
        given = {info.canonical(name) for name in bound}
        missing = [name for name in info.required if name not in given]
        if missing:
            needs = " and ".join(f"'{m}'" for m in missing)
            self.sink.error(node.pos, f"{node.name} needs {needs}")
        if node.children is not None:
            if info.container:
                children = self.expand(node.children, owner, depth + 1)
            else:
                self.sink.error(node.pos, f"{node.name} does not take a nested {{ }} block")
        return LayerSpec(type=node.name, params=params, children=children, pos=source_pos(node.pos))

    def _wrapped(self, wrapper: str, info: LayerInfo, argument: Argument, owner: str,
                 depth: int) -> list[LayerSpec]:
        """``Bidirectional(LSTM(64))``: the inner layer, read like any layer."""
        value = argument.value
        if value.kind != "call" or value.data.name == "HPO":
            self.sink.error(value.pos, f"{wrapper}: 'layer' must be a layer, e.g. {wrapper}(LSTM(64))")
            return []
        inner = LayerNode(name=value.data.name, pos=value.pos, arguments=value.data.arguments)
        layer = self._layer(inner, owner, depth + 1)
        if layer is not None and info.wrappable and layer.type not in info.wrappable:
            self.sink.error(value.pos, f"{wrapper} wraps a recurrent layer ({', '.join(info.wrappable)}), "
                                       f"not {layer.type}")
            return []
        return [] if layer is None else [layer]

    def _custom_layer(self, node: LayerNode, owner: str, depth: int) -> LayerSpec:
        """An unknown capitalised name: a custom layer, kept as written (positional
        arguments under ``args``); ``neural check`` notes it, compiling it is an error."""
        written = self.sections.values.call(Call(node.name, node.arguments or []))
        params: dict[str, ParamValue] = {"args": written.args} if written.args else {}
        params.update(written.kwargs)
        children = self.expand(node.children, owner, depth + 1) if node.children else []
        return LayerSpec(type=node.name, params=params, children=children, pos=source_pos(node.pos))


def _string(argument: Argument) -> str | None:
    """The text of a quoted-string argument, None for any other value."""
    return argument.value.data if argument.value.kind == "string" else None


_PARAMETRISED = _Body([], 0, 0)
"""The body of a macro with parameters: its uses expand it (identity marks it)."""
_EMPTY = _Body([], 0, 0)


def _chain(names: list[str], shown: int = 8) -> str:
    """``A -> B -> A``; a long chain by its ends: ``M1 -> M2 -> M3 -> ... (4994 more) -> M1``."""
    if len(names) > shown:
        half = shown // 2
        names = [*names[:half], f"... ({len(names) - shown} more)", *names[-half:]]
    return " -> ".join(names)


def _fresh(layer: LayerSpec) -> LayerSpec:
    """A copy of ``layer`` that shares nothing mutable, even where the original shares
    objects with itself (``copy.deepcopy`` would keep such sharing)."""
    return layer.model_copy(update={
        "params": copy.deepcopy(layer.params),
        "children": [_fresh(child) for child in layer.children],
        "pos": layer.pos and layer.pos.model_copy(),
    })


def _with_device(layer: LayerSpec, device: str) -> LayerSpec:
    if layer.device is not None:
        return layer
    return layer.model_copy(update={"device": device})
