"""Architecture diff: pairs of corpus networks aligned layer by layer (an insertion or a
removal is one row, later layers only report their shape changes), and ``neural
experiments diff A B`` on runs in a real store, as text and JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from neural_dsl_tracking.tracking.diff import align_layers

from ..compiler.conftest import CORPUS, model_spec
from .test_cli import neural

MNIST = (CORPUS / "mnist.neural").read_text()
RESNET = (CORPUS / "resnet.neural").read_text()


def edited(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def aligned(tmp_path: Path, a: str, b: str) -> tuple[list, dict, dict]:
    spec_a, spec_b = model_spec(a, tmp_path / "a"), model_spec(b, tmp_path / "b")
    return align_layers(spec_a["layers"], spec_b["layers"]), spec_a, spec_b


def statuses(changes: list) -> list[str]:
    return [c.status for c in changes]


def test_an_inserted_layer_is_one_added_row(tmp_path):
    changes, a, b = aligned(tmp_path, MNIST, edited(MNIST, "Dropout(rate=0.5)", "Dropout(rate=0.5)\n Dense(64)"))
    assert statuses(changes) == ["same"] * 5 + ["added", "changed"]
    added, output = changes[5], changes[6]
    assert (added.b["type"], added.b["params"]["units"], added.param_delta) == ("Dense", 64, 128 * 64 + 64)
    assert output.params == {}
    assert output.facts["input"] == ([128], [64])
    assert output.param_delta == (64 * 10 + 10) - (128 * 10 + 10)
    assert b["params"] - a["params"] == sum(c.param_delta for c in changes)


def test_a_removed_layer_is_one_removed_row(tmp_path):
    changes, _, _ = aligned(tmp_path, MNIST, edited(MNIST, "Dropout(rate=0.5)", ""))
    assert statuses(changes) == ["same"] * 4 + ["removed", "same"]
    assert changes[4].a["type"] == "Dropout"


def test_changed_units_change_that_layer_and_the_next_ones_input(tmp_path):
    changes, _, _ = aligned(tmp_path, MNIST, edited(MNIST, "Dense(units=128", "Dense(units=256"))
    assert statuses(changes) == ["same"] * 3 + ["changed"] * 3
    dense, dropout, output = changes[3:]
    assert dense.params == {"units": (128, 256)}
    assert dense.facts["output"] == ([128], [256])
    assert dense.param_delta == 13 * 13 * 32 * 128 + 128
    assert dropout.params == {} and dropout.facts["input"] == ([128], [256])
    assert output.param_delta == 128 * 10


def test_a_changed_kernel_changes_shapes_downstream_but_keeps_the_alignment(tmp_path):
    changes, _, _ = aligned(tmp_path, MNIST, edited(MNIST, "kernel_size=(3,3)", "kernel_size=(5,5)"))
    assert statuses(changes) == ["changed"] * 4 + ["same"] * 2
    conv = changes[0]
    assert conv.params == {"kernel_size": ([3, 3], [5, 5])}
    assert conv.facts["output"] == ([26, 26, 32], [24, 24, 32])
    assert conv.param_delta == 32 * (25 - 9)
    assert changes[3].facts["input"] == ([13 * 13 * 32], [12 * 12 * 32])


def test_a_layer_added_inside_a_residual_block_is_nested(tmp_path):
    extra = edited(RESNET, "# Residual block 3\n    ResidualConnection {\n",
                   "# Residual block 3\n    ResidualConnection {\n      BatchNormalization()\n")
    changes, _, _ = aligned(tmp_path, RESNET, extra)
    added = [c for c in changes if c.status != "same"]
    assert len(added) == 1 and added[0].status == "added"
    assert (added[0].b["type"], added[0].b["depth"]) == ("BatchNormalization", 1)
    assert added[0].param_delta == 2 * 128


def test_same_type_neighbours_pair_by_parameters_first():
    def dense(units: int) -> dict:
        return {"name": f"d{units}", "type": "Dense", "depth": 0, "params": {"units": units},
                "input": [4], "output": [units], "param_count": units, "macs": units}

    changes = align_layers([dense(64), dense(32), dense(10)], [dense(32), dense(10)])
    assert statuses(changes) == ["removed", "same", "same"]
    changes = align_layers([dense(64), dense(10)], [dense(16), dense(10)])
    assert statuses(changes) == ["changed", "same"]
    assert changes[0].params == {"units": (64, 16)}


@pytest.fixture
def two_runs(tmp_path):
    """Runs A (mnist) and B (an extra Dense, another learning rate) recorded as a compiled
    program records them: config, source artifact, model spec and fingerprint."""
    from neural_dsl_tracking.tracking import ExperimentTracker

    base = tmp_path / "store"
    ids = []
    wider = edited(MNIST, "Dropout(rate=0.5)", "Dropout(rate=0.5)\n\tDense(64)")  # a tab, printed as one
    for name, text, lr in (("a", MNIST, 0.001), ("b", wider, 0.01)):
        source = tmp_path / f"{name}.neural"
        source.write_text(text)
        spec = model_spec(text, tmp_path / f"build-{name}")
        with ExperimentTracker("diff", base_dir=base, run_name=name, auto_visualize=False, source_file=source,
                               config={"optimizer": {"lr": lr}}) as tracker:
            tracker.log_hyperparameters({"optimizer.lr": lr, "seed": 0})
            tracker.log_artifact(source, name="source")
            tracker.log_model_spec(spec, f"{name * 64}")
            ids.append(tracker.run_id)
    return base, ids


def test_cli_diff_prints_layers_totals_config_and_source(two_runs):
    base, (a, b) = two_runs
    result = neural("experiments", "diff", "a", "b", "--base-dir", base)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"A {a[:8]} (a)" in out and f"B {b[:8]} (b)" in out
    assert "model: 1 layer(s) added, 0 removed, 1 changed, 5 the same" in out
    assert re.search(r"^\s+\+\s+Dense\(units=64.*params \+8\.3K$", out, re.M)
    assert re.search(r"^\s+~\s+Output.*input \(128,\) -> \(64,\); params -640$", out, re.M)
    assert "parameters: 694.0K -> 701.6K (+7.6K)" in out
    assert re.search(r"optimizer\.lr\s+0\.001\s+0\.01", out)
    assert "+++ " + b[:8] + "/b.neural\n" in out
    assert "       Dropout(rate=0.5)\n+\tDense(64)\n       Output(" in out


def test_cli_diff_json(two_runs):
    base, (a, b) = two_runs
    result = neural("experiments", "diff", a[:8], b[:8], "--json", "--base-dir", base)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["a"], data["b"]) == (a, b)
    assert [c["status"] for c in data["layers"]] == ["same"] * 5 + ["added", "changed"]
    assert data["params"]["delta"] == (128 * 64 + 64) + (64 * 10 - 128 * 10)
    assert data["config"] == [{"key": "optimizer.lr", "a": 0.001, "b": 0.01}]
    assert "+\tDense(64)" in data["source"]


def test_cli_diff_of_an_unknown_run_is_one_message(two_runs):
    base, _ = two_runs
    result = neural("experiments", "diff", "a", "nope", "--base-dir", base)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: no run 'nope'")
