"""``neural experiments import --from wandb``: offline runs written by the ``wandb`` SDK
(WANDB_MODE=offline), read from their ``.wandb`` files."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

STEPS = 400


def _log(run, rows: int, start: int = 0) -> dict[int, tuple[float, float]]:
    """``rows`` history rows at explicit steps; each step's wall-time window."""
    windows = {}
    for step in range(start, start + rows):
        before = time.time()
        row = {"loss": 1.0 / (step + 1), "val/acc": step / 1000, "nested": {"a": step}}
        if step % 100 == 0:
            row["note"] = "text is not a metric"
        run.log(row, step=step)
        windows[step] = (before, time.time())
    return windows


@pytest.fixture(scope="module")
def wandb_dir(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Four offline runs: finished with an artifact and a saved file, exit code 3, exit code
    130 in another project, and one resumed in a second session (two folders, one run)."""
    tmp = tmp_path_factory.mktemp("wandb")
    saved = {key: os.environ.get(key) for key in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR",
                                                  "WANDB_CONFIG_DIR", "WANDB_MODE")}
    os.environ.update(WANDB_DIR=str(tmp), WANDB_DATA_DIR=str(tmp / "wandb" / "data"), WANDB_CACHE_DIR=str(tmp / "cache"),
                      WANDB_CONFIG_DIR=str(tmp / "config"), WANDB_MODE="offline")
    import wandb

    wandb.teardown()  # W&B reads its settings (the folders above) once per setup
    try:
        weights = os.urandom(50_000)
        (tmp / "w.bin").write_bytes(weights)
        run = wandb.init(project="proj", name="first", tags=["base", "v1"],
                         config={"lr": 0.01, "optimizer": {"name": "adam", "betas": [0.9, 0.99]}})
        windows = _log(run, STEPS)
        artifact = wandb.Artifact("model", type="model")
        artifact.add_file(str(tmp / "w.bin"), name="weights/w.bin")
        run.log_artifact(artifact)
        Path(run.dir, "extra.txt").write_text("saved")
        run.save(str(Path(run.dir, "extra.txt")), base_path=run.dir)
        first_id = run.id
        run.finish()
        for project, name, code in (("proj", "second", 3), ("other", "stopped", 130)):
            run = wandb.init(project=project, name=name)
            run.log({"loss": 1.0}, step=0)
            run.finish(exit_code=code)
        run = wandb.init(project="proj", name="resumed", id="resumeme1", resume="allow")
        resumed = _log(run, 50)
        run.finish(exit_code=1)
        run = wandb.init(project="proj", name="resumed", id="resumeme1", resume="allow")
        resumed.update(_log(run, 50, start=50))
        run.finish()
    finally:
        wandb.teardown()
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return SimpleNamespace(root=tmp / "wandb", windows=windows, weights=weights, first_id=first_id,
                           resumed=resumed)


@pytest.fixture(scope="module")
def imported(wandb_dir: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    from neural_dsl_tracking.interop.importing import import_runs, source_runs
    from neural_dsl_tracking.tracking.store import Store

    base = tmp_path_factory.mktemp("store")
    store = Store(base)
    outcomes = import_runs(source_runs("wandb", str(wandb_dir.root)), store)
    store.close()
    manager = ExperimentManager(base_dir=base)
    return SimpleNamespace(base=base, manager=manager, outcomes=outcomes,
                           runs={r.run_name: r for r in manager.list_experiments()})


def test_config_tags_status_and_every_history_point(wandb_dir, imported):
    assert sorted(o.status for o in imported.outcomes) == ["imported"] * 4
    run = imported.runs["first"]
    assert run.experiment == "proj" and run.status == "completed"
    assert run.hyperparameters == {"lr": 0.01, "optimizer.name": "adam", "optimizer.betas": [0.9, 0.99]}
    assert sorted(run.tags) == ["base", f"source:wandb:proj/{wandb_dir.first_id}", "v1"]
    assert sorted(run.metrics) == ["loss", "nested.a", "val/acc"]
    for key, value in (("loss", lambda s: 1.0 / (s + 1)), ("val/acc", lambda s: s / 1000),
                       ("nested.a", float)):
        history = imported.manager.get_metric_history(run.run_id, key)
        assert history.steps.tolist() == list(range(STEPS))
        assert history.values.tolist() == [value(s) for s in range(STEPS)]
        for step, stamp in zip(history.steps.tolist(), history.timestamps.tolist()):
            low, high = wandb_dir.windows[step]
            assert low - 0.001 <= stamp <= high + 0.001
    assert run.start_time.timestamp() <= wandb_dir.windows[0][0]
    assert run.end_time.timestamp() >= wandb_dir.windows[STEPS - 1][0]
    (notes,) = [o.notes for o in imported.outcomes if o.label.endswith(wandb_dir.first_id)]
    assert any(f"skipped {STEPS // 100} history values that are not a number" in n for n in notes)
    statuses = {name: (r.experiment, r.status) for name, r in imported.runs.items()}
    assert statuses == {"first": ("proj", "completed"), "second": ("proj", "failed"),
                        "stopped": ("other", "interrupted"), "resumed": ("proj", "completed")}


def test_a_resumed_run_is_one_run_with_both_sessions(wandb_dir, imported):
    run = imported.runs["resumed"]
    history = imported.manager.get_metric_history(run.run_id, "loss")
    assert history.steps.tolist() == list(range(100))
    assert all(wandb_dir.resumed[s][0] - 0.001 <= t <= wandb_dir.resumed[s][1] + 0.001
               for s, t in zip(history.steps.tolist(), history.timestamps.tolist()))


def test_artifacts_and_saved_files_are_stored_byte_for_byte(wandb_dir, imported):
    versions = {v.name: v for v in imported.manager.list_artifact_versions(imported.runs["first"].run_id)}
    assert versions["model/weights/w.bin"].path.read_bytes() == wandb_dir.weights
    assert versions["model/weights/w.bin"].metadata["filename"] == "w.bin"
    assert versions["files/extra.txt"].path.read_bytes() == b"saved"
    (folder,) = wandb_dir.root.glob(f"offline-run-*-{wandb_dir.first_id}")
    for path in (folder / "files").rglob("*"):
        if path.is_file():
            stored = versions[f"files/{path.relative_to(folder / 'files').as_posix()}"]
            assert stored.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_linked_run_folder_is_not_read_twice(wandb_dir, tmp_path, neural):
    source = tmp_path / "w"
    (folder,) = wandb_dir.root.glob(f"offline-run-*-{wandb_dir.first_id}")
    shutil.copytree(folder, source / folder.name)
    (source / "offline-run-99999999_000000-again").symlink_to(source / folder.name)
    result = neural("experiments", "import", "--from", "wandb", source, "--store", tmp_path / "s")
    assert result.code == 0, result.err
    (run,) = ExperimentManager(base_dir=tmp_path / "s").list_experiments()
    assert run.metrics["loss"]["count"] == STEPS


def test_a_second_import_and_one_project(wandb_dir, imported, tmp_path, neural):
    again = neural("experiments", "import", "--from", "wandb", wandb_dir.root, "--base-dir", imported.base)
    assert again.code == 0, again.err
    assert again.out.rstrip().endswith("wandb: imported 0 runs (0 points), skipped 4 already imported, failed 0")
    one = neural("experiments", "import", "--from", "wandb", wandb_dir.root.parent, "--experiment", "other",
                 "--store", tmp_path / "s")
    assert one.code == 0, one.err
    assert [r.run_name for r in ExperimentManager(base_dir=tmp_path / "s").list_experiments()] == ["stopped"]


def test_a_run_the_store_refuses_fails_alone_and_leaves_nothing(tmp_path, monkeypatch, neural):
    for key, value in {"WANDB_DIR": tmp_path, "WANDB_DATA_DIR": tmp_path / "wandb" / "data",
                       "WANDB_CACHE_DIR": tmp_path / "cache", "WANDB_CONFIG_DIR": tmp_path / "config"}.items():
        monkeypatch.setenv(key, str(value))
    import wandb

    wandb.teardown()  # W&B reads its settings (the folders above) once per setup
    for name, config in (("huge", {"notes": "x" * 60_000}), ("fine", {"lr": 0.1})):
        run = wandb.init(project="p", name=name, config=config)
        run.log({"loss": 1.0}, step=0)
        run.summary["neural_status"] = "pruned"  # as our W&B mirror records our exact status
        run.finish()
    wandb.teardown()
    result = neural("experiments", "import", "--from", "wandb", tmp_path / "wandb", "--store", tmp_path / "s")
    assert result.code == 1 and result.err == ""
    assert "note: hyperparameter 'notes': its value has 60,002 characters as JSON" in result.out
    assert result.out.rstrip().endswith("wandb: imported 1 run (1 point), skipped 0 already imported, failed 1")
    manager = ExperimentManager(base_dir=tmp_path / "s")
    assert [r.run_name for r in manager.list_experiments()] == ["fine"]
    (fine,) = manager.list_experiments()
    assert fine.status == "pruned"  # not the exit code's completed
    stored = {path.name for path in (tmp_path / "s" / "objects").rglob("*") if path.is_file()}
    assert stored == {v.sha256 for v in manager.list_artifact_versions(fine.run_id)}


def test_a_truncated_run_file_imports_what_is_complete(wandb_dir, tmp_path, neural):
    (folder,) = wandb_dir.root.glob(f"offline-run-*-{wandb_dir.first_id}")
    copy = tmp_path / "cut" / folder.name
    shutil.copytree(folder, copy)
    (run_file,) = copy.glob("run-*.wandb")
    data = run_file.read_bytes()
    run_file.write_bytes(data[:len(data) // 2 + 3])
    result = neural("experiments", "import", "--from", "wandb", copy, "--store", tmp_path / "s")
    assert result.code == 0, result.err
    assert "is truncated or damaged after" in result.out and "imported what is complete" in result.out
    (run,) = ExperimentManager(base_dir=tmp_path / "s").list_experiments()
    assert run.status == "crashed"  # its exit record was cut off
    assert 0 < run.metrics["loss"]["count"] < STEPS


def test_bad_folders_are_one_clear_message(tmp_path, neural):
    (tmp_path / "empty").mkdir()
    for location, expected in ((tmp_path / "empty", "no offline runs"), (tmp_path / "absent", "does not exist")):
        result = neural("experiments", "import", "--from", "wandb", location, "--store", tmp_path / "s")
        assert result.code == 1 and result.out == ""
        assert result.err.startswith("error: cannot import from W&B at") and expected in result.err
        assert len(result.err.strip().splitlines()) == 1
    fake = tmp_path / "fake" / "offline-run-1-x"
    fake.mkdir(parents=True)
    (fake / "run-x.wandb").write_bytes(b"not a wandb file")
    result = neural("experiments", "import", "--from", "wandb", tmp_path / "fake", "--store", tmp_path / "s")
    assert result.code == 1 and "no offline runs" not in result.err
    assert result.err.startswith("error: cannot import from W&B at") and "no run record" in result.err
