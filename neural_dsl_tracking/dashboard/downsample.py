"""Min/max-preserving downsampling of long metric series (numpy only, no per-point loops).

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
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Buckets(empty, size, empty, np.zeros(0), empty)
    n_buckets = -(-n // size)
    padded = n_buckets * size
    finite = np.isfinite(values)
    low = np.where(finite, values, np.inf)
    high = np.where(finite, values, -np.inf)
    summed = np.where(finite, values, 0.0)
    if padded != n:
        pad = padded - n
        low = np.concatenate([low, np.full(pad, np.inf)])
        high = np.concatenate([high, np.full(pad, -np.inf)])
        summed = np.concatenate([summed, np.zeros(pad)])
        finite = np.concatenate([finite, np.zeros(pad, dtype=bool)])
    offsets = np.arange(n_buckets, dtype=np.int64) * size
    arg_min = low.reshape(n_buckets, size).argmin(axis=1) + offsets
    arg_max = high.reshape(n_buckets, size).argmax(axis=1) + offsets
    count = finite.reshape(n_buckets, size).sum(axis=1)
    total = summed.reshape(n_buckets, size).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    keep = np.unique(np.concatenate([[0, n - 1], arg_min, arg_max]))
    keep = keep[keep < n]
    last = np.minimum(offsets + size - 1, n - 1)
    return Buckets(keep, size, last, mean, count)


def downsample_indices(values: np.ndarray, max_points: int = DEFAULT_MAX_POINTS) -> np.ndarray:
    """Indices of at most about ``max_points`` points keeping every bucket's min and max."""
    values = np.asarray(values)
    return bucketize(values, bucket_size_for(values.size, max_points)).keep
