"""The min/max downsampler and the debiased EMA, on plain numpy arrays."""

from __future__ import annotations

import numpy as np
import pytest

from neural_dsl_tracking.tracking.downsample import bucket_size_for, bucketize, bucketize_levels, downsample_indices
from neural_dsl_tracking.dashboard.smoothing import EmaState, smooth


def tensorboard_ema(values, weight):
    last, out = 0.0, []
    for n, value in enumerate(values, start=1):
        last = last * weight + (1 - weight) * value
        out.append(last / (1 - weight**n))
    return np.array(out)


@pytest.mark.parametrize("n", [100_000, 123_457, 2_001, 5_000_000])
def test_output_is_bounded_and_keeps_first_and_last(n):
    values = np.random.default_rng(n).normal(size=n)
    keep = downsample_indices(values, 2000)
    assert len(keep) <= 2000
    assert keep[0] == 0 and keep[-1] == n - 1
    assert np.all(np.diff(keep) > 0)


@pytest.mark.parametrize("position", [0, 1, 777, 54_321, 99_998, 99_999])
@pytest.mark.parametrize("sign", [1, -1])
def test_single_point_spike_survives(position, sign):
    values = np.random.default_rng(position).normal(size=100_000)
    values[position] = sign * 1e6
    keep = downsample_indices(values, 2000)
    assert position in keep


def test_every_bucket_min_and_max_are_kept():
    values = np.random.default_rng(1).normal(size=50_000)
    size = bucket_size_for(values.size, 2000)
    keep = set(downsample_indices(values, 2000).tolist())
    for start in range(0, values.size, size):
        bucket = values[start:start + size]
        assert start + int(bucket.argmin()) in keep
        assert start + int(bucket.argmax()) in keep


def test_short_series_are_untouched():
    values = np.arange(1500, dtype=float)
    assert downsample_indices(values, 2000).tolist() == list(range(1500))
    assert downsample_indices(np.zeros(0), 2000).size == 0
    assert downsample_indices(np.array([3.0]), 2000).tolist() == [0]


def test_nan_and_inf_do_not_hide_the_finite_extremes():
    values = np.random.default_rng(2).normal(size=10_000)
    values[::7] = np.nan
    values[5] = np.inf
    values[4242] = 50.0
    buckets = bucketize(values, bucket_size_for(values.size, 200))
    assert 4242 in buckets.keep
    assert np.all(np.isfinite(buckets.mean))
    assert buckets.count.sum() == np.isfinite(values).sum()


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.9, 0.99, 0.999])
def test_smoothing_matches_tensorboard_point_by_point(weight):
    values = np.random.default_rng(3).normal(size=3000).cumsum()
    smoothed, _ = smooth(values, np.ones_like(values), weight)
    np.testing.assert_allclose(smoothed, tensorboard_ema(values, weight), rtol=1e-9, atol=1e-9)


def test_smoothing_continues_from_a_saved_state():
    values = np.random.default_rng(4).normal(size=2000)
    first, state = smooth(values[:700], np.ones(700), 0.95)
    rest, _ = smooth(values[700:], np.ones(1300), 0.95, state)
    assert isinstance(state, EmaState)
    np.testing.assert_allclose(np.concatenate([first, rest]), tensorboard_ema(values, 0.95), atol=1e-9)


def test_bucketed_smoothing_follows_the_raw_curve():
    values = np.sin(np.linspace(0, 20, 100_000)) + np.random.default_rng(5).normal(scale=0.5, size=100_000)
    buckets = bucketize(values, bucket_size_for(values.size, 2000))
    smoothed, _ = smooth(buckets.mean, buckets.count, 0.999)
    exact = tensorboard_ema(values, 0.999)[buckets.last]
    assert np.max(np.abs(smoothed - exact)) < 0.01


def test_smoothing_rejects_bad_weights():
    with pytest.raises(ValueError):
        smooth(np.ones(3), np.ones(3), 1.0)


@pytest.mark.parametrize("n,size", [(100_000, 101), (99_991, 7), (1_000, 1), (5, 3), (12_345, 50)])
def test_coarser_levels_equal_bucketizing_directly(n, size):
    values = np.random.default_rng(n).normal(size=n)
    values[::13] = np.nan
    values[n // 3] = np.inf
    values[n // 2] = 1e9
    for level, merged in enumerate(bucketize_levels(values, size, 3)):
        direct = bucketize(values, size << level)
        assert merged.size == direct.size
        np.testing.assert_array_equal(merged.keep, direct.keep)
        np.testing.assert_array_equal(merged.last, direct.last)
        np.testing.assert_array_equal(merged.count, direct.count)
        np.testing.assert_allclose(merged.mean, direct.mean, equal_nan=True)
