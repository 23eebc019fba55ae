"""Plugin blocks (``tracking < ... >``): entries -> nested dict -> the plugin's spec.

Dotted keys become nested dicts (``mlflow.tracking_uri`` -> ``{"mlflow": {...}}``), the
same paths a Hydra override uses. A top-level block applies to every network; a
network's own block overrides it key by key. Validation errors from the plugin's
pydantic model are reported at the source position of the offending key or value.
"""

from __future__ import annotations

import re
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from neural_dsl_tracking.language.diagnostics import DiagnosticSink, Pos, did_you_mean
from neural_dsl_tracking.language.syntax import Block, Value
from neural_dsl_tracking.language.values import dsl_repr
from neural_dsl_tracking.plugins.base import Plugin

Path = tuple[Any, ...]


class BlockData:
    """A block's entries as nested plain data plus where each key and value was written."""

    def __init__(self, block: Block):
        self.block = block
        self.data: dict[str, Any] = {}
        self.key_pos: dict[Path, Pos] = {}
        self.value_pos: dict[Path, Pos] = {}
        self.ok = True
        """False when reading the entries already reported a problem."""

    def merged_over(self, base: "BlockData | None") -> "BlockData":
        """This block's settings on top of ``base`` (a top-level block)."""
        if base is None:
            return self
        merged = BlockData(self.block)
        merged.data = _deep_merge(base.data, self.data)
        merged.key_pos = {**base.key_pos, **self.key_pos}
        merged.value_pos = {**base.value_pos, **self.value_pos}
        merged.ok = self.ok and base.ok
        return merged

    def positions(self) -> dict[str, Pos]:
        """Where each setting's value is written, by dotted key (list items left out), and
        the block itself under ``""``."""
        found = {".".join(path): pos for path, pos in self.value_pos.items()
                 if all(isinstance(part, str) for part in path)}
        return {"": self.block.pos, **found}

    def pos_for(self, loc: Path, *, key: bool = False) -> Pos:
        """The best source position for a pydantic error location."""
        tables = (self.key_pos, self.value_pos) if key else (self.value_pos, self.key_pos)
        for table in tables:
            for end in range(len(loc), 0, -1):
                if loc[:end] in table:
                    return table[loc[:end]]
        return self.block.pos


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def read_block(block: Block, sink: DiagnosticSink) -> BlockData:
    """Entries -> nested dict, reporting duplicate and conflicting keys."""
    out = BlockData(block)
    before = sink.count
    for entry in block.entries:
        path = entry.key
        value = _plain(entry.value, path, out, sink, block.keyword)
        target = out.data
        conflict = False
        for depth, part in enumerate(path[:-1]):
            existing = target.setdefault(part, {})
            if not isinstance(existing, dict):
                prefix = ".".join(path[: depth + 1])
                sink.error(entry.key_pos, f"'{prefix}' is set to a value above, so "
                                          f"'{'.'.join(path)}' cannot set a part of it")
                conflict = True
                break
            target = existing
        if conflict:
            continue
        leaf = path[-1]
        dotted = ".".join(path)
        if leaf in target:
            first = out.key_pos.get(path)
            where = f" (first at line {first.line})" if first else ""
            what = "is given twice" if not isinstance(target[leaf], dict) else "has settings below it"
            sink.error(entry.key_pos, f"{block.keyword} key '{dotted}' {what}{where}")
            continue
        target[leaf] = value
        out.key_pos[path] = entry.key_pos
        out.value_pos[path] = entry.value.pos
    out.ok = sink.count == before
    return out


def _plain(value: Value, path: Path, out: BlockData, sink: DiagnosticSink, keyword: str) -> Any:
    if value.kind in ("number", "string", "name", "bool", "null"):
        return value.data
    if value.kind == "list":
        items = []
        for index, item in enumerate(value.data):
            out.value_pos[path + (index,)] = item.pos
            items.append(_plain(item, path + (index,), out, sink, keyword))
        return items
    sink.error(
        value.pos,
        f"a {keyword} value must be a number, true/false, a quoted string, a name or a "
        f"list like [a, b]",
    )
    return None


def validate_block(plugin: Plugin, data: BlockData, sink: DiagnosticSink) -> BaseModel | None:
    """The plugin's spec for one network (before ``Plugin.complete``), or None after
    reporting the problems."""
    if not data.ok:
        return None
    try:
        spec = plugin.spec_model.model_validate(data.data, strict=True)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            _report(error, plugin, data, sink)
        return None
    return spec


def _report(error: Any, plugin: Plugin, data: BlockData, sink: DiagnosticSink) -> None:
    loc: Path = tuple(error["loc"])
    kind = error["type"]
    keyword = plugin.keyword
    key = ".".join(str(p) for p in loc if isinstance(p, str))
    got = dsl_repr(error.get("input"))
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _model_at(plugin.spec_model, loc[:-1])
        known = [_dotted(loc[:-1], name) for name in (parent.model_fields if parent else {})]
        hint = did_you_mean(key, known)
        sink.error(data.pos_for(loc, key=True), f"unknown {keyword} key '{key}'{hint}")
        return
    pos = data.pos_for(loc)
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        value = str(error.get("input"))
        # a spec may name the value meant (one spelt as elsewhere in the language, see SweepSpec)
        hint = f"; did you mean '{ctx['meant']}'?" if "meant" in ctx else did_you_mean(value, allowed)
        listed = ", ".join(allowed)
        what = f"unknown {key} {got}" if key == "backend" else f"'{key}' cannot be {got}"
        sink.error(pos, f"{what}{hint} (known: {listed})")
        return
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        group = _model_at(plugin.spec_model, loc)
        fields = ", ".join(_dotted(loc, n) for n in (group.model_fields if group else {}))
        sink.error(pos, f"'{key}' is a group of settings; set its keys instead: {fields}")
        return
    sink.error(pos, f"'{key}' {_expectation(kind, ctx, error)}, got {got}")


_BOUNDS = {
    "greater_than_equal": ("ge", ">="),
    "greater_than": ("gt", ">"),
    "less_than_equal": ("le", "<="),
    "less_than": ("lt", "<"),
}
_TYPES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a quoted string or a name",
    "list_type": "a list like [a, b]",
}


def _expectation(kind: str, ctx: dict[str, Any], error: Any) -> str:
    if kind in _BOUNDS:
        name, symbol = _BOUNDS[kind]
        return f"must be {symbol} {ctx.get(name)}"
    if kind in _TYPES:
        return f"must be {_TYPES[kind]}"
    if kind == "value_error":  # a validator's own words
        return str(error.get("msg", "")).removeprefix("Value error, ")
    return f"is not valid ({error.get('msg', kind)})"


def _dotted(prefix: Path, name: str) -> str:
    return ".".join([*(str(p) for p in prefix if isinstance(p, str)), name])


def _model_at(model: type[BaseModel], loc: Path) -> type[BaseModel] | None:
    """The nested model class found by following ``loc`` through the fields."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        current = _model_class(current.model_fields[part].annotation)
    return current


def _model_class(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_class(arg)
        if found is not None:
            return found
    return None
