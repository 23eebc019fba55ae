"""``neural experiments import --from mlflow``: runs written by the MLflow SDK into an SQLite
store with a file artifact root, read back point for point, byte for byte."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from neural_dsl_tracking.tracking import ExperimentManager

STEPS = 500
START_MS = 1_700_000_000_000


def _write_run(client, experiment_id: str, name: str, status: str, *, params: dict, tags: dict,
               artifacts: dict[str, bytes], tmp: Path, end: bool = True) -> SimpleNamespace:
    """One MLflow run through the SDK: params, tags, two metrics with explicit steps and
    millisecond times (step 7 of loss logged twice), artifacts at nested paths."""
    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(experiment_id, run_name=name, start_time=START_MS)
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    metrics = {"loss": [(step, 1.0 / (step + 1), START_MS + 37 * step + 1) for step in range(STEPS)],
               "val/accuracy": [(step, step / STEPS, START_MS + 91 * step) for step in range(0, STEPS, 5)]}
    metrics["loss"].append((7, 0.5, START_MS + 99_999))
    metrics["gap"] = [(0, 1.0, START_MS), (1, float("nan"), START_MS + 1), (2, -2.5, START_MS + 2)]
    batch = [Metric(key, value, stamp, step) for key, points in metrics.items()
             for step, value, stamp in points]
    for start in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[start:start + 1000])
    for relative, data in artifacts.items():
        source = tmp / "upload" / name / relative
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(data)
        folder = str(Path(relative).parent)
        client.log_artifact(run_id, str(source), None if folder == "." else folder)
    if end:
        client.set_terminated(run_id, status=status, end_time=START_MS + 120_000)
    return SimpleNamespace(run_id=run_id, name=name, status=status, params=params, tags=tags,
                           metrics=metrics, artifacts=artifacts, ended=end)


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Four runs in two experiments: finished, failed, killed, and one never ended."""
    from mlflow import MlflowClient

    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    vision = client.create_experiment("vision", artifact_location=(tmp / "artifacts").as_uri())
    other = client.create_experiment("other", artifact_location=(tmp / "artifacts").as_uri())
    params = {"lr": "0.01", "batch_size": "32", "optimizer": "adam", "decay": "1e-3",
              "use_bn": "True", "layers": "[64, 32]"}
    runs = [
        _write_run(client, vision, "finished", "FINISHED", params=params,
                   tags={"team": "vision", "baseline": "", "mlflow.note.content": "notes",
                         "long": "x" * 300},
                   artifacts={"model/weights.bin": os.urandom(70_000), "notes.txt": b"hello\n",
                              "model/deep/config.json": b"{}"}, tmp=tmp),
        _write_run(client, vision, "failed", "FAILED", params={"lr": "0.1"}, tags={},
                   artifacts={}, tmp=tmp),
        _write_run(client, other, "killed", "KILLED", params={}, tags={"a": "b"}, artifacts={},
                   tmp=tmp),
        _write_run(client, other, "unfinished", "RUNNING", params={}, tags={}, artifacts={},
                   tmp=tmp, end=False),
    ]
    return SimpleNamespace(uri=uri, root=tmp, runs={r.name: r for r in runs})


@pytest.fixture(scope="module")
def imported(mlflow_store: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The four runs imported once into a fresh store through the library call the CLI uses."""
    from neural_dsl_tracking.interop.importing import import_runs, source_runs
    from neural_dsl_tracking.tracking.store import Store

    base = tmp_path_factory.mktemp("store")
    store = Store(base)
    outcomes = import_runs(source_runs("mlflow", mlflow_store.uri), store)
    store.close()
    manager = ExperimentManager(base_dir=base)
    runs = {r.run_name: r for r in manager.list_experiments()}
    return SimpleNamespace(base=base, manager=manager, runs=runs, outcomes=outcomes)


def test_every_point_param_tag_status_and_time_is_imported(mlflow_store, imported):
    assert [o.status for o in imported.outcomes] == ["imported"] * 4
    assert imported.outcomes[0].points == STEPS + 1 + STEPS // 5 + 3
    source, run = mlflow_store.runs["finished"], imported.runs["finished"]
    assert run.experiment == "vision" and run.status == "completed"
    assert run.hyperparameters == {"lr": 0.01, "batch_size": 32, "optimizer": "adam", "decay": "1e-3",
                                   "use_bn": True, "layers": "[64, 32]", "tags.long": "x" * 300}
    assert sorted(run.tags) == sorted(["baseline", "team=vision", f"source:mlflow:{source.run_id}"])
    assert run.start_time.timestamp() == START_MS / 1000
    assert run.end_time.timestamp() == (START_MS + 120_000) / 1000
    for key, points in source.metrics.items():
        history = imported.manager.get_metric_history(run.run_id, key)
        expected = sorted(points, key=lambda p: (p[0], p[2]))
        assert history.steps.tolist() == [p[0] for p in expected]
        np.testing.assert_array_equal(history.values, [p[1] for p in expected])
        assert np.array_equal(history.timestamps, np.array([p[2] for p in expected]) / 1000)
    statuses = {name: r.status for name, r in imported.runs.items()}
    assert statuses == {"finished": "completed", "failed": "failed", "killed": "interrupted",
                        "unfinished": "crashed"}
    assert imported.runs["killed"].experiment == "other" and imported.runs["killed"].tags[0] == "a=b"


def test_every_artifact_file_is_stored_byte_for_byte(mlflow_store, imported):
    run = imported.runs["finished"]
    versions = imported.manager.list_artifact_versions(run.run_id)
    assert sorted(v.name for v in versions) == sorted(mlflow_store.runs["finished"].artifacts)
    for version in versions:
        assert version.version == 1
        assert version.path.read_bytes() == mlflow_store.runs["finished"].artifacts[version.name]
    assert imported.manager.list_artifact_versions(imported.runs["failed"].run_id) == []


def test_a_second_import_skips_every_run(mlflow_store, imported, neural):
    result = neural("experiments", "import", "--from", "mlflow", mlflow_store.uri,
                    "--base-dir", imported.base)
    assert result.code == 0, result.err
    assert result.out.count("skipped") == 5 and "already imported" in result.out
    assert result.out.rstrip().endswith("mlflow: imported 0 runs (0 points), skipped 4 already imported, "
                                        "failed 0")
    assert len(imported.manager.list_experiments()) == 4


def test_a_folder_store_through_the_sdk(tmp_path, monkeypatch, neural):
    """An ``mlruns`` folder (MLflow's file store, written here with its opt-in) is read too."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    run_id = client.create_run(client.create_experiment("fs"), run_name="x").info.run_id
    client.log_metric(run_id, "m", 1.5, step=3, timestamp=START_MS + 123)
    client.log_metric(run_id, "m", float("nan"), step=4, timestamp=START_MS + 124)
    client.set_terminated(run_id)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    result = neural("experiments", "import", "--from", "mlflow", tmp_path, "--store", tmp_path / "s")
    assert result.code == 0, result.err
    manager = ExperimentManager(base_dir=tmp_path / "s")
    (run,) = manager.list_experiments()
    assert (run.experiment, run.run_name, run.status) == ("fs", "x", "completed")
    history = manager.get_metric_history(run.run_id, "m")
    assert history.steps.tolist() == [3, 4] and history.timestamps.tolist() == [1_700_000_000.123, 1_700_000_000.124]
    np.testing.assert_array_equal(history.values, [1.5, float("nan")])


def test_one_experiment_through_the_cli(mlflow_store, tmp_path, neural):
    result = neural("experiments", "import", "--from", "mlflow", mlflow_store.uri,
                    "--experiment", "vision", "--store", tmp_path / "v")
    assert result.code == 0 and result.err == ""  # no progress bar off a terminal, MLflow's neither
    result = neural("experiments", "import", "--from", "mlflow", mlflow_store.uri,
                    "--experiment", "other", "--store", tmp_path / "s")
    assert result.code == 0, result.err
    assert "mlflow: imported 2 runs" in result.out
    runs = ExperimentManager(base_dir=tmp_path / "s").list_experiments()
    assert sorted(r.run_name for r in runs) == ["killed", "unfinished"]
    missing = neural("experiments", "import", "--from", "mlflow", mlflow_store.uri,
                     "--experiment", "nope", "--store", tmp_path / "s")
    assert missing.code == 1
    assert missing.err.startswith("error: no MLflow experiment 'nope'") and "'other'" in missing.err


@pytest.mark.parametrize("location, expected", [
    ("http://127.0.0.1:5000", "only a local store is read"),
    ("sqlite:///{tmp}/absent.db", "absent.db does not exist"),
    ("{tmp}/not-a-db.db", "is not an SQLite database"),
    ("{tmp}/other.db", "not an MLflow tracking store"),
    ("{tmp}/empty", "is not an MLflow store"),
])
def test_bad_sources_are_one_clear_message(location, expected, tmp_path, neural):
    (tmp_path / "not-a-db.db").write_bytes(b"garbage" * 100)
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE things (x)")
    (tmp_path / "empty").mkdir()
    result = neural("experiments", "import", "--from", "mlflow", location.format(tmp=tmp_path),
                    "--store", tmp_path / "store")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("error: cannot import from MLflow at") and expected in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists()
    assert not (tmp_path / "absent.db").exists()


def test_into_sqlite_and_postgresql_redoing_a_cut_short_run(mlflow_store, store_kwargs):
    """The same import into either store; a run left ``running`` by an import cut short (as a
    SIGKILL leaves it: created, part written) is deleted and imported again whole."""
    from neural_dsl_tracking.interop.importing import import_runs, source_runs
    from neural_dsl_tracking.tracking.store import Store

    runs = source_runs("mlflow", mlflow_store.uri, "vision")
    store = Store(store_kwargs["base_dir"], store_kwargs["store"])
    try:
        cut = next(r for r in runs if r.label == "vision/finished")
        store.create_run(experiment="vision", run_name="finished", run_id=cut.run_id, tags=[cut.tag])
        store.append_metrics(cut.run_id, {"loss": (np.array([0]), np.array([9.0]), np.array([1.0]))})
        outcomes = {o.label: o for o in import_runs(runs, store)}
        assert outcomes["vision/finished"].notes[0] == \
            "an earlier import of this run was cut short; imported again"
        assert [o.status for o in import_runs(runs, store)] == ["skipped", "skipped"]
    finally:
        store.close()
    manager = ExperimentManager(**store_kwargs)
    runs = {r.run_name: r for r in manager.list_experiments()}
    assert sorted(runs) == ["failed", "finished"] and runs["finished"].status == "completed"
    history = manager.get_metric_history(runs["finished"].run_id, "loss")
    assert history.steps.tolist() == sorted([p[0] for p in mlflow_store.runs["finished"].metrics["loss"]])
    versions = manager.list_artifact_versions(runs["finished"].run_id)
    assert {v.name: v.path.read_bytes() for v in versions} == mlflow_store.runs["finished"].artifacts


def test_a_store_of_another_mlflow_version_is_one_clear_message(mlflow_store, tmp_path, neural):
    old = tmp_path / "old.db"
    old.write_bytes((mlflow_store.root / "mlflow.db").read_bytes())
    with sqlite3.connect(old) as db:
        db.execute("UPDATE alembic_version SET version_num = '451aebb31d03'")  # an MLflow 1.x schema
    result = neural("experiments", "import", "--from", "mlflow", old, "--store", tmp_path / "s")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith(f"error: cannot import from MLflow at {old}: Detected out-of-date database schema")
    assert "mlflow db upgrade" in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()
