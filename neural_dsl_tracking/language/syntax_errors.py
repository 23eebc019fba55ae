"""Turn Lark's parse errors into messages in the DSL's own terms.

Raw terminal names (``__ANON_3``, ``LBRACE``) never reach the user: every expected
terminal is described by what it looks like (``'{'``, ``a name``, ``a number``).
An unexpected token that should have closed a bracket names the bracket that is
still open (``'<' opened at line 3, column 14 is not closed``).
"""

from __future__ import annotations

import re
from typing import Any, Collection, Iterable, NoReturn

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from neural_dsl_tracking.language.diagnostics import Pos, Source, did_you_mean, syntax_error
from neural_dsl_tracking.language.grammar import NO_PLUGINS_TERMINAL

_NAMED_TERMINALS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a quoted string",
    "$END": "the end of the file",
}
_CLOSERS = {"(": ")", "[": "]", "{": "}", "<": ">"}
_VALUE_STARTS = {"'true'", "'True'", "'false'", "'False'", "'None'", "'NONE'", "'null'", "'('",
                 "'['", "a name", "a number", "a quoted string", "'-'", "'+'"}
_A_VALUE = "a value (number, quoted string, name, true/false, None, (tuple) or [list])"
_OPERATORS = {"'+'", "'-'", "'*'", "'/'", "'//'", "'%'", "'**'"}
_AN_OPERATOR = "an arithmetic operator (+ - * / // % **)"


def describe_expected(lark: Lark, names: Iterable[str]) -> str:
    """``"expected ':' or a name"`` from a set of terminal names."""
    words = {_describe_terminal(lark, name) for name in names if name != NO_PLUGINS_TERMINAL}
    if {"a number", "a quoted string"} <= words:
        words = (words - _VALUE_STARTS) | {_A_VALUE}
    if len(words & _OPERATORS) > 2:  # after a value: one entry for the operators
        words = (words - _OPERATORS) | {_AN_OPERATOR}
    # punctuation first, then keywords, then descriptions
    unique = sorted(words, key=lambda w: (w[:1] != "'", w[1:2].isalpha(), w.lower()))
    if not unique:
        return ""
    if len(unique) == 1:
        return f"expected {unique[0]}"
    return "expected one of " + ", ".join(unique[:-1]) + f" or {unique[-1]}"


def _describe_terminal(lark: Lark, name: str) -> str:
    if name in _NAMED_TERMINALS:
        return _NAMED_TERMINALS[name]
    try:
        terminal = lark.get_terminal(name)
    except KeyError:
        return name.lower()
    if terminal.pattern.type == "str":
        return f"'{terminal.pattern.value}'"
    return name.lower()


def describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "NAME":
        return f"name '{token.value}'"
    if token.type == "NUMBER":
        return f"number {token.value}"
    if token.type == "STRING":
        return f"string {token.value}"
    return f"'{token.value}'"


def raise_syntax_error(
    lark: Lark,
    source: Source,
    error: UnexpectedInput,
    *,
    parsed_text: str | None = None,
    plugin_keywords: Collection[str] = (),
) -> NoReturn:
    """Raise NeuralSyntaxError for a Lark error. A sub-parse (the content of a quoted
    string, padded so that its positions are the file's) passes its ``parsed_text``;
    ``plugin_keywords`` are the blocks the parser knows (named when a file uses another)."""
    parsed = source if parsed_text is None else Source(parsed_text, source.filename)
    pos, message = _unknown_block(parsed, error, plugin_keywords) or _explain(lark, parsed, error)
    syntax_error(source, pos, message)


_NAME_BEFORE = re.compile(r"(?:^|[\s{};>])([a-z][a-z0-9_]*)\s*\Z")


def _unknown_block(source: Source, error: UnexpectedInput,
                   plugin_keywords: Collection[str]) -> tuple[Pos, str] | None:
    """``name < ... >`` where no installed plugin provides a ``name`` block: where the name
    is and a message saying so, or None for any other error."""
    if isinstance(error, UnexpectedToken) and error.token.type == "NAME":  # at top level
        token = error.token
        after = source.line_text(token.line)[token.end_column - 1:]
        if not after.lstrip().startswith("<"):
            return None
        name, pos = token.value, Pos(token.line, token.column, token.end_line, token.end_column)
    else:  # in a network: the name was read as a layer, and '<' is unexpected
        line, column = getattr(error, "line", 0), getattr(error, "column", 0)
        text = source.line_text(line)
        found = _NAME_BEFORE.search(text[: column - 1]) if text[column - 1: column] == "<" else None
        if found is None:
            return None
        name, pos = found.group(1), Pos(line, found.start(1) + 1, line, found.end(1) + 1)
    if name in plugin_keywords:
        return None
    from neural_dsl_tracking.plugins import DISABLE_VARIABLE, disabled_plugins

    why = f" (it is disabled by {DISABLE_VARIABLE})" if name in disabled_plugins() else ""
    known = ", ".join(sorted(plugin_keywords)) or "none"
    return pos, (f"unknown block '{name} < ... >': no installed plugin provides it{why}"
                 f"{did_you_mean(name, sorted(plugin_keywords))} (plugin blocks: {known})")


def _explain(lark: Lark, source: Source, error: UnexpectedInput) -> tuple[Pos, str]:
    if isinstance(error, UnexpectedCharacters):
        pos = Pos(error.line, error.column)
        char = error.char
        if char in "\"'":
            return pos, "unterminated string: the closing quote is missing on this line"
        expected = describe_expected(lark, error.allowed or ())
        return pos, _join(f"unexpected character {char!r}", expected)
    if isinstance(error, UnexpectedToken):
        token = error.token
        if token.type == "$END":
            pos = source.end_pos()
        else:
            pos = Pos(token.line, token.column, token.end_line, token.end_column)
        empty = _empty_layers(error)
        if empty is not None:
            return empty
        expected_names = set(error.accepts or error.expected)
        message = _join(f"unexpected {describe_token(token)}", describe_expected(lark, expected_names))
        open_bracket = _unclosed_bracket(error, expected_names, lark)
        if open_bracket is not None:
            message += (
                f" ('{open_bracket.value}' opened at line {open_bracket.line}, "
                f"column {open_bracket.column} is not closed)"
            )
        return pos, message + _misspelled_keyword(lark, error, expected_names)
    if isinstance(error, UnexpectedEOF):
        pos = source.end_pos()
        return pos, _join("unexpected end of file", describe_expected(lark, error.expected))
    line = getattr(error, "line", 1) or 1
    column = getattr(error, "column", 1) or 1
    return Pos(line, column), "invalid syntax"


def _empty_layers(error: UnexpectedToken) -> tuple[Pos, str] | None:
    """``layers:`` with no layer after it (the network's end, or the next section, whose
    name was taken for a layer): where ``layers`` is and a message saying so, else None."""
    parser = getattr(error, "interactive_parser", None)
    stack: list[Any] = getattr(getattr(parser, "parser_state", None), "value_stack", None) or []
    tail = [item for item in stack[-3:] if isinstance(item, Token)]
    values = [item.value for item in tail]
    if values[-2:] == ["layers", ":"] and error.token.value == "}" or (
        values[-3:-1] == ["layers", ":"] and tail[-1].value in _SECTION_NAMES and error.token.value in (":", "{")
    ):
        keyword = tail[-3] if values[-3:-1] == ["layers", ":"] else tail[-2]
        return (Pos(keyword.line, keyword.column, keyword.line, keyword.column + len("layers")),
                "the network's layers: section is empty; write at least one layer, e.g. layers: Dense(10)")
    return None


_SECTION_NAMES = {"input", "layers", "loss", "optimizer", "metrics", "train", "execute", "execution"}
"""Section names: right after an empty ``layers:``, one is read as a layer."""


def _keywords(lark: Lark, names: Iterable[str] | None = None) -> list[str]:
    """The word-like literal terminals (``network``, ``train``, ``tracking``...)."""
    terminals = lark.terminals if names is None else [_terminal(lark, n) for n in names]
    return [t.pattern.value for t in terminals
            if t is not None and t.pattern.type == "str" and t.pattern.value.isalpha()]


def _misspelled_keyword(lark: Lark, error: UnexpectedToken, expected: set[str]) -> str:
    """A hint when a name is probably a misspelled keyword: either the unexpected token
    itself (``inpt: (4)``) or a name just before it that was taken for a layer
    (``optimiser: Adam`` after the layers, ``traing { ... }``)."""
    token = error.token
    if token.type == "NAME":
        return did_you_mean(token.value, _keywords(lark, expected))
    if token.value not in (":", "{", "<"):
        return ""
    parser = getattr(error, "interactive_parser", None)
    stack: list[Any] = getattr(getattr(parser, "parser_state", None), "value_stack", None) or []
    keywords = _keywords(lark)
    for item in reversed(stack[-4:]):
        if isinstance(item, Token) and item.type == "NAME":
            hint = did_you_mean(item.value, keywords, cutoff=0.75)
            if hint:
                return (f"; '{item.value}' at line {item.line}, column {item.column} was read "
                        f"as a layer{hint}")
    return ""


def _terminal(lark: Lark, name: str) -> Any:
    try:
        return lark.get_terminal(name)
    except KeyError:
        return None


def _join(what: str, expected: str) -> str:
    return f"{what}; {expected}" if expected else what


def _unclosed_bracket(error: UnexpectedToken, expected: set[str], lark: Lark) -> Token | None:
    """The innermost still-open bracket, when its closer is among the expected tokens and
    the unexpected token looks like the end of it (end of file, another closer, or a
    keyword after an open ``<``)."""
    token = error.token
    ends_here = token.type == "$END" or token.value in _CLOSERS.values()
    parser = getattr(error, "interactive_parser", None)
    stack: list[Any] = getattr(getattr(parser, "parser_state", None), "value_stack", None) or []
    expected_text = {
        lark.get_terminal(n).pattern.value for n in expected if _is_str_terminal(lark, n)
    }
    for item in reversed(stack):
        if isinstance(item, Token) and item.value in _CLOSERS:
            closer = _CLOSERS[item.value]
            keyword_after_angle = item.value == "<" and _is_str_terminal(lark, token.type)
            if closer in expected_text and token.value != closer and (ends_here or keyword_after_angle):
                return item
            return None
    return None


def _is_str_terminal(lark: Lark, name: str) -> bool:
    try:
        return lark.get_terminal(name).pattern.type == "str"
    except KeyError:
        return False
