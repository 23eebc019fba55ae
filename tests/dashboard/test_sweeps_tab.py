"""The Sweeps tab in a real headless Chromium (issue 13, item 7), on a store holding a real small
sweep (Optuna study in the store's database, each trial a tracked run, some pruned, one failed):
the optimisation history with the best so far, the parameter importances, parallel coordinates
of the trials coloured by the objective, intermediate values with pruned trials marked; picking
trials (a box on the history, the list, or all) selects their runs for the other tabs; both themes."""

from __future__ import annotations

import pytest

from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.dashboard.data import DashboardData
from neural_dsl_tracking.tracking import ExperimentManager

from ..tracking.sweep_maker import EPOCHS, FAILING, TRIALS, make_sweep

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIGURE_JS = """(id) => { const gd = document.querySelector('#' + id + ' .js-plotly-plot');
    return gd && gd._fullData ? gd._fullData.map(t => ({
        name: t.name, type: t.type, x: t.x ? Array.from(t.x) : null, y: t.y ? Array.from(t.y) : null,
        customdata: t.customdata ? Array.from(t.customdata) : null,
        dash: t.line && t.line.dash, symbols: t.marker && t.marker.symbol,
        dims: t.dimensions ? t.dimensions.map(d => d.label) : null,
        color: t.line && Array.isArray(t.line.color) ? Array.from(t.line.color) : null,
    })) : null; }"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A store with one sweep and one run outside it."""
    from neural_dsl_tracking.tracking import ExperimentTracker

    base = tmp_path_factory.mktemp("sweeps-tab") / "store"
    with ExperimentTracker("digits", base_dir=base, run_name="by-hand", auto_visualize=False) as tracker:
        tracker.log_metrics({"val_accuracy": 0.5}, step=0)
    made = make_sweep(base)
    manager = ExperimentManager(base)
    sweep = manager.get_sweep(made.sweep_id)
    manager.close()
    return base, made, sweep


@pytest.fixture(scope="module")
def sweeps_url(swept, serve):
    with serve(create_app(data=DashboardData(swept[0]))) as url:
        yield url


def figure(ui, graph_id: str) -> list[dict]:
    ui.page.wait_for_function(f"() => ({FIGURE_JS})('{graph_id}') !== null")
    return ui.page.evaluate(FIGURE_JS, graph_id)


def open_sweeps(ui, url: str) -> None:
    """The page on the Sweeps tab, once its figures and trial list are drawn."""
    ui.open(url)
    ui.tab("Sweeps")
    ui.page.wait_for_selector("#sweep-history .js-plotly-plot")
    ui.page.wait_for_selector("#sweep-intermediate .js-plotly-plot")


def test_the_tab_draws_the_sweep(ui, sweeps_url, swept):
    _, made, sweep = swept
    open_sweeps(ui, sweeps_url)
    counts = sweep.counts
    assert f"{TRIALS} of {TRIALS} trials" in ui.page.inner_text("#sweep-summary")

    history = {trace["name"]: trace for trace in figure(ui, "sweep-history")}
    assert len(history["complete"]["x"]) == counts["complete"] and len(history["pruned"]["x"]) == counts["pruned"]
    assert FAILING not in history["complete"]["x"] + history["pruned"]["x"]  # a failed trial has no value
    best = history["best so far"]["y"]
    assert best == sorted(best) and best[-1] == sweep.best_trial.value  # maximize: never worse
    by_number = {t.number: t.run_id for t in sweep.trials}
    assert history["pruned"]["customdata"] == [by_number[n] for n in history["pruned"]["x"]]

    (bars,) = figure(ui, "sweep-importances")
    assert sorted(bars["y"]) == ["lr", "units"] and abs(sum(bars["x"]) - 1) < 1e-6

    (parallel,) = figure(ui, "sweep-parallel")
    assert parallel["dims"] == ["lr", "units", "val_accuracy (maximize)"]
    assert len(parallel["color"]) == counts["complete"] + counts["pruned"]

    curves = {trace["name"]: trace for trace in figure(ui, "sweep-intermediate")}
    assert len(curves) == TRIALS  # the failed trial logged one epoch before failing
    for trial in sweep.trials:
        curve = curves[f"#{trial.number} {trial.state}"]
        if trial.state == "pruned":
            assert curve["dash"] == "dash" and curve["symbols"][-1] == "x" and len(curve["x"]) < EPOCHS
        elif trial.state == "complete":
            assert curve["dash"] == "solid" and len(curve["x"]) == EPOCHS
    assert ui.page.errors == []


def test_picking_trials_selects_their_runs(ui, sweeps_url, swept):
    _, made, sweep = swept
    open_sweeps(ui, sweeps_url)  # the five newest runs are selected: picked trials replace them
    ui.page.click("#sweep-select-all")
    names = sorted(f"trial-{t.number}" for t in sweep.trials)
    ui.page.wait_for_function(f"() => ({_CHECKED_JS}).length === {TRIALS}")
    assert sorted(ui.page.evaluate(_CHECKED_JS)) == names

    # a box drawn over the whole history picks every trial with a value (not the failed one)
    box = ui.page.locator("#sweep-history .nsewdrag").bounding_box()
    ui.page.mouse.move(box["x"] + 2, box["y"] + 2)
    ui.page.mouse.down()
    ui.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    ui.page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=5)
    ui.page.mouse.up()
    ui.page.wait_for_function(f"() => ({_CHECKED_JS}).length === {TRIALS - 1}")
    assert f"trial-{FAILING}" not in ui.page.evaluate(_CHECKED_JS)

    # one trial from the list (on a new page: the list holds the boxed trials): the Metrics tab
    # then draws that run alone
    open_sweeps(ui, sweeps_url)
    best = sweep.best_trial
    ui.pick("sweep-trials", f"#{best.number} · complete")
    ui.page.wait_for_function(f"() => ({_CHECKED_JS}).length === 1")
    ui.tab("Metrics")
    # the Metrics tab may still show the charts of the earlier selection: wait for the new one
    graphs = ui.wait_graphs("gs => gs.some(g => g.title === 'val_accuracy' && g.traces.length === 1 "
                            f"&& g.traces[0].name === 'trial-{best.number}')")
    (chart,) = [g for g in graphs if g["title"] == "val_accuracy"]
    assert [trace["name"] for trace in chart["traces"]] == [f"trial-{best.number}"]
    assert chart["traces"][0]["y"][-1] == pytest.approx(best.value)
    assert ui.page.errors == []


_CHECKED_JS = """(() => Array.from(document.querySelectorAll('#run-table tbody tr'))
    .filter(r => r.querySelector('input[type=checkbox]:checked'))
    .map(r => r.querySelector('td[data-dash-column=run_name]').innerText))()"""


def test_both_themes(ui, sweeps_url):
    open_sweeps(ui, sweeps_url)
    ui.page.set_viewport_size({"width": 1200, "height": 1900})
    paths = ui.screenshot("sweeps")
    assert all(path.stat().st_size > 10_000 for path in paths)
    assert ui.page.errors == []


def test_a_store_without_sweeps_says_so(ui, serve, tmp_path):
    from neural_dsl_tracking.tracking import ExperimentTracker

    with ExperimentTracker("e", base_dir=tmp_path / "s", auto_visualize=False) as tracker:
        tracker.log_metrics({"loss": 1.0}, step=0)
    with serve(create_app(data=DashboardData(tmp_path / "s"))) as url:
        ui.open(url)
        ui.tab("Sweeps")
        ui.page.wait_for_selector("#sweeps-area .hint")
        assert "No sweeps in this store yet" in ui.page.inner_text("#sweeps-area")


def test_a_running_sweep_is_drawn_as_it_goes(ui, serve, tmp_path):
    """While a trial trains, its new epochs and then its result reach the tab on the live tick."""
    from neural_dsl_tracking.tracking import ExperimentTracker
    from neural_dsl_tracking.tracking.store import Store

    base = tmp_path / "s"
    store = Store(base)
    sweep_id = store.create_sweep(experiment="e", name="live", objective="loss", direction="minimize",
                                  sampler="random", pruner="none", space={}, study_storage="none",
                                  study_name="none", requested_trials=2)
    tracker = ExperimentTracker("e", base_dir=base, run_name="trial-0", auto_visualize=False, flush_interval=0.1)
    try:
        store.record_trial(sweep_id, 0, state="running", run_id=tracker.run_id, params={"x": 1})
        tracker.log_metrics({"loss": 1.0}, step=0)
        with serve(create_app(data=DashboardData(base))) as url:
            open_sweeps(ui, url)
            ui.page.wait_for_function(f"() => {{ const f = ({FIGURE_JS})('sweep-intermediate');"
                                      " return f && f.length === 1 && f[0].x.length === 1; }")
            tracker.log_metrics({"loss": 0.5}, step=1)
            ui.page.wait_for_function(f"() => ({FIGURE_JS})('sweep-intermediate')[0].x.length === 2")
            store.record_trial(sweep_id, 0, state="complete", value=0.5)
            ui.page.wait_for_function(f"() => ({FIGURE_JS})('sweep-history').some(t => t.name === 'complete')")
            assert "best: trial #0, 0.5" in ui.page.inner_text("#sweep-summary")
    finally:
        tracker.finish()
        store.close()


def test_hostile_names_show_as_text(ui, serve, tmp_path):
    """A sweep, objective and parameter named with markup reach the page as text, nothing runs."""
    from neural_dsl_tracking.tracking import ExperimentTracker
    from neural_dsl_tracking.tracking.store import Store

    from .conftest import HOSTILE_NAME

    base = tmp_path / "s"
    store = Store(base)
    objective = "<img src=x onerror=window.__xss=3>"
    sweep_id = store.create_sweep(experiment="e", name=HOSTILE_NAME, objective=objective, direction="minimize",
                                  sampler="random", pruner="none", space={}, study_storage="none",
                                  study_name="none", requested_trials=1)
    with ExperimentTracker("e", base_dir=base, run_name="t0", auto_visualize=False) as tracker:
        tracker.log_metrics({objective: 0.5}, step=0)
        store.record_trial(sweep_id, 0, state="complete", run_id=tracker.run_id, value=0.5,
                           params={"<script>window.__xss=4</script>": "<b>v</b>", "x": 1})
    store.close()
    with serve(create_app(data=DashboardData(base))) as url:
        open_sweeps(ui, url)
        assert ui.page.inner_text("#sweep-choice").startswith(HOSTILE_NAME[:30])  # long: cut in the middle
        titles = ui.page.evaluate("() => Array.from(document.querySelectorAll('#sweeps-area .gtitle'))"
                                  ".map(t => t.textContent)")
        assert any(objective in title for title in titles)
        (parallel,) = figure(ui, "sweep-parallel")
        assert "<script>window.__xss=4</script>" in [label.replace("&lt;", "<").replace("&gt;", ">")
                                                     for label in parallel["dims"]]
        assert ui.page.evaluate("() => window.__xss") is None and ui.page.errors == []
