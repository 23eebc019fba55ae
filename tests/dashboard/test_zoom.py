"""Full fidelity on zoom: a zoomed chart is bucketed again from the store's points in its range."""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest

from neural_dsl_tracking.dashboard import views
from neural_dsl_tracking.dashboard.data import DashboardData
from neural_dsl_tracking.dashboard.zoom import zoom_span
from neural_dsl_tracking.tracking.store import Store

STEPS, SPIKE_STEP, DIP_STEP = 1_000_000, 654_321, 123_457


def series_values() -> np.ndarray:
    values = np.random.default_rng(1).normal(size=STEPS)
    values[SPIKE_STEP], values[DIP_STEP] = 1e6, -1e6
    return values


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A store with one run of 1,000,000 steps (a one-step spike and a one-step dip)."""
    base = tmp_path_factory.mktemp("zoom") / "neural_experiments"
    store = Store(base)
    run_id = store.create_run(experiment="zoom", run_name="big")
    steps = np.arange(STEPS)
    store.append_metrics(run_id, {"loss": (steps, series_values(), 1e9 + steps / 1000.0)})
    store.set_status(run_id, "completed", end_time=time.time())
    store.close()
    data = DashboardData(base)
    yield data, data.runs()
    data.manager().close()


def decoded(array) -> np.ndarray:
    """A figure's typed array (or plain list) as numpy."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), np.dtype("<" + array["dtype"]))
    return np.asarray(array, np.float64)


def chart(data: DashboardData, runs, span) -> tuple[np.ndarray, np.ndarray]:
    figure, _ = views.metric_chart(data, "loss", runs, views.run_colors(runs), 0.0, "step", False, "light",
                                   span=span)
    (trace,) = figure["data"]
    return decoded(trace["x"]), decoded(trace["y"])


def test_every_zoom_level_containing_a_one_step_spike_shows_it(big):
    data, runs = big
    low, high = 0, STEPS - 1
    while high - low > 50:
        x, y = chart(data, runs, (low, high))
        assert x.size <= 2 * data.max_points + 2
        assert x.min() >= low and x.max() <= high
        assert y.max() == 1e6 and x[y.argmax()] == SPIKE_STEP
        if low <= DIP_STEP <= high:
            assert y.min() == -1e6 and x[y.argmin()] == DIP_STEP
        width = (high - low) // 3
        low, high = max(0, SPIKE_STEP - width), min(STEPS - 1, SPIKE_STEP + width)


def test_a_narrow_zoom_returns_the_raw_points_exactly(big):
    data, runs = big
    x, y = chart(data, runs, (500_000, 500_999))
    assert np.array_equal(x, np.arange(500_000, 501_000))
    assert np.array_equal(y, series_values()[500_000:501_000])


def test_reset_zoom_draws_the_overview_again(big):
    data, runs = big
    x, y = chart(data, runs, None)
    overview = data.series(runs[0].run_id, "loss", STEPS, data.points_per_series(1))
    assert np.array_equal(x, overview.steps) and np.array_equal(y, overview.values)
    assert x[0] == 0 and x[-1] == STEPS - 1


def test_step_range_reads_match_the_full_history_even_for_chunks_without_ranges(big):
    data, runs = big
    manager, run_id = data.manager(), runs[0].run_id
    span = (65_000, 200_123)
    ranged = manager.get_metric_histories([run_id], ["loss"], steps=span)[(run_id, "loss")]
    assert np.array_equal(ranged.steps, np.arange(span[0], span[1] + 1))
    assert np.array_equal(ranged.values, series_values()[span[0]:span[1] + 1])
    store = Store(manager.base_dir)  # a chunk written before chunks had step ranges is always read
    store.db.write(lambda cur: cur.execute("UPDATE metric_chunks SET min_step = NULL, max_step = NULL "
                                           "WHERE seq = 2"))
    store.close()
    again = manager.get_metric_histories([run_id], ["loss"], steps=span)[(run_id, "loss")]
    assert np.array_equal(again.steps, ranged.steps)


@pytest.mark.parametrize("relayout, expected", [
    ({"xaxis.range[0]": 10.4, "xaxis.range[1]": 99.2}, (10, 100)),
    ({"xaxis.range": [99.2, 10.4]}, (10, 100)),
    ({"xaxis.autorange": True, "yaxis.autorange": True}, None),
    ({"yaxis.range[0]": 1, "yaxis.range[1]": 2}, False),
    ({"autosize": True}, False),
    (None, False),
    ({"xaxis.range[0]": "2026-01-01 10:00", "xaxis.range[1]": "2026-01-01 11:00"}, False),
])
def test_zoom_span_reads_the_x_range_of_a_relayout(relayout, expected):
    assert zoom_span(relayout) == expected


BROWSER_STEPS, BROWSER_SPIKE = 200_000, 123_456
TRACE_JS = """() => { const gd = document.querySelector('.metric-graph .js-plotly-plot');
    const t = gd && gd._fullData && gd._fullData[0];
    return t ? {x: Array.from(t.x), y: Array.from(t.y)} : null; }"""


def relayout_until(page, relayout_js: str, done_js: str, attempts: int = 4) -> None:
    """Zoom with ``relayout_js`` until ``done_js`` holds (a zoom made while Dash was still wiring
    the new graph is not heard: it is made again, at most ``attempts`` times)."""
    for attempt in range(attempts):
        page.evaluate(relayout_js)
        try:
            page.wait_for_function(done_js, timeout=8_000)
            return
        except Exception:  # playwright's TimeoutError
            if attempt == attempts - 1:
                raise


@pytest.mark.browser
@pytest.mark.slow
def test_zooming_a_chart_in_chromium_draws_it_again_with_the_raw_points(ui, serve, tmp_path):
    from neural_dsl_tracking.dashboard.app import create_app

    base = tmp_path / "neural_experiments"
    store = Store(base)
    run_id = store.create_run(experiment="zoom", run_name="long")
    steps = np.arange(BROWSER_STEPS)
    values = np.sin(steps / 5000.0)
    values[BROWSER_SPIKE] = 50.0
    store.append_metrics(run_id, {"loss": (steps, values, time.time() + steps / 1000.0)})
    store.set_status(run_id, "completed", end_time=time.time() + BROWSER_STEPS / 1000.0)
    store.close()
    with serve(create_app(data=DashboardData(base))) as url:
        ui.open(url)
        ui.page.wait_for_function(f"() => ({TRACE_JS})() !== null")
        overview = ui.page.evaluate(TRACE_JS)
        assert len(overview["x"]) < 2_100 and max(overview["y"]) == 50.0
        zoom_in = ("() => Plotly.relayout(document.querySelector('.metric-graph .js-plotly-plot'), "
                   f"{{'xaxis.range': [{BROWSER_SPIKE - 100}, {BROWSER_SPIKE + 99}]}})")
        relayout_until(ui.page, zoom_in, f"() => ({TRACE_JS})().x.length === 200")
        zoomed = ui.page.evaluate(TRACE_JS)
        assert zoomed["x"] == list(range(BROWSER_SPIKE - 100, BROWSER_SPIKE + 100))
        assert zoomed["y"] == values[BROWSER_SPIKE - 100:BROWSER_SPIKE + 100].tolist()
        relayout_until(ui.page, "() => Plotly.relayout(document.querySelector('.metric-graph .js-plotly-plot'), "
                                "{'xaxis.autorange': true})", f"() => ({TRACE_JS})().x.length > 1000")
        assert ui.page.evaluate(TRACE_JS) == overview
        assert not ui.page.errors
