"""Run scopes: what code that calls someone else's training (a sweep's trial calls a
compiled program's ``train``) decides about, and learns of, the runs opened inside it.

Inside ``with run_scope(final_plots=False, on_open=callback):`` (in this thread or task;
a context variable), every :class:`~neural_dsl_tracking.tracking.ExperimentTracker`
opened skips its plots (no background rounds, no final plots at ``finish``) when
``final_plots`` is False, and is passed to ``on_open`` once it is open.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Iterator


@dataclass(frozen=True)
class RunScope:
    """How the runs opened in the scope differ from their own settings."""

    final_plots: bool = True
    on_open: Callable[[Any], None] | None = None


_current: ContextVar[RunScope | None] = ContextVar("neural_tracking_run_scope", default=None)


@contextmanager
def run_scope(final_plots: bool = True, on_open: Callable[[Any], None] | None = None) -> Iterator[RunScope]:
    """Apply a :class:`RunScope` to the runs opened in the block."""
    scope = RunScope(final_plots, on_open)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def current_scope() -> RunScope | None:
    """The innermost scope around this code, or None."""
    return _current.get()
