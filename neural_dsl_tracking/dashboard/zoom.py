"""Full fidelity on zoom, and grouped curves: series read for a step range, straight from the store.

A zoomed chart (its x-range in steps) is drawn again from only the points in that range, read
from only the store chunks holding them and bucketed as the overview is (min and max per
bucket), so zooming in ends at the raw points. Resetting the zoom draws the overview again.
A range of a long series holding more than ``RAW_POINTS`` points is bucketed from the
series' fine level instead (its min and max per ``len / FINE_POINTS`` points, read once),
so every spike stays and a wide zoom need not read the whole series again.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Sequence
from weakref import WeakKeyDictionary

import numpy as np

from neural_dsl_tracking.dashboard.data import DashboardData, DrawnSeries, draw
from neural_dsl_tracking.tracking.downsample import bucket_size_for

Span = tuple[int, int]  # the steps shown, from low to high
RAW_POINTS = 32_768  # a zoom holding up to this many points of a series reads them from the store
FINE_POINTS = 65_536  # a longer series is zoomed from its buckets of about len / FINE_POINTS points
FINE_SERIES = 32  # fine levels kept (about 1.6 MB each)
_fine: WeakKeyDictionary[DashboardData, OrderedDict[tuple[str, str, int], DrawnSeries]] = WeakKeyDictionary()


def zoom_span(relayout: dict[str, Any] | None) -> Span | None | bool:
    """What a chart's ``relayoutData`` asks for: a step range to draw (``(low, high)``),
    ``None`` for the overview (zoom reset), or ``False`` when it is no change of the x-range
    (a y-only zoom, a resize, the first layout)."""
    relayout = relayout or {}
    if relayout.get("xaxis.autorange"):
        return None
    low, high = relayout.get("xaxis.range[0]"), relayout.get("xaxis.range[1]")
    if low is None and isinstance(relayout.get("xaxis.range"), list):
        low, high = relayout["xaxis.range"][:2]
    if not all(isinstance(end, (int, float)) and math.isfinite(end) for end in (low, high)):
        return False  # absent, or a date of the wall-time axis: Plotly zooms the overview itself
    low, high = sorted((low, high))
    return math.floor(low), math.ceil(high)


def visible_series(data: DashboardData, runs: Sequence[Any], key: str, span: Span,
                   points: int) -> dict[str, DrawnSeries]:
    """Each run's points of ``key`` at steps in ``span``, bucketed to about ``points`` points:
    read from the store when the range holds at most ``RAW_POINTS`` points, else from the
    series' fine level (``fine_level``), which keeps every extreme."""
    drawn, raw = {}, []
    for run in runs:
        count = int(run.metrics.get(key, {}).get("count", 0))
        fine = fine_level(data, run.run_id, key, count) if count > RAW_POINTS else None
        inside = None if fine is None else (fine.steps >= span[0]) & (fine.steps <= span[1])
        if inside is None or np.count_nonzero(inside) * fine.bucket_size <= 2 * RAW_POINTS:
            raw.append(run.run_id)
            continue
        size = bucket_size_for(int(np.count_nonzero(inside)), points)
        (thin,) = draw(fine.steps[inside], fine.values[inside], fine.times[inside], size)
        drawn[run.run_id] = replace(thin, bucket_size=fine.bucket_size * size)  # raw points per bucket
    if raw:
        for (run_id, _), history in data.manager().get_metric_histories(raw, [key], steps=span).items():
            if len(history):
                size = bucket_size_for(len(history), points)
                drawn[run_id] = draw(history.steps, history.values, history.timestamps, size)[0]
    return drawn


def fine_level(data: DashboardData, run_id: str, key: str, count: int) -> DrawnSeries:
    """The series bucketed to about ``FINE_POINTS`` points (each bucket's min and max kept),
    read once per stored length and kept for the last ``FINE_SERIES`` series zoomed."""
    cache = _fine.setdefault(data, OrderedDict())
    found = cache.get((run_id, key, count))
    if found is None:
        history = data.manager().get_metric_history(run_id, key)
        found = draw(history.steps, history.values, history.timestamps,
                     bucket_size_for(len(history), FINE_POINTS))[0]
        cache[(run_id, key, count)] = found
        while len(cache) > FINE_SERIES:
            cache.popitem(last=False)
    cache.move_to_end((run_id, key, count))
    return found


def group_histories(data: DashboardData, run_ids: Sequence[str], key: str,
                    span: Span | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every point of ``key`` (in ``span`` when given) of ``run_ids``: (steps, values) by run id."""
    read = data.manager().get_metric_histories(list(run_ids), [key], steps=span)
    return {run_id: (history.steps, history.values) for (run_id, _), history in read.items() if len(history)}
