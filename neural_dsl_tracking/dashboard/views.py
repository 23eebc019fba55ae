"""The content of each tab for a list of selected runs (Dash components, text only)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from dash import dcc, html

from neural_dsl_tracking.dashboard import lineage
from neural_dsl_tracking.dashboard.data import DashboardData, DrawnSeries, RunSnapshot
from neural_dsl_tracking.dashboard.figures import (
    TITLE_CHARS,
    Axis,
    Bar,
    CurveData,
    GroupTrace,
    best_figure,
    color_for,
    fork_markers,
    group_figure,
    metric_figure,
    parallel_figure,
    x_values,
)
from neural_dsl_tracking.dashboard.zoom import Span, group_histories, visible_series
from neural_dsl_tracking.tracking.grouping import (
    AGGREGATES,
    aggregate_for,
    group_curve,
    group_runs,
    grouped_table,
    thinned,
)
from neural_dsl_tracking.tracking.system_metrics import is_system_metric
from neural_dsl_tracking.dashboard.smoothing import EmaState, smooth
from neural_dsl_tracking.humanize import duration as format_duration, file_size
from neural_dsl_tracking.dashboard.tables import (
    MISSING,
    best_value,
    counted,
    flatten,
    format_time,
    format_value,
    hyperparameter_rows,
    short_text,
    unique_labels,
)

DIFFERS_STYLE = {"backgroundColor": "var(--differs-bg)"}  # colours of the theme (dashboard.css)
BEST_STYLE = {"fontWeight": "bold", "backgroundColor": "var(--best-bg)"}
DIRECTION_ARROWS = {"max": " ↑ max", "min": " ↓ min"}
GRAPH_CONFIG = {"displaylogo": False, "responsive": True}
MAX_CHARTS = 24  # Plotly takes ~50 ms per chart: 300 metrics would block the page for seconds


def select_hint() -> html.P:
    """Shown in a tab when no run is selected."""
    return html.P("Select one or more runs in the table above.", className="hint")


def run_colors(all_runs: Sequence[Any]) -> dict[str, str]:
    """A colour per run, stable as new runs arrive (by start order)."""
    ordered = sorted(all_runs, key=lambda run: (run.start_time, run.run_id))
    return {run.run_id: color_for(position) for position, run in enumerate(ordered)}


def run_labels(runs: Sequence[Any]) -> dict[str, str]:
    """Legend and column labels: run names, disambiguated by id when they collide."""
    return unique_labels((run.run_id, run.run_name) for run in runs)


def smoothed_curve(drawn: DrawnSeries, weight: float) -> tuple[Any, EmaState]:
    """The smoothed values at each bucket end, and where the average stopped."""
    return smooth(drawn.bucket_means, drawn.bucket_counts, weight)


def trace_meta(run: Any, key: str, drawn: DrawnSeries, kind: str, ema: EmaState | None = None,
               start: float | None = None) -> dict[str, Any]:
    """What the live updater must know about one drawn trace to extend it later (``start``:
    the time its relative-time x counts from, by default the run's start)."""
    meta = {"run": run.run_id, "kind": kind, "count": drawn.count, "drawn_count": drawn.count,
            "last_step": drawn.last_step, "bucket": drawn.bucket_size,
            "start": run.start_time.timestamp() if start is None else start}
    if ema is not None:
        meta["ema"] = [ema.accumulator, ema.seen]
    return meta


def chart_keys(runs: Sequence[Any], pattern: str = "") -> tuple[list[str], int]:
    """The metrics charted: those whose name contains ``pattern`` (any case), at most
    ``MAX_CHARTS`` of them, sorted with the system metrics (``system/*``) last; and how many
    match in all."""
    needle = pattern.strip().lower()
    keys = sorted({key for run in runs for key in run.metrics if needle in key.lower()},
                  key=lambda key: (is_system_metric(key), key))
    return keys[:MAX_CHARTS], len(keys)


@dataclass(frozen=True)
class Grouping:
    """The Metrics tab's grouping: the group key, the line (mean or median) and band (minmax or std)."""

    key: str
    center: str = "mean"
    band: str = "minmax"


def metrics_view(
    data: DashboardData, runs: Sequence[Any], colors: dict[str, str], weight: float, x_mode: str, log_y: bool,
    pattern: str = "", theme: str = "light", grouping: Grouping | None = None, join: bool = False,
) -> tuple[list[Any], dict[str, list[dict[str, Any]]]]:
    """One graph per metric key (see ``chart_keys``), and the trace bookkeeping for live updates;
    with ``grouping``, a line and band per group of runs instead of a line per run; with
    ``join``, a fork's line begins with its ancestors' points (``metric_chart``)."""
    keys, matching = chart_keys(runs, pattern)
    graphs: list[Any] = []
    drawn_meta: dict[str, list[dict[str, Any]]] = {}
    charted = set(keys)
    if grouping is None:
        data.prefetch((run.run_id, key, summary.get("count", 0)) for run in runs
                      for key, summary in run.metrics.items() if key in charted)
    for key in keys:
        figure, drawn_meta[key] = metric_chart(data, key, runs, colors, weight, x_mode, log_y, theme, grouping,
                                               join=join)
        graph = dcc.Graph(id={"type": "metric-graph", "key": key}, className="metric-graph",
                          figure=figure, config=GRAPH_CONFIG)
        graphs.append(html.Div(graph, className="metric-graph-box",  # a cut title: the full name on hover
                               title=key if len(key) > TITLE_CHARS else None))
    graphs = system_section(keys, graphs)
    if matching > len(keys):
        graphs.insert(0, html.P(f"Showing {len(keys)} of {matching} metrics; filter by name to see the others.",
                                className="hint", id="metrics-capped"))
    if not graphs:
        text = f"No metric name contains {pattern.strip()!r}." if pattern.strip() else \
            "The selected runs have logged no metrics yet."
        graphs = [html.P(text, className="hint")]
    return graphs, drawn_meta


def system_section(keys: Sequence[str], graphs: list[Any]) -> list[Any]:
    """``graphs`` (one per key of ``keys``) with those of the system metrics in their own
    section, after the run's metrics."""
    first = next((index for index, key in enumerate(keys) if is_system_metric(key)), len(keys))
    if first == len(keys):
        return graphs
    section = html.Div([html.H4("System", className="metric-section-title"), *graphs[first:]],
                       id="system-metrics", className="metric-section")
    return [*graphs[:first], section]


def metric_chart(
    data: DashboardData, key: str, runs: Sequence[Any], colors: dict[str, str], weight: float, x_mode: str,
    log_y: bool, theme: str, grouping: Grouping | None = None, span: Span | None = None, join: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The figure of metric ``key`` (only the points in ``span``, an x-range on the ``x_mode``
    axis or in steps when grouped, bucketed again, when given) and its traces' bookkeeping for
    live updates."""
    charted = [run for run in runs if key in run.metrics]
    points = data.points_per_series(len(charted))
    if grouping is not None:
        return grouped_figure(data, key, charted, grouping, points, log_y, theme, span)
    labels = run_labels(runs)
    zoomed = None if span is None else visible_series(data, charted, key, span, points, x_mode)
    # with ``join`` (no grouping), a forked run's line begins with its ancestors' points up to
    # each fork point, a marker at each (``lineage.joined_curve``); on the relative-time axis
    # its time is shifted to continue from the fork point, so a zoom there magnifies its overview
    family = data.snapshot() if join else None
    segment = lineage.zoomed_segments(data, key, span, points, x_mode) if span and x_mode != "relative" else None
    curves, metas, forks = [], [], []
    for run in charted:
        joining = family is not None and run.parent is not None
        if zoomed is None or joining and x_mode == "relative":
            drawn = data.series(run.run_id, key, run.metrics[key].get("count", 0), points)
        elif run.run_id in zoomed:
            drawn = zoomed[run.run_id]
        elif joining:  # a zoom before its own first step may still hold its ancestors' points
            drawn = lineage.until(lineage.cached(data, run, key, points), -math.inf)
        else:
            continue
        joined = lineage.joined_curve(data, run, key, drawn, family, x_mode, points, segment) if joining else None
        start = run.start_time.timestamp() if joined is None else joined.start
        drawn = drawn if joined is None else joined.drawn
        if not drawn.steps.size:
            continue
        x = x_values(drawn.steps, drawn.times, x_mode, start) if joined is None else joined.x
        live = run.status == "running"
        curve = CurveData(run.run_id, labels[run.run_id], colors[run.run_id], x, drawn.values, extendable=live)
        if weight > 0:
            smoothed, ema = smoothed_curve(drawn, weight)
            bucket_x = x_values(drawn.bucket_steps, drawn.bucket_times, x_mode, start) if joined is None \
                else joined.bucket_x
            curve = replace(curve, smooth_x=bucket_x, smooth_y=smoothed)
        curves.append(curve)
        if joined is not None and joined.forks:
            forks.append(fork_markers(run.run_id, colors[run.run_id],
                                      [(fork.x, fork.y, fork.text) for fork in joined.forks]))
        if live:
            metas.append(trace_meta(run, key, drawn, "raw", start=start))
            if weight > 0:
                metas.append(trace_meta(run, key, drawn, "smoothed", ema, start=start))
        else:
            metas.extend({"run": run.run_id, "kind": "fixed"} for _ in range(2 if weight > 0 else 1))
    figure = metric_figure(key, curves, x_mode, log_y, theme)
    figure["data"].extend(forks)  # after every curve: the live updater extends the curves by position
    metas.extend({"run": marker["meta"]["run_id"], "kind": "fixed"} for marker in forks)
    if span is not None:
        figure["layout"]["xaxis"].update(range=list(span), autorange=False)
    return figure, metas


def grouped_figure(data: DashboardData, key: str, runs: Sequence[Any], grouping: Grouping, points: int,
                   log_y: bool, theme: str, span: Span | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A line and band per group of ``runs`` for metric ``key``, from every point (in ``span``)."""
    series = group_histories(data, [run.run_id for run in runs], key, span)
    traces = []
    for position, group in enumerate(group_runs(runs, grouping.key)):
        members = [series[run_id] for run_id in group.run_ids if run_id in series]
        if members:
            curve = thinned(group_curve(members, grouping.center, grouping.band), points)
            traces.append(GroupTrace(group.label, color_for(position), len(members), curve.steps, curve.center,
                                     curve.lower, curve.upper))
    figure = group_figure(key, traces, grouping.center, grouping.band, log_y, theme)
    if span is not None:
        figure["layout"]["xaxis"].update(range=list(span), autorange=False)
    counts = {run.run_id: run.metrics[key].get("count", 0) for run in runs}  # a tick redraws when one grows
    return figure, [{"run": group.label, "kind": "fixed"} for group in traces for _ in range(3)] + \
        [{"run": None, "kind": "group-counts", "counts": counts}]


def grouped_rows(data: DashboardData, runs: Sequence[Any], grouping: Grouping, aggregates: Mapping[str, str]
                 ) -> tuple[list[str], list[dict[str, Any]]]:
    """The metrics of ``runs`` and a row per group (``grouping.grouped_table``): each metric's
    statistics over the group of its runs' aggregate (``aggregate_for(metric, aggregates)``)."""
    keys = sorted({key for run in runs for key in run.metrics})
    read = data.manager().get_metric_histories([run.run_id for run in runs], keys)
    histories = {run.run_id: {key: read[(run.run_id, key)] for key in keys if (run.run_id, key) in read}
                 for run in runs}
    return keys, grouped_table(group_runs(runs, grouping.key), histories, keys, aggregates)


def spread_text(stats: dict[str, Any]) -> str:
    """A group's ``mean ± std`` of one metric (``MISSING`` when no run has it)."""
    if stats["mean"] is None:
        return MISSING
    return f"{format_value(stats['mean'])} ± {format_value(stats['std'])}"


def grouped_best_view(data: DashboardData, runs: Sequence[Any], grouping: Grouping, aggregates: Mapping[str, str],
                      maximised: Sequence[str]) -> html.Div:
    """A row per group: its runs and, per metric, the mean ± std of its runs' aggregate
    (``aggregate_for(metric, aggregates)``, in the header, with a dropdown choosing it; min to
    max on hover); the best group's mean per metric in bold."""
    keys, rows = grouped_rows(data, runs, grouping, aggregates)
    directions = {key: "max" if key in maximised else "min" for key in keys}
    header = html.Tr([html.Th("group"), html.Th("runs")] + [
        html.Th(**_framed(short_text(key), after=f" ({aggregate_for(key, aggregates)})"
                                                 f"{DIRECTION_ARROWS[directions[key]]}"))
        for key in keys])
    winners = {key: _winner([row["metrics"][key]["mean"] for row in rows], directions[key]) for key in keys}
    body = []
    for position, row in enumerate(rows):
        cells = [html.Td(**short_text(row["group"])), html.Td(str(len(row["runs"])))]
        for key in keys:
            stats, best = row["metrics"][key], winners[key] == position
            cells.append(html.Td(spread_text(stats), className="best-cell" if best else None,
                                 style=BEST_STYLE if best else None,
                                 title=None if stats["mean"] is None else
                                 f"{format_value(stats['min'])} to {format_value(stats['max'])}, {stats['n']} runs"))
        body.append(html.Tr(cells))
    return scrolling(html.Table(className="data-table", id="grouped-table",
                                children=[html.Thead([header, aggregate_choices(keys, aggregates)]),
                                          html.Tbody(body)]))


def aggregate_choices(keys: Sequence[str], aggregates: Mapping[str, str]) -> html.Tr:
    """A header row with a dropdown per metric column choosing how each run's metric counts
    (``metric-aggregate`` of the metric; the callbacks keep the choices in ``metric-aggregates``)."""
    return html.Tr(className="aggregate-choices", children=[html.Th("each run's", colSpan=2)] + [
        html.Th(dcc.Dropdown(id={"type": "metric-aggregate", "key": key}, options=list(AGGREGATES),
                             value=aggregate_for(key, aggregates), clearable=False, searchable=False,
                             style={"minWidth": "90px"}), **{"data-metric": key})
        for key in keys])


def grouped_summary_view(data: DashboardData, runs: Sequence[Any], grouping: Grouping,
                         aggregates: Mapping[str, str]) -> html.Div:
    """A card per group: its runs (by status) and each metric's mean ± std of its runs'
    aggregate (``aggregate_for(metric, aggregates)``)."""
    keys, rows = grouped_rows(data, runs, grouping, aggregates)
    status = {run.run_id: run.status for run in runs}
    cards = []
    for position, row in enumerate(rows):
        statuses = Counter(status[run_id] for run_id in row["runs"])
        cards.append(html.Div(className="run-card group-card", style={"borderTop": f"4px solid {color_for(position)}"},
                              children=[
            html.H3(**short_text(row["group"])),
            html.P(counted(len(row["runs"]), "run") + ": "
                   + ", ".join(f"{n} {name}" for name, n in sorted(statuses.items()))),
            html.Ul([html.Li(**_framed(short_text(key), after=f" ({row['metrics'][key]['aggregate']}): "
                                                              f"{spread_text(row['metrics'][key])}"))
                     for key in keys] or [html.Li("no metrics")], className="bests"),
        ]))
    return html.Div(className="cards", children=cards)


def scrolling(table: html.Table) -> html.Div:
    """A wide table in a box that scrolls sideways, its first column pinned."""
    return html.Div(table, className="table-scroll")


def hyperparameters_view(runs: Sequence[Any], only_differences: bool) -> html.Div:
    """Runs side by side; rows whose values differ are highlighted."""
    labels = run_labels(runs)
    rows = hyperparameter_rows([run.hyperparameters for run in runs], only_differences)
    header = html.Tr([html.Th("parameter")] + [html.Th(**short_text(labels[run.run_id])) for run in runs])
    body = [
        html.Tr(
            [html.Td(**short_text(row.name), className="param-name")] + [html.Td(**short_text(text))
                                                                         for text in row.values],
            className="differs" if row.differs else "same",
            style=DIFFERS_STYLE if row.differs else None,
        )
        for row in rows
    ]
    if not body:
        body = [html.Tr(html.Td("No hyperparameters differ." if only_differences else "No hyperparameters logged.",
                                colSpan=len(runs) + 1))]
    return scrolling(html.Table(className="data-table", id="hyperparameters-table",
                                children=[html.Thead(header), html.Tbody(body)]))


@dataclass(frozen=True)
class Bests:
    """Each metric's direction (``"max"`` or ``"min"``), best value per run and the position of
    the best run (``None`` when no run has a value)."""

    directions: dict[str, str]
    values: dict[str, list[float | None]]
    winners: dict[str, int | None]


def best_values(runs: Sequence[Any], maximised: Sequence[str]) -> Bests:
    """The best value of every metric of ``runs``, maximising the ``maximised`` ones."""
    keys = sorted({key for run in runs for key in run.metrics})
    directions = {key: "max" if key in maximised else "min" for key in keys}
    values = {key: [best_value(run.metrics, key, directions[key]) for run in runs] for key in keys}
    return Bests(directions, values, {key: _winner(found, directions[key]) for key, found in values.items()})


def best_view(runs: Sequence[Any], maximised: Sequence[str], colors: dict[str, str] | None = None,
              theme: str = "light") -> html.Div:
    """A bar chart per metric (a bar per run, the best run's marked; at most ``MAX_CHARTS``),
    above a table of the best value per run for each metric, the best run's in bold."""
    bests = best_values(runs, maximised)
    labels = run_labels(runs)
    return html.Div([_best_charts(runs, labels, bests, colors or run_colors(runs), theme),
                     _best_table(runs, labels, bests)])


def _best_table(runs: Sequence[Any], labels: dict[str, str], bests: Bests) -> html.Div:
    header = html.Tr([html.Th("run")] + [html.Th(**_framed(short_text(key), after=DIRECTION_ARROWS[direction]))
                                         for key, direction in bests.directions.items()])
    body = []
    for position, run in enumerate(runs):
        cells = [html.Td(**short_text(labels[run.run_id]))]
        for key, values in bests.values.items():
            winner = bests.winners[key] == position
            cells.append(html.Td(format_value(values[position]), className="best-cell" if winner else None,
                                 style=BEST_STYLE if winner else None))
        body.append(html.Tr(cells))
    return scrolling(html.Table(className="data-table", id="best-table",
                                children=[html.Thead(header), html.Tbody(body)]))


def _best_charts(runs: Sequence[Any], labels: dict[str, str], bests: Bests, colors: dict[str, str],
                 theme: str) -> html.Div:
    """A bar chart per metric, for the first ``MAX_CHARTS`` metrics; a cut name in full on hover."""
    charts: list[Any] = []
    for key in chart_keys(runs)[0]:
        bars = [Bar(run.run_id, labels[run.run_id], colors[run.run_id],
                    value if value is not None and math.isfinite(value) else None, format_value(value))
                for run, value in zip(runs, bests.values[key])]
        figure = best_figure(key, DIRECTION_ARROWS[bests.directions[key]], bars, bests.winners[key], theme)
        graph = dcc.Graph(id={"type": "best-graph", "key": key}, className="best-graph", figure=figure,
                          config=GRAPH_CONFIG)
        charts.append(html.Div(graph, className="best-graph-box", title=key if len(key) > TITLE_CHARS else None))
    if len(bests.values) > len(charts):
        charts.insert(0, html.P(f"Charts of the first {len(charts)} of {len(bests.values)} metrics; "
                                "the table lists them all.", className="hint"))
    return html.Div(charts, id="best-charts")


def _framed(props: dict[str, str], before: str = "", after: str = "") -> dict[str, str]:
    """``short_text`` properties with text before and after the shown (cut) text."""
    return {**props, "children": f"{before}{props['children']}{after}"}


def _winner(values: Sequence[float | None], direction: str) -> int | None:
    present = [(value, position) for position, value in enumerate(values) if value is not None and value == value]
    if not present:
        return None
    return (max(present) if direction == "max" else min(present))[1]


def summary_view(runs: Sequence[Any], maximised: Sequence[str], colors: dict[str, str],
                 family: RunSnapshot | None = None) -> html.Div:
    """A card per run: status, duration, best values, tags, artifact count, and with ``family``
    (the snapshot) its lineage: parent and fork point, forks, resumes (``lineage.lineage_lines``)."""
    labels = run_labels(runs)
    cards = []
    for run in runs:
        bests = [html.Li(**_framed(short_text(key), after=f": {_best_text(run, key, maximised)}"))
                 for key in sorted(run.metrics)]
        cards.append(
            html.Div(
                className="run-card",
                style={"borderTop": f"4px solid {colors[run.run_id]}"},
                children=[
                    html.H3(**short_text(labels[run.run_id])),
                    html.P(**_framed(short_text(run.experiment), after=f" · {run.run_id}"), className="run-id"),
                    html.P(run.status, className=f"status status-{run.status}"),
                    html.P(f"started {format_time(run.start_time)}, duration {format_duration(run.duration)}"),
                    html.Ul(bests or [html.Li("no metrics")], className="bests"),
                    html.P(**_framed(short_text(", ".join(run.tags) or MISSING), before="tags: "), className="tags"),
                    html.P(counted(len(run.artifacts), "artifact"), className="artifact-count"),
                    *lineage_list(run, family),
                ],
            )
        )
    return html.Div(className="cards", children=cards)


def lineage_list(run: Any, family: RunSnapshot | None) -> list[html.Ul]:
    """A Summary card's lineage list (none for a run without lineage, or without ``family``)."""
    lines = lineage.lineage_lines(run, family) if family is not None else []
    return [html.Ul([html.Li(**short_text(line)) for line in lines], className="lineage")] if lines else []


def _best_text(run: Any, key: str, maximised: Sequence[str]) -> str:
    return format_value(best_value(run.metrics, key, "max" if key in maximised else "min"))


def parallel_view(runs: Sequence[Any], metric: str | None, maximised: Sequence[str], theme: str = "light") -> Any:
    """Hyperparameters and one metric, one line per run."""
    flat = [flatten(run.hyperparameters) for run in runs]
    names = sorted({name for params in flat for name in params})
    varying = [name for name in names if len({format_value(params.get(name)) for params in flat}) > 1]
    axes = [Axis(name, [axis_value(params.get(name)) for params in flat]) for name in (varying or names)]
    direction = "max" if metric in maximised else "min"
    metric_values = [best_value(run.metrics, metric, direction) if metric else None for run in runs]
    label = f"{metric} ({direction})" if metric else "metric"
    if metric:
        axes.append(Axis(label, metric_values))
    if not axes:
        return html.P("The selected runs have no hyperparameters or metrics to compare.", className="hint")
    return dcc.Graph(id="parallel-graph", figure=parallel_figure(axes, metric_values, label, theme),
                     config=GRAPH_CONFIG)


def axis_value(value: Any) -> Any:
    """A value on a parallel-coordinates axis: numbers as they are, anything else as text."""
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return format_value(value)


def artifacts_view(data: DashboardData, runs: Sequence[Any]) -> html.Div:
    """Every version of every artifact of the selected runs, with a download link."""
    labels = run_labels(runs)
    header = html.Tr([html.Th(name) for name in
                      ("run", "artifact", "version", "size", "SHA-256", "aliases", "created", "download")])
    body = []
    for run in runs:
        for version in data.artifact_versions(run.run_id):
            href = f"/artifacts/{quote(run.run_id, safe='')}/{version.version}/{quote(version.name, safe='')}"
            body.append(html.Tr(className="artifact-row", children=[
                html.Td(**short_text(labels[run.run_id])),
                html.Td(**short_text(version.name)),
                html.Td(f"v{version.version}"),
                html.Td(file_size(version.size), title=f"{version.size} bytes"),
                html.Td(version.sha256, className="sha"),
                html.Td(**short_text(", ".join(version.aliases))),
                html.Td(format_time(version.created_at)),
                html.Td(html.A("download", href=href, className="download")),
            ]))
    if not body:
        body = [html.Tr(html.Td("The selected runs have no artifacts.", colSpan=8))]
    return scrolling(html.Table(className="data-table", id="artifacts-table",
                                children=[html.Thead(header), html.Tbody(body)]))
