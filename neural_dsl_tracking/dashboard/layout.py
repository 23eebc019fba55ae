"""The page: friendly pages for a missing or empty store, and the dashboard itself.

All user strings (run names, tags, parameters) go into components as children or
properties, which React renders as text; nothing is ever inserted as raw HTML.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from typing import Any, Iterable, Sequence

from dash import dash_table, dcc, html
from dash.dash_table.Format import Format, Scheme

from neural_dsl_tracking.dashboard.data import DashboardData, StoreUnavailable
from neural_dsl_tracking.dashboard.figures import THEMES, figure_template
from neural_dsl_tracking.humanize import duration as format_duration
from neural_dsl_tracking.dashboard.tables import (
    TEXT_CHARS,
    best_value,
    counted,
    default_direction,
    format_time,
    format_value,
    shortened,
)

RUN_STATUSES = ("running", "completed", "failed", "interrupted", "crashed")
PREFERRED_MAIN_METRICS = ("val_loss", "loss", "val_accuracy", "accuracy")
DEFAULT_SELECTION = 5
STAND_IN_CHARS = 40
NON_FINITE = ("-inf", "inf", "nan")  # best values shown as text; they sort with the missing ones
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
    return html.Div(className="notice", children=[html.H1(title), html.P(message, id="notice-text"), *theme_stores()])


def theme_stores() -> list[dcc.Store]:
    """The theme chosen with the toggle (kept in the browser's localStorage), the theme shown
    (set by assets/theme.js: the choice, else the browser's ``prefers-color-scheme``) and the
    figure template of each theme."""
    return [dcc.Store(id="theme-choice", storage_type="local"),
            dcc.Store(id="theme"),
            dcc.Store(id="figure-templates", data={theme: figure_template(theme) for theme in THEMES})]


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
    """DataTable rows for the run table (plain text and numbers); long names are cut
    (``run_tooltips`` holds them in full)."""
    return [
        {
            "id": run.run_id,
            **{column: shortened(text, TEXT_CHARS) for column, text in _names(run).items()},
            "status": run.status,
            "start": format_time(run.start_time),
            "duration": format_duration(run.duration),
            "best": _number(best_value(run.metrics, main, direction) if main else None),
        }
        for run in runs
    ]


def run_tooltips(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """The run table's hover text: the full names that ``run_rows`` cut, row by row."""
    return [{column: {"value": text, "type": "text"} for column, text in _names(run).items() if len(text) > TEXT_CHARS}
            for run in runs]


def _names(run: Any) -> dict[str, str]:
    """The run table's columns of free text."""
    return {"experiment": run.experiment, "run_name": run.run_name, "tags": ", ".join(run.tags)}


def _number(value: float | None) -> float | str | None:
    """A table number; infinities and NaN as text (JSON would turn them into a blank)."""
    return value if value is None or math.isfinite(value) else format_value(value)


def option_value(name: str) -> str:
    """The dropdown value standing for ``name``: the name, or for a long one a short stand-in
    (the dropdown indexes every substring of a value: a 10,000-character one froze the page)."""
    if len(name) <= TEXT_CHARS:
        return name
    return f"{shortened(name, STAND_IN_CHARS)} #{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def text_options(names: Sequence[str]) -> list[dict[str, str]]:
    """Dropdown options for ``names``: each cut to ``TEXT_CHARS``, in full on hover."""
    return [{"label": shortened(name, TEXT_CHARS), "value": option_value(name), "title": name} for name in names]


def chosen_names(values: Sequence[str] | None, names: Iterable[str]) -> list[str]:
    """The names picked in a dropdown of ``text_options(names)``, from its ``values`` (a
    value standing for none of ``names`` is kept as it is)."""
    by_value = {option_value(name): name for name in names}
    return [by_value.get(value, value) for value in values or ()]


def chosen_name(value: str | None, names: Iterable[str]) -> str | None:
    """``chosen_names`` for a dropdown of single choice."""
    return chosen_names([value], names)[0] if value else None


def run_table(rows: list[dict[str, Any]], selected: list[int], tooltips: list[dict[str, Any]]) -> dash_table.DataTable:
    """The run table: sortable, multi-select, status coloured."""
    columns = [
        {"name": "experiment", "id": "experiment"},
        {"name": "run", "id": "run_name"},
        {"name": "status", "id": "status"},
        {"name": "start", "id": "start"},
        {"name": "duration", "id": "duration"},
        {"name": "tags", "id": "tags"},
        {"name": "best", "id": "best", "type": "numeric", "sort_as_null": list(NON_FINITE),
         "format": Format(precision=6, scheme=Scheme.decimal_or_exponent)},
    ]
    return dash_table.DataTable(
        id="run-table",
        columns=columns,
        data=rows,
        tooltip_data=tooltips,
        tooltip_duration=None,
        row_selectable="multi",
        selected_rows=selected,
        sort_action="native",
        page_action="none",
        style_table={"maxHeight": "260px", "overflowY": "auto"},
        style_cell={"textAlign": "left", "padding": "2px 8px", "fontFamily": "sans-serif",
                    "fontSize": "13px", "maxWidth": "260px", "overflow": "hidden",
                    "textOverflow": "ellipsis", "color": "var(--fg)", "backgroundColor": "var(--panel)",
                    "borderColor": "var(--border)"},
        style_header={"fontWeight": "bold", "backgroundColor": "var(--header-bg)"},
        style_data_conditional=[
            {"if": {"filter_query": f'{{status}} = "{status}"', "column_id": "status"},
             "color": f"var(--status-{status})", "fontWeight": "bold"}
            for status in RUN_STATUSES
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
                    html.Button(id="theme-toggle", className="theme-toggle", n_clicks=0,
                                title="switch between the light and the dark theme (remembered)"),
                ],
            ),
            html.Div(
                className="filters",
                children=[
                    dcc.Dropdown(id="filter-experiment", options=text_options(experiments), multi=True,
                                 placeholder="experiment"),
                    dcc.Dropdown(id="filter-status", options=list(RUN_STATUSES), multi=True,
                                 placeholder="status"),
                    dcc.Dropdown(id="filter-tag", options=text_options(tags), multi=True, placeholder="tag"),
                    dcc.Input(id="filter-text", type="search", debounce=True,
                              placeholder="search name, id, tag, parameter"),
                    html.Label(["main metric ", dcc.Dropdown(id="main-metric", options=text_options(keys),
                                                             value=main and option_value(main), clearable=False)]),
                    html.Button("Select shown", id="select-shown", n_clicks=0),
                    html.Button("Clear selection", id="clear-selection", n_clicks=0),
                ],
            ),
            run_table(run_rows(runs, main, direction), list(range(min(len(runs), DEFAULT_SELECTION))),
                      run_tooltips(runs)),
            dcc.Store(id="selection", data=selection),
            dcc.Store(id="drawn", data={}),
            *theme_stores(),
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
                            dcc.Dropdown(id="maximise", options=text_options(keys),
                                         value=[option_value(key) for key in maximised], multi=True)]), area]
    if value == "parallel":
        return [html.Label(["metric", dcc.Dropdown(id="parallel-metric", options=text_options(keys),
                                                   value=main and option_value(main), clearable=False)]), area]
    return [area]
