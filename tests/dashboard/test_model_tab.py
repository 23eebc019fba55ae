"""The Model tab in a real headless Chromium (issue 14 item 4): one selected run shows its
layer table; two show their layers aligned, the cells that differ highlighted; a run that
recorded no model says so."""

from __future__ import annotations

import pytest

from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.dashboard.data import DashboardData

from ..compiler.conftest import CORPUS, model_spec

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MNIST = (CORPUS / "mnist.neural").read_text()
WIDER = MNIST.replace("Dropout(rate=0.5)", "Dropout(rate=0.5)\n Dense(64)").replace("Dense(units=128", "Dense(units=256")

CELLS_JS = """(id) => Array.from(document.querySelectorAll('#' + id + ' tbody tr')).map(tr =>
    Array.from(tr.querySelectorAll('td')).map(td => (td.classList.contains('changed') ? '*' : '') + td.textContent))"""


@pytest.fixture(scope="module")
def models_url(tmp_path_factory, serve):
    """A store with runs 'base' (mnist), 'wider' (a wider Dense and one more), 'plain' (no model)
    and 'again' (base's model and fingerprint); yields the URL and the run ids by name."""
    from neural_dsl_tracking.tracking import ExperimentTracker

    root = tmp_path_factory.mktemp("model-tab")
    base = root / "store"
    ids: dict[str, str] = {}
    for name, text, fingerprint in (("base", MNIST, "b" * 64), ("wider", WIDER, "w" * 64), ("plain", None, None),
                                    ("again", MNIST, "b" * 64)):
        with ExperimentTracker("models", base_dir=base, run_name=name, auto_visualize=False) as tracker:
            tracker.log_metrics({"loss": 1.0}, step=0)
            if text is not None:
                tracker.log_model_spec(model_spec(text, root / name), fingerprint)
            ids[name] = tracker.run_id
    with serve(create_app(data=DashboardData(base))) as url:
        yield url, ids


def cells(ui, table_id: str) -> list[list[str]]:
    ui.page.wait_for_selector(f"#{table_id} tbody tr")
    return ui.page.evaluate(CELLS_JS, table_id)


def test_one_run_shows_its_layer_table(ui, models_url):
    ui.open(models_url[0])
    ui.clear_selection()
    ui.select("base")
    ui.tab("Model")
    rows = cells(ui, "model-table")
    assert [row[1] for row in rows] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dropout", "Output"]
    assert rows[0][0] == "conv2d_1" and rows[0][3:] == ["(28, 28, 1)", "(26, 26, 32)", "320", "194.7K"]
    assert "units=128" in rows[3][2]
    totals = ui.page.inner_text("#model-totals")
    assert "694.0K parameters" in totals
    assert totals.endswith(f"fingerprint bbbbbbbb (same as {models_url[1]['again'][:8]})")
    assert not ui.page.errors


def test_two_runs_are_aligned_with_the_differences_highlighted(ui, models_url):
    ui.open(models_url[0])
    ui.clear_selection()
    ui.select("base", "wider")
    ui.tab("Model")
    rows = cells(ui, "model-diff")
    assert [row[0] for row in rows] == ["=", "=", "=", "~", "~", "+", "~"]
    dense = rows[3]
    assert dense[1].startswith("*Dense(units=128") and dense[5].startswith("*Dense(units=256")
    assert dense[2] == "(5408,)" and dense[6] == "(5408,)"  # same input: not highlighted
    assert dense[3] == "*(128,)" and dense[7] == "*(256,)"
    added = rows[5]
    assert added[1:5] == ["", "", "", ""] and all(cell.startswith("*") for cell in added[5:])
    assert rows[0][1:] == [cell for cell in rows[0][1:] if not cell.startswith("*")]
    headers = ui.page.locator("#model-diff thead tr").first.inner_text()
    assert headers.index("base") < headers.index("wider")
    totals = ui.page.inner_text("#model-totals")
    assert totals.startswith("parameters 694.0K → 1.4M (+")
    assert not ui.page.errors
    ui.screenshot("model")


def test_a_run_without_a_model_says_so(ui, models_url):
    ui.open(models_url[0])
    ui.clear_selection()
    ui.select("plain")
    ui.tab("Model")
    ui.page.wait_for_selector("#model-area .hint")
    assert "Run plain recorded no model" in ui.page.inner_text("#model-area")
