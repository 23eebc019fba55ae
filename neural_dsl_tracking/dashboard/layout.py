"""The page: friendly pages for a missing or empty store, and the dashboard itself.

All user strings (run names, tags, parameters) go into components as children or
properties, which React renders as text; nothing is ever inserted as raw HTML.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from dash import dash_table, dcc, html
from dash.dash_table.Format import Format, Scheme

from neural_dsl_tracking.dashboard.data import DashboardData, StoreUnavailable
from neural_dsl_tracking.humanize import duration as format_duration
from neural_dsl_tracking.dashboard.tables import (
    best_value,
    counted,
    default_direction,
    format_time,
)

RUN_STATUSES = ("running", "completed", "failed", "interrupted", "crashed")
STATUS_COLORS = {"running": "#1f77b4", "completed": "#2ca02c", "failed": "#d62728",
                 "interrupted": "#ff7f0e", "crashed": "#8c564b"}
PREFERRED_MAIN_METRICS = ("val_loss", "loss", "val_accuracy", "accuracy")
DEFAULT_SELECTION = 5
LIVE_INTERVAL_MS = 2000
IDLE_INTERVAL_MS = 15000
TABS = (
    ("metrics", "Metrics"),
    ("hyperparameters", "Hyperparameters"),
    ("best", "Best metrics"),
    ("summary", "Summary"),
    ("parallel", "Parallel coordinates"),
    ("artifacts", "Artifacts"),
)


def page(data: DashboardData) -> Any:
    """The layout served on every page load."""
    try:
        runs = data.runs()
    except StoreUnavailable as error:
        return notice_page(
            "No experiment store yet",
            f"{error}. Train a model with tracking (for example `make demo`), or start the "
            "dashboard with --base-dir DIR or --store URL pointing at an existing store.",
        )
    if not runs:
        return notice_page(
            "No runs yet",
            f"The store at {data.location} holds no runs. Start a training run; "
            "reload this page when it has begun.",
        )
    return dashboard_page(runs, data.location)


def notice_page(title: str, message: str) -> html.Div:
    """A friendly full-page message."""
    return html.Div(className="notice", children=[html.H1(title), html.P(message, id="notice-text")])


def metric_keys(runs: Sequence[Any]) -> list[str]:
    """Every metric key of the runs, sorted."""
    return sorted({key for run in runs for key in run.metrics})


def main_metric(keys: Sequence[str], runs: Sequence[Any]) -> str | None:
    """The metric the run table ranks by: a usual name if present, else the most common."""
    for preferred in PREFERRED_MAIN_METRICS:
        if preferred in keys:
            return preferred
    counts = Counter(key for run in runs for key in run.metrics)
    return counts.most_common(1)[0][0] if counts else None


def run_rows(runs: Sequence[Any], main: str | None, direction: str) -> list[dict[str, Any]]:
    """DataTable rows for the run table (plain text and numbers)."""
    return [
        {
            "id": run.run_id,
            "experiment": run.experiment,
            "run_name": run.run_name,
            "status": run.status,
            "start": format_time(run.start_time),
            "duration": format_duration(run.duration),
            "tags": ", ".join(run.tags),
            "best": best_value(run.metrics, main, direction) if main else None,
        }
        for run in runs
    ]


def run_table(rows: list[dict[str, Any]], selected: list[int]) -> dash_table.DataTable:
    """The run table: sortable, multi-select, status coloured."""
    columns = [
        {"name": "experiment", "id": "experiment"},
        {"name": "run", "id": "run_name"},
        {"name": "status", "id": "status"},
        {"name": "start", "id": "start"},
        {"name": "duration", "id": "duration"},
        {"name": "tags", "id": "tags"},
        {"name": "best", "id": "best", "type": "numeric",
         "format": Format(precision=6, scheme=Scheme.decimal_or_exponent)},
    ]
    return dash_table.DataTable(
        id="run-table",
        columns=columns,
        data=rows,
        row_selectable="multi",
        selected_rows=selected,
        sort_action="native",
        page_action="none",
        style_table={"maxHeight": "260px", "overflowY": "auto"},
        style_cell={"textAlign": "left", "padding": "2px 8px", "fontFamily": "sans-serif",
                    "fontSize": "13px", "maxWidth": "260px", "overflow": "hidden",
                    "textOverflow": "ellipsis"},
        style_header={"fontWeight": "bold", "backgroundColor": "#f3f3f3"},
        style_data_conditional=[
            {"if": {"filter_query": f'{{status}} = "{status}"', "column_id": "status"},
             "color": color, "fontWeight": "bold"}
            for status, color in STATUS_COLORS.items()
        ],
    )


def dashboard_page(runs: Sequence[Any], location: str) -> html.Div:
    """The dashboard for a store holding ``runs`` (most recent first)."""
    keys = metric_keys(runs)
    main = main_metric(keys, runs)
    maximised = [key for key in keys if default_direction(key) == "max"]
    direction = "max" if main in maximised else "min"
    selection = [run.run_id for run in runs[:DEFAULT_SELECTION]]
    live = any(run.status == "running" for run in runs)
    experiments = sorted({run.experiment for run in runs})
    tags = sorted({tag for run in runs for tag in run.tags})
    return html.Div(
        className="dashboard",
        children=[
            html.Header(
                className="header",
                children=[
                    html.H1("Neural experiments"),
                    html.Span(location, id="store-location", className="store"),
                    html.Span(counted(len(runs), "run"), id="run-count", className="count"),
                ],
            ),
            html.Div(
                className="filters",
                children=[
                    dcc.Dropdown(id="filter-experiment", options=experiments, multi=True,
                                 placeholder="experiment"),
                    dcc.Dropdown(id="filter-status", options=list(RUN_STATUSES), multi=True,
                                 placeholder="status"),
                    dcc.Dropdown(id="filter-tag", options=tags, multi=True, placeholder="tag"),
                    dcc.Input(id="filter-text", type="search", debounce=True,
                              placeholder="search name, id, tag, parameter"),
                    html.Label(["main metric ", dcc.Dropdown(id="main-metric", options=keys,
                                                             value=main, clearable=False)]),
                    html.Button("Select shown", id="select-shown", n_clicks=0),
                    html.Button("Clear selection", id="clear-selection", n_clicks=0),
                ],
            ),
            run_table(run_rows(runs, main, direction), list(range(min(len(runs), DEFAULT_SELECTION)))),
            dcc.Store(id="selection", data=selection),
            dcc.Store(id="drawn", data={}),
            dcc.Interval(id="live-tick", interval=LIVE_INTERVAL_MS if live else IDLE_INTERVAL_MS),
            dcc.Tabs(id="tabs", value="metrics", children=[_tab(value, label, maximised, keys, main)
                                                          for value, label in TABS]),
        ],
    )


def _tab(value: str, label: str, maximised: list[str], keys: list[str], main: str | None) -> dcc.Tab:
    return dcc.Tab(label=label, value=value, id=f"tab-{value}",
                   children=html.Div(className="tab-body", children=_tab_body(value, maximised, keys, main)))


def _tab_body(value: str, maximised: list[str], keys: list[str], main: str | None) -> list[Any]:
    area = html.Div(id=f"{value}-area")
    if value == "metrics":
        return [
            html.Div(
                className="controls",
                children=[
                    html.Label(["smoothing", dcc.Slider(id="smoothing", min=0, max=0.99, step=0.01, value=0,
                                                        marks={0: "0", 0.5: "0.5", 0.9: "0.9", 0.99: "0.99"},
                                                        updatemode="mouseup",
                                                        tooltip={"placement": "bottom"})],
                               className="slider"),
                    dcc.RadioItems(id="x-mode", value="step", inline=True,
                                   options=[{"label": "step", "value": "step"},
                                            {"label": "relative time", "value": "relative"},
                                            {"label": "wall time", "value": "wall"}]),
                    dcc.Checklist(id="log-y", options=[{"label": "log scale", "value": "log"}], value=[],
                                  inline=True),
                    dcc.Input(id="metric-filter", type="search", debounce=True, value="",
                              placeholder="filter metrics by name"),
                ],
            ),
            dcc.Loading(area, delay_show=300),
        ]
    if value == "hyperparameters":
        return [dcc.Checklist(id="only-differences", value=[], inline=True,
                              options=[{"label": "only differences", "value": "only"}]), area]
    if value == "best":
        return [html.Label(["maximised metrics (the others are minimised)",
                            dcc.Dropdown(id="maximise", options=keys, value=maximised, multi=True)]), area]
    if value == "parallel":
        return [html.Label(["metric", dcc.Dropdown(id="parallel-metric", options=keys, value=main,
                                                   clearable=False)]), area]
    return [area]
