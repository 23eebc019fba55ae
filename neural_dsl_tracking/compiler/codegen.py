"""Safe builders for generated Python code.

Everything that reaches a generated program from a `.neural` file goes through here:
values become literals via ``repr`` (and are checked to read back as the same value),
names are checked against a strict identifier pattern, and statements are assembled
from :class:`Expr` fragments that only these builders create. DSL text is never pasted
into code.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from contextlib import contextmanager
from typing import Iterator, Union

from neural_dsl_tracking.errors import CompileError

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63})*\Z")

LiteralValue = Union[None, bool, int, float, str, list, tuple, dict]


class Expr:
    """A fragment of Python code produced by a builder (never by raw DSL text)."""

    __slots__ = ("code",)

    def __init__(self, code: str) -> None:
        self.code = code

    def __str__(self) -> str:
        return self.code

    def __repr__(self) -> str:
        return f"Expr({self.code!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other.code == self.code

    def __hash__(self) -> int:
        return hash(self.code)


def is_identifier(name: object) -> bool:
    """True when ``name`` is a plain, non-keyword Python identifier of at most 64 chars."""
    return (
        isinstance(name, str)
        and IDENTIFIER.match(name) is not None
        and not keyword.iskeyword(name)
        and not name.startswith("__")
    )


def ident(name: str) -> Expr:
    """``name`` as an identifier expression; CompileError unless it is a safe identifier."""
    if not is_identifier(name):
        raise CompileError(f"{name!r} cannot be used as a Python name in generated code")
    return Expr(name)


def dotted(path: str) -> Expr:
    """A dotted name such as ``torch.nn.Linear`` (each part a safe identifier)."""
    if not isinstance(path, str) or not DOTTED.match(path):
        raise CompileError(f"{path!r} is not a dotted Python name")
    for part in path.split("."):
        ident(part)
    return Expr(path)


def lit(value: LiteralValue) -> Expr:
    """A Python literal for plain data (None, bool, int, float, str, lists, tuples, dicts)."""
    code = _literal_code(value)
    if ast.literal_eval(code) != value and not _has_nan(value):
        raise CompileError(f"value {value!r} does not survive a round trip as a literal")
    return Expr(code)


def _has_nan(value: object) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (list, tuple)):
        return any(_has_nan(item) for item in value)
    if isinstance(value, dict):
        return any(_has_nan(item) for item in value.values())
    return False


def _literal_code(value: object) -> str:
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        raise CompileError(f"non-finite number {value!r} cannot be used in generated code")
    if isinstance(value, list):
        return "[" + ", ".join(_literal_code(item) for item in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_literal_code(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise CompileError(f"dictionary key {key!r} cannot be used in generated code")
            items.append(f"{_literal_code(key)}: {_literal_code(item)}")
        return "{" + ", ".join(items) + "}"
    raise CompileError(f"a {type(value).__name__} value cannot be written into generated code")


Arg = Union[Expr, LiteralValue]


def arg(value: Arg) -> Expr:
    """An argument: an :class:`Expr` as is, a dict holding expressions as a dict display,
    anything else as a literal."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, dict) and any(isinstance(item, Expr) for item in value.values()):
        return mapping(value)
    return lit(value)


def mapping(items: dict[str, Arg]) -> Expr:
    """``{"key": value, ...}`` with literal string keys and builder-made values."""
    parts = []
    for key, value in items.items():
        if not isinstance(key, str):
            raise CompileError(f"dictionary key {key!r} must be a string")
        parts.append(f"{lit(key).code}: {arg(value).code}")
    return Expr("{" + ", ".join(parts) + "}")


def call(func: str | Expr, *args: Arg, **kwargs: Arg) -> Expr:
    """``func(arg, ..., name=value, ...)``; keyword names are checked identifiers."""
    target = func if isinstance(func, Expr) else dotted(func)
    parts = [arg(value).code for value in args]
    parts += [f"{ident(name).code}={arg(value).code}" for name, value in kwargs.items()]
    return Expr(f"{target.code}({', '.join(parts)})")


def attr(obj: str | Expr, *names: str) -> Expr:
    """``obj.name1.name2``."""
    base = obj if isinstance(obj, Expr) else dotted(obj)
    return Expr(".".join([base.code, *(ident(name).code for name in names)]))


def product(factors: list[Arg]) -> Expr:
    """The product of literal ints and expressions, constants folded: ``hp.x * 36``."""
    constant = 1
    symbols: list[str] = []
    for factor in factors:
        if isinstance(factor, Expr):
            symbols.append(factor.code)
        else:
            constant *= int(factor)
    if not symbols:
        return lit(constant)
    if constant != 1:
        symbols.append(repr(constant))
    return Expr(" * ".join(symbols))


class CodeWriter:
    """Accumulates indented lines of generated code."""

    def __init__(self, indent: int = 0) -> None:
        self._lines: list[str] = []
        self._indent = indent

    def line(self, code: str | Expr = "") -> None:
        """Add one statement (a builder-made fragment or trusted template text); a call that
        would make the line longer than :data:`MAX_LINE` gets one argument per line."""
        text = str(code)
        prefix = "    " * self._indent
        if not text:
            self._lines.append("")
            return
        for part in (_wrapped(text, MAX_LINE - len(prefix)) or text).split("\n"):
            self._lines.append(prefix + part)

    def comment(self, text: str) -> None:
        """A ``#`` comment; only single-line text without DSL-controlled content."""
        if "\n" in text or "\r" in text:
            raise CompileError("comments in generated code must be one line")
        self.line(f"# {text}")

    def assign(self, target: str | Expr, value: Arg) -> None:
        """``target = value``; a string target must be a dotted name."""
        name = target if isinstance(target, Expr) else dotted(target)
        self.line(f"{name.code} = {arg(value).code}")

    def extend(self, lines: list[str]) -> None:
        """Add lines already built by another writer, at the current indentation."""
        for text in lines:
            self.line(text)

    @contextmanager
    def block(self, header: str | Expr) -> Iterator[None]:
        """``header:`` followed by an indented block."""
        self.line(f"{header}:")
        self._indent += 1
        try:
            yield
        finally:
            self._indent -= 1

    @property
    def lines(self) -> list[str]:
        return list(self._lines)

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


MAX_LINE = 110


def _wrapped(text: str, width: int) -> str | None:
    """``target = f(a, b=c)`` as one argument per line when too long; None to keep it."""
    if len(text) <= width or "\n" in text or "#" in text:
        return None
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    if len(tree.body) != 1:
        return None
    statement = tree.body[0]
    value = statement.value if isinstance(statement, (ast.Assign, ast.Expr)) else None
    if not isinstance(value, ast.Call) or not (value.args or value.keywords):
        return None
    head = text[: value.func.end_col_offset] + "("  # type: ignore[union-attr]
    parts = [ast.get_source_segment(text, node) for node in value.args]
    parts += [ast.get_source_segment(text, node) for node in value.keywords]
    if any(part is None for part in parts) or text[value.end_col_offset:].strip():  # type: ignore[union-attr]
        return None
    return "\n".join([head, *(f"    {part}," for part in parts), ")"])


def check_module(source: str, filename: str = "<generated>") -> ast.Module:
    """Parse generated source; a SyntaxError here is a compiler bug, reported as such."""
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as error:  # pragma: no cover - would be a bug in the builders
        raise CompileError(f"internal error: generated code does not parse: {error}") from error
