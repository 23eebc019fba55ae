"""The parse tree turned into small syntax nodes that keep every source position.

Nothing is validated here: the nodes say what was written and where, so that later
passes (values, layers, networks, plugin blocks) can report problems at the exact
spot. This module never raises for user input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lark import Token, Transformer, Tree, v_args

from neural_dsl_tracking.language.diagnostics import Pos
from neural_dsl_tracking.limits import MAX_INT64


@dataclass
class Value:
    """A value as written. ``kind`` is one of number, string, bool, null, name, tuple,
    list, call, expr; ``data`` is the Python scalar, a list of Values, a :class:`Call`
    or an :class:`Expr` (arithmetic, evaluated when the value is read)."""

    kind: str
    data: Any
    pos: Pos
    text: str = ""


@dataclass
class Argument:
    """One argument of a call or layer; ``name`` is None for a positional one."""

    name: str | None
    pos: Pos
    value: Value


@dataclass
class Call:
    name: str
    arguments: list[Argument]


GROUP = "(...)"
"""The ``text`` of a tuple written ``(x)``: parentheses around one value, which
arithmetic reads as the value itself."""


@dataclass
class Expr:
    """``a op b`` (or ``op a`` for unary ``-``/``+``): ``op`` is one of
    ``+ - * / // % **``, ``neg``, ``pos``."""

    op: str
    operands: list[Value]


@dataclass
class LayerNode:
    """``Name(args) { children } * N @ "device"``; None means the part was not written."""

    name: str
    pos: Pos
    arguments: list[Argument] | None = None
    children: list["LayerNode"] | None = None
    repeats: list[Value] = field(default_factory=list)
    devices: list[Value] = field(default_factory=list)


@dataclass
class Entry:
    """``key.path: value`` inside a key/value block."""

    key: tuple[str, ...]
    key_pos: Pos
    value: Value


@dataclass
class Block:
    """A key/value block: ``train { }``, ``execution { }`` or a plugin's ``kw < >``."""

    keyword: str
    pos: Pos
    entries: list[Entry]


@dataclass
class Section:
    """A network section; ``payload`` depends on ``name`` (see :class:`ToSyntax`)."""

    name: str
    pos: Pos
    payload: Any


@dataclass
class NetworkNode:
    name: str
    pos: Pos
    sections: list[Section]


@dataclass
class MacroParam:
    """``name`` or ``name=default`` in ``define Block(name, ...)``."""

    name: str
    pos: Pos
    default: Value | None = None


@dataclass
class MacroNode:
    """``define Name { }``; ``params`` is None without parentheses."""

    name: str
    pos: Pos
    layers: list[LayerNode]
    params: list[MacroParam] | None = None


@dataclass
class FileNode:
    networks: list[NetworkNode] = field(default_factory=list)
    macros: list[MacroNode] = field(default_factory=list)
    plugin_blocks: list[Block] = field(default_factory=list)


@dataclass
class NamedShape:
    """``image: (64, 64, 3)`` inside ``input: { ... }``."""

    name: str
    pos: Pos
    dims: list[Value]


@dataclass
class _Marker:
    """Wraps an optional part of a rule so the parent can tell the parts apart."""

    part: str
    content: Any


def token_pos(token: Token) -> Pos:
    return Pos(token.line, token.column, token.end_line, token.end_column)


def _meta_pos(meta: Any) -> Pos:
    return Pos(meta.line, meta.column, meta.end_line, meta.end_column)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def unquote(text: str) -> str:
    """The content of a quoted string token; ``\\x`` keeps ``x`` except n, t, r, 0."""
    body = text[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    chars = iter(body)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_ESCAPES.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


MAX_INT = MAX_INT64
"""Integers are 64-bit (as the generated program's settings); a larger literal is refused where it is written."""
_MAX_INT_DIGITS = len(str(MAX_INT))


def number_value(text: str) -> int | float | None:
    """The number a NUMBER token spells, or None when it is out of range (an integer
    beyond 64 bits, a float beyond a double). A huge integer is refused by its length,
    never converted whole (Python refuses ``int()`` of more than 4,300 digits)."""
    digits = text.lstrip("+-")
    if digits.isdigit():
        if len(digits.lstrip("0")) > _MAX_INT_DIGITS:
            return None
        number = int(text)
        return number if abs(number) <= MAX_INT else None
    real = float(text)
    return real if math.isfinite(real) else None


def out_of_range_numbers(tree: Tree) -> list[Token]:
    """The NUMBER tokens of a parse tree that :func:`number_value` refuses."""
    return [child for subtree in tree.iter_subtrees() for child in subtree.children
            if isinstance(child, Token) and child.type == "NUMBER" and number_value(child.value) is None]


def token_value(token: Token) -> Value:
    """A Value for a bare token in value position (NUMBER, STRING, NAME)."""
    pos = token_pos(token)
    if token.type == "NUMBER":
        return Value("number", number_value(token.value), pos, token.value)
    if token.type == "STRING":
        return Value("string", unquote(token.value), pos, token.value)
    return Value("name", token.value, pos, token.value)


def as_value(item: Any) -> Value:
    return item if isinstance(item, Value) else token_value(item)


def _operator(op: str) -> Any:
    """The transformer method of one arithmetic rule: an ``expr`` value of ``op``."""

    def method(self: "ToSyntax", meta: Any, children: list[Any]) -> Value:
        return self._expr(op, meta, children)

    method.__name__ = f"operator {op}"
    return method


@v_args(meta=True)
class ToSyntax(Transformer):
    """Parse tree -> syntax nodes. ``plugin_rules`` maps ``<keyword>_block`` to keyword."""

    def __init__(self, plugin_rules: dict[str, str]):
        super().__init__(visit_tokens=False)
        self._plugin_rules = plugin_rules

    # ------------------------------------------------------------ file level
    def start(self, meta: Any, items: list[Any]) -> FileNode:
        node = FileNode()
        for item in items:
            if isinstance(item, NetworkNode):
                node.networks.append(item)
            elif isinstance(item, MacroNode):
                node.macros.append(item)
            else:
                node.plugin_blocks.append(item)
        return node

    def network(self, meta: Any, children: list[Any]) -> NetworkNode:
        name, *items = children
        sections = [s for item in items for s in (item if isinstance(item, list) else [item])]
        return NetworkNode(name.value, _meta_pos(meta), sections)

    def macro(self, meta: Any, children: list[Any]) -> MacroNode:
        name, *rest = children
        params = rest.pop(0).content if rest and isinstance(rest[0], _Marker) else None
        return MacroNode(name.value, token_pos(name), rest, params)

    def macro_params(self, meta: Any, params: list[MacroParam]) -> _Marker:
        return _Marker("params", params)

    def macro_param(self, meta: Any, children: list[Any]) -> MacroParam:
        name = children[0]
        default = as_value(children[1]) if len(children) > 1 else None
        return MacroParam(name.value, token_pos(name), default)

    def plugin_block(self, meta: Any, children: list[Any]) -> Block:
        return children[0]

    def __default__(self, data: Any, children: list[Any], meta: Any) -> Any:
        keyword = self._plugin_rules.get(str(data))
        if keyword is not None:
            entries = next((c for c in children if isinstance(c, list)), [])
            return Block(keyword, _meta_pos(meta), entries)
        return Tree(data, children, meta)

    # ------------------------------------------------------------ sections
    def input_section(self, meta: Any, children: list[Any]) -> Section:
        """The payload: a list of dims, or a dict of named inputs (name -> (pos, dims))."""
        return Section("input", _meta_pos(meta), children[0])

    def shape(self, meta: Any, dims: list[Any]) -> list[Value]:
        return [as_value(d) for d in dims]

    def named_shapes(self, meta: Any, shapes: list[tuple[Token, list[Value]]]) -> list[NamedShape]:
        return [NamedShape(name.value, token_pos(name), dims) for name, dims in shapes]

    def named_shape(self, meta: Any, children: list[Any]) -> tuple[Token, list[Value]]:
        return children[0], children[1]

    def layers_section(self, meta: Any, items: list[Any]) -> list[Section]:
        """The layers, then the ``epochs: N`` settings written right after them."""
        layers = [item for item in items if isinstance(item, LayerNode)]
        settings = [item for item in items if isinstance(item, Section)]
        return [Section("layers", _meta_pos(meta), layers), *settings]

    def loss_section(self, meta: Any, children: list[Any]) -> Section:
        return Section("loss", _meta_pos(meta), as_value(children[0]))

    def optimizer_section(self, meta: Any, children: list[Any]) -> Section:
        return Section("optimizer", _meta_pos(meta), as_value(children[0]))

    def optimizer(self, meta: Any, children: list[Any]) -> Value:
        return as_value(children[0])

    def metrics_section(self, meta: Any, children: list[Any]) -> Section:
        payload = children[0]
        metrics = payload if isinstance(payload, list) else [as_value(payload)]
        return Section("metrics", _meta_pos(meta), metrics)

    def metric_list(self, meta: Any, children: list[Any]) -> list[Value]:
        return [as_value(c) for c in children]

    def train_section(self, meta: Any, children: list[Any]) -> Section:
        return Section("train", _meta_pos(meta), Block("train", _meta_pos(meta), children[0]))

    def execution_section(self, meta: Any, children: list[Any]) -> Section:
        keyword, entries = children
        return Section("execution", _meta_pos(meta), Block(keyword, _meta_pos(meta), entries))

    def execution_keyword(self, meta: Any, children: list[Token]) -> str:
        return children[0].value

    def train_setting(self, meta: Any, children: list[Any]) -> Section:
        """``epochs: 10`` beside the sections: one entry of the network's training settings."""
        key, value = children
        entry = Entry((key.value,), token_pos(key), as_value(value))
        return Section("train_setting", _meta_pos(meta), entry)

    # ------------------------------------------------------------ layers
    def layer(self, meta: Any, children: list[Any]) -> LayerNode:
        name = children[0]
        node = LayerNode(name.value, token_pos(name))
        for child in children[1:]:
            if not isinstance(child, _Marker):
                continue  # the optional trailing ';'
            if child.part == "arguments":
                node.arguments = child.content
            elif child.part == "nested":
                node.children = child.content
            elif child.part == "repeat":
                node.repeats.append(child.content)
            else:
                node.devices.append(child.content)
        return node

    def arguments(self, meta: Any, children: list[Any]) -> _Marker:
        args = [c if isinstance(c, Argument) else _positional(as_value(c)) for c in children]
        return _Marker("arguments", args)

    def named_arg(self, meta: Any, children: list[Any]) -> Argument:
        name, value = children
        return Argument(name.value, token_pos(name), as_value(value))

    def nested(self, meta: Any, layers: list[LayerNode]) -> _Marker:
        return _Marker("nested", layers)

    def repeat(self, meta: Any, children: list[Any]) -> _Marker:
        """``* 3``, ``* HPO(choice(6, 12))`` or ``* n`` (a macro parameter)."""
        return _Marker("repeat", as_value(children[0]))

    def device(self, meta: Any, children: list[Any]) -> _Marker:
        return _Marker("device", as_value(children[0]))

    # ------------------------------------------------------------ values
    def identifier(self, meta: Any, children: list[Any]) -> Value:
        return token_value(children[0])

    def true(self, meta: Any, children: list[Any]) -> Value:
        return Value("bool", True, _meta_pos(meta), children[0].value)

    def false(self, meta: Any, children: list[Any]) -> Value:
        return Value("bool", False, _meta_pos(meta), children[0].value)

    def null(self, meta: Any, children: list[Any]) -> Value:
        return Value("null", None, _meta_pos(meta), children[0].value)

    def tuple(self, meta: Any, children: list[Any]) -> Value:
        return Value("tuple", [as_value(c) for c in children], _meta_pos(meta))

    def list(self, meta: Any, children: list[Any]) -> Value:
        return Value("list", [as_value(c) for c in children], _meta_pos(meta))

    def group(self, meta: Any, children: list[Any]) -> Value:
        """``(7 * 7)`` is the arithmetic inside; ``(3)`` stays a tuple of one."""
        inner = as_value(children[0])
        if inner.kind == "expr":
            return Value("expr", inner.data, _meta_pos(meta), inner.text)
        return Value("tuple", [inner], _meta_pos(meta), GROUP)

    # ------------------------------------------------------------ arithmetic
    def _expr(self, op: str, meta: Any, operands: list[Any]) -> Value:
        values = [as_value(o) for o in operands]
        return Value("expr", Expr(op, values), _meta_pos(meta), op)

    add, sub, mul, div = (_operator(op) for op in ("+", "-", "*", "/"))
    floordiv, mod, pow, neg, pos = (_operator(op) for op in ("//", "%", "**", "neg", "pos"))

    def call(self, meta: Any, children: list[Any]) -> Value:
        name, arguments = children
        return Value("call", Call(name.value, arguments.content), _meta_pos(meta), name.value)

    # ------------------------------------------------------------ key/value blocks
    def entries(self, meta: Any, children: list[Any]) -> list[Entry]:
        return [c for c in children if isinstance(c, Entry)]

    def entry(self, meta: Any, children: list[Any]) -> Entry:
        (key, key_pos), value = children
        return Entry(key, key_pos, as_value(value))

    def key(self, meta: Any, names: list[Token]) -> tuple[tuple[str, ...], Pos]:
        return tuple(n.value for n in names), _meta_pos(meta)


def _positional(value: Value) -> Argument:
    return Argument(None, value.pos, value)
