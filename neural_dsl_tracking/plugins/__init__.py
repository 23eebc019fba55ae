"""DSL plugins, discovered through the entry-point group ``neural_dsl_tracking.plugins``.

Each entry point names a :class:`~neural_dsl_tracking.plugins.base.Plugin`; the tracking
plugin is registered there like any other (see ``pyproject.toml``).
"""

from __future__ import annotations

import keyword as _python_keywords
import os
import re
from functools import lru_cache
from importlib.metadata import entry_points

from neural_dsl_tracking.errors import NeuralError
from neural_dsl_tracking.plugins.base import Plugin

ENTRY_POINT_GROUP = "neural_dsl_tracking.plugins"

RESERVED_KEYWORDS = frozenset(
    {"network", "define", "input", "layers", "loss", "optimizer", "metrics", "train",
     "execute", "execution"}
)
"""Words of the core language a plugin keyword may not take."""

_KEYWORD_RE = re.compile(r"[a-z][a-z0-9_]*\Z")

DISABLE_VARIABLE = "NEURAL_DISABLE_PLUGINS"
"""Comma-separated entry-point names left unloaded (a broken or unwanted plugin)."""


def disabled_plugins() -> frozenset[str]:
    """The entry-point names ``NEURAL_DISABLE_PLUGINS`` turns off."""
    value = os.environ.get(DISABLE_VARIABLE, "")
    return frozenset(name.strip() for name in value.split(",") if name.strip())


@lru_cache(maxsize=1)
def discover_plugins() -> dict[str, Plugin]:
    """Installed plugins by keyword, sorted by keyword; loaded once per process.
    Those named in ``NEURAL_DISABLE_PLUGINS`` are not loaded."""
    found: dict[str, Plugin] = {}
    seen: set[tuple[str, str]] = set()
    disabled = disabled_plugins()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if (entry.name, entry.value) in seen or entry.name in disabled:
            continue  # the same distribution visible twice on sys.path, or turned off
        seen.add((entry.name, entry.value))
        try:
            plugin = entry.load()
        except Exception as exc:  # a broken third-party plugin is an environment problem
            raise NeuralError(
                f"plugin {entry.name!r} ({entry.value}) failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        _check(entry.name, plugin)
        if plugin.keyword in found:
            raise NeuralError(
                f"two plugins claim the keyword {plugin.keyword!r}: "
                f"{found[plugin.keyword].hooks} and {plugin.hooks}"
            )
        found[plugin.keyword] = plugin
    return dict(sorted(found.items()))


def _check(name: str, plugin: object) -> None:
    if not isinstance(plugin, Plugin):
        raise NeuralError(f"plugin entry point {name!r} does not name a Plugin (got {plugin!r})")
    word = plugin.keyword
    if not _KEYWORD_RE.match(word) or word in RESERVED_KEYWORDS or _python_keywords.iskeyword(word):
        raise NeuralError(f"plugin {name!r} has an invalid keyword {word!r}")
    group = plugin.config_group_dir()
    if group is not None and group.name != word:
        raise NeuralError(f"plugin {name!r}: its config group folder {group} must be named {word!r}")


__all__ = ["DISABLE_VARIABLE", "ENTRY_POINT_GROUP", "Plugin", "disabled_plugins", "discover_plugins"]
