"""Macros with parameters: ``define Block(filters, rate=0.2) { ... }`` used as
``Block(64)``, ``Block(64, 0.3)`` or ``Block(filters=64)``.

A use binds its arguments to the parameters (unknown and missing ones are located
errors), then the macro's layers are copied with every parameter name that stands as a
value replaced by the argument: in layer arguments, inside tuples, lists, calls, HPO
expressions and arithmetic, and in ``* n`` repeat counts. The copy is then read like
any other layers, so its values are checked (and its arithmetic done) as usual.
"""

from __future__ import annotations

import dataclasses

from neural_dsl_tracking.language.diagnostics import DiagnosticSink
from neural_dsl_tracking.language.syntax import Argument, Call, Expr, LayerNode, MacroNode, Value
from neural_dsl_tracking.language.values import bind_arguments

Bindings = dict[str, Value]
MAX_VALUE_DEPTH = 256
MAX_VALUE_PARTS = 10_000
"""An argument passed down through macros (``P(u) { Q((u, u)) }`` doubles it at each
level) may not nest deeper or hold more parts than this; values are read recursively, and
the text alone nests at most 64 brackets and 64 operators deep."""


def bind_macro_arguments(macro: MacroNode, use: LayerNode, sink: DiagnosticSink) -> Bindings | None:
    """The value of each parameter of ``macro`` at ``use`` (defaults filled), or None
    after reporting an unknown, repeated or missing argument."""
    params = macro.params or []
    names = [param.name for param in params]
    before = sink.count
    bound = bind_arguments(use.arguments or [], names, f"macro '{macro.name}'", sink, known=names)
    if sink.count > before:
        return None  # an unknown or repeated argument: what is missing would only follow from it
    bindings: Bindings = {name: argument.value for name, argument in bound.items()}
    for name, value in bindings.items():
        if _too_large(value):
            sink.error(value.pos, f"macro '{macro.name}': the value of '{name}' grows beyond "
                                  f"{MAX_VALUE_PARTS} parts or {MAX_VALUE_DEPTH} levels of nesting "
                                  f"(passed down through the arguments of macros)")
            return None
    for param in params:
        if param.name in bindings:
            continue
        if param.default is None:
            sink.error(use.pos, f"macro '{macro.name}' needs '{param.name}' "
                                f"(it takes {', '.join(names)})")
        else:
            bindings[param.name] = param.default
    return bindings if sink.count == before else None


def check_definition(macro: MacroNode, sink: DiagnosticSink) -> None:
    """A macro without layers (``define X { }``) and a parameter named twice are errors."""
    if not macro.layers:
        sink.error(macro.pos, f"macro '{macro.name}' has no layers; a macro stands for the layers "
                              f"it holds, e.g. define {macro.name} {{ Dense(64) }}")
    seen: set[str] = set()
    for param in macro.params or []:
        if param.name in seen:
            sink.error(param.pos, f"macro '{macro.name}': parameter '{param.name}' is named twice")
        seen.add(param.name)


def substitute(nodes: list[LayerNode], bindings: Bindings) -> list[LayerNode]:
    """Copies of ``nodes`` with the parameters replaced by their values."""
    return [_layer(node, bindings) for node in nodes]


def bindings_key(bindings: Bindings) -> str:
    """The same text for the same argument values, wherever they are written."""
    return repr(sorted((name, _shape(value)) for name, value in bindings.items()))


def _layer(node: LayerNode, bindings: Bindings) -> LayerNode:
    return dataclasses.replace(
        node,
        arguments=None if node.arguments is None else [_argument(a, bindings) for a in node.arguments],
        children=None if node.children is None else substitute(node.children, bindings),
        repeats=[_value(value, bindings) for value in node.repeats],
    )


def _argument(argument: Argument, bindings: Bindings) -> Argument:
    return dataclasses.replace(argument, value=_value(argument.value, bindings))


def _value(value: Value, bindings: Bindings) -> Value:
    if value.kind == "name":
        return bindings.get(value.data, value)
    if value.kind in ("tuple", "list"):
        return dataclasses.replace(value, data=[_value(item, bindings) for item in value.data])
    if value.kind == "call":
        call: Call = value.data
        arguments = [_argument(a, bindings) for a in call.arguments]
        return dataclasses.replace(value, data=Call(call.name, arguments))
    if value.kind == "expr":
        expr: Expr = value.data
        return dataclasses.replace(value, data=Expr(expr.op, [_value(v, bindings) for v in expr.operands]))
    return value


def _shape(value: Value) -> object:
    """``value`` without its source positions."""
    if value.kind in ("tuple", "list"):
        return (value.kind, [_shape(item) for item in value.data])
    if value.kind == "call":
        call: Call = value.data
        return ("call", call.name, [(a.name, _shape(a.value)) for a in call.arguments])
    if value.kind == "expr":
        expr: Expr = value.data
        return ("expr", expr.op, [_shape(item) for item in expr.operands])
    return (value.kind, value.data)


def _too_large(value: Value) -> bool:
    """Whether ``value`` nests deeper than :data:`MAX_VALUE_DEPTH` or holds more than
    :data:`MAX_VALUE_PARTS` parts; walked without recursion, stopping at the limit."""
    pending = [(value, 1)]
    parts = 0
    while pending:
        item, depth = pending.pop()
        parts += 1
        if depth > MAX_VALUE_DEPTH or parts > MAX_VALUE_PARTS:
            return True
        pending.extend((child, depth + 1) for child in _children(item))
    return False


def _children(value: Value) -> list[Value]:
    if value.kind in ("tuple", "list"):
        return list(value.data)
    if value.kind == "call":
        return [argument.value for argument in value.data.arguments]
    if value.kind == "expr":
        return list(value.data.operands)
    return []
