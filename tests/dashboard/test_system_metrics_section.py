"""The Metrics tab draws the system metrics (``system/*``) in their own section, after the run's own."""

from __future__ import annotations

import pytest

from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.tracking import ExperimentTracker

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SECTIONS_JS = """() => Array.from(document.querySelectorAll('.metric-graph .js-plotly-plot')).map(gd => [
    gd.layout.title.text, Boolean(gd.closest('#system-metrics'))])"""


def test_system_metrics_have_their_own_section(ui, serve, tmp_path):
    with ExperimentTracker("sys", base_dir=tmp_path, auto_visualize=False, system_metrics=0) as tracker:
        for step in range(5):
            tracker.log_metrics({"zeta": step, "accuracy": step / 5, "system/cpu_percent": 10.0 + step,
                                 "system/process_rss_mb": 100.0 + step}, step=step)
    with serve(create_app(base_dir=tmp_path)) as url:
        ui.open(url)
        ui.wait_graphs("gs => gs.length === 4")
        assert ui.page.evaluate(SECTIONS_JS) == [
            ["accuracy", False], ["zeta", False], ["system/cpu_percent", True], ["system/process_rss_mb", True]]
        assert ui.page.locator("#system-metrics .metric-section-title").inner_text() == "System"
