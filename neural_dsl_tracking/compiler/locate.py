"""Compile errors in the language's form: ``file:line:col``, the source line, a caret.

The compiler gets the spec's positions (``SourcePos``); a :class:`Locator` knows the
source's name and, when the caller has it, its text, and renders a message the way the
language front end renders its own (``language.diagnostics.Source.render``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from neural_dsl_tracking.errors import CompileError
from neural_dsl_tracking.language.diagnostics import Diagnostic, Pos, Source
from neural_dsl_tracking.language.spec import SourcePos

_WORD = re.compile(r"[A-Za-z0-9_.]+|\"[^\"]*\"?|'[^']*'?")
"""What the caret underlines from a position: a name, a number or a quoted string."""


class UnsupportedError(CompileError):
    """Valid Neural DSL the PyTorch backend cannot build (a custom layer, ``Lambda``, a merge,
    several inputs, a TPU): ``neural compile`` refuses it, ``neural check`` notes it."""

    def __init__(self, message: str, *, custom_layer: bool = False) -> None:
        super().__init__(message)
        self.custom_layer = custom_layer
        """True for a layer the language already notes as custom (``neural check`` says it once)."""


@dataclass(frozen=True)
class Locator:
    """Where compile messages point: the source's name and text (empty when unknown)."""

    source: Source

    @classmethod
    def of(cls, name: str, text: str | None = None) -> "Locator":
        """A locator for the source called ``name``; without ``text``, messages have no caret."""
        from neural_dsl_tracking.language.parser import unix_newlines

        return cls(Source(unix_newlines(text or ""), name))

    @property
    def name(self) -> str:
        return self.source.filename

    def at(self, pos: SourcePos | None) -> str:
        """``file:line:col`` of ``pos`` (just the file without one)."""
        return pos.at(self.name) if pos else self.name

    def message(self, pos: SourcePos | None, message: str) -> str:
        """``file:line:col: message``, then the source line and a caret under what is there."""
        if pos is None:
            return f"{self.name}: {message}"
        found = _WORD.match(self.source.line_text(pos.line), pos.column - 1)
        end = found.end() + 1 if found else pos.column + 1
        shown = self.source.render(Diagnostic(Pos(pos.line, pos.column, pos.line, end), ""))
        caret = shown.partition("\n")[2]  # the line and caret; the message is kept whole (lists of names)
        return f"{self.at(pos)}: {message}" + (f"\n{caret}" if caret else "")

    def error(self, pos: SourcePos | None, message: str) -> CompileError:
        """A CompileError located at ``pos``."""
        return CompileError(self.message(pos, message))

    def unsupported(self, pos: SourcePos | None, message: str, *, custom_layer: bool = False) -> UnsupportedError:
        """An UnsupportedError located at ``pos``."""
        return UnsupportedError(self.message(pos, message), custom_layer=custom_layer)
