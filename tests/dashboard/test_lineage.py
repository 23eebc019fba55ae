"""Run lineage in the dashboard: the run table and Summary cards name a fork's parent, a run's
forks and its resumes, a click adds the parent to the selection, and "join forks" draws a fork
after its ancestors' points as one line (a real store written through the Store API; Chromium)."""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest

from neural_dsl_tracking.dashboard import views
from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.dashboard.data import REFRESH_SECONDS, DashboardData
from neural_dsl_tracking.dashboard.lineage import lineage_cell, lineage_lines
from neural_dsl_tracking.dashboard.run_table import TableQuery, run_tooltips, sorted_runs
from neural_dsl_tracking.tracking.store import Store

STEPS = 100  # batch_loss at steps 0..99; val_accuracy at epochs 1..5 (20 steps an epoch)
FORKS = {"branch": ("origin", 2, 40), "twig": ("branch", 3, 60)}  # name: (parent, fork epoch, fork step)


def batch_loss(offset: float) -> np.ndarray:
    return offset + 1.0 / (1.0 + np.arange(STEPS))


def log_run(store: Store, name: str, start: float, first_step: int, first_epoch: int, offset: float,
            epochs: int = 5) -> str:
    """A completed run with batch_loss from ``first_step``, val_accuracy from ``first_epoch`` and
    final_accuracy once, at step ``epochs`` (as a compiled program logs it)."""
    run_id = store.create_run(experiment="lineage", run_name=name, start_time=start)
    steps, epoch = np.arange(first_step, STEPS), np.arange(first_epoch, 6)
    store.append_metrics(run_id, {"batch_loss": (steps, batch_loss(offset)[first_step:], start + steps),
                                  "val_accuracy": (epoch, 0.5 + offset + epoch / 10, start + 20 * epoch),
                                  "final_accuracy": (np.array([epochs]), np.array([0.9]), np.array([start + STEPS]))})
    store.set_status(run_id, "completed", end_time=start + STEPS)
    return run_id


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """origin; branch forked from it at epoch 2 (step 40); twig forked from branch at epoch 3
    (step 60); revived, resumed once. Returns the store's folder and the ids by name."""
    base = tmp_path_factory.mktemp("lineage") / "neural_experiments"
    store = Store(base)
    now = time.time() - 3600
    ids = {"origin": log_run(store, "origin", now, 0, 1, 0.0)}
    for position, (name, (parent, epoch, step)) in enumerate(FORKS.items(), start=1):
        ids[name] = log_run(store, name, now + 200 * position, step + 1, epoch + 1, 0.1 * position, 4 + position)
        store.set_run_parent(ids[name], ids[parent], epoch, step)
        store.add_run_event(ids[name], "forked", f"from {parent} at epoch {epoch}")
    ids["revived"] = log_run(store, "revived", now + 600, 0, 1, 0.5)
    store.add_run_event(ids["revived"], "resumed", "from its checkpoint of epoch 3")
    store.close()
    return base, ids


def test_the_table_names_parents_forks_and_resumes(family):
    base, ids = family
    snapshot = DashboardData(base).snapshot()
    cells = {run.run_name: lineage_cell(run, snapshot) for run in snapshot.runs}
    assert cells == {"origin": "1 fork", "branch": "forked from origin @ epoch 2 · 1 fork",
                     "twig": "forked from branch @ epoch 3", "revived": "resumed"}
    tips = dict(zip([run.run_name for run in snapshot.runs], run_tooltips(snapshot.runs, snapshot)))
    assert f"forked from origin ({ids['origin']}) at epoch 2, step 40" in tips["branch"]["lineage"]["value"]
    assert "1 fork: twig" in tips["branch"]["lineage"]["value"]
    (revived,) = [run for run in snapshot.runs if run.run_name == "revived"]
    assert lineage_lines(revived, snapshot)[0].startswith("resumed ")
    assert lineage_lines(revived, snapshot)[0].endswith(": from its checkpoint of epoch 3")
    by_lineage = sorted_runs(snapshot.runs, TableQuery(sort_by=(("lineage", "asc"),)))
    assert {run.run_name for run in by_lineage[:2]} == {"branch", "twig"}  # forks first, the others after


def joined_x(graph: dict, name: str) -> list[float]:
    (trace,) = [trace for trace in graph["traces"] if trace["name"] == name and trace["kind"] == "raw"]
    return trace["x"]


@pytest.mark.browser
@pytest.mark.slow
def test_join_forks_draws_a_fork_after_its_ancestors_points(ui, serve, family):
    base, ids = family
    with serve(create_app(data=DashboardData(base))) as url:
        ui.open(url)
        ui.wait_graphs("gs => gs.length === 3")
        cell = {name: ui.page.locator("#run-table tr", has=ui.page.locator(
            "td[data-dash-column=run_name]", has_text=name)).locator("td[data-dash-column=lineage]")
            for name in ids}
        assert cell["twig"].inner_text() == "forked from branch @ epoch 3"
        assert cell["origin"].inner_text() == "1 fork"
        assert cell["revived"].inner_text() == "resumed"

        ui.clear_selection()
        ui.select("twig")
        ui.wait_graphs("gs => gs.length === 3 && gs.every(g => g.traces.length === 1)")
        (loss,) = [graph for graph in ui.graphs() if graph["title"] == "batch_loss"]
        assert joined_x(loss, "twig") == list(range(61, STEPS))  # its own points only

        ui.page.click("#join-forks input")
        graphs = ui.wait_graphs("gs => gs.length === 3 && gs.filter(g => g.traces.some(t => t.kind === 'fork'))"
                                ".length === 2")
        by_title = {graph["title"]: graph for graph in graphs}
        assert joined_x(by_title["final_accuracy"], "twig") == [6]  # logged once at its end: not joined
        steps = joined_x(by_title["batch_loss"], "twig")
        assert steps == list(range(STEPS))  # origin's 0..40, branch's 41..60, then its own
        (trace,) = [trace for trace in by_title["batch_loss"]["traces"] if trace["kind"] == "raw"]
        np.testing.assert_allclose(trace["y"], np.concatenate([batch_loss(0.0)[:41], batch_loss(0.1)[41:61],
                                                               batch_loss(0.2)[61:]]))
        (marks,) = [trace for trace in by_title["batch_loss"]["traces"] if trace["kind"] == "fork"]
        assert marks["x"] == [40, 60]
        assert joined_x(by_title["val_accuracy"], "twig") == [1, 2, 3, 4, 5]  # epochs: cut at each fork's epoch

        cell["twig"].click()  # adds its parent to the selection
        ui.page.wait_for_function("() => document.querySelector('#run-count').innerText.endsWith('2 selected')")
        graphs = ui.wait_graphs("gs => gs.length === 3 && gs.every(g => g.traces.filter(t => t.kind === 'raw')"
                                ".length === 2)")
        loss = [graph for graph in graphs if graph["title"] == "batch_loss"][0]
        assert joined_x(loss, "branch") == list(range(STEPS))  # joined too: origin's 0..40, then its own
        assert sorted(trace["x"][0] for trace in loss["traces"] if trace["kind"] == "fork") == [40, 40]
        ui.page.fill("#metric-filter", "batch")
        ui.page.press("#metric-filter", "Enter")
        ui.wait_graphs("gs => gs.length === 1 && gs[0].traces.some(t => t.kind === 'fork')")
        ui.page.set_viewport_size({"width": 1200, "height": 960})  # the table and the whole chart
        ui.screenshot("metrics-forks")

        ui.tab("Summary")
        ui.page.wait_for_selector(".run-card .lineage")
        cards = ui.page.locator(".run-card").all_inner_texts()
        assert any("forked from origin" in card and "1 fork: twig" in card for card in cards)
        assert not ui.page.errors


def xs(trace: dict) -> list[float]:
    """A figure trace's x values (typed array or list)."""
    x = trace["x"]
    return x if isinstance(x, list) else np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]).tolist()


def twig_chart(data: DashboardData, x_mode: str, span=None, join: bool = True) -> dict:
    runs = [run for run in data.runs() if run.run_name == "twig"]
    figure, _ = views.metric_chart(data, "batch_loss", runs, views.run_colors(data.runs()), 0.0, x_mode, False,
                                   "light", span=span, join=join)
    return figure


def test_a_zoom_joins_the_ancestors_points_in_its_range(family):
    data = DashboardData(family[0])
    assert xs(twig_chart(data, "step", (30, 70))["data"][0]) == list(range(30, 71))
    assert len(twig_chart(data, "step", (30, 70), join=False)["data"]) == 1
    early = twig_chart(data, "step", (10, 30))["data"]  # origin's points only: branch's and twig's come later
    assert xs(early[0]) == list(range(10, 31))
    assert len(early) == 1  # no fork point in the range: no marker
    origin = {run.run_name: run.start_time.timestamp() for run in data.runs()}["origin"]
    # wall time: origin's steps 30..40 (logged at origin + step s), branch's 41..50 (at origin + 200 + step s)
    wall = twig_chart(data, "wall", (1000 * (origin + 29.5), 1000 * (origin + 250.5)))["data"][0]
    expected = [origin + step for step in range(30, 41)] + [origin + 200 + step for step in range(41, 51)]
    np.testing.assert_allclose(xs(wall), np.array(expected) * 1000, rtol=0, atol=1)  # ms; start times keep µs
    (marker,) = [trace for trace in twig_chart(data, "wall", (1000 * (origin + 29.5), 1000 * (origin + 250.5)))["data"]
                 if trace["meta"]["kind"] == "fork"]
    assert len(marker["x"]) == 1  # origin -> branch is in the range; branch -> twig, after it, is not


def test_relative_time_continues_from_each_fork_point(family):
    relative = xs(twig_chart(DashboardData(family[0]), "relative")["data"][0])
    # origin's 0..40 s; branch's steps 41..60 after the fork at 40 s; twig's 61..99 after branch's at 100 s
    expected = list(range(41)) + [40 + step for step in range(41, 61)] + [100 + step for step in range(61, 100)]
    np.testing.assert_allclose(relative, expected, rtol=0, atol=1e-3)  # start times keep microseconds


@pytest.mark.browser
@pytest.mark.slow
def test_a_live_forks_joined_line_is_extended(ui, serve, tmp_path):
    base = tmp_path / "neural_experiments"
    store = Store(base)
    start = time.time() - 60
    origin = log_run(store, "origin", start, 0, 1, 0.0)
    fork = store.create_run(experiment="lineage", run_name="live-fork", start_time=start + 30)
    store.set_run_parent(fork, origin, 2, 40)
    steps = np.arange(41, 51)
    store.append_metrics(fork, {"batch_loss": (steps, np.full(10, 0.5), start + 30 + steps)})
    with serve(create_app(data=DashboardData(base))) as url:
        ui.open(url)
        ui.page.click("#join-forks input")
        ui.wait_graphs("gs => gs.some(g => g.traces.some(t => t.name === 'live-fork' && t.x.length === 51))")
        later = np.arange(51, 56)
        store.append_metrics(fork, {"batch_loss": (later, np.full(5, 0.25), start + 30 + later)})
        store.heartbeat(fork)
        graphs = ui.wait_graphs("gs => gs.some(g => g.traces.some(t => t.name === 'live-fork' && t.x.length === 56))")
        (trace,) = [trace for graph in graphs for trace in graph["traces"] if trace["name"] == "live-fork"]
        assert trace["x"] == list(range(56)) and trace["y"][-5:] == [0.25] * 5
        assert not ui.page.errors
    store.close()


def test_a_parent_counts_as_changed_when_a_fork_arrives(tmp_path):
    """The Summary card of a parent is drawn again on the tick that brings a new fork of it
    (it redraws the cards of the selected runs that changed), so its fork count follows."""
    base = tmp_path / "neural_experiments"
    store = Store(base)
    parent = log_run(store, "origin", time.time() - 600, 0, 1, 0.0)
    log_run(store, "later", time.time() - 500, 0, 1, 0.0)  # the parent's record is not the newest: not read again
    data = DashboardData(base)
    before = data.snapshot()
    fork = log_run(store, "fork", time.time() - 300, 41, 3, 0.1)
    store.set_run_parent(fork, parent, 2, 40)
    time.sleep(REFRESH_SECONDS + 0.1)
    after = data.snapshot()
    assert after.forks == {parent: [fork]} and after.changed_since([parent], before.version)
    store.close()
