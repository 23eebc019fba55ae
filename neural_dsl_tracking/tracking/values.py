"""Turning user-supplied metric values and steps into floats and ints, or a clear TypeError;
the length limits of what the store records (one place for them)."""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Mapping

from neural_dsl_tracking.errors import TrackingError

MAX_NAME = 250
"""Characters in an experiment, run, metric, parameter, artifact or alias name, and in a tag
(tags are labels, limited like names: MLflow's limit for the tag keys its mirror writes)."""
MAX_PARAM_VALUE = 50_000
"""Characters of a hyperparameter value as stored (its JSON text)."""
FINAL_STATUSES = ("completed", "failed", "interrupted", "pruned")
"""How a run can end (``pruned``: a sweep's pruner stopped the trial it trained)."""
RUN_STATUSES = ("running", *FINAL_STATUSES, "crashed")
"""Every status a run reads as (``crashed``: still running, heartbeat stale)."""
TRIAL_STATES = ("running", "complete", "pruned", "failed")
DIRECTIONS = ("minimize", "maximize")

_HIGHER_IS_BETTER = re.compile(
    r"acc|accuracy|f1|precision|recall|auc|score|iou|dice|map\b|bleu|rouge|r2|top\d|hit|ndcg|reward",
    re.IGNORECASE,
)


_LOWER_IS_BETTER = re.compile(r"loss|err|mse|mae|perplexity", re.IGNORECASE)  # wins: dice_loss, top1_error


def metric_direction(key: str) -> str | None:
    """``min`` for loss-like names (loss, error, mse, mae, perplexity: these win over a score
    word, as in dice_loss), ``max`` for score-like ones (accuracy, f1, auc, ...), None when
    the name says neither."""
    if _LOWER_IS_BETTER.search(key):
        return "min"
    return "max" if _HIGHER_IS_BETTER.search(key) else None


def metric_mode(key: str) -> str:
    """How the store ranks ``key``: :func:`metric_direction`, ``min`` when the name says neither."""
    return metric_direction(key) or "min"


def to_float(key: object, value: Any) -> float:
    """A metric value as float: int, float, bool, numpy scalar, or anything with ``.item()``."""
    if not isinstance(key, str):
        raise TypeError(f"metric names must be strings, got {key!r} ({type(key).__name__})")
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError:
            raise TypeError(f"metric {key!r}: value {_short(value)} is too large for a "
                            "64-bit float") from None
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes)):
        try:
            scalar = item()
        except (ValueError, RuntimeError, TypeError) as error:
            raise TypeError(
                f"metric {key!r}: value {_short(value)} is not a single number ({error})"
            ) from None
        if isinstance(scalar, (bool, int, float)):
            return float(scalar)
    raise TypeError(
        f"metric {key!r}: value {_short(value)} of type {type(value).__name__} is not a number"
    )


def clean_metrics(metrics: Mapping) -> dict[str, float]:
    """A copy of ``metrics`` with every value a float; raises TypeError naming the bad key
    (TrackingError for a name over MAX_NAME characters)."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict of name -> number, got {type(metrics).__name__}")
    return {check_name("metric name", key): to_float(key, value)
            for key, value in metrics.items()}


def check_name(what: str, name: str) -> str:
    """``name`` itself, or a TrackingError saying ``what`` it is when it has more than MAX_NAME
    characters (checked when recording; longer names already in a store still read)."""
    if isinstance(name, str) and len(name) > MAX_NAME:
        raise TrackingError(f"{what} {_short(name)} has {len(name):,} characters; "
                            f"the limit is {MAX_NAME}")
    return name


def check_param_value(key: str, text: str) -> str:
    """A hyperparameter's JSON text, or a TrackingError when it has more than MAX_PARAM_VALUE
    characters."""
    if len(text) > MAX_PARAM_VALUE:
        raise TrackingError(f"hyperparameter {_short(key)}: its value has {len(text):,} "
                            f"characters as JSON; values are limited to {MAX_PARAM_VALUE:,} "
                            "(log large data as an artifact)")
    return text


MIN_STEP, MAX_STEP = -(2**63), 2**62  # int64, with room for the default steps after the last


def to_step(step: Any) -> int:
    """A step as a Python int (ints, integral numpy scalars, 0-d tensors) within int64."""
    if isinstance(step, bool):
        raise TypeError(f"step must be an integer, got {step!r}")
    value = _integral(step)
    if value is None:
        raise TypeError(f"step must be an integer, got {_short(step)} ({type(step).__name__})")
    if not MIN_STEP <= value <= MAX_STEP:
        raise TypeError(f"step {value} is out of range: steps are integers "
                        f"from -2**63 to 2**62 (64-bit)")
    return value


def _integral(step: Any) -> int | None:
    """``step`` as an int when it is a whole number, else None."""
    if isinstance(step, int):
        return step
    item = getattr(step, "item", None)
    if callable(item):
        try:
            step = item()
        except (ValueError, RuntimeError, TypeError):
            return None
        if isinstance(step, bool):
            return None
        if isinstance(step, int):
            return step
    if isinstance(step, float) and math.isfinite(step) and step.is_integer():
        return int(step)
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
