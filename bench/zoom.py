"""Zoom re-bucketing: server time to draw a zoomed chart of 10 runs x 1,000,000 steps.

Writes the runs into a temporary SQLite store (or --dir) through the store's own API, then
times ``views.metric_chart`` (what the dashboard's zoom callback runs: the step-range read
of only the chunks holding the range, min/max bucketing, the figure) for x-ranges from the
whole series down to 100 steps: the first call (a wide zoom then reads each series once
for its fine level, ``dashboard/zoom.py``) and the median of 5 after it; and the overview
(reset zoom), whose first call reads and downsamples the series for the dashboard's cache.
Then the same ranges on the wall-time axis (the time-range read of the chunks holding them).

    .venv/bin/python bench/zoom.py [--runs 10] [--steps 1000000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neural_dsl_tracking.dashboard import views  # noqa: E402
from neural_dsl_tracking.dashboard.data import DashboardData  # noqa: E402
from neural_dsl_tracking.tracking.store import Store  # noqa: E402

TARGET_MS = 200.0
REPEATS = 5


def wall_ms(step: int) -> float:
    """Where ``step`` is on the wall-time axis (epoch milliseconds): a point every millisecond."""
    return (1e9 + step / 1000.0) * 1000.0


def build(base: Path, runs: int, steps: int) -> None:
    """``runs`` completed runs of one metric ``loss`` with ``steps`` points each."""
    store = Store(base)
    rng = np.random.default_rng(0)
    for index in range(runs):
        run_id = store.create_run(experiment="zoom", run_name=f"run-{index}")
        at = np.arange(steps)
        store.append_metrics(run_id, {"loss": (at, rng.normal(size=steps).cumsum(), wall_ms(at) / 1000.0)})
        store.set_status(run_id, "completed", end_time=time.time())
    store.close()


def timed(call) -> tuple[float, float]:
    """Milliseconds of a first call, and the median of ``REPEATS`` calls after it."""
    began = time.perf_counter()
    call()
    first = (time.perf_counter() - began) * 1000
    samples = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return first, statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = (args.dir or Path(tmp)) / "neural_experiments"
        began = time.perf_counter()
        build(base, args.runs, args.steps)
        print(f"store: {args.runs} runs x {args.steps:,} steps written in {time.perf_counter() - began:.1f} s")
        data = DashboardData(base)
        runs = data.runs()
        colors = views.run_colors(runs)

        def chart(span, x_mode="step"):
            return lambda: views.metric_chart(data, "loss", runs, colors, 0.0, x_mode, False, "light", span=span)

        first, median = timed(chart(None))
        print(f"{'overview (reset)':>28} {first:>9.1f} {median:>10.1f}")
        worst = 0.0
        for x_mode, unit in (("step", "steps"), ("wall", "steps' wall time")):
            print(f"{'x-range (' + unit + ')':>28} {'first ms':>9} {'median ms':>10}")
            width = args.steps
            while width >= 100:
                low, high = (args.steps - width) // 2, (args.steps + width) // 2 - 1
                span = (low, high) if x_mode == "step" else (wall_ms(low), wall_ms(high))
                first, median = timed(chart(span, x_mode))
                worst = max(worst, median)
                print(f"{width:>28,} {first:>9.1f} {median:>10.1f}")
                width //= 10
        print(f"slowest zoom (median) {worst:.1f} ms (target {TARGET_MS:.0f} ms): "
              f"{'met' if worst < TARGET_MS else 'MISSED'}")
        data.manager().close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
