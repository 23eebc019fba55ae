"""Callbacks: run filtering and selection, tab rendering, and live updates.

Each tab renders only while it is the active one. A live tick asks one small callback
(``check_runs``), which moves ``runs-version`` only when a run changed
(``DashboardData.snapshot``); the run table and the tabs follow that, so a tick with nothing
changed is one request answered 204 and nothing on the page renders again. The
live updater sends only the points flushed since the charts were drawn, through ``extendData``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from dash import ALL, MATCH, ClientsideFunction, Dash, Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from neural_dsl_tracking.dashboard.data import DashboardData, RunSnapshot, StoreUnavailable, draw
from neural_dsl_tracking.dashboard.figures import plain_list, x_values
from neural_dsl_tracking.dashboard.lineage import relatives
from neural_dsl_tracking.dashboard.layout import chosen_name, chosen_names, metric_keys, seen_table, text_options
from neural_dsl_tracking.dashboard.run_table import TableQuery, page_of, search_query, shown_runs, table_view
from neural_dsl_tracking.dashboard.smoothing import EmaState, smooth
from neural_dsl_tracking.dashboard import views
from neural_dsl_tracking.dashboard.zoom import zoom_span
from neural_dsl_tracking.tracking.grouping import AGGREGATES, aggregate_for, group_keys
from neural_dsl_tracking.tracking.query import QueryError


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
        Output("runs-version", "data"),
        Input("live-tick", "n_intervals"),
        State("runs-version", "data"),
        prevent_initial_call=True,
    )
    def check_runs(_tick, version):
        """On a live tick, the snapshot's version when a run changed since the page heard last;
        otherwise nothing (204), and nothing on the page renders."""
        try:
            current = data.snapshot().version
        except StoreUnavailable:
            raise PreventUpdate from None
        if current == version:
            raise PreventUpdate
        return current

    @app.callback(
        Output("run-table", "data"),
        Output("run-table", "tooltip_data"),
        Output("run-table", "selected_rows"),
        Output("run-table", "page_current"),
        Output("run-table", "page_count"),
        Output("selection", "data"),
        Output("run-count", "children"),
        Output("live-tick", "interval"),
        Output("table-seen", "data"),
        Output("query-error", "children"),
        Output("run-table", "active_cell"),
        Input("filter-experiment", "value"),
        Input("filter-status", "value"),
        Input("filter-tag", "value"),
        Input("filter-text", "value"),
        Input("main-metric", "value"),
        Input("maximise", "value"),
        Input("run-table", "selected_row_ids"),
        Input("run-table", "page_current"),
        Input("run-table", "sort_by"),
        Input("select-shown", "n_clicks"),
        Input("clear-selection", "n_clicks"),
        Input("sweep-trials", "value"),
        Input("run-table", "active_cell"),
        Input("runs-version", "data"),
        State("selection", "data"),
        State("table-seen", "data"),
    )
    def update_table(experiments, statuses, tags, text, main, maximised, selected_ids, page, sort_by, _shown,
                     _clear, trial_runs, cell, _version, selection, seen):
        """One page of the run table for the filters, sort and page; only what differs from
        what the browser holds (``table-seen``) is sent, and nothing on a tick when no run changed.
        A click on a lineage cell adds the runs it names to the selection (and lets go of the
        cell, so the next click on it counts again)."""
        snapshot = data.snapshot()
        seen = seen or {}
        if ctx.triggered_id == "runs-version" and seen.get("version") == snapshot.version:
            raise PreventUpdate
        runs = snapshot.runs
        changed = set(ctx.triggered_prop_ids)
        found, error = searched_ids(data, text or "")
        query = replace(table_query(runs, experiments, statuses, tags, "" if error else text, main, maximised, sort_by,
                                    0 if changed & PAGE_RESETS else page), ids=found)
        shown = shown_runs(snapshot, query, data.search_text)
        # the page the table shows once this answer lands: ticks there (or the swap of rows
        # itself, which ticks the page's selected runs) change only the runs of this page
        on_page = [run.run_id for run in page_of(shown, query)[2]]
        echo = cleared_by_table(changed, selected_ids, page, [list(item) for item in query.sort_by], seen)
        new_selection = list(selection or []) if echo else updated_selection(
            list(selection or []), changed, shown, on_page, selected_ids, trial_runs, clicked_relatives(cell, snapshot))
        view = table_view(snapshot, shown, query, new_selection)
        live = any(run.status == "running" for run in runs)
        now = {**seen_table(view, snapshot.version, live), "turned": bool(changed & TURNS)}
        content = seen.get("key") != view["key"]
        ticks = content or echo or seen.get("selected_rows") != view["selected_rows"]
        return (view["data"] if content else no_update,
                view["tooltip_data"] if content else no_update,
                view["selected_rows"] if ticks else no_update,
                view["page_current"] if view["page_current"] != page else no_update,
                _changed(seen, now, "page_count"),
                new_selection if new_selection != (selection or []) else no_update,
                _changed(seen, now, "count"),
                _changed(seen, now, "interval"),
                now if now != seen else no_update,
                error,
                None if "run-table.active_cell" in changed and cell else no_update)

    @app.callback(
        Output("metrics-area", "children"),
        Output("drawn", "data"),
        Input("selection", "data"),
        Input("tabs", "value"),
        Input("smoothing", "value"),
        Input("x-mode", "value"),
        Input("log-y", "value"),
        Input("metric-filter", "value"),
        Input("runs-version", "data"),
        Input("theme", "data"),
        Input("group-by", "value"),
        Input("group-center", "value"),
        Input("group-band", "value"),
        Input("join-forks", "value"),
        State("drawn", "data"),
    )
    def render_metrics(selection, tab, weight, x_mode, log_y, pattern, _version, theme, group_by, center, band,
                       join, drawn):
        if tab != "metrics" or theme_switched(theme):
            return no_update, no_update
        runs, chosen = selected_runs(selection)
        if ctx.triggered_id == "runs-version":
            # new points are extended by `extend_live`; redraw only when a new metric appeared,
            # a live curve outgrew its downsampling or a grouped chart's runs logged more
            keys = set(views.chart_keys(chosen, pattern or "")[0])
            by_id = {run.run_id: run for run in chosen}
            if not chosen or (keys == set(drawn or {}) and not outgrown(by_id, drawn, data.max_points)
                              and not regrown(by_id, drawn)):
                return no_update, no_update
        if not chosen:
            return views.select_hint(), {}
        return views.metrics_view(data, chosen, views.run_colors(runs), float(weight or 0), x_mode,
                                  "log" in (log_y or ()), pattern or "", theme_name(theme),
                                  grouping(chosen, group_by, center, band), join="join" in (join or ()))

    @app.callback(
        Output("group-by", "options"),
        Input("selection", "data"),
        Input("tabs", "value"),  # on loading, "selection" alone may not fire (the table leaves it as it is)
    )
    def group_options(selection, _tab):
        """The keys the selected runs can be grouped by."""
        return text_options(group_keys(selected_runs(selection)[1]))

    @app.callback(
        Output({"type": "metric-graph", "key": MATCH}, "figure"),
        Input({"type": "metric-graph", "key": MATCH}, "relayoutData"),
        State({"type": "metric-graph", "key": MATCH}, "id"),
        State("selection", "data"),
        State("smoothing", "value"),
        State("x-mode", "value"),
        State("log-y", "value"),
        State("theme", "data"),
        State("group-by", "value"),
        State("group-center", "value"),
        State("group-band", "value"),
        State("join-forks", "value"),
        prevent_initial_call=True,
    )
    def zoom(relayout, graph_id, selection, weight, x_mode, log_y, theme, group_by, center, band, join):
        """A zoomed chart drawn again from the store's points in its x-range only (steps, or
        times on the time axes; and the overview once the zoom is reset); other layout changes
        change nothing."""
        span = zoom_span(relayout, "step" if group_by else x_mode)  # a grouped chart's axis is steps
        if span is False:
            raise PreventUpdate
        runs, chosen = selected_runs(selection)
        figure, _ = views.metric_chart(data, graph_id["key"], chosen, views.run_colors(runs), float(weight or 0),
                                       x_mode, "log" in (log_y or ()), theme_name(theme),
                                       grouping(chosen, group_by, center, band), span, join="join" in (join or ()))
        return figure

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
        Input("group-by", "value"),
        Input("group-aggregate", "value"),
        Input("metric-aggregates", "data"),
    )
    def render_best(selection, tab, maximised, theme, group_by, every, per_metric):
        if tab != "best" or theme_switched(theme):
            return no_update
        runs, chosen = selected_runs(selection)
        if not chosen:
            return views.select_hint()
        if group_by:
            keys = metric_keys(chosen)
            return views.grouped_best_view(data, chosen, grouping(chosen, group_by, None, None),
                                           chosen_aggregates(keys, every, per_metric), chosen_names(maximised, keys))
        return views.best_view(chosen, chosen_names(maximised, metric_keys(chosen)), views.run_colors(runs),
                               theme_name(theme))

    @app.callback(
        Output("summary-area", "children"),
        Output("summary-drawn", "data"),
        Input("selection", "data"),
        Input("tabs", "value"),
        Input("runs-version", "data"),
        Input("group-by", "value"),
        Input("group-aggregate", "value"),
        Input("metric-aggregates", "data"),
        State("maximise", "value"),
        State("summary-drawn", "data"),
    )
    def render_summary(selection, tab, _version, group_by, every, per_metric, maximised, drawn_version):
        snapshot = data.snapshot()
        if tab != "summary" or ctx.triggered_id == "runs-version" and not snapshot.changed_since(selection or (),
                                                                                              drawn_version):
            return no_update, no_update  # a tick redraws the cards only when one of their runs changed
        runs, chosen = selected_runs(selection)
        if not chosen:
            return views.select_hint(), snapshot.version
        if group_by:
            chosen_grouping = grouping(chosen, group_by, None, None)
            aggregates = chosen_aggregates(metric_keys(chosen), every, per_metric)
            return views.grouped_summary_view(data, chosen, chosen_grouping, aggregates), snapshot.version
        return (views.summary_view(chosen, chosen_names(maximised, metric_keys(chosen)), views.run_colors(runs),
                                   snapshot), snapshot.version)

    @app.callback(
        Output("metric-aggregates", "data"),
        Input({"type": "metric-aggregate", "key": ALL}, "value"),
        Input("group-aggregate", "value"),
        State("metric-aggregates", "data"),
        prevent_initial_call=True,
    )
    def choose_aggregates(_values, every, per_metric):
        """The aggregates chosen per metric: a header dropdown sets its metric's; a choice for
        every metric (``group-aggregate``) clears them."""
        per_metric = per_metric or {}
        if ctx.triggered_id == "group-aggregate":
            if not per_metric:
                raise PreventUpdate
            return {}
        if not isinstance(ctx.triggered_id, dict):  # the dropdowns drawn, none changed
            raise PreventUpdate
        key, value = ctx.triggered_id["key"], ctx.triggered[0]["value"]
        if value not in AGGREGATES or value == aggregate_for(key, chosen_aggregates([key], every, per_metric)):
            raise PreventUpdate
        return {**per_metric, key: value}

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
        Input("runs-version", "data"),
        State({"type": "metric-graph", "key": ALL}, "id"),
        State("drawn", "data"),
        State("tabs", "value"),
        State("smoothing", "value"),
        State("x-mode", "value"),
        prevent_initial_call=True,
    )
    def extend_live(_version, graph_ids, drawn, tab, weight, x_mode):
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


def chosen_aggregates(keys: Sequence[str], every: str | None, per_metric: dict[str, str] | None
                      ) -> dict[str, str]:
    """Each metric's aggregate from the controls: the one chosen for it in the grouped table's
    header, else the one chosen for every metric; absent: by its name (``aggregate_for``)."""
    base = dict.fromkeys(keys, every) if every in AGGREGATES else {}
    return {**base, **{key: how for key, how in (per_metric or {}).items() if how in AGGREGATES}}


def grouping(runs: Sequence[Any], group_by: str | None, center: str | None, band: str | None
             ) -> views.Grouping | None:
    """The Metrics tab's grouping from its controls (None: a line per run)."""
    if not group_by:
        return None
    return views.Grouping(chosen_name(group_by, group_keys(runs)), center or "mean", band or "minmax")


PAGE_RESETS = {"filter-experiment.value", "filter-status.value", "filter-tag.value", "filter-text.value",
               "run-table.sort_by"}  # a change of these shows the first page


TURNS = {"run-table.page_current", "run-table.sort_by"}  # the table clears its ticks after these


def cleared_by_table(changed: set[str], ticked: Sequence[str] | None, page: int | None, sort: list[list[str]],
                     seen: dict[str, Any]) -> bool:
    """Whether an empty set of ticked rows is the table clearing them itself after a page turn
    or a new sort (DataTable does so with custom paging and sorting), not the user unticking
    the page's last row: reported before the answer to the turn arrived (its page or sort is
    not the one the browser was sent yet), or first thing after it."""
    if changed != {"run-table.selected_row_ids"} or ticked:
        return False
    return (page or 0) != seen.get("page_current") or sort != seen.get("sort") or bool(seen.get("turned"))


def searched_ids(data: DashboardData, text: str) -> tuple[frozenset[str] | None, str]:
    """The ids of the runs the search box's query matches (None for plain words, searched in
    memory), and the message of a query that does not parse ("" when it does); the table then
    leaves the search aside."""
    try:
        query = search_query(text)
    except QueryError as problem:
        return None, str(problem)
    return (None if query is None else data.query_ids(query)), ""


def table_query(runs: Sequence[Any], experiments, statuses, tags, text, main, maximised, sort_by, page
                ) -> TableQuery:
    """The run table's query from the page's controls (dropdown values mapped back to names)."""
    keys = metric_keys(runs)
    main = chosen_name(main, keys)
    return TableQuery(
        experiments=tuple(chosen_names(experiments, {run.experiment for run in runs})),
        statuses=tuple(statuses or ()),
        tags=tuple(chosen_names(tags, {tag for run in runs for tag in run.tags})),
        text=text or "",
        main=main,
        direction="max" if main in chosen_names(maximised, keys) else "min",
        sort_by=tuple((item["column_id"], item["direction"]) for item in sort_by or ()),
        page=page or 0,
    )


def updated_selection(previous: list[str], changed: set[str], shown: Sequence[Any], on_page: Sequence[str],
                      ticked: Sequence[str] | None, trial_runs: Sequence[str] | None = None,
                      relatives: Sequence[str] = ()) -> list[str]:
    """The selected run ids after ``changed``: *Select shown* adds every run the filters leave
    (on every page), *Clear selection* empties it, ticking rows changes only the runs of
    the page shown (``on_page``); the others stay selected; trials picked on the Sweeps tab
    make their runs (``trial_runs``) the selection; a click on a lineage cell adds the runs
    it names (``relatives``)."""
    if "sweep-trials.value" in changed and trial_runs:
        return list(dict.fromkeys(trial_runs))
    if "run-table.active_cell" in changed and relatives:
        return list(dict.fromkeys([*previous, *relatives]))
    if "select-shown.n_clicks" in changed:
        chosen = set(previous)
        return previous + [run.run_id for run in shown if run.run_id not in chosen]
    if "clear-selection.n_clicks" in changed:
        return []
    if changed == {"run-table.selected_row_ids"}:  # a tick (with a page turn, the table re-derives it)
        page, picked = set(on_page), set(ticked or ())
        kept = [run_id for run_id in previous if run_id not in page or run_id in picked]
        return kept + [run_id for run_id in ticked or () if run_id not in kept]
    return previous


def clicked_relatives(cell: dict[str, Any] | None, family: RunSnapshot) -> list[str]:
    """The runs named by the lineage cell clicked (``cell``: the table's ``active_cell``): the
    run's parent and forks; none for a click elsewhere."""
    if not cell or cell.get("column_id") != "lineage" or not cell.get("row_id"):
        return []
    return relatives(str(cell["row_id"]), family)


def _changed(seen: dict[str, Any], now: dict[str, Any], name: str) -> Any:
    """``now[name]`` when the browser does not hold it yet, else ``no_update``."""
    return now[name] if seen.get(name) != now[name] else no_update


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


def regrown(runs: dict[str, Any], drawn: dict[str, list[dict[str, Any]]] | None) -> bool:
    """Whether a run of a grouped chart has logged points since the chart was drawn (a
    group's line and band are computed again from every point, not extended)."""
    for key, metas in (drawn or {}).items():
        for meta in metas:
            for run_id, count in meta.get("counts", {}).items():
                run = runs.get(run_id)
                if run is not None and run.metrics.get(key, {}).get("count", 0) != count:
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

