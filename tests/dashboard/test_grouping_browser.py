"""Grouping in a real Chromium: choosing "group by" draws one line per group, its band and its run count."""

from __future__ import annotations

import time

import numpy as np
import pytest

from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.dashboard.data import DashboardData
from neural_dsl_tracking.tracking.grouping import group_curve
from neural_dsl_tracking.tracking.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUNS = [("a-1", 0.1, 1), ("a-2", 0.1, 2), ("a-3", 0.1, 3), ("b-1", 0.01, 1), ("b-2", 0.01, 2)]


def loss(seed: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    steps = np.arange(0, 300, stride)
    return steps, np.random.default_rng(seed).normal(size=steps.size).cumsum()


@pytest.fixture(scope="module")
def grouped_store(tmp_path_factory):
    """Five runs, three with lr 0.1 and two with lr 0.01, logging on different step grids."""
    base = tmp_path_factory.mktemp("grouped") / "neural_experiments"
    store = Store(base)
    for index, (name, lr, seed) in enumerate(RUNS):
        start = time.time() - 3600 + 60 * index
        run_id = store.create_run(experiment="groups", run_name=name, start_time=start)
        store.log_params(run_id, {"optimizer": {"lr": lr}, "seed": seed})
        steps, values = loss(index, 1 + index % 2)
        store.append_metrics(run_id, {"loss": (steps, values, start + steps)})
        store.set_status(run_id, "completed", end_time=start + 300)
    store.close()
    return base


def test_group_by_draws_a_line_and_band_per_group_with_its_run_count(ui, serve, grouped_store):
    with serve(create_app(data=DashboardData(grouped_store))) as url:
        ui.open(url)
        ui.wait_graphs("gs => gs.length === 1 && gs[0].traces.length === 5")
        ui.pick("group-by", "params.optimizer.lr")
        (graph,) = ui.wait_graphs("gs => gs.length === 1 && gs[0].traces.some(t => t.kind === 'center')")
        centers = [trace for trace in graph["traces"] if trace["kind"] == "center"]
        assert sorted(trace["name"] for trace in centers) == ["optimizer.lr=0.01 (n=2)", "optimizer.lr=0.1 (n=3)"]
        assert [trace["kind"] for trace in graph["traces"]] == ["band-lower", "band-upper", "center"] * 2
        assert ui.page.evaluate("() => document.querySelector('.metric-graph .js-plotly-plot')"
                                "._fullData.filter(t => t.fill === 'tonexty').length") == 2
        first = group_curve([loss(index, 1 + index % 2) for index in range(3)])  # lr 0.1, the first group
        (drawn,) = [trace for trace in centers if trace["name"].startswith("optimizer.lr=0.1 ")]
        assert drawn["x"] == first.steps.tolist()
        np.testing.assert_allclose(drawn["y"], first.center)
        ui.page.evaluate("() => document.querySelector('#group-controls').scrollIntoView()")  # the chart and legend
        ui.screenshot("metrics-grouped")

        ui.page.click("#group-band label:has-text('std')")
        (graph,) = ui.wait_graphs("gs => gs[0].title.includes('std')")
        names = [trace["name"] for trace in graph["traces"]]
        upper = graph["traces"][names.index("optimizer.lr=0.1 (n=3)") - 1]  # lower edge, upper edge, line
        std = group_curve([loss(index, 1 + index % 2) for index in range(3)], band="std")
        np.testing.assert_allclose(upper["y"], std.upper)

        ui.tab("Best metrics")
        ui.page.click("#group-aggregate label:has-text('min')")
        ui.page.wait_for_selector("#grouped-table th:has-text('loss (min)')")
        rows = ui.page.locator("#grouped-table tbody tr").all_inner_texts()
        minima = [loss(index, 1 + index % 2)[1].min() for index in range(3)]
        (first,) = [row.split("\t") for row in rows if row.startswith("optimizer.lr=0.1\t")]
        assert first[1] == "3"
        mean, std_text = first[2].split(" ± ")
        assert float(mean) == pytest.approx(np.mean(minima), rel=1e-3)
        assert float(std_text) == pytest.approx(np.std(minima), rel=1e-3)
        ui.tab("Summary")
        ui.page.wait_for_selector(".group-card")
        cards = ui.page.locator(".group-card").all_inner_texts()
        assert sorted(card.splitlines()[0] for card in cards) == ["optimizer.lr=0.01", "optimizer.lr=0.1"]
        assert not ui.page.errors


def test_a_grouped_chart_follows_a_live_run(ui, serve, tmp_path):
    base = tmp_path / "neural_experiments"
    store = Store(base)
    ids = []
    for seed in (1, 2):
        ids.append(store.create_run(experiment="live", run_name=f"seed-{seed}"))
        store.log_params(ids[-1], {"lr": 0.1, "seed": seed})
        store.append_metrics(ids[-1], {"loss": (np.arange(50), np.full(50, float(seed)), np.full(50, time.time()))})
    store.set_status(ids[0], "completed", end_time=time.time())
    with serve(create_app(data=DashboardData(base))) as url:
        ui.open(url)
        ui.pick("group-by", "params.lr")
        ui.wait_graphs("gs => gs.length === 1 && gs[0].traces.some(t => t.kind === 'center' && t.x.length === 50)")
        later = np.arange(50, 80)
        store.append_metrics(ids[1], {"loss": (later, np.full(30, 4.0), np.full(30, time.time()))})
        (graph,) = ui.wait_graphs("gs => gs[0].traces.some(t => t.kind === 'center' && t.x.length === 80)")
        (center,) = [trace for trace in graph["traces"] if trace["kind"] == "center"]
        assert center["y"][:50] == [1.5] * 50 and center["y"][50:] == [4.0] * 30  # the finished run's span ended
    store.close()


AGGREGATED = ("loss", "val_accuracy", "lr_scale")  # a loss, a score and a name that says neither


def aggregated_values(index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(100 + index)
    return {key: rng.normal(size=20) for key in AGGREGATED}


def test_each_metric_of_the_grouped_tables_takes_its_own_aggregate(ui, serve, tmp_path):
    base = tmp_path / "neural_experiments"
    store = Store(base)
    for index in range(4):
        run_id = store.create_run(experiment="aggregates", run_name=f"run-{index}", start_time=time.time() - 99 + index)
        store.log_params(run_id, {"lr": 0.1 if index < 2 else 0.01})
        store.append_metrics(run_id, {key: (np.arange(20), values, np.full(20, time.time()))
                                      for key, values in aggregated_values(index).items()})
        store.set_status(run_id, "completed", end_time=time.time())
    store.close()

    def group_means(key: str, how) -> list[float]:  # per group, lr 0.1 first: the mean of its runs' aggregates
        return [np.mean([how(aggregated_values(index)[key]) for index in group]) for group in ((0, 1), (2, 3))]

    def shown(key: str) -> list[float]:  # the groups' means in the table, lr 0.1 first
        headers = ui.page.locator("#grouped-table thead tr").first.locator("th").all_inner_texts()
        column = next(i for i, text in enumerate(headers) if text.startswith(f"{key} ("))
        rows = [row.split("\t") for row in ui.page.locator("#grouped-table tbody tr").all_inner_texts()]
        means = {cells[0]: float(cells[column].split(" ± ")[0]) for cells in rows}
        return [means["lr=0.1"], means["lr=0.01"]]

    with serve(create_app(data=DashboardData(base))) as url:
        ui.open(url)
        ui.pick("group-by", "params.lr")
        ui.tab("Best metrics")
        for key, name in (("loss", "min"), ("val_accuracy", "max"), ("lr_scale", "last")):  # by name
            ui.page.wait_for_selector(f"#grouped-table th:has-text('{key} ({name})')")
        np.testing.assert_allclose(shown("val_accuracy"), group_means("val_accuracy", np.max), rtol=1e-3)
        np.testing.assert_allclose(shown("lr_scale"), group_means("lr_scale", lambda v: v[-1]), rtol=1e-3)

        ui.page.click("#grouped-table th[data-metric='val_accuracy'] .dash-dropdown")
        ui.page.locator(".dash-dropdown-option", has_text="mean").first.click()
        ui.page.wait_for_selector("#grouped-table th:has-text('val_accuracy (mean)')")
        np.testing.assert_allclose(shown("val_accuracy"), group_means("val_accuracy", np.mean), rtol=1e-3)
        assert ui.page.locator("#grouped-table th:has-text('loss (min)')").count() == 1  # the others kept theirs
        np.testing.assert_allclose(shown("loss"), group_means("loss", np.min), rtol=1e-3)
        ui.screenshot("best-grouped")

        ui.tab("Summary")
        ui.page.wait_for_selector(".group-card")
        for card in ui.page.locator(".group-card").all_inner_texts():
            assert "val_accuracy (mean): " in card and "loss (min): " in card and "lr_scale (last): " in card

        ui.tab("Best metrics")
        ui.page.click("#group-aggregate label:has-text('last')")  # every metric at once
        ui.page.wait_for_selector("#grouped-table th:has-text('val_accuracy (last)')")
        assert ui.page.locator("#grouped-table th:has-text('loss (last)')").count() == 1
        np.testing.assert_allclose(shown("loss"), group_means("loss", lambda v: v[-1]), rtol=1e-3)
        assert not ui.page.errors
