"""Compose the grammar (core + plugin fragments) and build the LALR parser once.

``grammar/neural.lark`` refers to a rule ``plugin_block`` it does not define. Each
plugin's fragment defines ``<keyword>_block``; here ``plugin_block`` becomes their
union, so a plugin block is accepted inside a network and at top level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lark import Lark

from neural_dsl_tracking.errors import NeuralError
from neural_dsl_tracking.plugins import discover_plugins
from neural_dsl_tracking.plugins.base import Plugin
from neural_dsl_tracking.resources import grammar_path

CORE_GRAMMAR = "neural.lark"
START_RULES = ["start", "optimizer"]
"""``optimizer`` parses the content of a quoted ``"Adam(learning_rate=1e-4)"``."""

_NO_PLUGINS = 'plugin_block: _NO_PLUGINS\n_NO_PLUGINS: /\\x00(?!)/\n'


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


@lru_cache(maxsize=1)
def get_parser() -> NeuralParser:
    """The process-wide parser, built on first use."""
    plugins = discover_plugins()
    text, rules = compose_grammar(plugins)
    lark = Lark(
        text,
        parser="lalr",
        lexer="contextual",
        start=START_RULES,
        propagate_positions=True,
        maybe_placeholders=False,
    )
    return NeuralParser(lark, rules, plugins)
