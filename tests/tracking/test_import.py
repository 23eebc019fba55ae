"""Importing run folders written by the original Neural DSL tracker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import ExperimentManager
from neural_dsl_tracking.tracking.importer import import_runs
from neural_dsl_tracking.tracking.store import Store


def _legacy_run(root: Path, name: str, exp_id: str, status: str = "completed",
                metrics_text: str | None = None) -> Path:
    folder = root / f"{name}_{exp_id}"
    (folder / "artifacts").mkdir(parents=True)
    (folder / "plots").mkdir()
    (folder / "metadata.json").write_text(json.dumps(
        {"start_time": "2024-03-01T10:00:00", "status": status, "end_time": "2024-03-01T10:05:00"}))
    (folder / "hyperparameters.json").write_text(json.dumps({"lr": 0.001, "epochs": 3}))
    metrics = [{"timestamp": 1709287200.0 + i, "step": i, "loss": 1.0 / (i + 1), "accuracy": 0.5 + i / 10}
               for i in range(3)]
    metrics.append({"timestamp": 1709287210.0, "step": None, "val_loss": 0.7, "note": "text"})
    (folder / "metrics.json").write_text(metrics_text if metrics_text is not None else json.dumps(metrics))
    (folder / "artifacts" / "model.pt").write_bytes(b"weights")
    (folder / "artifacts.json").write_text(json.dumps({"model": {
        "path": f"/old/machine/{name}_{exp_id}/artifacts/model.pt", "type": "model",
        "size": 7, "timestamp": 1709287300.0, "framework": "pytorch"}}))
    (folder / "plots" / "loss.png").write_bytes(b"\x89PNG fake")
    (folder / "summary.json").write_text(json.dumps({"experiment_name": name, "experiment_id": exp_id}))
    return folder


def test_import_reads_everything_and_is_idempotent(tmp_path):
    legacy = tmp_path / "neural_experiments_old"
    _legacy_run(legacy, "mnist", "a1b2c3d4")
    _legacy_run(legacy, "mnist", "e5f6a7b8", status="running")
    store = Store(tmp_path / "store")
    results = import_runs(legacy, store)
    assert [r.status for r in results] == ["imported", "imported"]
    assert "skipped 1 non-numeric" in results[0].notes[0]

    manager = ExperimentManager(base_dir=tmp_path / "store")
    runs = {r.run_name: r for r in manager.list_experiments(experiment="mnist")}
    run = runs["mnist_a1b2c3d4"]
    assert run.status == "completed" and run.tags == ["imported"]
    assert runs["mnist_e5f6a7b8"].status == "crashed"
    assert run.hyperparameters == {"lr": 0.001, "epochs": 3}
    assert run.metrics["loss"]["count"] == 3 and run.metrics["accuracy"]["best"] == pytest.approx(0.7)
    assert manager.get_metric_history(run.run_id, "val_loss").steps.tolist() == [3]
    assert manager.get_metric_history(run.run_id, "loss").timestamps[0] == 1709287200.0
    model = manager.get_artifact_version(run.run_id, "model")
    assert model.path.read_bytes() == b"weights" and model.metadata["framework"] == "pytorch"
    assert (store.run_dir(run.run_id) / "plots" / "loss.png").exists()

    again = import_runs(legacy, store)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert len(manager.list_experiments()) == 2


def test_truncated_metrics_json_is_salvaged(tmp_path):
    good = json.dumps([{"timestamp": 1.0, "step": 0, "loss": 1.0}, {"timestamp": 2.0, "step": 1, "loss": 0.5}])
    folder = _legacy_run(tmp_path / "old", "cut", "12345678", metrics_text=good[:-30])
    store = Store(tmp_path / "store")
    (result,) = import_runs(folder, store)
    assert result.status == "imported"
    assert any("truncated" in note for note in result.notes)
    history = ExperimentManager(base_dir=tmp_path / "store").get_metric_history(result.run_id, "loss")
    assert history.values.tolist() == [1.0]


def test_broken_folder_is_reported_and_the_others_still_import(tmp_path):
    legacy = tmp_path / "old"
    _legacy_run(legacy, "ok", "aaaaaaaa")
    broken = legacy / "bad_bbbbbbbb"
    broken.mkdir()
    (broken / "metadata.json").write_text("{not json")
    results = import_runs(legacy, Store(tmp_path / "store"))
    assert sorted(r.status for r in results) == ["error", "imported"]
    error = next(r for r in results if r.status == "error")
    assert "metadata.json" in error.notes[0] and "invalid JSON" in error.notes[0]


def test_a_folder_without_runs_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrackingError, match="no run folders"):
        import_runs(tmp_path / "empty", Store(tmp_path / "store"))
    with pytest.raises(TrackingError, match="missing: it does not exist"):
        import_runs(tmp_path / "missing", Store(tmp_path / "store"))


def test_import_never_pulls_in_files_outside_the_run_folder(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    folder = _legacy_run(tmp_path / "old", "evil", "cccccccc")
    (folder / "artifacts" / "model.pt").unlink()
    (folder / "artifacts" / "model.pt").symlink_to(secret)
    (folder / "plots" / "leak.png").symlink_to(secret)
    (folder / "artifacts.json").write_text(json.dumps({
        "model": {"path": "model.pt"}, "other": {"path": str(secret)}}))
    store = Store(tmp_path / "store")
    (result,) = import_runs(folder, store)
    assert result.status == "imported"
    assert store.artifact_versions(result.run_id) == []
    assert sum("not imported" in note for note in result.notes) == 2
    assert not (store.run_dir(result.run_id) / "plots" / "leak.png").exists()
    assert (store.run_dir(result.run_id) / "plots" / "loss.png").exists()
