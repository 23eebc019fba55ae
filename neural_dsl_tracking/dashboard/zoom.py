"""Full fidelity on zoom, and grouped curves: series read for an x-range, straight from the store.

A zoomed chart is drawn again from only the points in its x-range (steps, or times on the
relative-time and wall-time axes), read from only the store chunks holding them and bucketed
as the overview is (min and max per bucket), so zooming in ends at the raw points. Resetting
the zoom draws the overview again. A range of a long series holding more than ``RAW_POINTS``
points is bucketed from the series' fine level instead (its min and max per
``len / FINE_POINTS`` points: ``DashboardData.fine_level``, built in the background from the
overview's read of the series, or from the same arrays by a zoom that comes first, and read
only when there was no such read), so every spike stays and a wide zoom need not read the
whole series again. Whether a range is that wide is told from the series' cached overview.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from neural_dsl_tracking.dashboard.data import RAW_POINTS, DashboardData, DrawnSeries, draw
from neural_dsl_tracking.tracking.downsample import bucket_size_for

Span = tuple[float, float]  # the x-range shown, low to high, in the axis's units (steps, s, or ms: x_values)
Window = tuple[str, tuple[float, float]]  # what a run reads for a span: ("steps" | "times", (low, high))


def zoom_span(relayout: dict[str, Any] | None, x_mode: str = "step") -> Span | None | bool:
    """What a chart's ``relayoutData`` asks for: the x-range to draw in the units of ``x_mode``
    (whole steps; seconds since the run's start; epoch milliseconds, from Plotly's UTC date
    text on the wall-time axis), ``None`` for the overview (zoom reset), or ``False`` when it
    is no change of the x-range (a y-only zoom, a resize, the first layout)."""
    relayout = relayout or {}
    if relayout.get("xaxis.autorange"):
        return None
    ends = relayout.get("xaxis.range[0]"), relayout.get("xaxis.range[1]")
    if ends[0] is None and isinstance(relayout.get("xaxis.range"), list):
        ends = tuple(relayout["xaxis.range"][:2])
    numbers = [_x_number(end, x_mode) for end in ends]
    if None in numbers:
        return False
    low, high = sorted(numbers)
    return (math.floor(low), math.ceil(high)) if x_mode == "step" else (low, high)


def _x_number(end: Any, x_mode: str) -> float | None:
    """One end of a relayout's x-range as a number of the axis (None when it is none)."""
    if isinstance(end, str) and x_mode == "wall":
        try:
            moment = datetime.fromisoformat(end.strip())
        except ValueError:
            return None
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp() * 1000.0
    if isinstance(end, bool) or not isinstance(end, (int, float)) or not math.isfinite(end):
        return None
    return float(end)


def read_window(run: Any, span: Span, x_mode: str) -> Window:
    """What ``run`` reads to draw ``span`` on the ``x_mode`` axis: its steps, or its points'
    times (seconds since the epoch) in the range (the inverse of ``figures.x_values``)."""
    low, high = span
    if x_mode == "step":
        return "steps", (low, high)
    if x_mode == "relative":
        start = run.start_time.timestamp()
        return "times", (start + low, start + high)
    return "times", (low / 1000.0, high / 1000.0)


def visible_series(data: DashboardData, runs: Sequence[Any], key: str, span: Span, points: int,
                   x_mode: str = "step") -> dict[str, DrawnSeries]:
    """Each run's points of ``key`` in ``span`` (on the ``x_mode`` axis), bucketed to about
    ``points`` points: read from the store when the range holds at most ``RAW_POINTS`` points
    (told by the series' cached overview when there is one, else by its fine level), else from
    the series' fine level (``DashboardData.fine_level``), which keeps every extreme."""
    drawn: dict[str, DrawnSeries] = {}
    raw: dict[Window, list[str]] = {}
    for run in runs:
        window = read_window(run, span, x_mode)
        count = int(run.metrics.get(key, {}).get("count", 0))
        long = count > RAW_POINTS and _may_hold(data.overview(run.run_id, key, count), window) > RAW_POINTS
        fine = data.fine_level(run.run_id, key, count) if long else None
        inside = None if fine is None else _inside(getattr(fine, window[0]), window[1])
        if inside is None or np.count_nonzero(inside) * fine.bucket_size <= 2 * RAW_POINTS:
            raw.setdefault(window, []).append(run.run_id)
            continue
        size = bucket_size_for(int(np.count_nonzero(inside)), points)
        (thin,) = draw(fine.steps[inside], fine.values[inside], fine.times[inside], size)
        drawn[run.run_id] = replace(thin, bucket_size=fine.bucket_size * size)  # raw points per bucket
    for (column, bounds), run_ids in raw.items():
        read = data.manager().get_metric_histories(run_ids, [key], **{column: bounds})
        for (run_id, _), history in read.items():
            if len(history):
                size = bucket_size_for(len(history), points)
                drawn[run_id] = draw(history.steps, history.values, history.timestamps, size)[0]
    return drawn


def _may_hold(overview: DrawnSeries | None, window: Window) -> float:
    """At most how many points of a series ``window`` holds, from its ``overview``'s buckets
    (those whose points may lie in it, times their size); infinity without an overview."""
    if overview is None:
        return math.inf
    column, (low, high) = window
    last = overview.bucket_steps if column == "steps" else overview.bucket_times  # each bucket's last point
    after = np.concatenate([[-np.inf], last[:-1]])  # the previous bucket's last point
    return float(np.count_nonzero((last >= low) & (after <= high))) * overview.bucket_size


def _inside(column: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Which entries of ``column`` lie from ``bounds[0]`` to ``bounds[1]``."""
    return (column >= bounds[0]) & (column <= bounds[1])


def group_histories(data: DashboardData, run_ids: Sequence[str], key: str,
                    span: Span | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every point of ``key`` (in ``span`` when given) of ``run_ids``: (steps, values) by run id."""
    read = data.manager().get_metric_histories(list(run_ids), [key], steps=span)
    return {run_id: (history.steps, history.values) for (run_id, _), history in read.items() if len(history)}
