"""``parse_text`` / ``parse_file``: `.neural` text -> validated ``NeuralFile``.

Every problem with the input raises ``NeuralSyntaxError`` or ``NeuralValidationError``
(or ``NeuralError`` for an unreadable file) with ``file:line:col``, the source line and a
caret; nothing else escapes for bad input.
"""

from __future__ import annotations

import os
from pathlib import Path

from typing import Any

from lark import Token, Tree
from lark.exceptions import UnexpectedInput

from neural_dsl_tracking.errors import NeuralError, NeuralSyntaxError, NeuralValidationError
from neural_dsl_tracking.humanize import abridged
from neural_dsl_tracking.language.diagnostics import (
    Diagnostic,
    DiagnosticSink,
    Pos,
    Source,
    raise_diagnostics,
    syntax_error,
)
from neural_dsl_tracking.language.grammar import NeuralParser, get_parser
from neural_dsl_tracking.language.network import FileBuilder
from neural_dsl_tracking.language.sections import SectionReader
from neural_dsl_tracking.language.spec import NeuralFile
from neural_dsl_tracking.language.syntax import (
    MAX_INT,
    ToSyntax,
    Value,
    out_of_range_numbers,
    token_pos,
)
from neural_dsl_tracking.language.syntax_errors import raise_syntax_error

MAX_NESTING = 64
"""Deeper bracket nesting than this is refused before parsing."""


def parse_text(text: str, filename: str = "<string>") -> NeuralFile:
    """Parse and validate the text of a `.neural` file."""
    return parse_with(get_parser(), text, filename)


def parse_with(parser: NeuralParser, text: str, filename: str = "<string>") -> NeuralFile:
    """``parse_text`` with a given parser (another set of plugins)."""
    source = Source(unix_newlines(text), filename)
    syntax = _parse(parser, source, source.text, "start")
    sink = DiagnosticSink(source)
    sections = SectionReader(sink, lambda value: _parse_quoted_optimizer(parser, source, value))
    return FileBuilder(sink, parser.plugins, sections).build(syntax)


def parse_file(path: str | os.PathLike[str]) -> NeuralFile:
    """Read and parse a `.neural` file; unreadable files raise ``NeuralError``."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise NeuralError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise NeuralError(f"{path}: is a directory, not a .neural file") from None
    except PermissionError:
        raise NeuralError(f"{path}: permission denied") from None
    except OSError as exc:
        raise NeuralError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = unix_newlines(data[: exc.start].decode("utf-8", "replace")).count("\n") + 1
        raise NeuralSyntaxError(
            f"{path}:{line}: the file is not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None
    return parse_text(text, str(path))


def unix_newlines(text: str) -> str:
    """``\\r\\n`` (Windows) and a lone ``\\r`` (old Mac OS) line endings as ``\\n``, so that
    comments end and line numbers count the same whatever the file's line endings."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _parse_quoted_optimizer(parser: NeuralParser, source: Source, value: Value) -> Value:
    """Parse the content of ``"Adam(learning_rate=1e-4)"`` as if written unquoted.

    The content is padded with the lines and columns before it, so positions (and
    error carets) are the file's own."""
    content = value.text[1:-1]
    padded = "\n" * (value.pos.line - 1) + " " * value.pos.column + content
    return _parse(parser, source, padded, "optimizer")


def _parse(parser: NeuralParser, source: Source, text: str, start: str) -> Any:
    """``text`` (the file, or a padded part of it) parsed from rule ``start`` into syntax
    nodes; a syntax error, absurd nesting or an out-of-range number is raised, located
    in ``source``."""
    _check_nesting(source, text)
    try:
        tree = parser.lark.parse(text, start=start)
    except UnexpectedInput as error:
        raise_syntax_error(parser.lark, source, error, parsed_text=None if text is source.text else text,
                           plugin_keywords=parser.plugins.keys())
    _refuse_out_of_range(source, out_of_range_numbers(tree))
    _check_arithmetic_depth(source, tree)
    return ToSyntax(parser.plugin_rules).transform(tree)


_ARITHMETIC = frozenset({"add", "sub", "mul", "div", "floordiv", "mod", "pow", "neg", "pos"})


def _check_arithmetic_depth(source: Source, tree: Tree) -> None:
    """Refuse arithmetic nested more than :data:`MAX_NESTING` operators deep
    (``1+1+...+1``, ``- - - 1``): brackets are bounded before parsing, operator chains only
    here, before reading them would exhaust the recursion limit."""
    pending = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if node.data in _ARITHMETIC:
            depth += 1
            if depth > MAX_NESTING:
                syntax_error(source, Pos(node.meta.line, node.meta.column),
                             f"arithmetic nested more than {MAX_NESTING} operators deep")
        pending.extend((child, depth) for child in node.children if isinstance(child, Tree))


def _refuse_out_of_range(source: Source, tokens: list[Token]) -> None:
    problems = [Diagnostic(token_pos(token), _out_of_range(token.value)) for token in tokens]
    if problems:
        raise_diagnostics(source, problems, NeuralValidationError)


def _out_of_range(number: str) -> str:
    """The message for a literal :func:`number_value` refuses; a huge one is abridged
    (``12345678901234567890... (5000 characters)``)."""
    shown = abridged(number)
    if number.lstrip("+-").isdigit():
        return f"integer {shown} is out of range: integers are up to 64 bits (at most {MAX_INT})"
    return f"number {shown} is out of range: numbers are up to about 1.8e308"


_OPENERS = "([{"
_CLOSERS = ")]}"


def _check_nesting(source: Source, text: str) -> None:
    """Refuse absurd bracket nesting in ``text`` (the file, or a padded part of it) up
    front: it would exhaust the recursion limit."""
    depth = 0
    line, column = 1, 0
    quote = ""
    comment = escaped = False
    for char in text:
        column += 1
        if char == "\n":
            line, column, quote, comment = line + 1, 0, "", False
        elif comment:
            continue
        elif quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            comment = True
        elif char in _OPENERS:
            depth += 1
            if depth > MAX_NESTING:
                syntax_error(
                    source, Pos(line, column), f"brackets nested more than {MAX_NESTING} deep"
                )
        elif char in _CLOSERS:
            depth = max(0, depth - 1)
