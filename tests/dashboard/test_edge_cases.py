"""Unusual stores in a real Chromium."""

from __future__ import annotations

import pytest

from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.tracking import ExperimentTracker

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POINTS_JS = """() => Array.from(document.querySelectorAll('.metric-graph .js-plotly-plot')).map(gd =>
    gd.querySelectorAll('.scatterlayer .trace .points path').length)"""


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

