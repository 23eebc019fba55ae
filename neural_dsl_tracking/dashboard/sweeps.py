"""The Sweeps tab: one sweep's optimisation history with the best value so far, its parameter
importances, parallel coordinates of its trials coloured by the objective, and each trial's
intermediate objective values (pruned trials marked). Picking trials (in the list, with a box
or lasso on the history, or all of them) makes their runs the selection the other tabs show.

Figures are plain dicts themed like the others (``figures.figure_template``); every name from the
store reaches the page as text (``figures.plotly_text``), never as markup.
"""

from __future__ import annotations

from typing import Any, Sequence

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from neural_dsl_tracking.dashboard.data import DashboardData, StoreUnavailable
from neural_dsl_tracking.dashboard.figures import (
    TITLE_CHARS,
    Axis,
    color_for,
    figure_template,
    parallel_figure,
    plain_list,
    plotly_text,
)
from neural_dsl_tracking.dashboard.tables import TEXT_CHARS, format_value, shortened
from neural_dsl_tracking.dashboard.views import GRAPH_CONFIG, axis_value
from neural_dsl_tracking.errors import TrackingError

TAB = ("sweeps", "Sweeps")
STATE_MARKERS = {"complete": "circle", "pruned": "x", "failed": "triangle-down", "running": "diamond-open"}
STATE_DASHES = {"complete": "solid", "pruned": "dash", "failed": "dot", "running": "solid"}
BEST_LINE = "#2ca02c"


def tab_body() -> list[Any]:
    """The tab's controls (the sweep, its trials picked) and the area its figures go to."""
    return [
        html.Div(className="controls", children=[
            html.Label(["sweep", dcc.Dropdown(id="sweep-choice", clearable=False, placeholder="no sweep yet")]),
            html.Label(["trials (their runs become the selection)",
                        dcc.Dropdown(id="sweep-trials", multi=True,
                                     placeholder="pick trials, or draw a box on the history")]),
            html.Button("Select every trial", id="sweep-select-all", n_clicks=0),
        ]),
        dcc.Loading(html.Div(id="sweeps-area"), delay_show=300),
        dcc.Store(id="sweep-drawn"),
    ]


def sweep_options(sweeps: Sequence[Any]) -> list[dict[str, str]]:
    """One option per sweep: its name, experiment and objective (cut to ``TEXT_CHARS``)."""
    return [{"label": shortened(f"{s.name} · {s.experiment} · {s.objective} ({s.direction})", TEXT_CHARS),
             "value": s.sweep_id, "title": f"{s.name} ({s.sweep_id})"} for s in sweeps]


def trial_options(sweep: Any) -> list[dict[str, str]]:
    """One option per trial that has a run: ``#3 · pruned · 0.484``; its value is the run id."""
    return [{"label": f"#{t.number} · {t.state} · {format_value(t.value)}", "value": t.run_id}
            for t in sweep.trials if t.run_id]


def best_so_far(sweep: Any) -> tuple[list[int], list[float]]:
    """The best complete value after each complete trial, in trial order (direction-aware)."""
    better = max if sweep.direction == "maximize" else min
    numbers, values, best = [], [], None
    for trial in sweep.trials:
        if trial.state == "complete" and trial.value is not None:
            best = trial.value if best is None else better(best, trial.value)
            numbers.append(trial.number)
            values.append(best)
    return numbers, values


def history_figure(sweep: Any, theme: str = "light") -> dict[str, Any]:
    """The objective of each trial by trial number, one trace per state (marker by state), and
    the best value so far as a step line. Points carry their run id (``customdata``)."""
    traces = []
    for state, marker in STATE_MARKERS.items():
        trials = [t for t in sweep.trials if t.state == state and t.value is not None]
        if trials:
            traces.append({
                "type": "scatter", "mode": "markers", "name": state,
                "x": [t.number for t in trials], "y": [t.value for t in trials],
                "customdata": [t.run_id for t in trials],
                "marker": {"symbol": marker, "size": 9},
                "hovertemplate": f"trial #%{{x}} ({state})<br>%{{y}}<extra></extra>",
            })
    numbers, values = best_so_far(sweep)
    traces.append({"type": "scatter", "mode": "lines", "name": "best so far", "x": numbers, "y": values,
                   "line": {"shape": "hv", "color": BEST_LINE, "width": 2}, "hoverinfo": "skip"})
    return _figure(traces, f"optimisation history: {sweep.objective} ({sweep.direction})", theme,
                   xaxis={"title": {"text": "trial"}}, dragmode="select", uirevision=sweep.sweep_id)


def importance_figure(importances: dict[str, float], theme: str = "light") -> dict[str, Any]:
    """A horizontal bar per parameter, the most important on top."""
    names = list(importances)[::-1]
    trace = {"type": "bar", "orientation": "h", "x": [importances[n] for n in names],
             "y": [plotly_text(shortened(n, TITLE_CHARS)) for n in names],
             "hovertemplate": "%{y}: %{x:.3f}<extra></extra>"}
    return _figure([trace], "parameter importances (PED-ANOVA)", theme, xaxis={"title": {"text": "importance"}},
                   yaxis={"automargin": True}, height=max(220, 60 + 40 * len(names)))


def trials_parallel_figure(sweep: Any, theme: str = "light") -> dict[str, Any] | None:
    """Parallel coordinates of the trials with a value: a line per trial through its parameters
    and the objective, coloured by the objective; None when no trial has a value."""
    trials = [t for t in sweep.trials if t.value is not None]
    if not trials:
        return None
    names = list(dict.fromkeys(key for t in trials for key in t.params))
    axes = [Axis(name, [axis_value(t.params.get(name)) for t in trials]) for name in names]
    values = [t.value for t in trials]
    label = f"{sweep.objective} ({sweep.direction})"
    return parallel_figure([*axes, Axis(label, values)], values, label, theme)


def intermediate_figure(sweep: Any, histories: dict[str, Any], theme: str = "light") -> dict[str, Any]:
    """A line per trial through its per-epoch objective values (``histories`` by run id); a
    pruned trial's line is dashed and ends with an x where it was stopped."""
    traces = []
    for trial in sweep.trials:
        history = histories.get(trial.run_id or "")
        if history is None or not len(history):
            continue
        pruned = trial.state == "pruned"
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": f"#{trial.number} {trial.state}",
            "x": plain_list(history.steps), "y": plain_list(history.values),
            "line": {"color": color_for(trial.number), "dash": STATE_DASHES.get(trial.state, "solid")},
            "marker": {"size": [4] * (len(history) - 1) + [12 if pruned else 4],
                       "symbol": ["circle"] * (len(history) - 1) + ["x" if pruned else "circle"]},
            "meta": {"trial": trial.number, "state": trial.state},
            "hovertemplate": f"trial #{trial.number} ({trial.state})<br>epoch %{{x}}: %{{y}}<extra></extra>",
        })
    return _figure(traces, f"intermediate values: {sweep.objective} per epoch", theme,
                   xaxis={"title": {"text": "epoch"}})


def _figure(traces: list[dict[str, Any]], title: str, theme: str, height: int = 380, **layout: Any) -> dict[str, Any]:
    return {"data": traces, "layout": {
        "template": figure_template(theme), "title": {"text": plotly_text(shortened(title, 2 * TITLE_CHARS))},
        "height": height, "margin": {"l": 60, "r": 20, "t": 50, "b": 40}, "hovermode": "closest", **layout}}


def sweep_view(sweep: Any, histories: dict[str, Any], importances: dict[str, float] | str,
               theme: str) -> html.Div:
    """The tab's content for one sweep: a summary line and the four figures."""
    counts = ", ".join(f"{n} {state}" for state, n in sweep.counts.items() if n) or "no trials yet"
    best = sweep.best_trial
    summary = (f"{len(sweep.trials)} of {sweep.requested_trials} trials ({counts}); sampler {sweep.sampler}, "
               f"pruner {sweep.pruner}; best: " + (f"trial #{best.number}, {format_value(best.value)}"
                                                    if best else "none complete yet"))
    parallel = trials_parallel_figure(sweep, theme)
    return html.Div(className="sweep-view", children=[
        html.P(summary, id="sweep-summary"),
        dcc.Graph(id="sweep-history", figure=history_figure(sweep, theme), config=GRAPH_CONFIG),
        (dcc.Graph(id="sweep-importances", figure=importance_figure(importances, theme), config=GRAPH_CONFIG)
         if isinstance(importances, dict) and importances
         else html.P(f"parameter importances: {importances or 'none'}", className="hint", id="sweep-importances")),
        (dcc.Graph(id="sweep-parallel", figure=parallel, config=GRAPH_CONFIG) if parallel
         else html.P("no trial has an objective value yet", className="hint")),
        dcc.Graph(id="sweep-intermediate", figure=intermediate_figure(sweep, histories, theme), config=GRAPH_CONFIG),
    ])


def picked_runs(selected: dict[str, Any] | None) -> list[str]:
    """The run ids of the history's points in a box/lasso selection or a click."""
    points = (selected or {}).get("points") or ()
    return list(dict.fromkeys(p["customdata"] for p in points if isinstance(p.get("customdata"), str)))


class Importances:
    """Parameter importances per sweep, computed again only when its trials changed (loading the
    study and evaluating it takes a second); the reason as text when there are none."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Any, dict[str, float] | str]] = {}

    def of(self, sweep: Any) -> dict[str, float] | str:
        from neural_dsl_tracking.tracking.sweeps import param_importances

        key = tuple((t.number, t.state, t.value) for t in sweep.trials)
        cached = self._cache.get(sweep.sweep_id)
        if cached is None or cached[0] != key:
            try:
                found: dict[str, float] | str = param_importances(sweep)
            except TrackingError as error:
                found = str(error)
            cached = self._cache[sweep.sweep_id] = (key, found)
        return cached[1]


def read_sweep(manager: Any, sweep_id: str) -> tuple[Any, dict[str, Any]]:
    """The sweep and its trials' objective series by run id (TrackingError when it is gone)."""
    sweep = manager.get_sweep(sweep_id)
    runs = [t.run_id for t in sweep.trials if t.run_id]
    read = manager.get_metric_histories(runs, [sweep.objective]) if runs else {}
    return sweep, {run_id: history for (run_id, _), history in read.items()}


def drawn_key(sweep: Any, histories: dict[str, Any]) -> list[list[Any]]:
    """What the tab's figures show of a sweep: each trial's number, state, value and epochs."""
    return [[sweep.sweep_id]] + [[t.number, t.state, t.value, len(histories.get(t.run_id or "", ()))]
                                 for t in sweep.trials]


def register(app: Dash, data: DashboardData) -> None:
    """The tab's callbacks: the sweeps listed, one drawn, trials picked."""
    from neural_dsl_tracking.dashboard.callbacks import theme_name, theme_switched  # callbacks builds the page

    importances = Importances()

    @app.callback(Output("sweep-choice", "options"), Output("sweep-choice", "value"),
                  Input("tabs", "value"), Input("runs-version", "data"),
                  State("sweep-choice", "options"), State("sweep-choice", "value"))
    def list_sweeps(tab, _runs_changed, listed, chosen):
        """The sweeps (a new one appears once its first run is seen); the one shown stays chosen."""
        if tab != TAB[0]:
            return no_update, no_update
        try:
            sweeps = data.manager().list_sweeps()
        except (StoreUnavailable, TrackingError):
            return [], None
        ids, options = [s.sweep_id for s in sweeps], sweep_options(sweeps)
        value = chosen if chosen in ids else (ids[0] if ids else None)
        return options if options != listed else no_update, value if value != chosen else no_update

    @app.callback(Output("sweeps-area", "children"), Output("sweep-trials", "options"),
                  Output("sweep-drawn", "data"),
                  Input("sweep-choice", "value"), Input("tabs", "value"), Input("theme", "data"),
                  Input("runs-version", "data"), State("sweep-drawn", "data"))
    def draw_sweep(sweep_id, tab, theme, _runs_changed, drawn):
        """The sweep's figures; when runs changed, drawn again only if a trial or its values did."""
        if tab != TAB[0] or theme_switched(theme):
            return no_update, no_update, no_update
        if not sweep_id:
            return (html.P("No sweeps in this store yet: run `neural sweep model.neural`.", className="hint"),
                    [], None)
        try:
            sweep, histories = read_sweep(data.manager(), sweep_id)
        except TrackingError as error:
            return html.P(str(error), className="hint"), [], None
        key = drawn_key(sweep, histories)
        if ctx.triggered_id == "runs-version" and key == drawn:
            return no_update, no_update, no_update
        return sweep_view(sweep, histories, importances.of(sweep), theme_name(theme)), trial_options(sweep), key

    @app.callback(Output("sweep-trials", "value"),
                  Input("sweep-history", "selectedData"), Input("sweep-history", "clickData"),
                  Input("sweep-select-all", "n_clicks"), State("sweep-trials", "options"),
                  prevent_initial_call=True)
    def pick_trials(selected, clicked, _all, options):
        if ctx.triggered_id == "sweep-select-all":
            return [option["value"] for option in options or ()]
        boxed = "sweep-history.selectedData" in ctx.triggered_prop_ids
        picked = picked_runs(selected if boxed else clicked)
        return picked or no_update
