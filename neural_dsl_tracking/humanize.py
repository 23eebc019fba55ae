"""Text as people read it in tables and terminals: durations, byte sizes, stored text
made safe to print, and run statuses in colour."""

from __future__ import annotations

import os
import sys
from typing import TextIO

# ANSI foreground colours of run statuses on a terminal
# (and of sweep trials' states: complete, pruned)
STATUS_ANSI = {"completed": "32", "complete": "32", "running": "34", "failed": "31", "crashed": "33",
               "interrupted": "33", "pruned": "35"}


def duration(seconds: float | None, missing: str = "—") -> str:
    """``1h 02m 03s``, ``1m 15s`` or ``4.2s``; ``missing`` when unknown."""
    if seconds is None:
        return missing
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{seconds:.1f}s"


def file_size(size: float) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 MiB``, ``1.1 GiB``."""
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def abridged(value: object) -> str:
    """``value`` as text; over 40 characters, its first 20 and its length
    (``12345678901234567890... (5000 characters)``), for a huge literal in a message."""
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


def printable(text: str, keep: str = "") -> str:
    """``text`` with control characters escaped (``\\x1b``, ``\\n``, ``\\x00``), so text read
    from a store (a run name, a metric name) can neither drive the terminal nor forge lines.
    Characters in ``keep`` pass unchanged."""
    return "".join(char if char.isprintable() or char in keep
                   else char.encode("unicode_escape").decode("ascii")
                   for char in text)


def printable_message(text: str) -> str:
    """A multi-line message (an error with a source line and a caret) made safe to print:
    each line through :func:`printable`, keeping its tabs so the caret stays aligned."""
    return "\n".join(printable(line, keep="\t") for line in text.split("\n"))


def wants_color(stream: TextIO) -> bool:
    """Whether to colour what goes to ``stream``: a terminal, unless ``NO_COLOR`` is set to
    anything non-empty (no-color.org); a non-empty ``FORCE_COLOR`` colours pipes too."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def shows_progress() -> bool:
    """Whether to draw a progress bar: stderr is a terminal and ``NEURAL_NO_PROGRESS`` is unset."""
    return sys.stderr.isatty() and not os.environ.get("NEURAL_NO_PROGRESS")


def status_text(status: str, width: int = 0, stream: TextIO | None = None) -> str:
    """A run status left-aligned in ``width`` columns, in its colour (completed green, running
    blue, failed red, crashed and interrupted yellow, pruned magenta) when ``stream`` (stdout
    by default) wants colour; the padding stays outside the escape codes, so columns line up
    either way."""
    text = printable(status)
    padding = " " * max(0, width - len(text))
    code = STATUS_ANSI.get(status)
    if code is None or not wants_color(stream or sys.stdout):
        return text + padding
    return f"\x1b[{code}m{text}\x1b[0m{padding}"


SI_UNITS = ("", "K", "M", "G", "T")


def quantity(count: float | None, missing: str = "-") -> str:
    """A count in SI units as people read it: ``950``, ``38.3K``, ``1.2M``, ``4.1G``, ``2.0T``;
    ``missing`` when unknown."""
    if count is None:
        return missing
    sign, size, unit = ("-" if count < 0 else ""), abs(count), 0
    while size >= 999.95 and unit < len(SI_UNITS) - 1:
        size, unit = size / 1000, unit + 1
    return f"{sign}{size:g}" if unit == 0 else f"{sign}{size:.1f}{SI_UNITS[unit]}"
