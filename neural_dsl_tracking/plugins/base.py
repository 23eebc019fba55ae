"""What a DSL plugin contributes: a grammar fragment, a spec model for its block, hooks.

Plugins are discovered through the entry-point group ``neural_dsl_tracking.plugins``;
each entry point names a :class:`Plugin` instance. The language front end uses
``keyword``, ``grammar_file``, ``spec_model`` and ``complete``; the compiler imports
``hooks`` (a ``"module:attribute"`` path) only when it generates code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel


@dataclass(frozen=True)
class Plugin:
    """A DSL extension registered under the entry-point group."""

    keyword: str
    """The block keyword in the DSL, e.g. ``tracking``."""

    grammar_file: str
    """A ``.lark`` fragment in ``grammar/`` that defines the block's syntax."""

    spec_model: type[BaseModel]
    """Validates the block's entries (nested dicts from dotted keys)."""

    hooks: str
    """``"module:attribute"`` of the code-generation hooks, imported lazily."""

    complete: Callable[[BaseModel, str], BaseModel] | None = None
    """Fills defaults that depend on the network (given its name), e.g. the experiment."""
