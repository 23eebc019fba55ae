"""compare_experiments and export_comparison."""

from __future__ import annotations

import csv
import json
import re

import pytest

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker


@pytest.fixture
def two_runs(tmp_path):
    ids = []
    for lr in (0.1, 0.01):
        with ExperimentTracker("cmp", base_dir=tmp_path / "store", auto_visualize=False) as t:
            t.log_hyperparameters({"lr": lr, "batch_size": 32})
            for step in range(100):
                t.log_metrics({"loss": lr * 10 / (step + 1), "acc": step / 100.0}, step=step)
            t.log_metrics({"loss": float("nan")}, step=100)
        ids.append(t.run_id)
    return ExperimentManager(base_dir=tmp_path / "store"), ids


def test_compare_returns_figures_and_saves_pngs(two_runs, tmp_path):
    manager, ids = two_runs
    figures = manager.compare_experiments(ids, metrics=["loss"], out_dir=tmp_path / "cmp")
    assert list(figures) == ["loss"]
    assert len(figures["loss"].axes[0].get_lines()) == 2
    png = tmp_path / "cmp" / "compare_loss.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    default = manager.compare_experiments(ids)
    assert set(default) == {"acc", "loss"}
    folder = tmp_path / "store" / "comparisons" / "_".join(i[:8] for i in ids)
    assert sorted(p.name for p in folder.iterdir()) == ["compare_acc.png", "compare_loss.png"]


def test_compare_unknown_metric_or_run_is_an_error(two_runs):
    manager, ids = two_runs
    with pytest.raises(TrackingError, match="f1"):
        manager.compare_experiments(ids, metrics=["f1"])
    with pytest.raises(TrackingError, match="no run"):
        manager.compare_experiments([ids[0], "0000"])


def test_export_writes_csv_json_png_and_self_contained_html(two_runs, tmp_path):
    manager, ids = two_runs
    out = manager.export_comparison(ids, tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == [
        "compare_acc.png", "compare_loss.png", "metrics.csv", "report.html", "summary.json"]

    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * (101 + 100)
    assert {r["run_id"] for r in rows} == set(ids)
    assert any(r["value"] == "nan" for r in rows)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["differing_params"] == ["lr"]
    assert summary["best"]["loss"]["run_id"] == ids[1]
    assert summary["best"]["acc"]["mode"] == "max"
    assert summary["runs"][0]["metrics"]["loss"]["latest"] == "NaN"

    html = (out / "report.html").read_text()
    assert "Plotly.newPlot" in html and len(html) > 1_000_000  # plotly.js is inline
    assert not re.search(r"<script[^>]+src=", html)  # nothing fetched from the network
    assert "lr" in html and ids[0][:8] in html


def test_export_refuses_a_folder_with_other_files_and_keeps_them(two_runs, tmp_path):
    manager, ids = two_runs
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.csv").write_text("my own data")
    with pytest.raises(TrackingError, match=r"mine.*not empty.*metrics\.csv"):
        manager.export_comparison(ids, out)
    assert [p.name for p in out.iterdir()] == ["metrics.csv"]
    assert (out / "metrics.csv").read_text() == "my own data"


def test_export_overwrite_replaces_a_previous_export_and_keeps_other_files(two_runs, tmp_path):
    manager, ids = two_runs
    out = manager.export_comparison(ids, tmp_path / "export", metrics=["acc"])
    (out / "notes.txt").write_text("keep")
    manager.export_comparison(ids, out, metrics=["loss"], overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "compare_loss.png", "metrics.csv", "notes.txt", "report.html", "summary.json"]
    assert json.loads((out / "summary.json").read_text())["metrics"] == ["loss"]


@pytest.mark.parametrize("action", ["compare", "export"])
def test_an_output_path_that_is_a_file_is_a_clear_error(two_runs, tmp_path, action):
    manager, ids = two_runs
    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        with pytest.raises(TrackingError, match=f"{out}.*not a folder"):
            if action == "compare":
                manager.compare_experiments(ids, out_dir=out)
            else:
                manager.export_comparison(ids, out)
    assert (tmp_path / "afile").read_text() == "x"


def test_a_run_or_metric_named_twice_is_compared_once(two_runs, tmp_path):
    manager, ids = two_runs
    figures = manager.compare_experiments([ids[0], ids[0][:8], ids[1]], metrics=["loss", "loss"],
                                          out_dir=tmp_path / "cmp")
    assert list(figures) == ["loss"] and len(figures["loss"].axes[0].get_lines()) == 2
    out = manager.export_comparison([ids[1], ids[1]], tmp_path / "export", metrics=["acc", "acc"])
    with open(out / "metrics.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 100


@pytest.mark.parametrize("action", ["compare", "export"])
def test_one_run_id_given_as_a_string_is_a_clear_error(two_runs, tmp_path, action):
    manager, ids = two_runs
    with pytest.raises(TrackingError, match="must be a list of run ids"):
        if action == "compare":
            manager.compare_experiments(ids[0])
        else:
            manager.export_comparison(ids[0], tmp_path / "export")


def test_comparing_many_runs_saves_to_a_folder_name_the_file_system_takes(tmp_path):
    from neural_dsl_tracking.tracking.store import Store

    store = Store(tmp_path / "store")
    ids = [store.create_run(experiment="many", run_name=None, status="completed") for _ in range(40)]
    store.close()
    manager = ExperimentManager(base_dir=tmp_path / "store")
    manager.compare_experiments(ids)
    folder = manager.comparison_dir([manager.get_experiment(i) for i in ids])
    assert folder.is_dir() and len(folder.name) < 100 and folder.name.startswith(ids[0][:8])
    other = manager.comparison_dir([manager.get_experiment(i) for i in ids[1:]])
    assert other != folder


@pytest.mark.filterwarnings("ignore:Glyph .* missing from")
def test_exported_csv_cells_that_start_a_formula_are_text(tmp_path):
    """OWASP's CSV injection defence: a text cell starting with = + - @ tab or CR gets a
    leading ', so a spreadsheet shows it instead of running it; numbers stay numbers."""
    hostile = ["=HYPERLINK(\"http://x\",\"y\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1)",
               "\tx", "\rx"]
    ids = []
    for index, name in enumerate(hostile):
        with ExperimentTracker("csv", base_dir=tmp_path / "store", run_name=name,
                               auto_visualize=False) as tracker:
            tracker.log_metrics({hostile[-1 - index]: -0.5, "-1.5e3": -2.0, "plain": 1.0}, step=-3)
        ids.append(tracker.run_id)
    out = ExperimentManager(base_dir=tmp_path / "store").export_comparison(ids, tmp_path / "out")
    with open(out / "metrics.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * len(hostile)
    assert {r["run_name"] for r in rows} == {"'" + name for name in hostile}
    assert {r["metric"] for r in rows} == {"'" + name for name in hostile} | {"-1.5e3", "plain"}
    for row in rows:
        assert float(row["value"]) in (-0.5, -2.0, 1.0) and int(row["step"]) == -3
        assert float(row["timestamp"]) > 0 and re.fullmatch("[0-9a-f]{32}", row["run_id"])
