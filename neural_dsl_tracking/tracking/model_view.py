"""How ``neural experiments`` prints a run's model: the layer table of ``show``, the model
and fingerprint lines, and ``diff``'s aligned layers, config differences and source diff."""

from __future__ import annotations

import json
from typing import Any

from neural_dsl_tracking.humanize import printable, quantity
from neural_dsl_tracking.tracking.diff import LayerChange, RunDiff
from neural_dsl_tracking.tracking.records import RunModel

MARKS = {"same": "=", "changed": "~", "added": "+", "removed": "-"}
CELL_WIDTH = 40


def model_fields(model: RunModel | None, twin: str | None) -> list[tuple[str, str]]:
    """``show``'s line about the model: its size and fingerprint (and the run it is the same as)."""
    if model is None:
        return []
    text = (f"{model.spec.get('network', '?')}: {quantity(model.params)} parameters, "
            f"{quantity(model.macs)} MACs per sample")
    if model.fingerprint:
        text += f"; fingerprint {model.fingerprint[:16]}" + (f" (same as {twin[:8]})" if twin else "")
    return [("model", text)]


def model_summary(model: RunModel | None, twins: dict[str, str]) -> dict[str, Any] | None:
    """A run's model for ``--json``: ``params``, ``macs``, ``fingerprint`` and ``same_as`` (the
    oldest other run with that fingerprint, or None); None for a run that recorded no model."""
    if model is None:
        return None
    return {"params": model.params, "macs": model.macs, "fingerprint": model.fingerprint,
            "same_as": twins.get(model.run_id)}


def model_cells(model: RunModel | None, twins: dict[str, str]) -> list[str]:
    """The run table's PARAMS, MACS and FINGERPRINT cells (``9ae62d52 same as 3f2a91c0`` when
    another run has the same fingerprint)."""
    if model is None:
        return ["-", "-", "-"]
    return [quantity(model.params), quantity(model.macs), fingerprint_mark(model.fingerprint, twins.get(model.run_id))]


def fingerprint_mark(fingerprint: str | None, twin: str | None) -> str:
    """A run table's fingerprint cell: the fingerprint's first 8 characters (``-`` when none),
    then ``same as 3f2a91c0`` when ``twin`` (``oldest_twins``) shares it."""
    return (fingerprint or "-")[:8] + (f" same as {twin[:8]}" if twin else "")


def print_layers(spec: dict[str, Any]) -> None:
    """The layer table: name (indented by nesting), type, parameters, shapes, size and MACs."""
    from neural_dsl_tracking.tracking.cli import _table

    rows = [["  " * layer.get("depth", 0) + layer["name"], layer["type"], params_text(layer.get("params", {})),
             shape_text(layer["input"]), shape_text(layer["output"]), quantity(layer.get("param_count")),
             quantity(layer.get("macs"))] for layer in spec.get("layers", [])]
    print(f"\nlayers: input {shape_text(spec.get('input'))}, output {shape_text(spec.get('output'))}")
    _table(["LAYER", "TYPE", "PARAMETERS", "INPUT", "OUTPUT", "PARAMS", "MACS"], rows, indent=2, whole_first=True)


def print_diff(diff: RunDiff) -> None:
    """``neural experiments diff A B``: layers side by side, totals, config, then the sources."""
    from neural_dsl_tracking.tracking.cli import _table

    print(f"A {diff.a.run_id[:8]} ({printable(diff.a.run_name)})\nB {diff.b.run_id[:8]} ({printable(diff.b.run_name)})")
    if diff.layers is None:
        missing = ", ".join(run_id[:8] for run_id in diff.without_model)
        print(f"\nmodel: not recorded for run {missing} (not started by a compiled program)")
    else:
        counts = {status: sum(c.status == status for c in diff.layers) for status in MARKS}
        print(f"\nmodel: {counts['added']} layer(s) added, {counts['removed']} removed, {counts['changed']} changed, "
              f"{counts['same']} the same")
        _print_changes(diff.layers)
        for key, label in (("params", "parameters"), ("macs", "MACs per sample")):
            a, b = diff.totals[key]
            print(f"  {label}: {quantity(a)} -> {quantity(b)} ({signed(b - a)})")
    print("\nconfig:" + ("" if diff.config else " the same"))
    if diff.config:
        _table(["KEY", "A", "B"], [[k, _json(a), _json(b)] for k, a, b in diff.config], indent=2, whole_first=True)
    print("\nsource:" + ("" if diff.source else " the same (or not recorded)"))
    if diff.source:
        print(printable(diff.source.rstrip("\n"), keep="\n\t"))


def _print_changes(changes: list[LayerChange]) -> None:
    """The aligned layers side by side (A and B clipped to 40 columns), each with its
    differences in full."""
    from neural_dsl_tracking.tracking.cli import _clip

    rows = [["", "A", "B", "DIFFERENCES"],
            *[[MARKS[c.status], layer_text(c.a), layer_text(c.b), _differences(c)] for c in changes]]
    widths = [min(CELL_WIDTH, max(len(row[i]) for row in rows)) for i in (1, 2)]
    for mark, a, b, notes in rows:
        cells = [_clip(a, widths[0]).ljust(widths[0]), _clip(b, widths[1]).ljust(widths[1])]
        print(printable(f"  {mark:<1}  {cells[0]}  {cells[1]}  {notes}".rstrip()))


def _differences(change: LayerChange) -> str:
    notes = [f"{k} {_value(a)} -> {_value(b)}" for k, (a, b) in change.params.items()]
    notes += [f"{k} {shape_text(a)} -> {shape_text(b)}" for k, (a, b) in change.facts.items() if k in ("input", "output")]
    if change.param_delta:
        notes.append(f"params {signed(change.param_delta)}")
    return "; ".join(notes)


def layer_text(layer: dict[str, Any] | None, most: int | None = 3) -> str:
    """``Dense(units=64, activation='relu', use_bias=True)`` (its first ``most`` parameters),
    indented by nesting; "" for no layer."""
    if layer is None:
        return ""
    return f"{'  ' * layer.get('depth', 0)}{layer['type']}({params_text(layer.get('params', {}), most)})"


def params_text(params: dict[str, Any], most: int | None = None) -> str:
    """``units=64, activation='relu'`` (the first ``most`` parameters, then ``...``)."""
    shown = list(params.items())[:most]
    text = ", ".join(f"{k}={_value(v)}" for k, v in shown)
    return text + (", ..." if most is not None and len(params) > most else "")


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value) if isinstance(value, str) else str(value)


def shape_text(shape: list | None) -> str:
    """``(8, 8, 1)``, ``(None, 64)``; ``-`` when unknown."""
    return "-" if shape is None else _value(["None" if d is None else d for d in shape]).replace("'", "")


def signed(delta: int | None) -> str:
    """``+640``, ``-8.3K``: a change in a count, with its sign."""
    if delta is None:
        return "-"
    return ("+" if delta > 0 else "") + (f"{delta:,}" if abs(delta) < 1000 else quantity(delta))


def _json(value: Any) -> str:
    return json.dumps(value, default=str)
