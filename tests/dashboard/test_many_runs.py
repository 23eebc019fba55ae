"""The dashboard on stores of thousands of runs: a warm-up that grows linearly, a run table
paged, sorted and filtered on the server, and live ticks that send nothing when nothing
changed. The stores are written in bulk by the dashboard bench's ``bulk_store``."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from neural_dsl_tracking.dashboard import data as data_module
from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.dashboard.data import DashboardData
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker

BENCH = Path(__file__).resolve().parents[2] / "bench" / "dashboard.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_dashboard", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bulk_store = _bench().bulk_store


class LineCounter:
    """Counts the Python lines executed in one module, in every thread, while active."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines = 0

    def _local(self, frame, event, arg):
        if event == "line":
            self.lines += 1
        return self._local

    def _global(self, frame, event, arg):
        return self._local if frame.f_code.co_filename == self.filename else None

    def __enter__(self) -> "LineCounter":
        threading.settrace(self._global)
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc) -> None:
        sys.settrace(None)
        threading.settrace(None)


def warm_up_lines(base_dir: Path) -> tuple[int, int]:
    """Series warmed and lines of ``dashboard/data.py`` executed to warm a fresh dashboard."""
    data = DashboardData(base_dir)
    data.runs()
    with LineCounter(data_module.__file__) as counter:
        warmed = data.warm()
    return warmed, counter.lines


def test_the_warm_up_grows_linearly_with_the_store(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    bulk_store(small, 150, steps=5)
    bulk_store(large, 600, steps=5)
    (small_series, small_lines), (large_series, large_lines) = warm_up_lines(small), warm_up_lines(large)
    assert (small_series, large_series) == (450, 1800)
    # 4x the series: linear work is ~4x the lines; the old scan of the whole cache on every
    # insert made it ~13x (1,800 inserts x up to 1,800 keys)
    assert large_lines < 6 * small_lines, (small_lines, large_lines)


def test_the_snapshot_follows_new_finished_and_deleted_runs(store_kwargs):
    base_dir, url = store_kwargs["base_dir"], store_kwargs["store"]
    with ExperimentTracker("snap", **store_kwargs, run_name="first", auto_visualize=False) as first:
        first.log_metrics({"loss": 1.0}, step=0)
    data = DashboardData(base_dir, url)
    before = data.snapshot()
    assert [run.run_name for run in before.runs] == ["first"]
    assert data.snapshot() is before  # asked again at once: the same snapshot, no read

    def refreshed():
        time.sleep(data_module.REFRESH_SECONDS + 0.1)
        return data.snapshot()

    second = ExperimentTracker("snap", **store_kwargs, run_name="second", auto_visualize=False)
    started = refreshed()
    assert [run.run_name for run in started.runs] == ["second", "first"] and started.version > before.version
    assert started.by_id[first.run_id] == before.by_id[first.run_id]
    assert started.changed_since([second.run_id], before.version)
    assert not started.changed_since([first.run_id], before.version)
    second.finish("failed")
    finished = refreshed()
    assert finished.by_id[second.run_id].status == "failed"
    assert finished.changed_since([second.run_id], started.version)
    assert refreshed() is finished  # nothing changed since: no read, no new version
    ExperimentManager(base_dir, url).delete_experiment(first.run_id)
    deleted = refreshed()
    assert [run.run_name for run in deleted.runs] == ["second"]
    assert deleted.changed_since([first.run_id], finished.version)


RUNS = 3000
PAGE = 50


@pytest.fixture(scope="module")
def many(tmp_path_factory, serve):
    """A dashboard serving a store of ``RUNS`` small runs."""
    base_dir = tmp_path_factory.mktemp("many-runs") / "neural_experiments"
    bulk_store(base_dir, RUNS)
    with serve(create_app(data=DashboardData(base_dir))) as url:
        yield SimpleNamespace(url=url, base_dir=base_dir)


def names(first: int, last: int) -> list[str]:
    """``run-{first}`` down to ``run-{last}``: the bulk store's runs, newest first."""
    return [f"run-{index:06d}" for index in range(first, last - 1, -1)]


def table_responses(page) -> list[str]:
    """Bodies of the callbacks' answers that carry run-table rows, collected from now on."""
    bodies: list[str] = []

    def keep(response) -> None:
        if "_dash-update-component" in response.url and response.status == 200:
            body = response.text()
            if '"run-table"' in body and '"data"' in body:
                bodies.append(body)

    page.on("response", keep)
    return bodies


def tick(ui) -> None:
    """A live tick now (the page's interval waits 15 s when nothing runs)."""
    ui.page.evaluate("() => window.dash_clientside.set_props('live-tick', {n_intervals: Date.now()})")


@pytest.mark.browser
def test_the_table_holds_one_page_and_pages_on_the_server(ui, many):
    layouts: list[int] = []
    ui.page.on("response", lambda response: layouts.append(len(response.body()))
               if response.url.endswith("_dash-layout") else None)
    rows = table_responses(ui.page)
    ui.open(many.url)
    assert ui.rows() == names(RUNS - 1, RUNS - PAGE)
    assert ui.page.locator("#run-count").inner_text() == f"{RUNS} runs, 5 selected"
    assert layouts and layouts[0] < 100_000, layouts  # one page of rows, not 3,000
    ui.page.click("#run-table .next-page")
    ui.wait_rows(names(RUNS - PAGE - 1, RUNS - 2 * PAGE))
    ui.page.click("#run-table .previous-page")
    ui.wait_rows(names(RUNS - 1, RUNS - PAGE))
    assert rows and all(body.count('"run_name"') <= PAGE for body in rows)
    assert ui.page.errors == []


@pytest.mark.browser
def test_sorting_and_filtering_run_on_the_server(ui, many):
    records = ExperimentManager(many.base_dir).list_experiments()  # newest first
    by_best = sorted(records, key=lambda run: run.metrics["loss"]["min"])
    ui.open(many.url)
    ui.page.locator("#run-table th[data-dash-column=best] .column-header--sort").click()
    ui.wait_rows([run.run_name for run in by_best[:PAGE]])
    ui.page.fill("#filter-text", "run-0012")
    ui.page.press("#filter-text", "Enter")
    matching = [run.run_name for run in by_best if run.run_name.startswith("run-0012")]
    assert len(matching) == 100
    ui.wait_rows(matching[:PAGE])
    assert ui.page.locator("#run-count").inner_text() == f"{RUNS} runs, 100 shown, 5 selected"
    ui.page.click("#run-table .next-page")
    ui.wait_rows(matching[PAGE:])
    ui.pick("filter-status", "failed")  # runs 8, 18, 28... of the bulk store
    ui.wait_rows([name for name in matching if int(name[-6:]) % 10 == 8][:PAGE])
    assert ui.page.errors == []


@pytest.mark.browser
def test_the_search_box_takes_the_query_language(ui, many):
    ui.open(many.url)
    ui.page.fill("#filter-text", "params.lr < 0.005 and status = failed")  # runs 18, 38, 58...
    ui.page.press("#filter-text", "Enter")
    ui.wait_rows([name for name in names(RUNS - 1, 0) if int(name[-6:]) % 20 == 18][:PAGE])
    assert ui.page.locator("#run-count").inner_text() == f"{RUNS} runs, {RUNS // 20} shown, 5 selected"
    ui.screenshot("query")
    ui.page.fill("#filter-text", "params.lr <")
    ui.page.press("#filter-text", "Enter")
    ui.page.wait_for_function("() => document.querySelector('#query-error').innerText.includes('^')")
    assert "the query ends too soon" in ui.page.locator("#query-error").inner_text()
    ui.screenshot("query-error")
    ui.wait_rows(names(RUNS - 1, RUNS - PAGE))  # the search is left aside meanwhile
    ui.page.fill("#filter-text", "run-00299")  # plain words search names, as before
    ui.page.press("#filter-text", "Enter")
    ui.wait_rows(names(2999, 2990))
    assert ui.page.locator("#query-error").inner_text() == ""
    assert ui.page.errors == []


@pytest.mark.browser
def test_a_selection_spans_pages_and_reaches_the_other_tabs(ui, many):
    ui.open(many.url)
    first, later = names(RUNS - 1, RUNS - 1)[0], names(RUNS - PAGE - 3, RUNS - PAGE - 3)[0]
    ui.clear_selection()
    ui.select(first)
    ui.page.click("#run-table .next-page")
    ui.wait_rows(names(RUNS - PAGE - 1, RUNS - 2 * PAGE))
    ui.select(later)
    ui.page.wait_for_function("() => document.querySelector('#run-count').innerText.endsWith('2 selected')")
    ui.page.click("#run-table .previous-page")  # the table clears its ticks on a page turn; they come back
    ui.wait_rows(names(RUNS - 1, RUNS - PAGE))
    sort = ui.page.locator("#run-table th[data-dash-column=start] .column-header--sort")
    for _ in range(2):  # oldest first, then newest first: the first page again
        sort.click()
    ui.wait_rows(names(RUNS - 1, RUNS - PAGE))
    ui.page.wait_for_timeout(500)  # let the table's own clearing come and go
    checked = ui.page.locator("#run-table tr", has=ui.page.locator("input[type=checkbox]:checked"))
    assert checked.locator("td[data-dash-column=run_name]").all_inner_texts() == [first]
    assert ui.page.locator("#run-count").inner_text() == f"{RUNS} runs, 2 selected"
    ui.tab("Hyperparameters")
    ui.page.wait_for_function("() => document.querySelectorAll('#hyperparameters-table thead th').length === 3")
    assert sorted(ui.page.locator("#hyperparameters-table thead th").all_inner_texts()[1:]) == sorted([first, later])
    assert ui.page.errors == []


@pytest.mark.browser
def test_a_tick_sends_no_table_data_when_no_run_changed(ui, many):
    ui.open(many.url)
    ui.page.wait_for_selector(".metric-graph .js-plotly-plot .main-svg")
    ui.tab("Summary")
    ui.page.wait_for_selector(".run-card")
    answers: list[str] = []
    ui.page.on("response", lambda response: answers.append(response.text() if response.status == 200 else "")
               if "_dash-update-component" in response.url else None)
    rows = table_responses(ui.page)
    for _ in range(3):
        tick(ui)
        ui.page.wait_for_timeout(300)
    assert len(answers) >= 3 and rows == []  # every answer to the ticks: nothing for the table
    assert not any("summary-area" in answer for answer in answers)  # nor the summary cards
    with ExperimentTracker("late", base_dir=str(many.base_dir), run_name="late-run", auto_visualize=False) as tracker:
        tracker.log_metrics({"loss": 0.5}, step=0)
    ui.page.wait_for_timeout(600)  # past the dashboard's refresh interval
    tick(ui)
    ui.page.wait_for_function("() => document.querySelector('#run-table td[data-dash-column=run_name]')"
                              ".innerText === 'late-run'")
    assert all(body.count('"run_name"') <= PAGE for body in rows)
    assert ui.page.errors == []
