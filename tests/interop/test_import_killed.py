"""An import killed with SIGKILL in the middle of writing a big run leaves no half run that
reads as complete, and the next import finishes the run whole."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

ARTIFACTS = 150
POINTS = 5_000


@pytest.fixture(scope="module")
def big_mlflow_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, bytes]]:
    """An MLflow run with three metrics of POINTS points and ARTIFACTS files."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    tmp = tmp_path_factory.mktemp("big")
    uri = f"sqlite:///{tmp}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("big", artifact_location=(tmp / "artifacts").as_uri())
    run_id = client.create_run(experiment, run_name="big").info.run_id
    metrics = [Metric(key, step * 0.5, 1_700_000_000_000 + step, step)
               for key in ("loss", "acc", "lr") for step in range(POINTS)]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start:start + 1000])
    files = {f"ckpt/part{n:03d}.bin": os.urandom(4096) + bytes([n]) for n in range(ARTIFACTS)}
    for relative, data in files.items():
        (tmp / "upload" / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "upload" / relative).write_bytes(data)
    client.log_artifacts(run_id, str(tmp / "upload"))
    client.set_terminated(run_id, "FINISHED")
    return uri, files


def _versions_written(db: Path) -> int:
    """Artifact versions the store at ``db`` holds so far (0 before it exists)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as connection:
            return connection.execute("SELECT COUNT(*) FROM artifact_versions").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_sigkill_mid_import_then_import_again(big_mlflow_run, tmp_path, neural, neural_argv):
    uri, files = big_mlflow_run
    store = tmp_path / "store"
    process = subprocess.Popen([*neural_argv, "experiments", "import", "--from", "mlflow",
                                uri, "--store", str(store)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while _versions_written(store / "store.db") < 10:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the import wrote no artifacts in 90 s"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(30)
    assert process.returncode == -signal.SIGKILL

    manager = ExperimentManager(base_dir=store)
    (half,) = manager.list_experiments()
    assert half.status in ("running", "crashed")  # never completed
    assert len(manager.list_artifact_versions(half.run_id)) < ARTIFACTS

    again = neural("experiments", "import", "--from", "mlflow", uri, "--store", store)
    assert again.code == 0, again.err
    assert "an earlier import of this run was cut short; imported again" in again.out
    assert f"imported 1 run ({3 * POINTS:,} points)" in again.out
    (run,) = manager.list_experiments()
    assert run.run_id == half.run_id and run.status == "completed"
    assert {key: m["count"] for key, m in run.metrics.items()} == {"loss": POINTS, "acc": POINTS, "lr": POINTS}
    versions = manager.list_artifact_versions(run.run_id)
    assert {v.name: v.path.read_bytes() for v in versions} == files
    assert all(v.version == 1 for v in versions)
