"""Live updates: points flushed after the page loaded reach the chart, and only they travel."""

from __future__ import annotations

import pytest

from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def flushed(base_dir, run_id, key, count):
    try:
        return len(ExperimentManager(base_dir).get_metric_history(run_id, key)) == count
    except TrackingError:  # nothing flushed yet
        return False


def tensorboard_ema(values, weight):
    last = 0.0
    for n, value in enumerate(values, start=1):
        last = last * weight + (1 - weight) * value
    return last / (1 - weight**n)


def test_points_logged_after_page_load_appear(ui, serve, eventually, tmp_path):
    base_dir = tmp_path / "neural_experiments"
    tracker = ExperimentTracker("live", base_dir=str(base_dir), run_name="live-run", auto_visualize=False)
    try:
        for step in range(10):
            tracker.log_metrics({"loss": 1.0 - step / 100}, step=step)
        eventually(lambda: flushed(base_dir, tracker.run_id, "loss", 10))
        extend_bodies: list[bytes] = []

        def keep_extend_responses(response):
            if "_dash-update-component" in response.url:
                body = response.body()
                if b"extendData" in body:
                    extend_bodies.append(body)

        with serve(create_app(base_dir=base_dir)) as url:
            ui.page.on("response", keep_extend_responses)
            ui.open(url)
            assert ui.rows() == ["live-run"]
            assert ui.page.locator("#run-table td[data-dash-column=status]").inner_text() == "running"
            ui.wait_graphs("gs => gs.length === 1 && gs[0].traces[0].x.length === 10")

            tracker.log_metrics({"loss": 42.0}, step=10)
            graphs = ui.wait_graphs("gs => gs[0].traces[0].x.length === 11")
            trace = graphs[0]["traces"][0]
            assert trace["x"][-1] == 10 and trace["y"][-1] == 42.0
            assert extend_bodies and all(len(body) < 1000 for body in extend_bodies)

            # with smoothing on, the raw and the smoothed curve both grow
            ui.page.fill("#smoothing input[type=number]", "0.5")
            ui.page.press("#smoothing input[type=number]", "Tab")
            ui.wait_graphs("gs => gs[0].traces.length === 2")
            tracker.log_metrics({"loss": 0.0}, step=11)
            graphs = ui.wait_graphs("gs => gs[0].traces.every(t => t.x.length === 12)")
            raw, smoothed = graphs[0]["traces"]
            assert raw["y"][-1] == 0.0
            logged = [1.0 - step / 100 for step in range(10)] + [42.0, 0.0]
            assert smoothed["y"][-1] == pytest.approx(tensorboard_ema(logged, 0.5))
            ui.screenshot("live")

            tracker.log_metrics({"accuracy": 0.5}, step=12)  # a metric the page has not seen
            graphs = ui.wait_graphs("gs => gs.length === 2")
            assert sorted(graph["title"] for graph in graphs) == ["accuracy", "loss"]

            tracker.finish("completed")
            ui.page.wait_for_function(
                "() => document.querySelector('#run-table td[data-dash-column=status]').innerText === 'completed'",
                timeout=30_000)
    finally:
        tracker.finish("completed")
