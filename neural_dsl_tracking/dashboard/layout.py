"""The page: friendly pages for a missing or empty store, and the dashboard itself.

All user strings (run names, tags, parameters) go into components as children or
properties, which React renders as text; nothing is ever inserted as raw HTML.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any, Iterable, Sequence

from dash import dcc, html

from neural_dsl_tracking.dashboard.data import DashboardData, RunSnapshot, StoreUnavailable
from neural_dsl_tracking.dashboard import model_tab, sweeps
from neural_dsl_tracking.dashboard.figures import THEMES, figure_template
from neural_dsl_tracking.dashboard.run_table import RUN_STATUSES, TableQuery, run_table, shown_runs, table_view
from neural_dsl_tracking.dashboard.tables import TEXT_CHARS, default_direction, shortened
from neural_dsl_tracking.tracking.grouping import AGGREGATES

PREFERRED_MAIN_METRICS = ("val_loss", "loss", "val_accuracy", "accuracy")
DEFAULT_SELECTION = 5
STAND_IN_CHARS = 40
LIVE_INTERVAL_MS = 2000
IDLE_INTERVAL_MS = 15000
TABS = (
    ("metrics", "Metrics"),
    ("hyperparameters", "Hyperparameters"),
    ("best", "Best metrics"),
    ("summary", "Summary"),
    ("parallel", "Parallel coordinates"),
    ("artifacts", "Artifacts"),
    model_tab.TAB,
    sweeps.TAB,
)


def page(data: DashboardData) -> Any:
    """The layout served on every page load."""
    try:
        snapshot = data.snapshot()
    except StoreUnavailable as error:
        return notice_page(
            "No experiment store yet",
            f"{error}. Train a model with tracking (for example `make demo`), or start the "
            "dashboard with --base-dir DIR or --store URL pointing at an existing store.",
        )
    if not snapshot.runs:
        return notice_page(
            "No runs yet",
            f"The store at {data.location} holds no runs. Start a training run; "
            "reload this page when it has begun.",
        )
    return dashboard_page(snapshot, data)


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


def dashboard_page(snapshot: RunSnapshot, data: DashboardData) -> html.Div:
    """The dashboard for the runs of ``snapshot`` (most recent first): the run table shows its
    first page, and ``table-seen`` records what it shows (``callbacks.update_table``)."""
    runs = snapshot.runs
    keys = metric_keys(runs)
    main = main_metric(keys, runs)
    maximised = [key for key in keys if default_direction(key) == "max"]
    direction = "max" if main in maximised else "min"
    selection = [run.run_id for run in runs[:DEFAULT_SELECTION]]
    query = TableQuery(main=main, direction=direction)
    table = table_view(snapshot, shown_runs(snapshot, query, data.search_text), query, selection)
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
                    html.Span(data.location, id="store-location", className="store"),
                    html.Span(table["count"], id="run-count", className="count"),
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
                              placeholder="search name, id, tag, parameter, or a query: params.lr < 0.01"),
                    html.Label(["main metric ", dcc.Dropdown(id="main-metric", options=text_options(keys),
                                                             value=main and option_value(main), clearable=False)]),
                    html.Button("Select shown", id="select-shown", n_clicks=0),
                    html.Button("Clear selection", id="clear-selection", n_clicks=0),
                ],
            ),
            html.Pre(id="query-error", className="query-error",  # a query that does not parse, with a caret
                     style={"margin": "0 0 4px", "color": "var(--status-failed)"}),
            run_table(table),
            dcc.Store(id="table-seen", data=seen_table(table, snapshot.version, live)),
            dcc.Store(id="runs-version", data=snapshot.version),  # moves when a run changed
            dcc.Store(id="selection", data=selection),
            dcc.Store(id="drawn", data={}),
            *theme_stores(),
            dcc.Interval(id="live-tick", interval=LIVE_INTERVAL_MS if live else IDLE_INTERVAL_MS),
            group_controls(),
            dcc.Tabs(id="tabs", value="metrics", children=[_tab(value, label, maximised, keys, main)
                                                          for value, label in TABS]),
        ],
    )


BY_NAME = "by name"  # each metric's aggregate by its name (grouping.aggregate_for)


def group_controls() -> html.Div:
    """Group by (its options: the selected runs' keys), each group's line and band on the
    Metrics tab, and the aggregate of each run's metric in the Best metrics and Summary tabs:
    for every metric at once (by its name, or one aggregate), changed per metric in the grouped
    Best metrics table's header (kept in ``metric-aggregates``)."""
    def radio(name: str, value: str, options: dict[str, str]) -> dcc.RadioItems:
        return dcc.RadioItems(id=name, value=value, inline=True,
                              options=[{"label": label, "value": key} for key, label in options.items()])

    return html.Div(className="controls", id="group-controls", children=[
        html.Label(["group by", dcc.Dropdown(id="group-by", options=[], placeholder="no grouping")],
                   className="group-by"),
        radio("group-center", "mean", {"mean": "mean", "median": "median"}),
        radio("group-band", "minmax", {"minmax": "min–max band", "std": "±1 std band"}),
        html.Label(["each run's metric: ", radio("group-aggregate", BY_NAME, {
            BY_NAME: "best by name", **{name: name for name in AGGREGATES}})],
            title="for every metric (best by name: the minimum of a loss, the maximum of a score, else the "
                  "last value); change one metric's in the grouped Best metrics table's header"),
        dcc.Store(id="metric-aggregates", data={}),  # the aggregates chosen per metric, by metric name
    ])


def seen_table(view: dict[str, Any], version: int, live: bool) -> dict[str, Any]:
    """What the browser's run table holds (kept in ``table-seen``): the snapshot version it
    was drawn from, its page's content key and ids, sort, selected rows, page, count and tick."""
    seen = {name: view[name] for name in ("key", "ids", "sort", "selected_rows", "page_current", "page_count",
                                          "count")}
    return {**seen, "version": version, "interval": LIVE_INTERVAL_MS if live else IDLE_INTERVAL_MS}


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
                    html.Span(dcc.Checklist(id="join-forks", options=[{"label": "join forks", "value": "join"}],
                                            value=[], inline=True),
                              title="draw a forked run after its parent's points up to the fork point, as one "
                                    "line (not on grouped charts)"),
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
    if value == sweeps.TAB[0]:
        return sweeps.tab_body()
    if value == "summary":
        return [area, dcc.Store(id="summary-drawn")]  # the runs' snapshot version drawn
    return [area]
