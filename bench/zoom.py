"""Zoom re-bucketing: server time to draw a zoomed chart of 10 runs x 1,000,000 steps.

Writes the runs into a temporary SQLite store (or --dir) through the store's own API, then
times ``views.metric_chart`` (what the dashboard's zoom callback runs: the step-range read
of only the chunks holding the range, min/max bucketing, the figure) for x-ranges from the
whole series down to 100 steps, each on a fresh ``DashboardData``: the overview, drawn as
the Metrics tab first draws it (``views.metrics_view``: it reads the series in bulk and
downsamples them for the dashboard's cache, and queues each long one for the background
build of its fine level, ``FineLevels`` in ``dashboard/data.py``),
then the first zoom at once (a wide one builds the queued fine levels itself, the
background thread helping) and the median of 5 after it; the first zoom on another fresh
``DashboardData`` ``PAUSE`` s after its overview (a person's quickest zoom: the levels are
built by then); and the first zoom at once after only the server's warm-up
(``DashboardData.warm``) ran. Then the same ranges on the wall-time axis (the time-range
read of the chunks holding them).

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
PAUSE = 0.5  # seconds from the overview to a person's first zoom
FRACTIONS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)  # zoomed widths, as parts of the series; then 1,000 and 100 steps


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


def ms(call) -> float:
    """Milliseconds of one call."""
    began = time.perf_counter()
    call()
    return (time.perf_counter() - began) * 1000


def timed(call) -> tuple[float, float]:
    """Milliseconds of a first call, and the median of ``REPEATS`` calls after it."""
    first = ms(call)
    return first, statistics.median(ms(call) for _ in range(REPEATS))


def chart(data: DashboardData, span, x_mode: str = "step"):
    """What the dashboard's zoom callback runs for ``span``."""
    runs = data.runs()
    colors = views.run_colors(runs)
    return lambda: views.metric_chart(data, "loss", runs, colors, 0.0, x_mode, False, "light", span=span)


def overview(data: DashboardData, x_mode: str):
    """What the Metrics tab runs to draw its charts first."""
    runs = data.runs()
    return lambda: views.metrics_view(data, runs, views.run_colors(runs), 0.0, x_mode, False)


def widths(steps: int) -> list[int]:
    """The zoomed widths measured, in steps, widest first."""
    return [int(steps * fraction) for fraction in FRACTIONS] + [width for width in (1_000, 100) if width < steps]


def first_zooms(base: Path, span, x_mode: str) -> tuple[float, ...]:
    """On fresh ``DashboardData``s (ms): the overview's first call, then the first zoom to
    ``span`` at once and the median after it; the first zoom ``PAUSE`` s after the overview;
    the first zoom at once after only the warm-up."""
    data = DashboardData(base)
    drawn = ms(overview(data, x_mode))
    first, median = timed(chart(data, span, x_mode))
    data.manager().close()
    data = DashboardData(base)
    overview(data, x_mode)()
    time.sleep(PAUSE)
    paused = ms(chart(data, span, x_mode))
    data.manager().close()
    data = DashboardData(base)
    data.warm()
    warmed = ms(chart(data, span, x_mode))
    data.manager().close()
    return drawn, first, median, paused, warmed


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
        worst = 0.0
        for x_mode, unit in (("step", "steps"), ("wall", "steps' wall time")):
            print(f"{'x-range (' + unit + ')':>28} {'overview':>9} {'1st zoom':>9} {'median':>7} "
                  f"{f'1st {PAUSE:g} s later':>15} {'1st after warm-up':>18}  (ms)")
            for width in widths(args.steps):
                low, high = (args.steps - width) // 2, (args.steps + width) // 2 - 1
                span = (low, high) if x_mode == "step" else (wall_ms(low), wall_ms(high))
                drawn, *zooms = first_zooms(base, span, x_mode)
                worst = max(worst, *zooms)
                first, median, paused, warmed = zooms
                print(f"{width:>28,} {drawn:>9.1f} {first:>9.1f} {median:>7.1f} {paused:>15.1f} {warmed:>18.1f}")
        print(f"slowest zoom (first or median) {worst:.1f} ms (target {TARGET_MS:.0f} ms): "
              f"{'met' if worst < TARGET_MS else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
