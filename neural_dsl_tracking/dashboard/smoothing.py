"""Debiased exponential moving average, as TensorBoard's smoothing slider computes it.

TensorBoard runs ``last = last * w + (1 - w) * v`` over the points and divides by
``1 - w ** n`` so the curve does not start at zero. Here the input is bucketed (a mean and
a count per bucket, see ``downsample.bucketize``): a bucket of ``c`` points with mean ``m``
advances the average as ``c`` points equal to ``m`` would, so the smoothed curve follows
the raw series whatever the downsampling. Vectorised with numpy: the linear recurrence is
solved in log space, in blocks short enough that nothing overflows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MAX_DECAY_PER_BUCKET = 50.0  # exp(-50) is below float64 resolution of any partial sum
_MAX_DECAY_PER_BLOCK = 600.0  # exp(600) is still finite in float64


@dataclass(frozen=True)
class EmaState:
    """Where a smoothed series stopped: the biased accumulator and the points it has seen."""

    accumulator: float = 0.0
    seen: float = 0.0


def smooth(
    means: np.ndarray,
    counts: np.ndarray,
    weight: float,
    state: EmaState = EmaState(),
) -> tuple[np.ndarray, EmaState]:
    """Smoothed value after each bucket, and the state to continue from later.

    ``weight`` is TensorBoard's smoothing factor in [0, 1): 0 returns the means.
    Buckets with no finite point (count 0) repeat the previous smoothed value.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError("smoothing weight must be in [0, 1)")
    means = np.asarray(means, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if means.size == 0:
        return np.zeros(0), state
    contribution = np.where(counts > 0, means, 0.0)
    if weight == 0.0:
        filled = _forward_fill(np.where(counts > 0, means, np.nan), state)
        last_finite = filled[-1] if np.isfinite(filled[-1]) else state.accumulator
        return filled, EmaState(float(last_finite), state.seen + float(counts.sum()))
    log_w = np.log(weight)
    decay = np.maximum(counts * log_w, -_MAX_DECAY_PER_BUCKET)
    step_in = (1.0 - np.exp(decay)) * contribution
    cumulative = np.cumsum(decay)
    accumulated = _solve_recurrence(cumulative, step_in, state.accumulator)
    seen = state.seen + np.cumsum(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        debias = -np.expm1(seen * log_w)
        smoothed = np.where(seen > 0, accumulated / debias, np.nan)
    return smoothed, EmaState(float(accumulated[-1]), float(seen[-1]))


def _solve_recurrence(cumulative: np.ndarray, step_in: np.ndarray, start: float) -> np.ndarray:
    """``acc[b] = exp(decay[b]) * acc[b-1] + step_in[b]`` given ``cumulative = cumsum(decay)``."""
    out = np.empty_like(step_in)
    rising = -cumulative  # non-decreasing
    reference, carried, begin, n = 0.0, start, 0, step_in.size
    while begin < n:
        end = int(np.searchsorted(rising, -reference + _MAX_DECAY_PER_BLOCK, side="right"))
        end = max(end, begin + 1)
        block = cumulative[begin:end]
        partial = carried + np.cumsum(np.exp(reference - block) * step_in[begin:end])
        out[begin:end] = partial * np.exp(block - reference)
        carried, reference, begin = out[end - 1], block[-1], end
    return out


def _forward_fill(values: np.ndarray, state: EmaState) -> np.ndarray:
    """Replace NaN by the previous finite value (or the state's value when there is one)."""
    finite = np.isfinite(values)
    if finite.all():
        return values
    index = np.where(finite, np.arange(values.size), -1)
    np.maximum.accumulate(index, out=index)
    previous = state.accumulator if state.seen > 0 else np.nan
    return np.where(index >= 0, values[np.maximum(index, 0)], previous)
