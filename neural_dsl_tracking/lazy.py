"""Lazy package exports: public names are imported on first use, not at package import.

Keeps ``neural check`` and ``neural compile`` from importing numpy, torch or the store
just because a sub-package's ``__init__`` re-exports them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """Return ``(__getattr__, __all__)`` for ``package`` exporting ``{name: module}``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(module), name)

    return __getattr__, sorted(exports)
