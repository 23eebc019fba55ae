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
    store.append_metrics(run_id, {"loss": (steps, series_values(), wall_time(steps))})
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


def chart(data: DashboardData, runs, span, x_mode: str = "step") -> tuple[np.ndarray, np.ndarray]:
    figure, _ = views.metric_chart(data, "loss", runs, views.run_colors(runs), 0.0, x_mode, False, "light",
                                   span=span)
    (trace,) = figure["data"]
    if span is not None:
        assert figure["layout"]["xaxis"]["range"] == list(span)
    return decoded(trace["x"]), decoded(trace["y"])


def wall_time(step: int) -> float:
    """The time (seconds since the epoch) the big run logged ``step`` at."""
    return 1e9 + step / 1000.0


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


@pytest.mark.parametrize("column", ["step", "time"])
def test_range_reads_match_the_full_history_even_for_chunks_without_ranges(big, column):
    data, runs = big
    manager, run_id = data.manager(), runs[0].run_id
    low, high = 65_000, 200_123
    window = {"steps": (low, high)} if column == "step" else {"times": (wall_time(low), wall_time(high))}
    ranged = manager.get_metric_histories([run_id], ["loss"], **window)[(run_id, "loss")]
    assert np.array_equal(ranged.steps, np.arange(low, high + 1))
    assert np.array_equal(ranged.values, series_values()[low:high + 1])
    store = Store(manager.base_dir)  # a chunk written before chunks had step (time) ranges is always read
    store.db.write(lambda cur: cur.execute(f"UPDATE metric_chunks SET min_{column} = NULL, max_{column} = NULL "
                                           "WHERE seq = 2"))
    store.close()
    again = manager.get_metric_histories([run_id], ["loss"], **window)[(run_id, "loss")]
    assert np.array_equal(again.steps, ranged.steps)


@pytest.mark.parametrize("x_mode", ["wall", "relative"])
def test_a_zoom_on_a_time_axis_is_read_again_from_the_store_around_a_spike(big, x_mode):
    data, runs = big
    start = runs[0].start_time.timestamp()

    def x_of(step: float) -> float:
        return wall_time(step) * 1000.0 if x_mode == "wall" else wall_time(step) - start

    width = STEPS // 2
    while width >= 50:  # from half the series down to 100 points around the spike
        low, high = max(0, SPIKE_STEP - width), min(STEPS - 1, SPIKE_STEP + width)
        x, y = chart(data, runs, (x_of(low - 0.5), x_of(high + 0.5)), x_mode)
        assert x.size <= 2 * data.max_points + 2
        assert y.max() == 1e6 and x[y.argmax()] == pytest.approx(x_of(SPIKE_STEP))
        if high - low < data.points_per_series(1):  # narrow enough: every point of the range, as logged
            assert np.allclose(x, x_of(np.arange(low, high + 1)))
            assert np.array_equal(y, series_values()[low:high + 1])
        width //= 4


def test_time_ranges_read_the_same_points_on_sqlite_and_postgresql(store_kwargs):
    store = Store(**store_kwargs)
    run_id = store.create_run(experiment="zoom", run_name="chunks")
    rng = np.random.default_rng(3)
    for part in range(3):  # three chunks; the middle one logged its points out of time order
        steps = np.arange(part * 10_000, (part + 1) * 10_000)
        times = 5e8 + steps / 10.0
        if part == 1:
            times = times[::-1].copy()
        store.append_metrics(run_id, {"loss": (steps, rng.normal(size=steps.size), times)})
    full = store.metric_histories([run_id], ["loss"])[(run_id, "loss")]
    for window in [(5e8 + 999.95, 5e8 + 1000.05), (5e8 + 500, 5e8 + 2500.5), (0.0, 1.0), (5e8, 6e8)]:
        ranged = store.metric_histories([run_id], ["loss"], times=window).get((run_id, "loss"))
        keep = (full.timestamps >= window[0]) & (full.timestamps <= window[1])
        if not keep.any():
            assert ranged is None or not len(ranged)
            continue
        assert np.array_equal(ranged.steps, full.steps[keep]) and np.array_equal(ranged.values, full.values[keep])
    store.close()


@pytest.mark.parametrize("relayout, x_mode, expected", [
    ({"xaxis.range[0]": "2001-09-09 01:46:40.5", "xaxis.range[1]": "2001-09-09 01:46:41"}, "wall",
     (1e12 + 500, 1e12 + 1000)),
    ({"xaxis.range": ["2001-09-09 01:46:41", "2001-09-09"]}, "wall", (999_993_600_000.0, 1e12 + 1000)),
    ({"xaxis.range[0]": 1e12, "xaxis.range[1]": 1e12 + 10}, "wall", (1e12, 1e12 + 10)),
    ({"xaxis.range[0]": 10.4, "xaxis.range[1]": 2.5}, "relative", (2.5, 10.4)),
    ({"xaxis.range[0]": "noon", "xaxis.range[1]": "2001-09-09"}, "wall", False),
    ({"xaxis.autorange": True}, "wall", None),
])
def test_zoom_span_reads_a_time_axis_in_its_units(relayout, x_mode, expected):
    assert zoom_span(relayout, x_mode) == expected


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


WALL_POINTS, WALL_SPIKE = 100_000, 61_234


@pytest.mark.browser
@pytest.mark.slow
def test_zooming_the_wall_time_axis_in_chromium_reads_the_raw_points_around_a_spike(ui, serve, tmp_path):
    from datetime import datetime, timezone

    from neural_dsl_tracking.dashboard.app import create_app

    base = tmp_path / "neural_experiments"
    store = Store(base)
    began = float(int(time.time()) - 2_000)
    run_id = store.create_run(experiment="zoom", run_name="wall", start_time=began)
    steps = np.arange(WALL_POINTS)
    times = began + steps / 100.0  # a point every 10 ms
    values = np.cos(steps / 3000.0)
    values[WALL_SPIKE] = 40.0
    store.append_metrics(run_id, {"loss": (steps, values, times)})
    store.set_status(run_id, "completed", end_time=float(times[-1]))
    store.close()

    def utc_text(moment: float) -> str:  # as Plotly writes a date axis's range
        return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]

    with serve(create_app(data=DashboardData(base))) as url:
        ui.open(url)
        ui.page.wait_for_function(f"() => ({TRACE_JS})() !== null")
        ui.page.click("#x-mode label:has-text('wall time')")
        ui.page.wait_for_function("() => { const gd = document.querySelector('.metric-graph .js-plotly-plot');"
                                  " return gd && gd._fullLayout.xaxis.type === 'date'; }")
        overview = ui.page.evaluate(TRACE_JS)
        near = [x for x in overview["x"] if abs(x - times[WALL_SPIKE] * 1000) <= 1_005]
        assert len(near) < 10 and max(overview["y"]) == 40.0  # the overview: a few points around it
        low, high = utc_text(times[WALL_SPIKE - 100] - 0.005), utc_text(times[WALL_SPIKE + 100] + 0.005)
        zoom_in = ("() => Plotly.relayout(document.querySelector('.metric-graph .js-plotly-plot'), "
                   f"{{'xaxis.range': ['{low}', '{high}']}})")
        relayout_until(ui.page, zoom_in, f"() => ({TRACE_JS})().x.length === 201")
        zoomed = ui.page.evaluate(TRACE_JS)
        np.testing.assert_allclose(zoomed["x"], times[WALL_SPIKE - 100:WALL_SPIKE + 101] * 1000.0)
        assert zoomed["y"] == values[WALL_SPIKE - 100:WALL_SPIKE + 101].tolist()
        assert max(zoomed["y"]) == 40.0
        assert not ui.page.errors
