"""Error reports that point into the source: ``file:line:col``, the line, a caret.

Every problem found in a `.neural` file becomes a :class:`Diagnostic`; a
:class:`DiagnosticSink` collects them and raises one ``NeuralSyntaxError`` or
``NeuralValidationError`` whose message lists them all, each rendered like::

    model.neural:4:16: unknown tracking key 'visualise_every'; did you mean 'visualize_every'?
        4 |     tracking < visualise_every: 10 >
          |                ^~~~~~~~~~~~~~~
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, NoReturn

from neural_dsl_tracking.errors import NeuralError, NeuralSyntaxError, NeuralValidationError

MAX_REPORTED = 20
"""At most this many problems are listed for one file."""
MESSAGE_CHARS = 300
"""A longer message (one quoting a huge name or value) is cut in the middle."""
SHOWN_CHARS, SHOWN_BEFORE = 120, 40
"""A source line longer than SHOWN_CHARS is shown from SHOWN_BEFORE characters before
the reported column."""


@dataclass(frozen=True)
class Pos:
    """A span of source text; lines and columns are 1-based, ``end_column`` exclusive."""

    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None


@dataclass(frozen=True)
class Diagnostic:
    """One problem at one place."""

    pos: Pos
    message: str


@dataclass(frozen=True)
class Source:
    """The text being parsed and the name it is reported under."""

    text: str
    filename: str = "<string>"

    def line_text(self, line: int) -> str:
        lines = self.text.split("\n")
        return lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else ""

    def end_pos(self) -> Pos:
        """Just after the last non-blank character (where an unexpected end is shown)."""
        lines = self.text.rstrip().split("\n")
        return Pos(len(lines), len(lines[-1]) + 1)

    def render(self, diagnostic: Diagnostic) -> str:
        """``file:line:col: message`` then the source line and a caret under the spot."""
        pos = diagnostic.pos
        header = f"{self.filename}:{pos.line}:{pos.column}: {_abridged(diagnostic.message)}"
        text = self.line_text(pos.line).rstrip()
        if not text.strip():
            return header
        gutter = str(pos.line)
        # A long line is shown as a window around the column, cut ends marked "...".
        first = max(0, min(pos.column - 1 - SHOWN_BEFORE, len(text) - SHOWN_CHARS))
        last = min(len(text), first + SHOWN_CHARS)
        before, after = ("..." if first else ""), ("..." if last < len(text) else "")
        # Keep tabs so the caret lines up with the text above it.
        lead = " " * len(before) + "".join(
            ch if ch == "\t" else " " for ch in text[first: pos.column - 1]
        )
        width = 1
        if pos.end_line == pos.line and pos.end_column and pos.end_column > pos.column:
            width = min(pos.end_column, last + 1) - pos.column
        marker = "^" + "~" * max(0, width - 1)
        return (
            f"{header}\n"
            f"  {gutter} | {before}{text[first:last]}{after}\n"
            f"  {' ' * len(gutter)} | {lead}{marker}"
        )


@dataclass
class DiagnosticSink:
    """Collects the problems of one file, then raises them together."""

    source: Source
    diagnostics: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    """Problems that do not stop the file (``neural check`` prints them)."""
    _seen: set[Diagnostic] = field(default_factory=set, repr=False)

    @property
    def count(self) -> int:
        """How many problems so far (compare before/after to see if a step failed)."""
        return len(self.diagnostics)

    def error(self, pos: Pos, message: str) -> None:
        """Record a problem (once: the same problem at the same place is not repeated)."""
        item = Diagnostic(pos, message)
        if item not in self._seen:  # a set: a file with 50,000 problems stays linear
            self._seen.add(item)
            self.diagnostics.append(item)

    def warn(self, pos: Pos, message: str) -> None:
        """Record a warning (once per place and message)."""
        item = Diagnostic(pos, message)
        if item not in self._seen:
            self._seen.add(item)
            self.warnings.append(item)

    def rendered_warnings(self) -> list[str]:
        """The warnings in source order, rendered like errors, at most :data:`MAX_REPORTED`."""
        ordered = sorted(self.warnings, key=lambda d: (d.pos.line, d.pos.column))
        shown = [self.source.render(d) for d in ordered[:MAX_REPORTED]]
        if len(ordered) > MAX_REPORTED:
            shown.append(f"... and {len(ordered) - MAX_REPORTED} more warnings")
        return shown

    def raise_if_any(self, kind: type[NeuralError] = NeuralValidationError) -> None:
        if self.diagnostics:
            raise_diagnostics(self.source, self.diagnostics, kind)


def raise_diagnostics(
    source: Source, diagnostics: Iterable[Diagnostic], kind: type[NeuralError]
) -> NoReturn:
    """Raise ``kind`` with every diagnostic rendered; the error keeps the list."""
    ordered = sorted(diagnostics, key=lambda d: (d.pos.line, d.pos.column))
    shown = ordered[:MAX_REPORTED]
    parts = [source.render(d) for d in shown]
    if len(ordered) > len(shown):
        parts.append(f"... and {len(ordered) - len(shown)} more problems")
    error = kind("\n".join(parts))
    error.diagnostics = ordered  # type: ignore[attr-defined]
    error.filename = source.filename  # type: ignore[attr-defined]
    raise error


def _abridged(message: str) -> str:
    if len(message) <= MESSAGE_CHARS:
        return message
    tail = MESSAGE_CHARS // 4
    left_out = len(message) - MESSAGE_CHARS
    return f"{message[:MESSAGE_CHARS - tail]} ... ({left_out} characters left out) ... {message[-tail:]}"


def syntax_error(source: Source, pos: Pos, message: str) -> NoReturn:
    raise_diagnostics(source, [Diagnostic(pos, message)], NeuralSyntaxError)


def did_you_mean(word: str, known: Iterable[str], *, cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` for the nearest known name (case aside), or ``""``."""
    by_lower = {name.lower(): name for name in known}
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    return f"; did you mean '{by_lower[matches[0]]}'?" if matches else ""
