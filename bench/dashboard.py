"""Dashboard speed: select every run of a 100 runs x 3 metrics x 100k steps store, in Chromium.

Builds the store with ExperimentTracker (reused when --store already holds it), serves the
dashboard in-process, drives a real headless Chromium, and prints the time from clicking
"Select shown" to all three Metrics charts drawn with every run, the bytes the callbacks
sent, and the CPU time of Chromium and of the server. Each the median of 3, cold (a freshly
started dashboard: every series read from the store in bulk and downsampled when the charts
are drawn; the first cold round also runs in a fresh process, whose first large reads pay
for page faults, and is printed on its own) and warm (served from the downsampled-series cache, as after the launcher's
background warm-up). With 100 runs a chart draws 1,000 points per series (the cache's
half level, see dashboard/data.py), still every bucket's minimum and maximum. The peer,
measured in the same run, is the same dashboard without downsampling (every raw point
sent and drawn), on the 10 runs run-000..run-009: it takes too long on all 100.

    .venv/bin/python bench/dashboard.py [--runs 100] [--steps 100000] [--store DIR] [--peer-filter run-00]

From ``--runs 1000`` on, it measures a store of that many small runs instead (``bulk_store``,
``bench_many``): first row and charts, filter, query, sort, paging, an idle tick's main-thread
time, the DOM size and the warm-up (bench/README.md, "Many runs").
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
KEYS = ("loss", "accuracy", "lr")
TARGET_SECONDS = 2.0


def log_run(base_dir: str, index: int, steps: int) -> None:
    """One run through the public tracker API: hyperparameters and 3 metrics per step."""
    from neural_dsl_tracking.tracking import ExperimentTracker

    rng = np.random.default_rng(index)
    lr = float(10 ** rng.uniform(-4, -1))
    decay = rng.uniform(2, 6)
    x = np.arange(steps) / steps
    loss = (np.exp(-decay * x) + rng.normal(0, 0.05, steps)).tolist()
    accuracy = (1 - 0.9 * np.exp(-decay * x) + rng.normal(0, 0.02, steps)).tolist()
    loss[int(rng.integers(steps))] = 25.0  # one spike per run
    tracker = ExperimentTracker("bench", base_dir=base_dir, run_name=f"run-{index:03d}", auto_visualize=False,
                                tags=["bench", "even" if index % 2 == 0 else "odd"])
    tracker.log_hyperparameters({"lr": lr, "batch_size": int(rng.choice([32, 64, 128])),
                                 "optimizer": str(rng.choice(["adam", "sgd"]))})
    for step in range(steps):
        tracker.log_metrics({"loss": loss[step], "accuracy": accuracy[step], "lr": lr}, step=step)
    tracker.finish("completed")


def build_store(base_dir: Path, runs: int, steps: int) -> float:
    """Log ``runs`` runs into ``base_dir`` (two processes); returns seconds taken."""
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(log_run, [str(base_dir)] * runs, range(runs), [steps] * runs))
    return time.perf_counter() - started


BULK_STATUSES = ("completed",) * 8 + ("failed", "interrupted")
BULK_EXPERIMENTS = 10
BULK_BATCH = 5000  # runs per write transaction
BULK_STEPS = 20


def bulk_store(base_dir: Path, runs: int, steps: int = BULK_STEPS, start: float = 1.7e9) -> None:
    """``runs`` small finished runs (``KEYS`` x ``steps`` points, 3 params, 3 tags) written in
    bulk into the store's own tables: a store of 10,000 runs in about a second.

    Run ``i`` is ``run-{i:06d}`` in experiment ``exp-{i % 10}``, started at ``start + i``,
    tagged ``bench``, ``even``/``odd`` and ``group-{i % 100}``; its final loss grows with
    ``i % 97``. Nine runs in ten have a model (its spec left empty): ``100,000 + 25,000 *
    (i % 101)`` parameters, ``1M * (1 + i % 7)`` MACs, two Dense layers and ``i % 4`` Conv2D,
    and the fingerprint of ``i % 5000`` (so runs ``i`` and ``i + 5000`` are twins).
    """
    from neural_dsl_tracking.tracking.query import param_number
    from neural_dsl_tracking.tracking.store import FLOAT_DTYPE, STEP_DTYPE, Store, to_json

    store = Store(base_dir)
    steps_array = np.arange(steps, dtype=STEP_DTYPE)

    def rows(first: int, last: int) -> dict[str, list[tuple]]:
        table: dict[str, list[tuple]] = {"runs": [], "run_tags": [], "params": [], "metric_chunks": [],
                                         "metric_summary": [], "run_models": [], "run_layer_counts": []}
        for index in range(first, last):
            run_id, began = f"{index:08x}{'0' * 24}", start + index
            table["runs"].append((run_id, f"exp-{index % BULK_EXPERIMENTS}", f"run-{index:06d}",
                                  BULK_STATUSES[index % len(BULK_STATUSES)], began, began + 60, began + 60))
            table["run_tags"] += [(run_id, tag) for tag in ("bench", ("even", "odd")[index % 2],
                                                            f"group-{index % 100}")]
            lr = 10.0 ** -(1 + index % 4)
            texts = [(key, to_json(value)) for key, value in
                     (("lr", lr), ("batch_size", 32 << index % 3), ("optimizer", ("adam", "sgd")[index % 2]))]
            table["params"] += [(run_id, key, text, param_number(text)) for key, text in texts]
            if index % 10 != 9:
                table["run_models"].append((run_id, "{}", 100_000 + 25_000 * (index % 101),
                                            1_000_000 * (1 + index % 7), f"{index % 5000:08x}"))
                table["run_layer_counts"] += [(run_id, "Dense", 2)] + ([(run_id, "Conv2D", index % 4)]
                                                                       if index % 4 else [])
            times = began + steps_array.astype(FLOAT_DTYPE)
            decay = 1 + (index * 7919 % 1000) / 200 * np.arange(steps) / steps
            series = {"loss": np.exp(-decay) + (index % 97) / 1000, "accuracy": 1 - 0.9 * np.exp(-decay),
                      "lr": np.full(steps, lr)}
            for key, values in series.items():
                values = values.astype(FLOAT_DTYPE)
                table["metric_chunks"].append((run_id, key, 0, steps, steps_array.tobytes(), values.tobytes(),
                                               times.tobytes()))
                table["metric_summary"].append((run_id, key, steps, float(values[-1]), steps - 1, float(times[-1]),
                                                float(values.min()), float(values.max()), steps - 1,
                                                float(values.sum()), steps))
        return table

    columns = {"runs": "run_id, experiment, run_name, status, start_time, end_time, heartbeat",
               "run_tags": "run_id, tag", "params": "run_id, key, value, num",
               "run_models": "run_id, spec, params, macs, fingerprint", "run_layer_counts": "run_id, layer_type, n",
               "metric_chunks": "run_id, key, seq, n_points, steps, vals, times",
               "metric_summary": "run_id, key, n_points, latest, latest_step, latest_time, min_value, "
                                 "max_value, max_step, value_sum, n_values"}

    def write(cur, first: int, last: int) -> None:
        cur.executemany("INSERT INTO experiments (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                        [(f"exp-{number}", start) for number in range(BULK_EXPERIMENTS)])
        for name, values in rows(first, last).items():
            marks = ", ".join("?" * len(values[0]))
            cur.executemany(f"INSERT INTO {name} ({columns[name]}) VALUES ({marks})", values)

    try:
        for first in range(0, runs, BULK_BATCH):
            store.db.write(lambda cur: write(cur, first, min(runs, first + BULK_BATCH)))
    finally:
        store.close()


def store_matches(base_dir: Path, runs: int, steps: int, models: bool = False) -> bool:
    """Whether ``base_dir`` holds ``runs`` runs of ``steps`` points per metric (and recorded
    models, with ``models``: ``bulk_store``'s)."""
    if not (base_dir / "store.db").is_file():
        return False
    from neural_dsl_tracking.tracking import ExperimentManager

    manager = ExperimentManager(base_dir)
    records = manager.list_experiments()
    return len(records) == runs and all(
        record.metrics.get(key, {}).get("count") == steps for record in records for key in KEYS
    ) and (not models or bool(manager.model_facts()))


def chromium_cpu_seconds() -> float:
    """User+system CPU time of every Chromium process so far (Linux /proc; 0 elsewhere)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "chrom" in text[text.find("(") + 1:text.rfind(")")]:
            fields = text[text.rfind(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def median_of(times: int, measure) -> tuple[float, int, float, float]:
    """The run with the median time among ``times`` measurements."""
    results = sorted(measure() for _ in range(times))
    return results[len(results) // 2]


def matching_runs(base_dir: Path, text: str) -> int:
    from neural_dsl_tracking.tracking import ExperimentManager

    return sum(text in record.run_name for record in ExperimentManager(base_dir).list_experiments())


class Served:
    """The dashboard served in-process on a free loopback port."""

    def __init__(self, base_dir: Path, downsample: bool = True) -> None:
        from werkzeug.serving import make_server

        from neural_dsl_tracking.dashboard.app import create_app
        from neural_dsl_tracking.dashboard.data import DashboardData

        data = DashboardData(base_dir) if downsample else DashboardData(base_dir, max_points=10**12,
                                                                         chart_budget=None)
        self.app = create_app(data=data)
        self.server = make_server("127.0.0.1", 0, self.app.server, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()


def time_select_all(browser, url: str, runs: int, text: str | None = None) -> tuple[float, int, float, float]:
    """Seconds from the click to every chart drawn with every shown run, callback bytes, and
    the CPU seconds Chromium and this process (the dashboard server, plus Playwright's small
    client) spent meanwhile: unlike wall time, other load barely moves CPU time."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(600_000)
    page.goto(url)
    page.wait_for_selector("#run-table tbody tr td", state="attached")
    page.wait_for_selector(".metric-graph .js-plotly-plot .main-svg")
    if text:
        page.fill("#filter-text", text)
        page.press("#filter-text", "Enter")
        page.wait_for_function(f"() => document.querySelectorAll('#run-table td[data-dash-column=run_name]').length"
                               f" === {runs}")
    page.click("#clear-selection")
    page.wait_for_selector("#metrics-area .hint")
    page.evaluate("() => { performance.setResourceTimingBufferSize(100000); performance.clearResourceTimings(); }")
    cpu = chromium_cpu_seconds()
    server_cpu = time.process_time()
    started = time.perf_counter()
    page.click("#select-shown")
    page.wait_for_function(
        """n => { const gds = document.querySelectorAll('.metric-graph .js-plotly-plot');
                  return gds.length === 3 && Array.from(gds).every(gd => gd._fullData.length === n && (
                      gd.querySelectorAll('.scatterlayer .trace').length === n ||
                      gd.querySelector('canvas.gl-canvas-context'))); }""", arg=runs, polling="raf")
    elapsed = time.perf_counter() - started
    server_cpu = time.process_time() - server_cpu
    cpu = chromium_cpu_seconds() - cpu
    sent = page.evaluate("""() => performance.getEntriesByType('resource')
        .filter(entry => entry.name.includes('_dash-update-component'))
        .reduce((total, entry) => total + entry.encodedBodySize, 0)""")
    page.close()
    return elapsed, sent, cpu, server_cpu


def time_cold(browser, base_dir: Path, runs: int) -> tuple[float, int, float, float]:
    """``time_select_all`` on a freshly started dashboard: every series comes from the store."""
    served = Served(base_dir)
    try:
        return time_select_all(browser, served.url, runs)
    finally:
        served.close()


MANY_RUNS = 1000  # from this many --runs, the bench measures a store of many small runs instead
MANY_TARGETS = {"first row, server CPU": 1.0, "first row": 3.0, "filter": 0.3, "query": 0.3, "sort": 0.3,
                "sort by params": 0.3, "model query": 0.3, "idle tick, main thread": 0.05}
TABLE_ROWS_JS = "() => Array.from(document.querySelectorAll('#run-table td[data-dash-column=run_name]'))" \
                ".map(td => td.innerText).join()"


def main_thread_seconds(cdp) -> float:
    """Seconds the page's main thread has spent running tasks (Chrome's TaskDuration)."""
    return next(metric["value"] for metric in cdp.send("Performance.getMetrics")["metrics"]
                if metric["name"] == "TaskDuration")


def timed_change(page, act, done_js: str) -> tuple[float, float]:
    """Seconds from ``act()`` until ``done_js`` (given the table's rows before) holds, and the
    CPU seconds this process (the dashboard server) spent meanwhile."""
    before = page.evaluate(TABLE_ROWS_JS)
    server_cpu, started = time.process_time(), time.perf_counter()
    act()
    page.wait_for_function(done_js, arg=before, polling="raf")
    return time.perf_counter() - started, time.process_time() - server_cpu


def measure_many(browser, base_dir: Path, runs: int) -> dict[str, float]:
    """The dashboard on a store of ``runs`` small runs: first row and charts (wall and server
    CPU), filter, sort, an idle live tick's main-thread time and bytes, the page's DOM size."""
    served = Served(base_dir)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(600_000)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    figures: dict[str, float] = {}
    try:
        server_cpu, started = time.process_time(), time.perf_counter()
        page.goto(served.url)
        page.wait_for_selector("#run-table tbody tr td", state="attached")
        figures["first row"] = time.perf_counter() - started
        figures["first row, server CPU"] = time.process_time() - server_cpu
        page.wait_for_selector(".metric-graph .js-plotly-plot .main-svg")
        figures["charts"] = time.perf_counter() - started
        page.wait_for_timeout(1000)
        changed = f"before => ({TABLE_ROWS_JS})() !== before"
        sort = page.locator("#run-table th[data-dash-column=best] .column-header--sort")
        by_params = page.locator("#run-table th[data-dash-column=params] .column-header--sort")
        def search(text: str):
            return lambda: (page.fill("#filter-text", text), page.press("#filter-text", "Enter"))

        for name, act in (("filter", search("run-0012")), ("clear filter", search("")),
                          ("query", search("params.lr < 0.005 and status = failed")), ("clear query", search("")),
                          ("sort", sort.click), ("next page", lambda: page.click("#run-table .next-page")),
                          ("sort by params", by_params.click), ("model query", search("model.params > 1e6")),
                          ("clear model query", search(""))):
            figures[name], figures[f"{name}, server CPU"] = timed_change(page, act, changed)
        page.wait_for_timeout(1000)
        page.evaluate("() => { performance.setResourceTimingBufferSize(100000); performance.clearResourceTimings(); }")
        busy = main_thread_seconds(cdp)
        page.evaluate("() => window.dash_clientside.set_props('live-tick', {n_intervals: Date.now()})")
        page.wait_for_timeout(1000)
        figures["idle tick, main thread"] = main_thread_seconds(cdp) - busy
        figures["idle tick, bytes"] = page.evaluate("""() => performance.getEntriesByType('resource')
            .filter(entry => entry.name.includes('_dash-update-component'))
            .reduce((total, entry) => total + entry.encodedBodySize, 0)""")
        figures["DOM, MB"] = page.evaluate("() => document.documentElement.outerHTML.length") / 1e6
    finally:
        page.close()
        served.close()
    return figures


def warm_up_seconds(base_dir: Path) -> tuple[int, float]:
    """Series warmed and CPU seconds of ``DashboardData.warm`` on a fresh dashboard."""
    from neural_dsl_tracking.dashboard.data import DashboardData

    data = DashboardData(base_dir)
    data.runs()
    started = time.process_time()
    warmed = data.warm()
    return warmed, time.process_time() - started


def bench_many(base_dir: Path, runs: int) -> None:
    """Build (or reuse) a store of ``runs`` small runs and print the dashboard's figures on it."""
    from playwright.sync_api import sync_playwright

    if not store_matches(base_dir, runs, BULK_STEPS, models=True):
        shutil.rmtree(base_dir, ignore_errors=True)
        started = time.perf_counter()
        bulk_store(base_dir, runs, BULK_STEPS)
        print(f"store: {runs} runs x {len(KEYS)} metrics x {BULK_STEPS} steps written in bulk in "
              f"{time.perf_counter() - started:.1f} s")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        figures = measure_many(browser, base_dir, runs)
        browser.close()
    warmed, warm_cpu = warm_up_seconds(base_dir)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    for name, value in figures.items():
        target = MANY_TARGETS.get(name)
        verdict = "" if target is None else f"  (target < {target:g} s: {'met' if value < target else 'NOT met'})"
        unit = "" if "bytes" in name or "MB" in name else " s"
        print(f"{runs} runs, {name}: {value:.3f}{unit}{verdict}")
    print(f"{runs} runs, warm-up of {warmed} series: {warm_cpu:.2f} s CPU")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--peer-filter", default="run-00",
                        help="run-name text choosing the runs drawn by the no-downsampling peer "
                             "(run-000: 1 run, run-00: 10 runs)")
    parser.add_argument("--store", type=Path, help="store directory to build or reuse (default: a temp dir)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request lines
    temp = None if args.store else Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    base_dir = args.store or temp / "neural_experiments"
    if args.runs >= MANY_RUNS:
        try:
            bench_many(base_dir, args.runs)
        finally:
            if temp is not None:
                shutil.rmtree(temp, ignore_errors=True)
        return 0
    try:
        if store_matches(base_dir, args.runs, args.steps):
            print(f"store: reusing {base_dir} ({args.runs} runs x {len(KEYS)} metrics x {args.steps} steps)")
        else:
            shutil.rmtree(base_dir, ignore_errors=True)
            seconds = build_store(base_dir, args.runs, args.steps)
            points = args.runs * len(KEYS) * args.steps
            print(f"store: {args.runs} runs x {len(KEYS)} metrics x {args.steps} steps logged with "
                  f"ExperimentTracker in {seconds:.1f} s ({points / seconds / 1e6:.2f} M points/s, 2 processes)")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            colds = [time_cold(browser, base_dir, args.runs) for _ in range(3)]
            cold, cold_bytes, cold_cpu, cold_server = sorted(colds)[1]
            served = Served(base_dir)
            try:
                time_select_all(browser, served.url, args.runs)  # fill its cache
                warm, warm_bytes, warm_cpu, warm_server = median_of(
                    3, lambda: time_select_all(browser, served.url, args.runs))
            finally:
                served.close()
            peer_runs = matching_runs(base_dir, args.peer_filter)
            raw_server = Served(base_dir, downsample=False)
            try:
                time_select_all(browser, raw_server.url, peer_runs, text=args.peer_filter)  # fill its cache
                raw, raw_bytes, _, _ = median_of(3, lambda: time_select_all(browser, raw_server.url, peer_runs,
                                                                          text=args.peer_filter))
            finally:
                raw_server.close()
            served = Served(base_dir)
            try:
                time_select_all(browser, served.url, peer_runs, text=args.peer_filter)
                ours, ours_bytes, _, _ = median_of(3, lambda: time_select_all(browser, served.url, peer_runs,
                                                                            text=args.peer_filter))
            finally:
                served.close()
            browser.close()
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end "
              "(other processes share these cores; times scale with it)")
        print(f"select all {args.runs} runs -> 3 charts drawn (medians of 3): cold {cold:.2f} s "
              f"({cold_bytes / 1e6:.1f} MB sent, CPU: Chromium {cold_cpu:.2f} s, server {cold_server:.2f} s), "
              f"warm {warm:.2f} s ({warm_bytes / 1e6:.1f} MB sent, CPU: Chromium {warm_cpu:.2f} s, "
              f"server {warm_server:.2f} s); target < {TARGET_SECONDS:.0f} s: "
              f"{'met' if warm < TARGET_SECONDS else 'NOT met'} warm, "
              f"{'met' if cold < TARGET_SECONDS else 'NOT met'} cold")
        print(f"cold rounds: {', '.join(f'{c[0]:.2f} s (server CPU {c[3]:.2f} s)' for c in colds)}; "
              "the first ran in a fresh process")
        print(f"peer (same app, no downsampling) on the {peer_runs} runs matching {args.peer_filter!r}: "
              f"{raw:.2f} s, {raw_bytes / 1e6:.1f} MB; ours on them: {ours:.2f} s, {ours_bytes / 1e6:.2f} MB; "
              f"ours is {raw / ours:.1f}x faster and sends {raw_bytes / max(ours_bytes, 1):.0f}x fewer bytes")
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
