"""The original API's integrations (neural_dsl_tracking.tracking.integrations), used on their
own as its users use them, and read back from what MLflow, W&B and TensorBoard wrote."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from neural_dsl_tracking.errors import TrackingError


def _log(integration, checkpoint: Path) -> None:
    integration.log_params({"learning_rate": 0.01, "optimizer": {"type": "adam"}})
    for step in range(5):
        integration.log_metrics({"loss": 1.0 / (step + 1), "accuracy": step / 5}, step=step)
    integration.log_metrics({"loss": 0.1})  # no step: the one after the last
    integration.log_artifact(str(checkpoint))
    integration.finish()


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"weights" * 50)
    return path


def test_mlflow_integration(mlflow_sqlite_uri, checkpoint):
    from mlflow import MlflowClient

    from neural_dsl_tracking.tracking.integrations import MLflowIntegration

    mlflow = MLflowIntegration(experiment_name="original-mlflow", tracking_uri=mlflow_sqlite_uri,
                               run_name="first", tags=["baseline"])
    _log(mlflow, checkpoint)
    client = MlflowClient(mlflow_sqlite_uri)
    experiment = client.get_experiment_by_name("original-mlflow")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "first"
    assert run.data.params == {"learning_rate": "0.01", "optimizer.type": "adam"}
    loss = client.get_metric_history(run.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in loss) == [(s, 1.0 / (s + 1)) for s in range(5)] + [(5, 0.1)]
    (folder,) = client.list_artifacts(run.info.run_id, "artifacts/checkpoint.pt")
    (stored,) = client.list_artifacts(run.info.run_id, folder.path)
    assert stored.path == "artifacts/checkpoint.pt/v1/checkpoint.pt"
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert run.data.tags["neural.artifact.checkpoint.pt.v1.sha256"] == sha


def test_wandb_integration_offline(tmp_path, checkpoint, readback, in_empty_cwd):
    from neural_dsl_tracking.tracking.integrations import WandbIntegration

    wandb = WandbIntegration(experiment_name="first", project_name="original-wandb",
                             config={"epochs": 5}, tags=["baseline"], mode="offline",
                             dir=tmp_path / "runs")
    _log(wandb, checkpoint)
    back = readback.wandb(tmp_path / "runs" / "wandb")
    assert back.run.project == "original-wandb" and back.run.display_name == "first"
    assert back.config == {"epochs": 5, "learning_rate": 0.01, "optimizer": {"type": "adam"}}
    loss = sorted((row["step"], row["loss"]) for row in back.history if "loss" in row)
    assert loss == [(s, 1.0 / (s + 1)) for s in range(5)] + [(5, 0.1)]
    (artifact,) = back.artifacts
    assert json.loads(artifact.metadata)["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert back.exit_code == 0
    assert list(in_empty_cwd.iterdir()) == []


def test_tensorboard_integration(tmp_path, checkpoint, readback):
    from neural_dsl_tracking.tracking.integrations import TensorBoardIntegration

    board = TensorBoardIntegration(experiment_name="first", log_dir=str(tmp_path / "runs"))
    assert board.log_dir == tmp_path / "runs" / "first"
    _log(board, checkpoint)
    events = readback.tensorboard(tmp_path / "runs" / "first")
    loss = [(e.step, e.value) for e in events.Scalars("loss")]
    assert loss == [(s, pytest.approx(1.0 / (s + 1))) for s in range(5)] + [(5, pytest.approx(0.1))]
    (config,) = readback.text(events, "config")
    assert '"learning_rate": 0.01' in config[1]
    ((version, text),) = readback.text(events, "artifacts/checkpoint.pt")
    assert version == 1 and hashlib.sha256(checkpoint.read_bytes()).hexdigest() in text


def test_integration_mistakes_are_clear(tmp_path, checkpoint):
    from neural_dsl_tracking.tracking.integrations import TensorBoardIntegration

    with TensorBoardIntegration("mistakes", log_dir=tmp_path) as board:
        with pytest.raises(TypeError, match="metric 'loss'"):
            board.log_metrics({"loss": "high"})
        with pytest.raises(TrackingError, match="not a file"):
            board.log_artifact(tmp_path / "missing.pt")
        assert board.log_artifact(checkpoint) == 1 and board.log_artifact(checkpoint) == 2
    with pytest.raises(TrackingError, match="finished"):
        board.log_metrics({"loss": 1.0})
