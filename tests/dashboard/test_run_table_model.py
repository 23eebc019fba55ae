"""The run table's model columns (issue 14 items 1 and 3): params and MACs as ``ls`` prints
them, sorted by their numbers on the server (runs without a model last), and runs with
identical fingerprints marked "same as <run>" by ``ls``'s rule; the search box's query
language filters on them."""

from __future__ import annotations

import time

import pytest

from neural_dsl_tracking.dashboard import data as data_module
from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.dashboard.data import DashboardData
from neural_dsl_tracking.dashboard.run_table import run_rows, run_tooltips
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker

TWIN = "f" * 64
# name -> (params, MACs, fingerprint), oldest first; None: no model recorded.
# As text the params sort 1.2K < 1.2M < 250.0K < 9.0K: only numbers put them right.
MODELS = {
    "twin-a": (9_000, 90_000, TWIN),
    "big": (1_200_000, 30_000_000, "b" * 64),
    "plain": None,
    "mid": (250_000, 2_500_000, "m" * 64),
    "small": (1_234, 5_000, None),
    "twin-b": (9_000, 90_000, TWIN),
}


def spec(params: int, macs: int) -> dict:
    """A model spec of one Dense layer holding every parameter (docs/tracking.md's format)."""
    layer = {"name": "dense_1", "type": "Dense", "params": {"units": 10}, "input": [None, 8],
             "output": [None, 10], "param_count": params, "macs": macs}
    return {"network": "Net", "input": [None, 8], "output": [None, 10], "layers": [layer],
            "params": params, "macs": macs}


def log_runs(base_dir) -> dict[str, str]:
    """The runs of ``MODELS``, one after the other; their ids by name."""
    ids = {}
    for name, model in MODELS.items():
        with ExperimentTracker("models", base_dir=base_dir, run_name=name, auto_visualize=False) as tracker:
            tracker.log_metrics({"loss": 1.0}, step=0)
            if model is not None:
                tracker.log_model_spec(spec(*model[:2]), model[2])
            ids[name] = tracker.run_id
        time.sleep(0.01)  # distinct start times: "oldest" is well defined
    return ids


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A store holding the runs of ``MODELS``: its directory and the run ids by name."""
    base_dir = tmp_path_factory.mktemp("run-table-model") / "store"
    return base_dir, log_runs(base_dir)


def cells(ui, column: str) -> dict[str, str]:
    """A column of the table's page, by run name."""
    return dict(zip(ui.rows(), ui.page.locator(f"#run-table td[data-dash-column={column}]").all_inner_texts()))


@pytest.mark.browser
def test_the_table_shows_sorts_and_filters_the_models(ui, serve, models):
    base_dir, ids = models
    with serve(create_app(data=DashboardData(base_dir))) as url:
        ui.open(url)
        assert cells(ui, "params") == {"twin-b": "9.0K", "small": "1.2K", "mid": "250.0K", "plain": "",
                                       "big": "1.2M", "twin-a": "9.0K"}
        assert cells(ui, "macs") == {"twin-b": "90.0K", "small": "5.0K", "mid": "2.5M", "plain": "",
                                     "big": "30.0M", "twin-a": "90.0K"}
        marks = cells(ui, "fingerprint")
        assert marks["twin-b"] == f"ffffffff same as {ids['twin-a'][:8]}"
        assert marks["twin-a"] == f"ffffffff same as {ids['twin-b'][:8]}"  # as ls: the oldest other run
        assert (marks["big"], marks["mid"], marks["small"], marks["plain"]) == ("bbbbbbbb", "mmmmmmmm", "", "")

        sort = ui.page.locator("#run-table th[data-dash-column=params] .column-header--sort")
        sort.click()  # ascending; runs without a model last, ties newest first
        ui.wait_rows(["small", "twin-b", "twin-a", "mid", "big", "plain"])
        sort.click()  # descending; runs without a model still last
        ui.wait_rows(["big", "mid", "twin-b", "twin-a", "small", "plain"])
        ui.page.locator("#run-table th[data-dash-column=macs] .column-header--sort").click()
        ui.wait_rows(["small", "twin-b", "twin-a", "mid", "big", "plain"])

        ui.page.fill("#filter-text", "model.params > 1e5")
        ui.page.press("#filter-text", "Enter")
        ui.wait_rows(["mid", "big"])
        assert ui.page.locator("#run-count").inner_text().startswith("6 runs, 2 shown")
        ui.page.fill("#filter-text", "model.fingerprint ~ 'ffffffff*'")
        ui.page.press("#filter-text", "Enter")
        ui.wait_rows(["twin-b", "twin-a"])
        assert ui.page.locator("#query-error").inner_text() == ""
        assert ui.page.errors == []


def test_the_marks_follow_ls_and_the_hover_names_the_twin(models):
    base_dir, ids = models
    snapshot = DashboardData(base_dir).snapshot()
    manager = ExperimentManager(base_dir)
    assert snapshot.twins == manager.fingerprint_twins(ids.values())
    assert snapshot.twins == {ids["twin-a"]: ids["twin-b"], ids["twin-b"]: ids["twin-a"]}
    tips = dict(zip((run.run_name for run in snapshot.runs), run_tooltips(snapshot.runs, snapshot)))
    assert tips["twin-b"]["fingerprint"]["value"] == f"the same fingerprint as twin-a ({ids['twin-a']})"
    assert "fingerprint" not in tips["big"] and "fingerprint" not in tips["plain"]


def test_a_model_recorded_after_the_run_was_seen_reaches_the_table(store_kwargs):
    data = DashboardData(store_kwargs["base_dir"], store_kwargs["store"])
    tracker = ExperimentTracker("models", **store_kwargs, run_name="live", auto_visualize=False)
    try:
        before = data.snapshot()
        assert run_rows(before.runs, None, "min", before)[0]["params"] == ""
        tracker.log_model_spec(spec(1_200_000, 3_000), "a" * 64)
        time.sleep(data_module.REFRESH_SECONDS + 0.1)
        after = data.snapshot()
        assert after.changed_since([tracker.run_id], before.version)
        row = run_rows(after.runs, None, "min", after)[0]
        assert (row["params"], row["macs"], row["fingerprint"]) == ("1.2M", "3.0K", "aaaaaaaa")
    finally:
        tracker.finish("completed")


def test_the_search_box_reads_only_the_ids_of_the_runs_a_query_matches(models):
    from neural_dsl_tracking.tracking.query import parse_query

    base_dir, ids = models
    query = parse_query("model.params > 1e5")
    manager = ExperimentManager(base_dir)
    assert manager.query_run_ids(query) == [run.run_id for run in manager.query_runs(query)] == [ids["mid"], ids["big"]]
    assert DashboardData(base_dir).query_ids(query) == {ids["mid"], ids["big"]}
