"""Min/max-preserving downsampling of long metric series (numpy only, no per-point loops).

Used by the run plots and comparisons here, and by the dashboard (a later stage).

A series of ``n`` points is cut into equal buckets of consecutive points. Every bucket
keeps the index of its minimum and of its maximum, so a single-point spike always
survives; the first and last points are always kept. Each bucket also reports its mean,
its size and its last index, which the smoother uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_POINTS = 2000


@dataclass(frozen=True)
class Buckets:
    """What ``bucketize`` returns: indices to draw plus per-bucket statistics."""

    keep: np.ndarray  # sorted unique indices of the points to draw
    size: int  # points per bucket (the last bucket may be shorter)
    last: np.ndarray  # index of the last point of each bucket
    mean: np.ndarray  # mean value of each bucket (NaN-free buckets only)
    count: np.ndarray  # number of finite points in each bucket


def bucket_size_for(n: int, max_points: int = DEFAULT_MAX_POINTS) -> int:
    """Points per bucket so that ``n`` points draw as at most about ``max_points``."""
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    if n <= max_points:
        return 1
    buckets = (max_points - 2) // 2
    return -(-n // buckets)


def bucketize(values: np.ndarray, size: int) -> Buckets:
    """Split ``values`` into buckets of ``size`` points and keep each bucket's extremes."""
    return bucketize_levels(values, size, 1)[0]


def bucketize_levels(values: np.ndarray, size: int, levels: int) -> list[Buckets]:
    """``bucketize`` with buckets of ``size``, ``2 * size``, ``4 * size``... from one pass.

    Each coarser level merges pairs of buckets of the previous one: a merged bucket's
    minimum is the smaller of its halves' minima, so the extremes stay exact.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return [Buckets(empty, size << level, empty, np.zeros(0), empty) for level in range(levels)]
    full, tail = divmod(n, size)
    parts = [_reduce(values[: full * size].reshape(full, size), 0)] if full else []
    if tail:
        parts.append(_reduce(values[full * size:].reshape(1, tail), full * size))
    stats = tuple(np.concatenate(column) for column in zip(*parts))
    out = [_buckets(stats, size, n)]
    for level in range(1, levels):
        stats = _merge_pairs(stats, values)
        out.append(_buckets(stats, size << level, n))
    return out


def _reduce(rows: np.ndarray, offset: int) -> tuple[np.ndarray, ...]:
    """Per row: index of the min and of the max (finite values only), sum and count of finite values."""
    finite = np.isfinite(rows)
    width = rows.shape[1]
    base = np.arange(rows.shape[0], dtype=np.int64) * width + offset
    if finite.all():
        total = rows.sum(axis=1)
        return rows.argmin(axis=1) + base, rows.argmax(axis=1) + base, total, np.full(rows.shape[0], width)
    low = np.where(finite, rows, np.inf)
    high = np.where(finite, rows, -np.inf)
    total = np.where(finite, rows, 0.0).sum(axis=1)
    return low.argmin(axis=1) + base, high.argmax(axis=1) + base, total, finite.sum(axis=1)


def _buckets(stats: tuple[np.ndarray, ...], size: int, n: int) -> Buckets:
    arg_min, arg_max, total, count = stats
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    first, second = np.minimum(arg_min, arg_max), np.maximum(arg_min, arg_max)
    pairs = np.stack([first, second], axis=1).ravel()  # sorted: buckets are consecutive
    keep = np.concatenate([[0], pairs, [n - 1]])
    keep = keep[np.concatenate([[True], np.diff(keep) > 0])]
    last = np.minimum(np.arange(1, arg_min.size + 1, dtype=np.int64) * size - 1, n - 1)
    return Buckets(keep, size, last, mean, count)


def _merge_pairs(stats: tuple[np.ndarray, ...], values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-bucket statistics of buckets twice as large (ties keep the earlier point)."""
    arg_min, arg_max, total, count = stats
    low = values[arg_min]
    low = np.where(np.isfinite(low), low, np.inf)
    high = values[arg_max]
    high = np.where(np.isfinite(high), high, -np.inf)
    if arg_min.size % 2:  # an empty bucket completes the last pair
        arg_min, arg_max = np.append(arg_min, arg_min[-1]), np.append(arg_max, arg_max[-1])
        low, high = np.append(low, np.inf), np.append(high, -np.inf)
        total, count = np.append(total, 0.0), np.append(count, 0)
    pair = (-1, 2)
    low, high = low.reshape(pair), high.reshape(pair)
    arg_min, arg_max = arg_min.reshape(pair), arg_max.reshape(pair)
    new_min = np.where(low[:, 0] <= low[:, 1], arg_min[:, 0], arg_min[:, 1])
    new_max = np.where(high[:, 0] >= high[:, 1], arg_max[:, 0], arg_max[:, 1])
    return new_min, new_max, total.reshape(pair).sum(axis=1), count.reshape(pair).sum(axis=1)


def downsample_indices(values: np.ndarray, max_points: int = DEFAULT_MAX_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` points keeping every bucket's min and max."""
    values = np.asarray(values)
    return bucketize(values, bucket_size_for(values.size, max_points)).keep


def downsample_minmax(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * buckets`` points of the series ``(x, y)``, each bucket's min and max kept."""
    if len(x) <= 2 * buckets:
        return x, y
    index = downsample_indices(y, 2 * buckets)
    return x[index], y[index]
