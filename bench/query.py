"""Query language speed: typical queries over a 100,000-run SQLite store, and `ls` at 10,000 runs.

Builds the stores in a temporary folder (or --dir) in bulk through the store's own tables
(``bench/dashboard.py``'s ``bulk_store``: 3 params, 3 tags and 3 metrics per run, a model
for nine runs in ten: parameters, MACs, fingerprint, Conv2D/Dense counts), adds the
metric sums the means need, then times each query as ``ls`` and the dashboard use it: the
first page of 50 runs newest first (``Store.query_runs``) and the number matching
(``Store.count_runs``), each the median of 5 in one process after one warm-up call. Then
``neural experiments ls`` end to end (a new process, the default 50 rows) on 10,000 runs.

    .venv/bin/python bench/query.py [--runs 100000] [--ls-runs 10000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard import bulk_store  # noqa: E402  (bench/dashboard.py)

TARGET_MS = 100.0
LS_TARGET_S = 0.5
START = 1.7e9  # bulk_store's first start time: run i starts at START + i
QUERIES = [
    "params.lr < 0.005",
    "params.optimizer = adam and params.batch_size >= 64",
    "metrics.loss.min < 0.05",
    "metrics.accuracy.mean > 0.5 and metrics.loss.last < 0.3",
    "tags has group-7",
    "status in (failed, interrupted)",
    "experiment = exp-3 and not tags has even",
    "name ~ 'run-0999*'",
    "run-099999",
    f"start > {time.strftime('%Y-%m-%dT%H:%M', time.localtime(START + 90_000))} and duration < 2m",
    "model.layers.Conv2D >= 2 and model.params < 1e6",
    "params.lr < 0.01 and metrics.accuracy.max >= 0.95 and tags has bench "
    "and model.layers.Conv2D >= 2 and status in (completed, running)",
]


def add_means(base_dir: Path) -> None:
    """The sums of the bulk series (min and max averaged: the bench needs a mean, not the true
    one) and the numeric parameters' numbers (bulk_store writes the rows, not what log_params adds)."""
    from neural_dsl_tracking.tracking.store import Store

    store = Store(base_dir)

    def write(cur) -> None:
        cur.execute("UPDATE metric_summary SET n_values = n_points, "
                    "value_sum = (min_value + max_value) / 2 * n_points")
        cur.execute("UPDATE params SET num = CAST(value AS REAL) WHERE key IN ('lr', 'batch_size')")
        cur.execute("ANALYZE")

    try:
        store.db.write(write)
    finally:
        store.close()


def build(base_dir: Path, runs: int) -> float:
    started = time.perf_counter()
    bulk_store(base_dir, runs, start=START)
    add_means(base_dir)
    return time.perf_counter() - started


def median_ms(call, rounds: int = 5) -> tuple[float, float]:
    """Wall and CPU milliseconds of ``call`` (medians of ``rounds``, after one warm-up call).
    SQLite works in this process, so CPU time is the query's own work, whatever the load."""
    call()
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def time_queries(base_dir: Path) -> bool:
    from neural_dsl_tracking.tracking.query import parse_query
    from neural_dsl_tracking.tracking.store import Store

    store = Store(base_dir, create=False)
    print(f"{'query':<60} {'matching':>9} {'page ms (CPU)':>15} {'count ms (CPU)':>15}")
    worst = 0.0
    try:
        for text in QUERIES:
            query = parse_query(text)
            page = median_ms(lambda: store.query_runs(query, limit=50))
            count = median_ms(lambda: store.count_runs(query))
            worst = max(worst, page[0], count[0])
            shown = text if len(text) <= 60 else text[:57] + "..."
            print(f"{shown:<60} {store.count_runs(query):>9,} {page[0]:>7.1f} ({page[1]:>5.1f})"
                  f" {count[0]:>7.1f} ({count[1]:>5.1f})")
    finally:
        store.close()
    print(f"slowest: {worst:.1f} ms wall (target < {TARGET_MS:.0f} ms); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return worst < TARGET_MS


def time_ls(base_dir: Path) -> bool:
    """``neural experiments ls`` in a new process (wall and CPU time, median of 3), and the
    part that is the query: the newest 50 runs and the count, in this process."""
    from neural_dsl_tracking.tracking.store import Store

    neural = Path(sys.executable).with_name("neural")
    walls, cpus = [], []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run([str(neural), "experiments", "ls", "--base-dir", str(base_dir)],
                                capture_output=True, text=True, timeout=120)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if result.returncode != 0:
            raise SystemExit(result.stderr)
    store = Store(base_dir, create=False)
    try:
        query_ms = median_ms(lambda: (store.query_runs(None, limit=50), store.count_runs(None)))[0]
    finally:
        store.close()
    lines = result.stdout.splitlines()
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"neural experiments ls: {len(lines) - 2} rows, {lines[-1]!r}")
    print(f"  end to end (median of 3): {wall:.2f} s wall, {cpu:.2f} s CPU (target < {LS_TARGET_S} s); "
          f"the runs and their count: {query_ms:.1f} ms")
    return wall < LS_TARGET_S


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--ls-runs", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, help="where to build the stores (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-query.", dir=args.dir) as folder:
        big, small = Path(folder) / "big", Path(folder) / "small"
        print(f"built {args.runs:,} runs in {build(big, args.runs):.1f} s")
        queries_ok = time_queries(big)
        print(f"built {args.ls_runs:,} runs in {build(small, args.ls_runs):.1f} s")
        ls_ok = time_ls(small)
    return 0 if queries_ok and ls_ok else 1


if __name__ == "__main__":
    sys.exit(main())
