"""``neural experiments import``'s options: the original tracker's folders by their explicit
name, options that do not apply, a source system that is not installed."""

from __future__ import annotations

import json
import sys

import pytest

from neural_dsl_tracking.tracking import ExperimentManager


def _legacy_run(root):
    folder = root / "mnist_a1b2c3d4"
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"status": "completed"}))
    (folder / "metrics.json").write_text(json.dumps([{"timestamp": 1.0, "step": 0, "loss": 0.5}]))
    return folder


def test_from_neural_dsl_is_the_bare_form(tmp_path, neural):
    _legacy_run(tmp_path / "old")
    for store, extra in (("a", ()), ("b", ("--from", "neural-dsl"))):
        result = neural("experiments", "import", tmp_path / "old", *extra, "--store", tmp_path / store)
        assert result.code == 0, result.err
        assert result.out.rstrip().endswith("1 imported, 0 already present, 0 failed")
        assert [r.run_name for r in ExperimentManager(base_dir=tmp_path / store).list_experiments()] == \
            ["mnist_a1b2c3d4"]
    refused = neural("experiments", "import", tmp_path / "old", "--experiment", "x", "--store", tmp_path / "c")
    assert refused.code == 1 and refused.err.startswith("error: --experiment applies to --from mlflow")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("system, package", [("tensorboard", "tensorboard"), ("wandb", "wandb"),
                                             ("mlflow", "mlflow")])
def test_a_source_whose_package_is_missing_is_one_message(system, package, tmp_path, monkeypatch, neural):
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)
    (tmp_path / "src").mkdir()
    result = neural("experiments", "import", "--from", system, tmp_path / "src", "--store", tmp_path / "s")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith(f"error: cannot import from {system}: its package is not installed")
    assert f"pip install 'neural-dsl-tracking[{system}]'" in result.err
    assert not (tmp_path / "s").exists()
