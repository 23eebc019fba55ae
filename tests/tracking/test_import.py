"""Importing run folders written by the original Neural DSL tracker."""

from __future__ import annotations

import json
import os
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


def _outside(tmp_path: Path) -> Path:
    """A folder of this machine's files that an import must never copy."""
    outside = tmp_path / "machine"
    (outside / "deep").mkdir(parents=True)
    (outside / "passwd").write_text("root:x:0:0")
    (outside / "deep" / "id_rsa.png").write_text("PRIVATE KEY")
    (outside / "params.json").write_text(json.dumps({"stolen": 1}))
    (outside / "metrics.json").write_text(json.dumps([{"step": 0, "stolen": 1.0}]))
    return outside


def _copied(store: Store, run_id: str) -> set[str]:
    plots = store.run_dir(run_id) / "plots"
    return {p.relative_to(plots).as_posix() for p in plots.rglob("*") if p.is_file()} if plots.exists() else set()


def test_a_symlinked_plots_folder_is_not_followed(tmp_path):
    outside = _outside(tmp_path)
    folder = _legacy_run(tmp_path / "old", "linked", "dddddddd")
    (folder / "plots" / "loss.png").unlink()
    (folder / "plots").rmdir()
    (folder / "plots").symlink_to(outside)
    store = Store(tmp_path / "store")
    (result,) = import_runs(folder, store)
    assert result.status == "imported"
    assert _copied(store, result.run_id) == set()
    assert any(f"plots (a symbolic link to {outside})" in note for note in result.notes), result.notes


def test_symlinked_files_at_the_top_of_the_run_folder_are_not_read(tmp_path):
    outside = _outside(tmp_path)
    folder = _legacy_run(tmp_path / "old", "files", "eeeeeeee")
    for name, target in (("hyperparameters.json", "params.json"), ("metrics.json", "metrics.json"),
                         ("artifacts.json", "params.json")):
        (folder / name).unlink()
        (folder / name).symlink_to(outside / target)
    store = Store(tmp_path / "store")
    (result,) = import_runs(folder, store)
    assert result.status == "imported"
    run = ExperimentManager(base_dir=tmp_path / "store").get_experiment(result.run_id)
    assert run.hyperparameters == {} and run.metrics == {} and run.artifacts == []
    (note,) = [n for n in result.notes if "symbolic link" in n]
    assert note.startswith("skipped 3 entries") and "hyperparameters.json (a symbolic link to" in note


def test_a_symlinked_metadata_file_is_an_error_for_that_run_only(tmp_path):
    outside = _outside(tmp_path)
    folder = _legacy_run(tmp_path / "old", "meta", "ffffffff")
    _legacy_run(tmp_path / "old", "fine", "99999999")
    (folder / "metadata.json").unlink()
    (folder / "metadata.json").symlink_to(outside / "params.json")
    results = {r.folder.name: r for r in import_runs(tmp_path / "old", Store(tmp_path / "store"))}
    assert results["fine_99999999"].status == "imported"
    assert results["meta_ffffffff"].status == "error"
    assert "metadata.json is a symbolic link to" in results["meta_ffffffff"].notes[0]


def test_a_link_deep_in_plots_is_not_followed(tmp_path):
    outside = _outside(tmp_path)
    folder = _legacy_run(tmp_path / "old", "deep", "abababab")
    deep = folder / "plots" / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "real.png").write_bytes(b"\x89PNG")
    (deep / "leak.png").symlink_to(outside / "deep" / "id_rsa.png")
    (deep / "dir").symlink_to(outside / "deep")
    (folder / "plots" / "a" / "up").symlink_to(outside)
    os.mkfifo(deep / "pipe.png")
    store = Store(tmp_path / "store")
    (result,) = import_runs(folder, store)
    assert _copied(store, result.run_id) == {"loss.png", "a/b/c/real.png"}
    (note,) = [n for n in result.notes if "symbolic link" in n]
    for entry in ("plots/a/b/c/leak.png (a symbolic link", "plots/a/b/c/dir (a symbolic link",
                  "plots/a/up (a symbolic link", "plots/a/b/c/pipe.png (a FIFO)"):
        assert entry in note, note


def test_a_symlinked_run_folder_among_run_folders_is_not_followed(tmp_path):
    elsewhere = _legacy_run(tmp_path / "elsewhere", "far", "cdcdcdcd")
    legacy = tmp_path / "old"
    _legacy_run(legacy, "near", "12121212")
    (legacy / "far_cdcdcdcd").symlink_to(elsewhere)
    results = {r.folder.name: r for r in import_runs(legacy, Store(tmp_path / "store"))}
    assert results["near_12121212"].status == "imported"
    assert results["far_cdcdcdcd"].status == "link" and results["far_cdcdcdcd"].run_id is None
    assert f"a symbolic link to {elsewhere}" in results["far_cdcdcdcd"].notes[0]
    assert len(ExperimentManager(base_dir=tmp_path / "store").list_experiments()) == 1
    # named directly, the folder is the user's choice and is imported
    (result,) = import_runs(legacy / "far_cdcdcdcd", Store(tmp_path / "store"))
    assert result.status == "imported"


def test_metadata_that_is_not_an_object_is_an_error_for_that_run(tmp_path):
    folder = _legacy_run(tmp_path / "old", "list", "34343434")
    (folder / "metadata.json").write_text("[]")
    (folder / "summary.json").write_text("[]")
    (result,) = import_runs(folder, Store(tmp_path / "store"))
    assert result.status == "error" and "metadata.json is not a JSON object" in result.notes[0]


# ---- all or nothing: a run that fails partway leaves nothing behind --------------------------
def _objects(files: Path) -> set[str]:
    """Every file under objects/ (placed objects and staged leftovers)."""
    root = files / "objects"
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _long_third_artifact(folder: Path) -> None:
    """Three artifacts: one shared with the earlier run, one new, and a name over the limit."""
    (folder / "artifacts" / "new.bin").write_bytes(b"content no other run has")
    (folder / "artifacts" / "third.bin").write_bytes(b"never stored")
    (folder / "artifacts.json").write_text(json.dumps({
        "model": {"path": "model.pt"}, "new": {"path": "new.bin"}, "n" * 300: {"path": "third.bin"}}))


def _metric_name_corrupt_halfway(folder: Path) -> None:
    entries = [{"timestamp": 1.0 + i, "step": i, "loss": 1.0 / (i + 1)} for i in range(100)]
    entries[50] = {"timestamp": 51.0, "step": 50, "\x00garbage" * 1000: 0.5}
    (folder / "metrics.json").write_text(json.dumps(entries))


def _step_corrupt_halfway(folder: Path) -> None:
    entries = [{"timestamp": 1.0 + i, "step": i, "loss": 1.0 / (i + 1)} for i in range(100)]
    entries[50]["step"] = 10**30
    (folder / "metrics.json").write_text(json.dumps(entries))


FAILURES = [  # (how the run folder is broken, what the note says)
    (_long_third_artifact, "artifact name 'nnnnnnnnnn"),
    (_metric_name_corrupt_halfway, "metric name '\\x00garbage"),
    (_step_corrupt_halfway, "metrics.json entry 51: step 1000000000000000000000000000000 is out of range"),
]


@pytest.mark.parametrize("breaks,why", FAILURES, ids=["long-third-artifact", "metric-name", "step"])
def test_a_run_that_fails_partway_is_not_imported_at_all(store_kwargs, tmp_path, breaks, why):
    files = store_kwargs["base_dir"]
    store = Store(files, store_kwargs["store"])
    (first,) = import_runs(_legacy_run(tmp_path / "first", "kept", "0000aaaa"), store)
    kept_objects = _objects(files)
    broken = _legacy_run(tmp_path / "old", "broken", "0000bbbb")
    breaks(broken)
    (result,) = import_runs(broken, store)
    assert result.status == "error", result
    assert result.notes[0].startswith("not imported: ") and why in result.notes[0], result.notes
    manager = ExperimentManager(**store_kwargs)
    assert [r.run_id for r in manager.list_experiments()] == [first.run_id]
    assert _objects(files) == kept_objects  # the shared object stays, the new one is gone
    assert manager.get_artifact_version(first.run_id, "model").path.read_bytes() == b"weights"
    assert sorted(p.name for p in (files / "runs").iterdir()) == [first.run_id]
    store.close()
    manager.close()


def test_import_says_which_run_failed_and_why(tmp_path, capsys):
    from neural_dsl_tracking.cli import main

    legacy = tmp_path / "old"
    _legacy_run(legacy, "good", "11110000")
    _long_third_artifact(_legacy_run(legacy, "bad", "22220000"))
    assert main(["experiments", "import", str(legacy), "--base-dir", str(tmp_path / "store")]) == 1
    out = capsys.readouterr().out
    assert f"error    -         {legacy / 'bad_22220000'}\n" in out
    assert "note: not imported: artifact name 'nnn" in out and "the limit is 250" in out
    assert out.rstrip().endswith("1 imported, 0 already present, 1 failed")
    runs = ExperimentManager(base_dir=tmp_path / "store").list_experiments()
    assert [r.run_name for r in runs] == ["good_11110000"]
