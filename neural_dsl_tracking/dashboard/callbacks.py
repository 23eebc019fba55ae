"""Callbacks: run filtering and selection, tab rendering, and live updates.

Each tab renders only while it is the active one. The live updater sends only the
points flushed since the charts were drawn, through ``extendData``.
"""

from __future__ import annotations

from typing import Any, Sequence

from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx, no_update

from neural_dsl_tracking.dashboard.data import DashboardData, StoreUnavailable, draw
from neural_dsl_tracking.dashboard.figures import plain_list, x_values
from neural_dsl_tracking.dashboard.layout import (
    IDLE_INTERVAL_MS,
    LIVE_INTERVAL_MS,
    chosen_name,
    chosen_names,
    metric_keys,
    run_rows,
    run_tooltips,
)
from neural_dsl_tracking.dashboard.smoothing import EmaState, smooth
from neural_dsl_tracking.dashboard.tables import counted, flatten, param_text
from neural_dsl_tracking.dashboard import views


def matches(run: Any, experiments: Sequence[str], statuses: Sequence[str], tags: Sequence[str], text: str) -> bool:
    """Whether a run passes the table's filters (free text searches names, ids, tags, params)."""
    if experiments and run.experiment not in experiments:
        return False
    if statuses and run.status not in statuses:
        return False
    if tags and not set(tags) & set(run.tags):
        return False
    if text:
        needle = text.lower()
        params = flatten(run.hyperparameters)
        haystack = [run.run_name, run.run_id, run.experiment, run.status, *run.tags,
                    *(f"{name}={param_text(value)}" for name, value in params.items())]
        return any(needle in item.lower() for item in haystack)
    return True


def theme_switched(theme: dict[str, Any] | None) -> bool:
    """Whether the theme alone changed since the tab was drawn: the page swaps the drawn
    figures' templates itself (assets/theme.js), so the tab need not be drawn again. (On
    loading, the theme is first set, not switched: the tab is drawn then.)"""
    return ctx.triggered_id == "theme" and len(ctx.triggered_prop_ids) == 1 and bool((theme or {}).get("switched"))


def theme_name(theme: dict[str, Any] | None) -> str:
    """The name of the theme shown (``"light"`` until the page has set it)."""
    return (theme or {}).get("name") or "light"


def register_theme(app: Dash) -> None:
    """The theme shown (the toggle's remembered choice, else the browser's) and the toggle."""
    app.clientside_callback(ClientsideFunction("theme", "apply"), Output("theme", "data"),
                            Input("theme-choice", "data"), State("figure-templates", "data"))
    app.clientside_callback(ClientsideFunction("theme", "toggle"), Output("theme-choice", "data"),
                            Input("theme-toggle", "n_clicks"), State("theme", "data"), prevent_initial_call=True)


def register(app: Dash, data: DashboardData) -> None:
    """Attach every callback of the dashboard to ``app``."""
    register_theme(app)

    def selected_runs(selection: Sequence[str]) -> tuple[list[Any], list[Any]]:
        runs = data.runs()
        chosen = set(selection or ())
        return runs, [run for run in runs if run.run_id in chosen]

    @app.callback(
        Output("run-table", "data"),
        Output("run-table", "tooltip_data"),
        Output("run-table", "selected_rows"),
        Output("selection", "data"),
        Output("run-count", "children"),
        Output("live-tick", "interval"),
        Input("filter-experiment", "value"),
        Input("filter-status", "value"),
        Input("filter-tag", "value"),
        Input("filter-text", "value"),
        Input("main-metric", "value"),
        Input("maximise", "value"),
        Input("run-table", "selected_row_ids"),
        Input("select-shown", "n_clicks"),
        Input("clear-selection", "n_clicks"),
        Input("live-tick", "n_intervals"),
        State("selection", "data"),
        State("run-table", "data"),
    )
    def update_table(experiments, statuses, tags, text, main, maximised, selected_ids, _shown, _clear, _tick,
                     selection, shown_rows):
        runs = data.runs()
        keys = metric_keys(runs)
        experiments = chosen_names(experiments, {run.experiment for run in runs})
        tags = chosen_names(tags, {tag for run in runs for tag in run.tags})
        main = chosen_name(main, keys)
        maximised = chosen_names(maximised, keys)
        visible = [run for run in runs if matches(run, experiments, statuses or (), tags, text or "")]
        visible_ids = [run.run_id for run in visible]
        previous = list(selection or [])
        new_selection = previous
        trigger = ctx.triggered_id
        if trigger == "select-shown":
            new_selection = previous + [run_id for run_id in visible_ids if run_id not in previous]
        elif trigger == "clear-selection":
            new_selection = []
        elif trigger == "run-table":
            shown = {row["id"] for row in shown_rows or ()}
            picked = set(selected_ids or ())
            kept = [run_id for run_id in previous if run_id not in shown or run_id in picked]
            new_selection = kept + [run_id for run_id in selected_ids or () if run_id not in kept]
        direction = "max" if main in maximised else "min"
        rows = run_rows(visible, main, direction)
        chosen = set(new_selection)
        selected_rows = [position for position, row in enumerate(rows) if row["id"] in chosen]
        live = any(run.status == "running" for run in runs)
        selection_out = new_selection if new_selection != previous else no_update
        return (rows, run_tooltips(visible), selected_rows, selection_out,
                f"{counted(len(runs), 'run')}, {len(chosen)} selected", LIVE_INTERVAL_MS if live else IDLE_INTERVAL_MS)

    @app.callback(
        Output("metrics-area", "children"),
        Output("drawn", "data"),
        Input("selection", "data"),
        Input("tabs", "value"),
        Input("smoothing", "value"),
        Input("x-mode", "value"),
        Input("log-y", "value"),
        Input("metric-filter", "value"),
        Input("live-tick", "n_intervals"),
        Input("theme", "data"),
        State("drawn", "data"),
    )
    def render_metrics(selection, tab, weight, x_mode, log_y, pattern, _tick, theme, drawn):
        if tab != "metrics" or theme_switched(theme):
            return no_update, no_update
        runs, chosen = selected_runs(selection)
        if ctx.triggered_id == "live-tick":
            # new points are extended by `extend_live`; redraw only when a new metric appeared
            # or a live curve outgrew its downsampling
            keys = set(views.chart_keys(chosen, pattern or "")[0])
            by_id = {run.run_id: run for run in chosen}
            if not chosen or (keys == set(drawn or {}) and not outgrown(by_id, drawn, data.max_points)):
                return no_update, no_update
        if not chosen:
            return views.select_hint(), {}
        return views.metrics_view(data, chosen, views.run_colors(runs), float(weight or 0), x_mode,
                                  "log" in (log_y or ()), pattern or "", theme_name(theme))

    @app.callback(
        Output("hyperparameters-area", "children"),
        Input("selection", "data"),
        Input("tabs", "value"),
        Input("only-differences", "value"),
    )
    def render_hyperparameters(selection, tab, only):
        if tab != "hyperparameters":
            return no_update
        _, chosen = selected_runs(selection)
        return views.hyperparameters_view(chosen, "only" in (only or ())) if chosen else views.select_hint()

    @app.callback(
        Output("best-area", "children"),
        Input("selection", "data"),
        Input("tabs", "value"),
        Input("maximise", "value"),
        Input("theme", "data"),
    )
    def render_best(selection, tab, maximised, theme):
        if tab != "best" or theme_switched(theme):
            return no_update
        runs, chosen = selected_runs(selection)
        if not chosen:
            return views.select_hint()
        return views.best_view(chosen, chosen_names(maximised, metric_keys(chosen)), views.run_colors(runs),
                               theme_name(theme))

    @app.callback(
        Output("summary-area", "children"),
        Input("selection", "data"),
        Input("tabs", "value"),
        Input("live-tick", "n_intervals"),
        State("maximise", "value"),
    )
    def render_summary(selection, tab, _tick, maximised):
        if tab != "summary":
            return no_update
        runs, chosen = selected_runs(selection)
        if not chosen:
            return views.select_hint()
        return views.summary_view(chosen, chosen_names(maximised, metric_keys(chosen)), views.run_colors(runs))

    @app.callback(
        Output("parallel-area", "children"),
        Input("selection", "data"),
        Input("tabs", "value"),
        Input("parallel-metric", "value"),
        Input("maximise", "value"),
        Input("theme", "data"),
    )
    def render_parallel(selection, tab, metric, maximised, theme):
        if tab != "parallel" or theme_switched(theme):
            return no_update
        _, chosen = selected_runs(selection)
        if not chosen:
            return views.select_hint()
        keys = metric_keys(chosen)
        metric = chosen_name(metric, keys)
        return views.parallel_view(chosen, metric, chosen_names(maximised, keys), theme_name(theme))

    @app.callback(
        Output("artifacts-area", "children"),
        Input("selection", "data"),
        Input("tabs", "value"),
    )
    def render_artifacts(selection, tab):
        if tab != "artifacts":
            return no_update
        _, chosen = selected_runs(selection)
        return views.artifacts_view(data, chosen) if chosen else views.select_hint()

    @app.callback(
        Output({"type": "metric-graph", "key": ALL}, "extendData"),
        Output("drawn", "data", allow_duplicate=True),
        Input("live-tick", "n_intervals"),
        State({"type": "metric-graph", "key": ALL}, "id"),
        State("drawn", "data"),
        State("tabs", "value"),
        State("smoothing", "value"),
        State("x-mode", "value"),
        prevent_initial_call=True,
    )
    def extend_live(_tick, graph_ids, drawn, tab, weight, x_mode):
        if tab != "metrics" or not graph_ids or not drawn:
            return [no_update] * len(graph_ids), no_update
        try:
            runs = {run.run_id: run for run in data.runs()}
        except StoreUnavailable:
            return [no_update] * len(graph_ids), no_update
        if outgrown(runs, drawn, data.max_points):  # `render_metrics` redraws instead
            return [no_update] * len(graph_ids), no_update
        extends, changed = [], False
        for graph_id in graph_ids:
            key = graph_id["key"]
            update = new_points(data, runs, key, drawn.get(key, []), float(weight or 0), x_mode)
            extends.append(update if update else no_update)
            changed = changed or bool(update)
        return extends, drawn if changed else no_update


def outgrown(runs: dict[str, Any], drawn: dict[str, list[dict[str, Any]]] | None, max_points: int) -> bool:
    """Whether a live curve has more than doubled since it was drawn, and past ``max_points``.

    Extending keeps the bucket size chosen at the first draw, so a curve drawn early in a
    long run would grow without bound; redrawing then downsamples it again.
    """
    for key, metas in (drawn or {}).items():
        for meta in metas:
            run = runs.get(meta["run"]) if meta["kind"] == "raw" else None
            summary = run.metrics.get(key) if run else None
            if summary and summary.get("count", 0) > 2 * max(meta["drawn_count"], max_points):
                return True
    return False


def new_points(
    data: DashboardData, runs: dict[str, Any], key: str, metas: list[dict[str, Any]], weight: float, x_mode: str
) -> list[Any] | None:
    """``extendData`` for one chart (points flushed since it was drawn); updates ``metas``."""
    xs: list[list[float]] = []
    ys: list[list[float]] = []
    indices: list[int] = []
    position = 0
    while position < len(metas):
        meta = metas[position]
        smoothed = position + 1 < len(metas) and metas[position + 1]["kind"] == "smoothed"
        if meta["kind"] == "fixed":
            position += 1
            continue
        run = runs.get(meta["run"])
        summary = run.metrics.get(key) if run else None
        if summary and summary.get("count", 0) > meta["count"]:
            steps, values, times = data.points_after(meta["run"], key, meta["last_step"] if meta["count"] else None)
            if steps.size:
                (fresh,) = draw(steps, values, times, meta["bucket"])
                xs.append(plain_list(x_values(fresh.steps, fresh.times, x_mode, meta["start"])))
                ys.append(plain_list(fresh.values))
                indices.append(position)
                meta["count"] += int(steps.size)
                meta["last_step"] = int(steps[-1])
                if smoothed:
                    follow = metas[position + 1]
                    state = EmaState(*follow["ema"])
                    values_smoothed, state = smooth(fresh.bucket_means, fresh.bucket_counts, weight, state)
                    xs.append(plain_list(x_values(fresh.bucket_steps, fresh.bucket_times, x_mode, meta["start"])))
                    ys.append(plain_list(values_smoothed))
                    indices.append(position + 1)
                    follow.update(count=meta["count"], last_step=meta["last_step"],
                                  ema=[state.accumulator, state.seen])
        position += 2 if smoothed else 1
    if not indices:
        return None
    return [{"x": xs, "y": ys}, indices]

