"""Table contents computed from run records (pure functions, no Dash).

Everything returned here is plain text or numbers; the layout renders it as text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from neural_dsl_tracking.tracking import metric_mode
from neural_dsl_tracking.dotted import flatten

MISSING = "—"
TEXT_CHARS = 80  # longer names are cut in the middle on the page (the full text shows on hover)


def default_direction(key: str) -> str:
    """``"max"`` for accuracy-like metrics, ``"min"`` for losses and the rest (the store's rule)."""
    return metric_mode(key)


def best_value(metrics: Mapping[str, Mapping[str, Any]], key: str, direction: str) -> float | None:
    """The run's best value of ``key``: its minimum or maximum (NaN when every point was
    NaN), ``None`` if never logged."""
    summary = metrics.get(key)
    if not summary:
        return None
    value = summary.get("max" if direction == "max" else "min")
    if value is None:
        return math.nan if summary.get("count") else None
    return float(value)


def shortened(text: str, limit: int) -> str:
    """``text`` cut in the middle to at most ``limit`` characters (both ends tell names apart)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def short_text(text: Any, limit: int = TEXT_CHARS) -> dict[str, str]:
    """Properties of a component showing ``text``: ``children``, cut to ``limit`` characters,
    and, when cut, the full text as ``title`` (shown on hover)."""
    full = str(text)
    shown = shortened(full, limit)
    return {"children": shown} if shown == full else {"children": shown, "title": full}


def counted(number: int, noun: str) -> str:
    """``1 run``, ``2 runs``, ``0 runs``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def epoch_seconds(value: Any) -> float | None:
    """A time given as datetime, ISO text or epoch seconds, as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    if isinstance(value, str):
        return epoch_seconds(datetime.fromisoformat(value))
    return float(value)


def format_time(value: Any) -> str:
    """Local wall time, to the second."""
    seconds = epoch_seconds(value)
    if seconds is None:
        return MISSING
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def format_value(value: Any) -> str:
    """A parameter or metric value as text; floats with up to 6 significant digits."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    return str(value)


def param_text(value: Any) -> str:
    """A logged parameter as text; a parameter logged as None reads ``None``, not as absent."""
    return "None" if value is None else format_value(value)


@dataclass(frozen=True)
class ParamRow:
    """One hyperparameter across runs: text per run and whether the runs disagree."""

    name: str
    values: list[str]
    differs: bool


def hyperparameter_rows(params_per_run: Sequence[Mapping[str, Any]], only_differences: bool) -> list[ParamRow]:
    """Rows of the side-by-side hyperparameter table, sorted by name."""
    flat = [flatten(params) for params in params_per_run]
    names = sorted({name for params in flat for name in params})
    rows = []
    for name in names:
        texts = [param_text(params[name]) if name in params else MISSING for params in flat]
        differs = len(set(texts)) > 1
        if differs or not only_differences:
            rows.append(ParamRow(name, texts, differs))
    return rows


def unique_labels(runs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Display label per run id: the run name, with a short id when names collide."""
    pairs = list(runs)
    counts: dict[str, int] = {}
    for _, name in pairs:
        counts[name] = counts.get(name, 0) + 1
    return {run_id: name if counts[name] == 1 else f"{name} ({run_id[:8]})" for run_id, name in pairs}


def search_text(run: Any) -> str:
    """What the run table's free text searches, in lower case: run name, id, experiment,
    status, tags and each ``param=value`` (one per line)."""
    params = flatten(run.hyperparameters)
    items = [run.run_name, run.run_id, run.experiment, run.status, *run.tags,
             *(f"{name}={param_text(value)}" for name, value in params.items())]
    return "\n".join(items).lower()
