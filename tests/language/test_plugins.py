"""Plugin discovery and grammar composition: plugin blocks come from the entry-point
group, each plugin's fragment extends the core grammar at parser build time."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from neural_dsl_tracking.errors import NeuralError, NeuralSyntaxError, NeuralValidationError
from neural_dsl_tracking.language.grammar import build_parser, compose_grammar, get_parser
from neural_dsl_tracking.language.parser import parse_with
from neural_dsl_tracking.plugins import ENTRY_POINT_GROUP, discover_plugins
from neural_dsl_tracking.plugins.base import Plugin
from neural_dsl_tracking.plugins.sweep import plugin as sweep_plugin
from neural_dsl_tracking.plugins.tracking import TrackingSpec
from neural_dsl_tracking.plugins.tracking import plugin as tracking_plugin

NET = "network N { input: (4) layers: Dense(2) %s }"


class NotesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    author: str = "nobody"
    reviewed: bool = False


def notes_plugin(tmp_path: Path) -> Plugin:
    fragment = tmp_path / "notes.lark"
    fragment.write_text('notes_block: "notes" "<" entries ">"\n')
    return Plugin(keyword="notes", grammar_file=str(fragment), spec_model=NotesSpec,
                  hooks="tests.nowhere:Hooks")


def test_tracking_and_sweep_are_discovered_through_the_entry_point_group() -> None:
    plugins = discover_plugins()
    assert plugins["sweep"] is sweep_plugin
    assert ENTRY_POINT_GROUP == "neural_dsl_tracking.plugins"
    assert plugins["tracking"] is tracking_plugin
    assert plugins["tracking"].spec_model is TrackingSpec
    assert get_parser().plugin_rules == {"sweep_block": "sweep", "tracking_block": "tracking"}


def test_the_core_grammar_names_the_extension_point() -> None:
    text, rules = compose_grammar({"tracking": tracking_plugin})
    assert "plugin_block: tracking_block" in text
    assert rules == {"tracking_block": "tracking"}


def test_a_second_plugin_extends_the_language(tmp_path: Path) -> None:
    parser = build_parser({"tracking": tracking_plugin, "notes": notes_plugin(tmp_path)})
    text = 'notes < author: "ada" >\n' + NET % "notes < reviewed: true > tracking < backend: wandb >"
    net = parse_with(parser, text).networks[0]
    assert net.plugins["notes"] == NotesSpec(author="ada", reviewed=True)  # top level + own
    assert net.plugins.get("tracking").backend == ["wandb"]


def test_a_plugins_unknown_key_gets_its_own_hint(tmp_path: Path) -> None:
    parser = build_parser({"notes": notes_plugin(tmp_path)})
    with pytest.raises(NeuralValidationError, match="unknown notes key 'autor'; did you mean 'author'"):
        parse_with(parser, NET % "notes < autor: x >")


def test_without_plugins_a_tracking_block_is_a_syntax_error() -> None:
    parser = build_parser({})
    assert parse_with(parser, NET % "").networks[0].plugins == {}
    with pytest.raises(NeuralSyntaxError, match=r"1:41: unknown block 'tracking < \.\.\. >': no installed "
                       r"plugin provides it \(plugin blocks: none\)") as info:
        parse_with(parser, NET % "tracking < >")
    assert "no_plugins" not in str(info.value).lower()


def test_a_fragment_without_its_rule_is_refused(tmp_path: Path) -> None:
    fragment = tmp_path / "bad.lark"
    fragment.write_text('other: "x"\n')
    bad = Plugin(keyword="bad", grammar_file=str(fragment), spec_model=NotesSpec, hooks="x:y")
    with pytest.raises(NeuralError, match="does not define the rule 'bad_block'"):
        compose_grammar({"bad": bad})


def test_grammar_files_are_found_through_resources() -> None:
    from neural_dsl_tracking.resources import grammar_path

    assert grammar_path("neural.lark").is_file()
    assert grammar_path(tracking_plugin.grammar_file).is_file()


def test_the_built_parser_is_cached_per_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    build_parser({"tracking": tracking_plugin})
    cached = list((tmp_path / "neural-dsl-tracking").glob("grammar-*.lark"))
    assert len(cached) == 1
    # a corrupt cache file is rebuilt, not an error
    cached[0].write_bytes(b"garbage")
    parser = build_parser({"tracking": tracking_plugin})
    assert parse_with(parser, NET % "tracking < >").networks[0].plugins.get("tracking") is not None
    assert cached[0].read_bytes() != b"garbage"
