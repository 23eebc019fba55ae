"""Unusual stores in a real Chromium."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POINTS_JS = """() => Array.from(document.querySelectorAll('.metric-graph .js-plotly-plot')).map(gd =>
    gd.querySelectorAll('.scatterlayer .trace .points path').length)"""


def flushed(base_dir, run_id, key, count):
    try:
        return len(ExperimentManager(base_dir).get_metric_history(run_id, key)) == count
    except TrackingError:  # nothing flushed yet
        return False


def test_a_single_point_is_drawn_as_a_marker(ui, serve, tmp_path):
    base_dir = tmp_path / "neural_experiments"
    with ExperimentTracker("edge", base_dir=str(base_dir), run_name="one-point", auto_visualize=False) as tracker:
        tracker.log_metrics({"val_accuracy": 0.75}, step=3)
    with serve(create_app(base_dir=base_dir)) as url:
        ui.open(url)
        (graph,) = ui.wait_graphs("gs => gs.length === 1")
        assert graph["traces"][0]["x"] == [3] and graph["traces"][0]["y"] == [0.75]
        assert ui.page.evaluate(POINTS_JS) == [1]
        ui.page.fill("#smoothing input[type=number]", "0.5")
        ui.page.press("#smoothing input[type=number]", "Tab")
        ui.wait_graphs("gs => gs[0].traces.length === 2")
        ui.page.wait_for_function(f"() => ({POINTS_JS})()[0] === 2")
    assert ui.page.errors == []


def test_a_long_live_run_is_downsampled_again_as_it_grows(ui, serve, eventually, tmp_path):
    base_dir = tmp_path / "neural_experiments"
    tracker = ExperimentTracker("live", base_dir=str(base_dir), run_name="long-live", auto_visualize=False)
    try:
        for step in range(10):
            tracker.log_metrics({"loss": 1.0}, step=step)
        eventually(lambda: flushed(base_dir, tracker.run_id, "loss", 10))
        with serve(create_app(base_dir=base_dir, max_points=50)) as url:
            ui.open(url)
            ui.wait_graphs("gs => gs.length === 1 && gs[0].traces[0].x.length === 10")
            for step in range(10, 3000):
                tracker.log_metrics({"loss": 1.0 + step % 7}, step=step)
            (graph,) = ui.wait_graphs("gs => gs[0].traces[0].x.slice(-1)[0] === 2999")
            (trace,) = graph["traces"]
            assert len(trace["x"]) <= 4 * 50  # not every one of the 3,000 points
            assert trace["x"] == sorted(set(trace["x"])) and max(trace["y"]) == 7.0
    finally:
        tracker.finish("completed")
    assert ui.page.errors == []


def test_hundreds_of_metrics_chart_a_page_and_filter_by_name(ui, serve, tmp_path):
    base_dir = tmp_path / "neural_experiments"
    with ExperimentTracker("wide", base_dir=str(base_dir), run_name="wide", auto_visualize=False) as tracker:
        for step in range(5):
            tracker.log_metrics({f"layer{index:03d}/grad_norm": index + step for index in range(200)}, step=step)
    with serve(create_app(base_dir=base_dir)) as url:
        ui.open(url)
        graphs = ui.wait_graphs("gs => gs.length > 0")
        assert [graph["title"] for graph in graphs] == [f"layer{index:03d}/grad_norm" for index in range(24)]
        assert ui.page.locator("#metrics-capped").inner_text() == \
            "Showing 24 of 200 metrics; filter by name to see the others."
        assert ui.page.locator("#metric-filter").bounding_box()["width"] <= 240  # beside the other controls
        ui.page.fill("#metric-filter", "LAYER15")
        ui.page.press("#metric-filter", "Enter")
        graphs = ui.wait_graphs("gs => gs.length === 10")
        assert [graph["title"] for graph in graphs] == [f"layer{index}/grad_norm" for index in range(150, 160)]
        assert ui.page.locator("#metrics-capped").count() == 0
        ui.page.fill("#metric-filter", "no-such-metric")
        ui.page.press("#metric-filter", "Enter")
        ui.page.wait_for_selector("text=No metric name contains 'no-such-metric'.")
    assert ui.page.errors == []


WRAPPED_CELLS_JS = """sel => Array.from(document.querySelectorAll(sel + ' td')).filter(td => {
    const range = document.createRange();
    range.selectNodeContents(td);
    return range.getClientRects().length > 1;
}).map(td => td.innerText)"""


def test_many_runs_side_by_side_scroll_sideways_without_breaking_values(ui, serve, tmp_path):
    base_dir = tmp_path / "neural_experiments"
    for index in range(40):
        with ExperimentTracker("sweep", base_dir=str(base_dir), run_name=f"trial-{index:02d}",
                               auto_visualize=False) as tracker:
            tracker.log_hyperparameters({"lr": 0.000123456 * (index + 1), "optimizer": "adamw"})
    with serve(create_app(base_dir=base_dir)) as url:
        ui.open(url)
        ui.page.click("#select-shown")
        ui.page.wait_for_function("() => document.querySelector('#run-count').innerText.endsWith('40 selected')")
        ui.tab("Hyperparameters")
        ui.page.wait_for_function("() => document.querySelectorAll('#hyperparameters-table thead th').length === 41")
        assert ui.page.evaluate(WRAPPED_CELLS_JS, "#hyperparameters-table") == []
        assert ui.page.evaluate("() => document.querySelector('#hyperparameters-table').parentElement.scrollWidth > "
                                "document.querySelector('.tab-body').clientWidth")
    assert ui.page.errors == []


def test_a_parameter_logged_as_none_is_not_shown_as_absent(ui, serve, tmp_path):
    base_dir = tmp_path / "neural_experiments"
    for name, params in (("with-none", {"scheduler": None, "lr": 0.1}), ("without", {"lr": 0.1})):
        with ExperimentTracker("hp", base_dir=str(base_dir), run_name=name, auto_visualize=False) as tracker:
            tracker.log_hyperparameters(params)
    with serve(create_app(base_dir=base_dir)) as url:
        ui.open(url)
        ui.tab("Hyperparameters")
        ui.page.wait_for_selector("#hyperparameters-table")
        rows = ui.page.locator("#hyperparameters-table tbody tr")
        cells = {row.locator("td").first.inner_text(): row for row in rows.all()}
        texts = dict(zip(ui.page.locator("#hyperparameters-table thead th").all_inner_texts()[1:],
                         cells["scheduler"].locator("td").all_inner_texts()[1:]))
        assert texts == {"with-none": "None", "without": "—"}
        assert cells["scheduler"].get_attribute("class") == "differs"
        ui.page.fill("#filter-text", "scheduler=None")
        ui.page.press("#filter-text", "Enter")
        ui.page.wait_for_function("() => document.querySelectorAll('#run-table td[data-dash-column=run_name]').length === 1")
        assert ui.rows() == ["with-none"]
    assert ui.page.errors == []


def test_long_metric_and_run_names_are_cut_in_the_middle_to_fit(ui, serve, tmp_path):
    base_dir = tmp_path / "neural_experiments"
    metric, run_name = "train/" + "x" * 150 + "/grad_norm", "sweep-" + "r" * 100 + "-seed<7>"
    with ExperimentTracker("long", base_dir=str(base_dir), run_name=run_name, auto_visualize=False) as tracker:
        for step in range(5):
            tracker.log_metrics({metric: float(step)}, step=step)
    with serve(create_app(base_dir=base_dir)) as url:
        ui.open(url)
        (graph,) = ui.wait_graphs("gs => gs.length === 1")
        assert len(graph["title"]) == 48
        assert graph["title"].startswith("train/xxx") and graph["title"].endswith("xxx/grad_norm")
        assert graph["traces"][0]["name"].startswith("sweep-rrr")
        assert graph["traces"][0]["name"].endswith("rrr-seed&lt;7&gt;")
        fits = """() => { const gd = document.querySelector('.metric-graph .js-plotly-plot');
            const box = gd.getBoundingClientRect();
            return Array.from(gd.querySelectorAll('.gtitle, .legendtext')).every(text => {
                const r = text.getBoundingClientRect(); return r.left >= box.left && r.right <= box.right; }); }"""
        assert ui.page.evaluate(fits)
        ui.page.evaluate("() => Plotly.Fx.hover(document.querySelector('.metric-graph .js-plotly-plot'), "
                         "[{curveNumber: 0, pointNumber: 2}])")
        ui.page.wait_for_function("() => document.querySelector('.hoverlayer').textContent.length > 0")
        assert run_name in ui.page.evaluate("() => document.querySelector('.hoverlayer').textContent")
    assert ui.page.errors == []


def test_one_run_and_one_artifact_are_counted_in_the_singular(ui, serve, tmp_path):
    base_dir = tmp_path / "neural_experiments"
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    with ExperimentTracker("solo", base_dir=str(base_dir), run_name="solo", auto_visualize=False) as tracker:
        tracker.log_artifact(checkpoint, name="model")
    with serve(create_app(base_dir=base_dir)) as url:
        ui.open(url)
        ui.page.wait_for_function("() => document.querySelector('#run-count').innerText === '1 run, 1 selected'")
        ui.tab("Summary")
        assert ui.page.locator(".artifact-count").inner_text() == "1 artifact"
    process = subprocess.Popen([sys.executable, "-m", "neural_dsl_tracking.dashboard", "--base-dir", str(base_dir),
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [process.stdout.readline() for _ in range(2)]
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=20)
    assert lines[1] == f"store {base_dir}: 1 run\n"
    assert ui.page.errors == []


def test_infinite_and_nan_best_values_show_in_the_run_table(ui, serve, tmp_path):
    base_dir = tmp_path / "neural_experiments"
    for name, values in (("minus", [1.0, float("-inf")]), ("plus", [float("inf")]), ("nans", [float("nan")] * 2),
                         ("finite", [0.25])):
        with ExperimentTracker("edge", base_dir=str(base_dir), run_name=name, auto_visualize=False) as tracker:
            for step, value in enumerate(values):
                tracker.log_metrics({"loss": value}, step=step)
    with serve(create_app(base_dir=base_dir)) as url:
        ui.open(url)
        best = dict(zip(ui.rows(), ui.page.locator("#run-table td[data-dash-column=best]").all_inner_texts()))
        assert best == {"minus": "-inf", "plus": "inf", "nans": "nan", "finite": "0.250000"}
        ui.page.locator("#run-table th[data-dash-column=best] .column-header--sort").click()
        ui.page.wait_for_function("() => document.querySelector('#run-table td[data-dash-column=run_name]')"
                                  ".textContent === 'finite'")  # numbers first, then the rest
    assert ui.page.errors == []
