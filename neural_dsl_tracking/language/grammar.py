"""Compose the grammar (core + plugin fragments) and build the LALR parser once.

``grammar/neural.lark`` refers to a rule ``plugin_block`` it does not define. Each
plugin's fragment defines ``<keyword>_block``; here ``plugin_block`` becomes their
union, so a plugin block is accepted inside a network and at top level.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import lark as lark_module
from lark import Lark

from neural_dsl_tracking.errors import NeuralError
from neural_dsl_tracking.plugins import discover_plugins
from neural_dsl_tracking.plugins.base import Plugin
from neural_dsl_tracking.resources import grammar_path

CORE_GRAMMAR = "neural.lark"
START_RULES = ["start", "optimizer"]
"""``optimizer`` parses the content of a quoted ``"Adam(learning_rate=1e-4)"``."""

NO_PLUGINS_TERMINAL = "_NO_PLUGINS"
_NO_PLUGINS = f"plugin_block: {NO_PLUGINS_TERMINAL}\n{NO_PLUGINS_TERMINAL}: /\\x00(?!)/\n"
"""With no plugin installed, ``plugin_block`` is a terminal that never matches."""


@dataclass(frozen=True)
class NeuralParser:
    """The built parser and the plugin block rules it knows (rule name -> keyword)."""

    lark: Lark
    plugin_rules: dict[str, str]
    plugins: dict[str, Plugin]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NeuralError(f"cannot read grammar file {path}: {exc.strerror or exc}") from exc


def _fragment_path(plugin: Plugin) -> Path:
    path = Path(plugin.grammar_file)
    return path if path.is_absolute() else grammar_path(plugin.grammar_file)


def compose_grammar(plugins: dict[str, Plugin]) -> tuple[str, dict[str, str]]:
    """The full grammar text and the map ``<keyword>_block`` -> keyword."""
    parts = [_read(grammar_path(CORE_GRAMMAR))]
    rules: dict[str, str] = {}
    for keyword, plugin in plugins.items():
        rule = f"{keyword}_block"
        fragment = _read(_fragment_path(plugin))
        if not re.search(rf"^\s*{rule}\s*:", fragment, re.MULTILINE):
            raise NeuralError(
                f"plugin {keyword!r}: grammar fragment {plugin.grammar_file} does not define "
                f"the rule {rule!r}"
            )
        parts.append(f"// ---- plugin {keyword}: {plugin.grammar_file}\n{fragment}")
        rules[rule] = keyword
    if rules:
        parts.append("plugin_block: " + " | ".join(rules) + "\n")
    else:
        parts.append(_NO_PLUGINS)
    return "\n".join(parts), rules


LARK_OPTIONS = dict(
    parser="lalr",
    lexer="contextual",
    start=START_RULES,
    propagate_positions=True,
    maybe_placeholders=False,
)


@lru_cache(maxsize=1)
def get_parser() -> NeuralParser:
    """The process-wide parser for the installed plugins."""
    return build_parser(discover_plugins())


def build_parser(plugins: dict[str, Plugin]) -> NeuralParser:
    """A parser for ``plugins``: loaded from the user's cache when the composed grammar
    is unchanged, otherwise built (LALR analysis) and cached for the next process."""
    text, rules = compose_grammar(plugins)
    cache = _cache_file(text)
    lark = _load_cached(cache) if cache else None
    if lark is None:
        lark = Lark(text, **LARK_OPTIONS)
        if cache:
            _save_cached(lark, cache)
    return NeuralParser(lark, rules, plugins)


def _cache_file(grammar_text: str) -> Path | None:
    """``~/.cache/neural-dsl-tracking/grammar-<hash>.lark`` (None disables caching:
    ``NEURAL_GRAMMAR_CACHE=0``). The hash covers everything the built parser depends on."""
    if os.environ.get("NEURAL_GRAMMAR_CACHE", "1") == "0":
        return None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.sha256(
        "\0".join([grammar_text, repr(sorted(LARK_OPTIONS.items())), lark_module.__version__,
                   sys.version]).encode("utf-8")
    ).hexdigest()[:32]
    return Path(root) / "neural-dsl-tracking" / f"grammar-{key}.lark"


def _load_cached(path: Path) -> Lark | None:
    try:
        with path.open("rb") as handle:
            return Lark.load(handle)
    except FileNotFoundError:
        return None
    except Exception:  # a truncated or foreign cache file: rebuild and overwrite it
        return None


def _save_cached(lark: Lark, path: Path) -> None:
    """Write atomically (temp file + rename) so concurrent processes never read half a file."""
    temp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as tmp:
            temp_path = Path(tmp.name)
            lark.save(tmp)
        os.replace(temp_path, path)
    except Exception:  # the cache only saves time: a read-only home must not fail a parse
        if temp_path is not None:
            temp_path.unlink(missing_ok=True)
