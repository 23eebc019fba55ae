"""Grouping runs: by a hyperparameter, the tags or the experiment; one curve and one row per group.

Runs are grouped by the value of a *group key*: ``experiment``, ``tags`` (the run's set of
tags, so runs with the same tags share a group) or a hyperparameter (``params.optimizer.lr``
or ``optimizer.lr``, dotted as ``neural experiments ls --where`` spells it).

Curves of a group are aligned on the union of their steps. A run counts at a step from its
first logged step to its last; between its own steps its last value carries forward (a
step function, as the run's metric stood at that step); outside its span it does not count.
At each step the group's line is the mean or the median of the runs counted there, its band
the minimum and maximum, or the line +- one (population) standard deviation.

Per metric, each run is reduced to one number (its ``last``, ``min``, ``max`` or ``mean``
value, NaN left aside) and the group reports the mean, standard deviation, minimum and maximum
of those numbers over its runs. A metric without a chosen aggregate takes its best value by
its name (``min`` for a loss, ``max`` for a score: ``values.metric_direction``), else its ``last``.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from neural_dsl_tracking.dotted import flatten
from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.downsample import bucket_size_for, bucketize
from neural_dsl_tracking.tracking.values import metric_direction

CENTERS = ("mean", "median")
BANDS = ("minmax", "std")
AGGREGATES = ("last", "min", "max", "mean")
MISSING_VALUE = "(none)"


@dataclass(frozen=True)
class Group:
    """The runs sharing one value of the group key; ``label`` reads ``key=value``."""

    label: str
    run_ids: tuple[str, ...]


@dataclass(frozen=True)
class GroupCurve:
    """One group's aligned metric: its line and band at every step of the union, and how
    many runs count at each step."""

    steps: np.ndarray
    center: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    count: np.ndarray


def check_choice(what: str, value: str, allowed: Sequence[str]) -> str:
    """``value`` when it is one of ``allowed``, else a TrackingError naming them."""
    if value not in allowed:
        raise TrackingError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def group_value(record: Any, key: str) -> str:
    """The text of ``record``'s value of the group key ``key`` (``MISSING_VALUE`` when absent)."""
    if key == "experiment":
        return str(record.experiment)
    if key == "tags":
        return ", ".join(sorted(record.tags)) or MISSING_VALUE
    name = key[len("params."):] if key.startswith("params.") else key
    flat = flatten(record.hyperparameters)
    if name not in flat:
        return MISSING_VALUE
    value = flat[name]
    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


def group_keys(records: Sequence[Any]) -> list[str]:
    """The keys runs can be grouped by: experiment, tags, then every hyperparameter (dotted)."""
    params = sorted({name for record in records for name in flatten(record.hyperparameters)})
    return ["experiment", "tags", *(f"params.{name}" for name in params)]


def check_group_key(records: Sequence[Any], key: str) -> str:
    """``key`` when some run of ``records`` has it, else a TrackingError (a hyperparameter
    nobody logged, or a typo)."""
    if key not in ("experiment", "tags") and all(group_value(r, key) == MISSING_VALUE for r in records):
        raise TrackingError(f"cannot group by {key!r}: no run has that hyperparameter "
                            "(group by experiment, tags or params.NAME)")
    return key


def group_runs(records: Sequence[Any], key: str) -> list[Group]:
    """The runs grouped by their value of ``key``, groups in order of their first run."""
    found: dict[str, list[str]] = {}
    for record in records:
        found.setdefault(group_value(record, key), []).append(record.run_id)
    short = key[len("params."):] if key.startswith("params.") else key
    return [Group(f"{short}={value}", tuple(ids)) for value, ids in found.items()]


def aligned(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The union of the steps of ``series`` (each ``(steps, values)``), and a runs x steps
    matrix of each run's value carried forward there (NaN outside the run's own span)."""
    cleaned = [_by_step(np.asarray(s, np.int64), np.asarray(v, np.float64)) for s, v in series]
    cleaned = [(s, v) for s, v in cleaned if s.size]
    if not cleaned:
        return np.zeros(0, np.int64), np.zeros((0, 0))
    union = np.unique(np.concatenate([s for s, _ in cleaned]))
    matrix = np.full((len(cleaned), union.size), np.nan)
    for row, (steps, values) in enumerate(cleaned):
        first, last = np.searchsorted(union, steps[0]), np.searchsorted(union, steps[-1], side="right")
        index = np.searchsorted(steps, union[first:last], side="right") - 1
        matrix[row, first:last] = values[index]
    return union, matrix


def _by_step(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The series sorted by step, the last value logged at a step kept when one repeats."""
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    last = np.append(steps[1:] != steps[:-1], True)
    return steps[last], values[last]


def group_curve(series: Sequence[tuple[np.ndarray, np.ndarray]], center: str = "mean",
                band: str = "minmax") -> GroupCurve:
    """The line (``center``: mean or median) and band (``band``: minmax or std) of runs'
    series aligned on their steps (see the module's text); non-finite values count as absent."""
    check_choice("center", center, CENTERS)
    check_choice("band", band, BANDS)
    steps, matrix = aligned(series)
    matrix = np.where(np.isfinite(matrix), matrix, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step where every value is NaN
        line = np.nanmean(matrix, axis=0) if center == "mean" else np.nanmedian(matrix, axis=0)
        if band == "minmax":
            lower, upper = np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0)
        else:
            spread = np.nanstd(matrix, axis=0)
            lower, upper = line - spread, line + spread
    count = np.count_nonzero(~np.isnan(matrix), axis=0) if matrix.size else np.zeros(0, np.int64)
    return GroupCurve(steps, line, lower, upper, count)


def thinned(curve: GroupCurve, points: int) -> GroupCurve:
    """At most about ``points`` steps of a group's curve, keeping every bucket's extremes of
    its line and of both edges of its band."""
    size = bucket_size_for(curve.steps.size, points)
    if size == 1:
        return curve
    keep = np.unique(np.concatenate([bucketize(part, size).keep
                                     for part in (curve.center, curve.lower, curve.upper)]))
    return GroupCurve(curve.steps[keep], curve.center[keep], curve.lower[keep], curve.upper[keep],
                      curve.count[keep])


def run_aggregate(values: np.ndarray, how: str) -> float:
    """One run's series reduced to one number (``how``: last, min, max or mean), NaN aside;
    NaN when no value is left."""
    check_choice("aggregate", how, AGGREGATES)
    values = np.asarray(values, np.float64)
    known = values[~np.isnan(values)]
    if not known.size:
        return math.nan
    if how == "last":
        return float(known[-1])
    return float({"min": np.min, "max": np.max, "mean": np.mean}[how](known))


def group_stats(numbers: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, population standard deviation, minimum and maximum of the finite ``numbers``
    (None when there is none), and how many there are."""
    known = np.array([n for n in numbers if n is not None and math.isfinite(n)], np.float64)
    if not known.size:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {"n": int(known.size), "mean": float(known.mean()), "std": float(known.std()),
            "min": float(known.min()), "max": float(known.max())}


def parse_aggregates(items: Sequence[str] | None) -> dict[str, str]:
    """``METRIC=AGGREGATE`` options as a dict (a TrackingError saying which one is wrong)."""
    chosen: dict[str, str] = {}
    for item in items or ():
        metric, sep, how = item.rpartition("=")
        if not sep or not metric:
            raise TrackingError(f"--aggregate takes METRIC=AGGREGATE (one of {', '.join(AGGREGATES)}), "
                                f"got {item!r}")
        chosen[metric] = check_choice(f"the aggregate of {metric}", how, AGGREGATES)
    return chosen


def aggregate_for(metric: str, aggregates: Mapping[str, str] | None = None) -> str:
    """The aggregate ``metric``'s runs are reduced by: ``aggregates[metric]`` when chosen, else
    its best by name (``min`` for loss-like names, ``max`` for score-like ones), else ``last``."""
    return (aggregates or {}).get(metric) or metric_direction(metric) or "last"


def grouped_table(groups: Sequence[Group], histories: dict[str, dict[str, Any]], metrics: Sequence[str],
                  aggregates: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Per group: its label, run ids and, per metric, the statistics (``group_stats``) of its
    runs' aggregates (``aggregate_for(metric, aggregates)``)."""
    rows = []
    for group in groups:
        per_metric = {}
        for key in metrics:
            how = aggregate_for(key, aggregates)
            numbers = [run_aggregate(histories[run_id][key].values, how)
                       for run_id in group.run_ids if key in histories.get(run_id, {})]
            per_metric[key] = {"aggregate": how, **group_stats(numbers)}
        rows.append({"group": group.label, "runs": list(group.run_ids), "metrics": per_metric})
    return rows
