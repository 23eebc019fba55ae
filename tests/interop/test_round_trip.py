"""The round trip, per peer: runs written by the peer's own SDK -> ``import`` -> ``sync`` back
out to a fresh peer store -> read back with the peer's reader: params, every metric point
(step, value, wall time to the peer's precision), tags and artifact bytes identical, on
10 runs x 3 metrics x 10,000 steps. The writers, readers and comparison are bench/interop.py's."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow
RUNS, STEPS = 10, 10_000


@pytest.mark.parametrize("peer", ["mlflow", "tensorboard", "wandb"])
def test_every_run_comes_back_identical(peer, tmp_path, monkeypatch, bench_interop):
    for name, value in bench_interop.wandb_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NEURAL_NO_PROGRESS", "1")
    figures = bench_interop.measure(peer, tmp_path, RUNS, STEPS)
    assert figures.points == RUNS * len(bench_interop.KEYS) * STEPS
    assert figures.problems == []
    assert figures.same == figures.points  # 100 % of the points, each (step, value, time)
