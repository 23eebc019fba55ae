"""The run table, paged on the server: the browser holds one page of rows at a time.

Filters, sorting and paging are answered by a callback from the dashboard's snapshot of the
runs (``DashboardData.snapshot``): filtering is a substring test on a search text kept per
run, sorting one Python sort, and only the ``PAGE_SIZE`` rows shown travel. The selection
travels as run ids, never as rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from dash import dash_table
from dash.dash_table.Format import Format, Scheme

from neural_dsl_tracking.dashboard.data import RunSnapshot
from neural_dsl_tracking.dashboard.lineage import lineage_cell, lineage_lines, run_name
from neural_dsl_tracking.dashboard.tables import (
    TEXT_CHARS,
    best_value,
    counted,
    format_time,
    format_value,
    shortened,
)
from neural_dsl_tracking.humanize import duration as format_duration
from neural_dsl_tracking.humanize import quantity
from neural_dsl_tracking.tracking.model_view import fingerprint_mark
from neural_dsl_tracking.tracking.values import RUN_STATUSES

PAGE_SIZE = 50
MODEL_COLUMNS = ("params", "macs", "fingerprint")  # the cells of a run's recorded model (ModelFacts' fields)
NON_FINITE = ("-inf", "inf", "nan")  # best values shown as text; they sort with the missing ones


@dataclass(frozen=True)
class TableQuery:
    """What the table shows: the filters, the main metric and its direction, the sort
    (``(column id, "asc" | "desc")``) and the page."""

    experiments: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    text: str = ""
    main: str | None = None
    direction: str = "min"
    sort_by: tuple[tuple[str, str], ...] = ()
    page: int = 0
    ids: frozenset[str] | None = None  # the runs a query of the search box matched (``search_query``)


def run_rows(runs: Sequence[Any], main: str | None, direction: str, family: RunSnapshot) -> list[dict[str, Any]]:
    """DataTable rows for the run table (plain text and numbers); long names are cut
    (``run_tooltips`` holds them in full). ``family`` (the snapshot) names parents and counts forks."""
    return [
        {
            "id": run.run_id,
            **{column: shortened(text, TEXT_CHARS) for column, text in _names(run).items()},
            "lineage": shortened(lineage_cell(run, family), TEXT_CHARS),
            "status": run.status,
            "start": format_time(run.start_time),
            "duration": format_duration(run.duration),
            "best": _number(best_value(run.metrics, main, direction) if main else None),
            **_model_cells(family.models.get(run.run_id), family.twins.get(run.run_id)),
        }
        for run in runs
    ]


def _model_cells(facts: Any, twin: str | None) -> dict[str, str]:
    """A run's params, MACs and fingerprint cells (``1.2M``, ``38.3K``, ``9ae62d52 same as
    3f2a91c0``, as ``neural experiments ls`` prints them); blank for a run that recorded no model."""
    if facts is None:
        return dict.fromkeys(MODEL_COLUMNS, "")
    return {"params": quantity(facts.params, ""), "macs": quantity(facts.macs, ""),
            "fingerprint": fingerprint_mark(facts.fingerprint, twin) if facts.fingerprint else ""}


def run_tooltips(runs: Sequence[Any], family: RunSnapshot) -> list[dict[str, Any]]:
    """The run table's hover text, row by row: the full names that ``run_rows`` cut, the
    run's lineage in full (parent and fork point, forks, resumes: ``lineage_lines``) and the
    name and id of the run it has the same fingerprint as."""
    tips = []
    for run in runs:
        tip = {column: {"value": text, "type": "text"} for column, text in _names(run).items() if len(text) > TEXT_CHARS}
        lines = lineage_lines(run, family)
        if lines:
            tip["lineage"] = {"value": "; ".join(lines), "type": "text"}
        twin = family.twins.get(run.run_id)
        if twin is not None:
            tip["fingerprint"] = {"value": f"the same fingerprint as {run_name(twin, family)} ({twin})", "type": "text"}
        tips.append(tip)
    return tips


def _names(run: Any) -> dict[str, str]:
    """The run table's columns of free text."""
    return {"experiment": run.experiment, "run_name": run.run_name, "tags": ", ".join(run.tags)}


def _number(value: float | None) -> float | str | None:
    """A table number; infinities and NaN as text (JSON would turn them into a blank)."""
    return value if value is None or math.isfinite(value) else format_value(value)


def matches(run: Any, query: TableQuery, text_of: Callable[[Any], str]) -> bool:
    """Whether a run passes the table's filters (the free text searches ``text_of(run)``:
    names, id, tags and ``param=value``, in lower case)."""
    if query.experiments and run.experiment not in query.experiments:
        return False
    if query.statuses and run.status not in query.statuses:
        return False
    if query.tags and not set(query.tags) & set(run.tags):
        return False
    if query.ids is not None:
        return run.run_id in query.ids
    return not query.text or query.text.lower() in text_of(run)


def search_query(text: str) -> Any:
    """The search box's text as a query of the query language (``tracking.query``) when it
    compares something (``params.lr < 0.01 and status = failed``), else None: plain words
    search names, ids, tags and ``param=value`` as they are. Text that starts with a field of
    the language but does not parse raises its ``QueryError`` (the line, a caret, what was
    expected); other text that does not parse (``scheduler=None``) is plain words."""
    from neural_dsl_tracking.tracking.query import FIELDS, QueryError, Word, parse_query

    if not text.strip():
        return None
    try:
        query = parse_query(text)
    except QueryError:
        if re.match(r"\s*(not\b\s*)?\(*\s*(" + "|".join(FIELDS) + r")\b", text):
            raise
        return None
    return None if _only_words(query.root, Word) else query


def _only_words(node: Any, word: type) -> bool:
    """Whether a query tree holds nothing but plain words."""
    if isinstance(node, word):
        return True
    items = getattr(node, "items", None) or ((node.item,) if hasattr(node, "item") else None)
    return items is not None and all(_only_words(item, word) for item in items)


def _sort_value(run: Any, column: str, main: str | None, direction: str) -> Any:
    """The value a column sorts by; None for a missing or non-finite number."""
    if column == "start":
        return run.start_time.timestamp()
    if column == "duration":
        return run.duration
    if column == "best":
        value = best_value(run.metrics, main, direction) if main else None
        return value if value is not None and math.isfinite(value) else None
    if column in ("experiment", "run_name", "tags"):
        return _names(run)[column]
    if column == "lineage":  # forks next to their siblings, by fork point; runs with none last
        return None if run.parent is None else (run.parent.run_id, run.parent.fork_step or 0)
    return getattr(run, column, None)


def _model_sort_value(facts: Any, column: str) -> Any:
    """What a model column sorts by: the number of parameters or MACs, the whole fingerprint
    (so twins sit together); None for a run without it."""
    return None if facts is None else getattr(facts, column)


def sorted_runs(runs: Sequence[Any], query: TableQuery, models: dict[str, Any] | None = None) -> list[Any]:
    """``runs`` in the order of the query's first sort column (missing values last either
    way), else as given (newest first); ``models``: the runs' ``ModelFacts`` by run id, which
    the params, MACs and fingerprint columns sort by."""
    if not query.sort_by:
        return list(runs)
    column, order = query.sort_by[0]
    if column in MODEL_COLUMNS:
        models = models or {}
        keyed = [(_model_sort_value(models.get(run.run_id), column), run) for run in runs]
    else:
        keyed = [(_sort_value(run, column, query.main, query.direction), run) for run in runs]
    present = sorted((pair for pair in keyed if pair[0] is not None), key=lambda pair: pair[0],
                     reverse=order == "desc")
    return [run for _, run in present] + [run for value, run in keyed if value is None]


def shown_runs(snapshot: RunSnapshot, query: TableQuery, text_of: Callable[[Any], str]) -> list[Any]:
    """Every run of ``snapshot`` the query's filters leave, in its order (all pages)."""
    return sorted_runs([run for run in snapshot.runs if matches(run, query, text_of)], query, snapshot.models)


def page_of(shown: Sequence[Any], query: TableQuery) -> tuple[int, int, list[Any]]:
    """The query's page (within the pages there are), the number of pages and its runs."""
    page_count = max(1, math.ceil(len(shown) / PAGE_SIZE))
    page = min(max(0, int(query.page or 0)), page_count - 1)
    return page, page_count, list(shown[page * PAGE_SIZE:(page + 1) * PAGE_SIZE])


def table_view(snapshot: RunSnapshot, shown: Sequence[Any], query: TableQuery, selection: Sequence[str]
               ) -> dict[str, Any]:
    """The table's properties for ``query`` over the runs of ``snapshot``, of which ``shown``
    are the runs left by its filters (``shown_runs``): one page of rows, its selected rows,
    the page and the page count, the header count; ``ids`` of the page's runs and ``key``,
    its content's digest, so a callback can leave unchanged rows where they are.
    """
    runs = snapshot.runs
    page, page_count, on_page = page_of(shown, query)
    rows = run_rows(on_page, query.main, query.direction, snapshot)
    chosen = set(selection)
    count = counted(len(runs), "run") + (f", {len(shown)} shown" if len(shown) != len(runs) else "")
    return {
        "data": rows,
        "tooltip_data": run_tooltips(on_page, snapshot),
        "selected_rows": [position for position, row in enumerate(rows) if row["id"] in chosen],
        "page_current": page,
        "page_count": page_count,
        "count": f"{count}, {len(chosen)} selected",
        "ids": [row["id"] for row in rows],
        "sort": [list(item) for item in query.sort_by],
        "key": hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16],
    }


def run_table(view: dict[str, Any]) -> dash_table.DataTable:
    """The run table showing ``view`` (``table_view``): paged, sorted and filtered on the
    server, multi-select, status coloured."""
    columns = [
        {"name": "experiment", "id": "experiment"},
        {"name": "run", "id": "run_name"},
        {"name": "status", "id": "status"},
        {"name": "start", "id": "start"},
        {"name": "duration", "id": "duration"},
        {"name": "tags", "id": "tags"},
        {"name": "lineage", "id": "lineage"},
        {"name": "best", "id": "best", "type": "numeric",
         "format": Format(precision=6, scheme=Scheme.decimal_or_exponent)},
        {"name": "params", "id": "params"},
        {"name": "MACs", "id": "macs"},
        {"name": "fingerprint", "id": "fingerprint"},
    ]
    return dash_table.DataTable(
        id="run-table",
        columns=columns,
        data=view["data"],
        tooltip_data=view["tooltip_data"],
        tooltip_duration=None,
        row_selectable="multi",
        selected_rows=view["selected_rows"],
        sort_action="custom",
        sort_mode="single",
        sort_by=[],
        page_action="custom",
        page_current=view["page_current"],
        page_count=view["page_count"],
        page_size=PAGE_SIZE,
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
