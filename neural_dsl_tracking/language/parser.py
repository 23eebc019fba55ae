"""``parse_text`` / ``parse_file``: `.neural` text -> validated ``NeuralFile``.

Every problem with the input raises ``NeuralSyntaxError`` or ``NeuralValidationError``
(or ``NeuralError`` for an unreadable file) with ``file:line:col``, the source line and a
caret; nothing else escapes for bad input.
"""

from __future__ import annotations

import os
from pathlib import Path

from lark.exceptions import UnexpectedInput

from neural_dsl_tracking.errors import NeuralError, NeuralSyntaxError
from neural_dsl_tracking.language.diagnostics import DiagnosticSink, Pos, Source, syntax_error
from neural_dsl_tracking.language.grammar import NeuralParser, get_parser
from neural_dsl_tracking.language.network import FileBuilder
from neural_dsl_tracking.language.sections import SectionReader
from neural_dsl_tracking.language.spec import NeuralFile
from neural_dsl_tracking.language.syntax import ToSyntax, Value
from neural_dsl_tracking.language.syntax_errors import raise_syntax_error

MAX_NESTING = 64
"""Deeper bracket nesting than this is refused before parsing."""


def parse_text(text: str, filename: str = "<string>") -> NeuralFile:
    """Parse and validate the text of a `.neural` file."""
    return parse_with(get_parser(), text, filename)


def parse_with(parser: NeuralParser, text: str, filename: str = "<string>") -> NeuralFile:
    """``parse_text`` with a given parser (another set of plugins)."""
    source = Source(text, filename)
    _check_nesting(source)
    try:
        tree = parser.lark.parse(text, start="start")
    except UnexpectedInput as error:
        raise_syntax_error(parser.lark, source, error)
    syntax = ToSyntax(parser.plugin_rules).transform(tree)
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
        line = data[: exc.start].count(b"\n") + 1
        raise NeuralSyntaxError(
            f"{path}:{line}: the file is not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None
    return parse_text(text, str(path))


def _parse_quoted_optimizer(parser: NeuralParser, source: Source, value: Value) -> Value:
    """Parse the content of ``"Adam(learning_rate=1e-4)"`` as if written unquoted.

    The content is padded with the lines and columns before it, so positions (and
    error carets) are the file's own."""
    content = value.text[1:-1]
    padded = "\n" * (value.pos.line - 1) + " " * value.pos.column + content
    try:
        tree = parser.lark.parse(padded, start="optimizer")
    except UnexpectedInput as error:
        raise_syntax_error(parser.lark, source, error, parsed_text=padded)
    return ToSyntax(parser.plugin_rules).transform(tree)


_OPENERS = "([{"
_CLOSERS = ")]}"


def _check_nesting(source: Source) -> None:
    """Refuse absurd bracket nesting up front (it would exhaust the recursion limit)."""
    depth = 0
    line, column = 1, 0
    quote = ""
    comment = escaped = False
    for char in source.text:
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
