"""The dashboard in a real headless Chromium, on a store written by ExperimentTracker."""

from __future__ import annotations

import hashlib
import urllib.request

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def by_title(graphs: list[dict]) -> dict[str, dict]:
    return {graph["title"]: graph for graph in graphs}


def test_table_lists_every_run_with_status_and_filters(ui, dashboard_url, store, logged):
    ui.open(dashboard_url)
    assert sorted(ui.rows()) == sorted(["alpha", "beta", "gamma", logged.hostile_name, "killed"])
    statuses = dict(zip(ui.rows(), ui.page.locator("#run-table td[data-dash-column=status]").all_inner_texts()))
    assert statuses == {"alpha": "completed", "beta": "completed", "gamma": "failed",
                        logged.hostile_name: "interrupted", "killed": "crashed"}
    assert ui.page.locator("#run-count").inner_text().startswith("5 runs")

    ui.pick("filter-status", "failed")
    ui.page.wait_for_function("() => document.querySelectorAll('#run-table tbody tr td[data-dash-column=run_name]').length === 1")
    assert ui.rows() == ["gamma"]
    ui.page.reload()
    ui.page.wait_for_selector("#run-table tbody tr td", state="attached")

    ui.pick("filter-experiment", "mnist")
    ui.page.wait_for_function("() => document.querySelectorAll('#run-table td[data-dash-column=run_name]').length === 2")
    assert sorted(ui.rows()) == ["alpha", "beta"]
    ui.pick("filter-tag", "baseline")
    ui.page.wait_for_function("() => document.querySelectorAll('#run-table td[data-dash-column=run_name]').length === 1")
    assert ui.rows() == ["alpha"]
    ui.page.reload()
    ui.page.wait_for_selector("#run-table tbody tr td", state="attached")

    ui.page.fill("#filter-text", "optimizer=sgd")
    ui.page.press("#filter-text", "Enter")
    ui.page.wait_for_function("() => document.querySelectorAll('#run-table td[data-dash-column=run_name]').length === 1")
    assert ui.rows() == ["beta"]
    assert ui.page.errors == []


def test_metrics_tab_overlays_selected_runs_with_exact_values(ui, dashboard_url):
    ui.open(dashboard_url)
    ui.clear_selection()
    ui.select("alpha", "beta")
    graphs = by_title(ui.wait_graphs("gs => gs.length === 2 && gs.every(g => g.traces.length === 2)"))
    assert set(graphs) == {"accuracy", "loss"}
    loss = {trace["name"]: trace for trace in graphs["loss"]["traces"]}
    assert set(loss) == {"alpha", "beta"}
    assert loss["alpha"]["x"] == list(range(200))
    assert loss["alpha"]["y"] == pytest.approx([1.0 / (step + 1) for step in range(200)])
    ui.screenshot("metrics")


def test_spike_survives_downsampling_in_the_drawn_chart(ui, dashboard_url, logged):
    ui.open(dashboard_url)
    ui.clear_selection()
    ui.select("beta")
    graphs = by_title(ui.wait_graphs("gs => gs.length === 2"))
    (trace,) = graphs["loss"]["traces"]
    assert len(trace["x"]) <= 2000 < logged.long_steps
    assert trace["x"][0] == 0 and trace["x"][-1] == logged.long_steps - 1
    assert max(trace["y"]) == logged.spike_value
    assert trace["x"][trace["y"].index(logged.spike_value)] == logged.spike_step


def test_smoothing_x_axis_and_log_scale(ui, dashboard_url):
    ui.open(dashboard_url)
    ui.clear_selection()
    ui.select("alpha")
    graphs = by_title(ui.wait_graphs("gs => gs.length === 2"))
    raw = graphs["loss"]["traces"][0]["y"]

    ui.page.fill("#smoothing input[type=number]", "0.9")
    ui.page.press("#smoothing input[type=number]", "Tab")
    graphs = by_title(ui.wait_graphs("gs => gs.length === 2 && gs[0].traces.length === 2"))
    kinds = [trace["kind"] for trace in graphs["loss"]["traces"]]
    assert kinds == ["raw", "smoothed"]
    faint, smoothed = graphs["loss"]["traces"]
    assert faint["y"] == pytest.approx(raw) and faint["opacity"] < 1
    assert smoothed["y"] != pytest.approx(raw)
    assert smoothed["y"][0] == pytest.approx(raw[0])  # debiased: starts at the first value
    assert smoothed["y"][-1] > raw[-1]  # a decreasing curve, smoothed, lags above it
    ui.screenshot("metrics-smoothed")

    ui.page.get_by_label("wall time").check()
    graphs = by_title(ui.wait_graphs("gs => gs.length === 2 && gs[0].xaxis === 'date'"))
    ui.page.get_by_label("relative time").check()
    graphs = by_title(ui.wait_graphs("gs => gs.length === 2 && gs[0].xaxis === 'linear'"))
    relative = graphs["loss"]["traces"][0]["x"]
    assert 0 <= relative[0] < relative[-1] < 600
    ui.page.get_by_label("log scale").check()
    ui.wait_graphs("gs => gs.length === 2 && gs.every(g => g.yaxis === 'log')")


def test_hyperparameters_highlight_differences(ui, dashboard_url):
    ui.open(dashboard_url)
    ui.clear_selection()
    ui.select("alpha", "beta")
    ui.tab("Hyperparameters")
    table = ui.page.locator("#hyperparameters-table")
    table.wait_for()
    differing = table.locator("tr.differs td.param-name").all_inner_texts()
    same = table.locator("tr.same td.param-name").all_inner_texts()
    assert sorted(differing) == ["lr", "optimizer"]
    assert sorted(same) == ["batch_size", "layers"]
    row = table.locator("tr.differs", has_text="optimizer").locator("td").all_inner_texts()
    assert row[1:] in (["adam", "sgd"], ["sgd", "adam"])
    background = table.locator("tr.differs").first.evaluate("el => getComputedStyle(el).backgroundColor")
    assert background != "rgba(0, 0, 0, 0)"
    ui.screenshot("hyperparameters")
    ui.page.get_by_label("only differences").check()
    ui.page.wait_for_function("() => document.querySelectorAll('#hyperparameters-table tr.same').length === 0")
    assert sorted(table.locator("td.param-name").all_inner_texts()) == ["lr", "optimizer"]


def test_best_metrics_minimise_losses_maximise_accuracy(ui, dashboard_url):
    ui.open(dashboard_url)
    ui.clear_selection()
    ui.select("alpha", "beta")
    ui.tab("Best metrics")
    table = ui.page.locator("#best-table")
    table.wait_for()
    headers = table.locator("th").all_inner_texts()
    assert "accuracy ↑ max" in headers and "loss ↓ min" in headers
    rows = {cells[0]: cells for cells in (row.locator("td").all_inner_texts() for row in table.locator("tbody tr").all())}
    column = {name: position for position, name in enumerate(headers)}
    assert float(rows["alpha"][column["loss ↓ min"]]) == pytest.approx(1 / 200, rel=1e-5)
    assert float(rows["alpha"][column["accuracy ↑ max"]]) == pytest.approx(199 / 200, rel=1e-5)
    assert float(rows["beta"][column["accuracy ↑ max"]]) == pytest.approx(0.5 + 199 / 1000, rel=1e-5)
    assert table.locator("td.best-cell").all_inner_texts() == [rows["alpha"][1], rows["alpha"][2]]
    # above the table, a bar chart per metric: a bar per run, the best run's marked
    charts = ui.page.evaluate("""() => Array.from(document.querySelectorAll('#best-charts .js-plotly-plot')).map(gd => ({
        title: gd.layout.title.text, ticks: gd._fullLayout.xaxis.ticktext, y: Array.from(gd._fullData[0].y),
        text: gd._fullData[0].text, opacity: gd._fullData[0].marker.opacity,
        above: gd.getBoundingClientRect().bottom <= document.querySelector('#best-table').getBoundingClientRect().top}))""")
    assert [chart["title"] for chart in charts] == ["accuracy ↑ max", "loss ↓ min"]
    for chart in charts:
        assert chart["above"] and sorted(chart["ticks"]) == ["alpha", "beta"]
        best = chart["ticks"].index("alpha")  # alpha has the lower loss and the higher accuracy
        assert [text.startswith("★") for text in chart["text"]] == [position == best for position in range(2)]
        assert chart["opacity"][best] == 1 and chart["opacity"][1 - best] < 1
    accuracy = charts[0]
    assert accuracy["y"][accuracy["ticks"].index("alpha")] == pytest.approx(199 / 200)
    assert accuracy["y"][accuracy["ticks"].index("beta")] == pytest.approx(0.5 + 199 / 1000)
    ui.screenshot("best")
    # override: minimise accuracy too -> its best becomes the minimum
    ui.pick("maximise", "accuracy")  # toggles it off
    ui.page.wait_for_function("() => Array.from(document.querySelectorAll('#best-table th')).some(th => th.textContent === 'accuracy ↓ min')")
    rows = {cells[0]: cells for cells in (row.locator("td").all_inner_texts() for row in table.locator("tbody tr").all())}
    assert float(rows["alpha"][1]) == 0.0


def test_summary_cards_and_parallel_coordinates(ui, dashboard_url):
    ui.open(dashboard_url)
    ui.clear_selection()
    ui.select("alpha", "beta", "gamma")
    ui.tab("Summary")
    cards = ui.page.locator(".run-card")
    cards.first.wait_for()
    assert cards.count() == 3
    alpha = cards.filter(has_text="alpha")
    assert "completed" in alpha.inner_text() and "2 artifacts" not in alpha.inner_text()
    assert "1 artifact" in alpha.inner_text() and "baseline" in alpha.inner_text()
    assert "failed" in cards.filter(has_text="gamma").inner_text()
    ui.screenshot("summary")

    ui.tab("Parallel coordinates")
    ui.page.wait_for_selector("#parallel-graph .js-plotly-plot")
    dims = ui.page.evaluate("() => document.querySelector('#parallel-graph .js-plotly-plot')._fullData[0].dimensions"
                            ".map(d => ({label: d.label, values: Array.from(d.values)}))")
    labels = [dim["label"] for dim in dims]
    assert labels == ["batch_size", "layers", "lr", "optimizer", "loss (min)"]
    assert len(dims[-1]["values"]) == 3
    ui.screenshot("parallel")


def test_artifacts_list_versions_and_download_right_bytes(ui, dashboard_url, store, logged):
    ui.open(dashboard_url)
    ui.clear_selection()
    ui.select("alpha")
    ui.tab("Artifacts")
    rows = ui.page.locator("#artifacts-table tr.artifact-row")
    rows.first.wait_for()
    assert rows.count() == 2
    cells = [row.locator("td").all_inner_texts() for row in rows.all()]
    assert [c[1:3] for c in cells] == [["checkpoint", "v1"], ["checkpoint", "v2"]]
    assert [c[4] for c in cells] == [hashlib.sha256(content).hexdigest() for content in logged.checkpoints]
    assert "best" in cells[0][5] and "latest" in cells[1][5]
    ui.screenshot("artifacts")
    with ui.page.expect_download() as download:
        rows.nth(1).locator("a.download").click()
    assert open(download.value.path(), "rb").read() == logged.checkpoints[1]
    href = rows.nth(0).locator("a.download").get_attribute("href")
    with urllib.request.urlopen(dashboard_url + href) as response:
        assert response.read() == logged.checkpoints[0]


@pytest.mark.parametrize("path", [
    "/artifacts/{alpha}/9/checkpoint",
    "/artifacts/{alpha}/1/..%2F..%2Fstore.db",
    "/artifacts/{alpha}/1/../../store.db",
    "/artifacts/..%2F..%2Fetc/1/passwd",
    "/artifacts/{alpha}/1/%2Fetc%2Fpasswd",
])
def test_download_serves_only_store_objects(dashboard_url, store, path):
    url = dashboard_url + path.format(alpha=store.ids["alpha"])
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(url)
    assert error.value.code == 404


def test_user_strings_are_rendered_as_text(ui, dashboard_url, logged):
    ui.open(dashboard_url)
    ui.clear_selection()
    ui.select(logged.hostile_name)
    ui.wait_graphs("gs => gs.length === 1")
    assert logged.hostile_name in ui.rows()
    legend = ui.page.locator(".metric-graph .legendtext").all_text_contents()
    assert legend == [logged.hostile_name]
    ui.tab("Hyperparameters")
    ui.page.locator("#hyperparameters-table").wait_for()
    assert "<script>window.__xss=2</script>" in ui.page.locator("#hyperparameters-table").inner_text()
    ui.tab("Summary")
    ui.page.locator(".run-card").first.wait_for()
    assert "<i>tag</i>" in ui.page.locator(".run-card").inner_text()
    assert ui.page.evaluate("() => window.__xss") is None
    assert ui.page.locator("#run-table img, .run-card img, #hyperparameters-table script").count() == 0
