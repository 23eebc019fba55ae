"""The Model tab: the layer table of the selected run, or the aligned layers of two selected
runs side by side (``tracking.diff``), the cells that differ highlighted."""

from __future__ import annotations

from typing import Any, Sequence

from dash import Dash, Input, Output, html, no_update

from neural_dsl_tracking.dashboard.data import DashboardData
from neural_dsl_tracking.dashboard.tables import short_text
from neural_dsl_tracking.dashboard.views import DIFFERS_STYLE, run_labels, scrolling
from neural_dsl_tracking.humanize import quantity
from neural_dsl_tracking.tracking.diff import LayerChange, align_layers
from neural_dsl_tracking.tracking.model_view import MARKS, layer_text, params_text, shape_text, signed

TAB = ("model", "Model")
HINT = "Select a run compiled from a .neural file to see its layers, or two to compare them."
SIDE = ("layer", "input", "output", "params")
"""The columns of each run in the aligned table."""


def register(app: Dash, data: DashboardData) -> None:
    """The tab's callback: drawn when the tab is open and when the selection changes."""

    @app.callback(Output("model-area", "children"), Input("selection", "data"), Input("tabs", "value"))
    def render_model(selection, tab):
        if tab != TAB[0]:
            return no_update
        chosen = set(selection or ())
        runs = [run for run in data.runs() if run.run_id in chosen]
        return model_view(data.manager(), runs) if runs else html.P(HINT, className="hint")


def model_view(manager: Any, runs: Sequence[Any]) -> html.Div:
    """One run's layer table, or the first two runs' (oldest first) aligned layers."""
    shown = sorted(runs[:2], key=lambda run: run.start_time)
    models = manager.run_models([run.run_id for run in shown])
    missing = [run for run in shown if run.run_id not in models]
    if missing:
        return html.P(f"Run {missing[0].run_name} recorded no model (it was not started by a compiled "
                      "program). " + HINT, className="hint")
    if len(shown) == 1:
        model = models[shown[0].run_id]
        return layer_table(model.spec, fingerprint_text(model, manager.fingerprint_twins([model.run_id])))
    a, b = (models[run.run_id] for run in shown)
    note = [html.P(f"{len(runs)} runs are selected: the two most recent of them are compared.", className="hint")] \
        if len(runs) > 2 else []
    totals = html.P(f"parameters {quantity(a.params)} → {quantity(b.params)} ({signed(_delta(a.params, b.params))}), "
                    f"MACs per sample {quantity(a.macs)} → {quantity(b.macs)} ({signed(_delta(a.macs, b.macs))})",
                    id="model-totals")
    labels = run_labels(shown)
    return html.Div([*note, totals, diff_table(align_layers(a.spec["layers"], b.spec["layers"]),
                                               [labels[run.run_id] for run in shown])])


def fingerprint_text(model: Any, twins: dict[str, str]) -> str:
    """``fingerprint 9ae62d52 (same as 3f2a91c0)``; "" for a run recorded without one."""
    if not model.fingerprint:
        return ""
    twin = twins.get(model.run_id)
    return f"; fingerprint {model.fingerprint[:8]}" + (f" (same as {twin[:8]})" if twin else "")


def layer_table(spec: dict[str, Any], fingerprint: str = "") -> html.Div:
    """Every layer: name (indented by nesting), type, parameters, shapes, size and MACs."""
    head = ["layer", "type", "parameters", "input", "output", "params", "MACs"]
    rows = [html.Tr([html.Td("\u00a0\u00a0" * layer.get("depth", 0) + layer["name"]), html.Td(layer["type"]),
                     html.Td(**short_text(params_text(layer.get("params", {})))),
                     html.Td(shape_text(layer["input"])), html.Td(shape_text(layer["output"])),
                     html.Td(quantity(layer.get("param_count"))), html.Td(quantity(layer.get("macs")))])
            for layer in spec.get("layers", [])]
    total = html.P(f"{spec.get('network', '')}: input {shape_text(spec.get('input'))}, output "
                   f"{shape_text(spec.get('output'))}, {quantity(spec.get('params'))} parameters, "
                   f"{quantity(spec.get('macs'))} MACs per sample{fingerprint}", id="model-totals")
    table = html.Table(className="data-table", id="model-table",
                       children=[html.Thead(html.Tr([html.Th(text) for text in head])), html.Tbody(rows)])
    return html.Div([total, scrolling(table)])


def diff_table(changes: list[LayerChange], labels: list[str]) -> html.Div:
    """The aligned layers of runs A and B; a cell that differs (or a layer only one run has)
    is highlighted and marked ``changed``."""
    head = [html.Tr([html.Th("")] + [html.Th(label, colSpan=len(SIDE)) for label in labels]),
            html.Tr([html.Th("")] + [html.Th(column) for _ in labels for column in SIDE])]
    rows = [html.Tr([html.Td(MARKS[change.status])] + _side(change, "a") + _side(change, "b"),
                    className=f"model-{change.status}") for change in changes]
    return scrolling(html.Table(className="data-table", id="model-diff",
                                children=[html.Thead(head), html.Tbody(rows)]))


def _side(change: LayerChange, side: str) -> list[html.Td]:
    layer = getattr(change, side)
    if layer is None:
        return [html.Td("") for _ in SIDE]
    whole = change.status in ("added", "removed")
    differs = {"layer": whole or bool(change.params), "input": whole or "input" in change.facts,
               "output": whole or "output" in change.facts, "params": whole or "param_count" in change.facts}
    texts = {"layer": layer_text(layer, most=None), "input": shape_text(layer["input"]), "output": shape_text(layer["output"]),
             "params": quantity(layer.get("param_count"))}
    return [html.Td(**short_text(texts[column]), className="changed" if differs[column] else None,
                    style=DIFFERS_STYLE if differs[column] else None) for column in SIDE]


def _delta(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else b - a
