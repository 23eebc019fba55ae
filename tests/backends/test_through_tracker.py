"""Mirrors fed by the real ExperimentTracker, read back and compared with our own store
(ExperimentManager): full metric histories, parameters, artifact bytes, failures."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from neural_dsl_tracking.dotted import flatten

ALL = ["local", "mlflow", "wandb", "tensorboard"]
PARAMS = {"lr": 0.005, "batch_size": 32, "optimizer": {"type": "Adam", "betas": [0.9, 0.999]}}


def train(tmp_path: Path, backend: list[str], options: dict, steps: int = 1500,
          checkpoint_name: str = "model_epoch{epoch}.pt") -> tuple[str, Path]:
    """A fake training loop logging through the tracker; returns (run id, store files dir).
    Each epoch writes ``checkpoint_name`` (one file per epoch, or one file overwritten)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neural_dsl_tracking import ExperimentTracker

    with ExperimentTracker("digits", base_dir=tmp_path / "experiments", backend=backend,
                           backend_options=options, run_name="mirrored", tags=["ci"],
                           auto_visualize=False, flush_interval=0.1) as tracker:
        tracker.log_hyperparameters(PARAMS)
        for step in range(steps):
            tracker.log_metrics({"loss": 2.0 / (step + 1), "lr": 0.005 * 0.999**step}, step=step)
            if step % 500 == 499:
                epoch = step // 500 + 1
                tracker.log_metrics({"val_loss": 1.0 / epoch, "val_acc": 0.3 * epoch}, step=epoch)
                checkpoint = tmp_path / checkpoint_name.format(epoch=epoch)
                checkpoint.write_bytes(bytes([epoch]) * 4096)
                tracker.log_artifact(checkpoint, name="checkpoint", monitor="val_loss")
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([1, 2, 3])
        tracker.log_figure(fig, "curve")
        plt.close(fig)
    return tracker.run_id, tracker.run_dir.parent.parent


@pytest.fixture
def manager(tmp_path: Path):
    from neural_dsl_tracking import ExperimentManager

    manager = ExperimentManager(base_dir=tmp_path / "experiments")
    yield manager
    manager.close()


def test_all_three_mirrors_match_the_store(tmp_path, mlflow_sqlite_uri, manager, readback):
    from mlflow import MlflowClient

    options = {"mlflow": {"tracking_uri": mlflow_sqlite_uri, "experiment": "through-tracker"},
               "wandb": {"mode": "offline", "project": "through-tracker"},
               "tensorboard": {"log_dir": None}}
    run_id, files_dir = train(tmp_path, ALL, options)
    record = manager.get_experiment(run_id)
    assert record.status == "completed" and record.mirror_failures == []
    keys = manager.metric_keys(run_id)
    # and system/* when the run outlives the first system sample (10 s): mirrored like the others
    assert sorted(key for key in keys if not key.startswith("system/")) == ["loss", "lr", "val_acc", "val_loss"]
    ours = {key: manager.get_metric_history(run_id, key) for key in keys}

    # MLflow: every point with its step, value and millisecond timestamp
    client = MlflowClient(mlflow_sqlite_uri)
    experiment = client.get_experiment_by_name("through-tracker")
    (mlflow_run,) = client.search_runs([experiment.experiment_id])
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params == {k: str(v) for k, v in flatten(PARAMS).items()}
    for key, history in ours.items():
        theirs = sorted(client.get_metric_history(mlflow_run.info.run_id, key), key=lambda m: m.step)
        assert [(m.step, m.value, m.timestamp) for m in theirs] == [
            (int(s), float(v), int(round(t * 1000)))
            for s, v, t in zip(history.steps, history.values, history.timestamps)]

    # W&B: history rows carry every point at its step; config is the hyperparameters
    wandb_run = readback.wandb(files_dir / "wandb")
    assert wandb_run.config == PARAMS and wandb_run.exit_code == 0
    for key, history in ours.items():
        theirs = sorted((row["step"], row[key]) for row in wandb_run.history if key in row)
        assert theirs == list(zip(history.steps.tolist(), history.values.tolist()))

    # TensorBoard: scalars with steps and wall times
    events = readback.tensorboard(files_dir / "tensorboard" / run_id)
    for key, history in ours.items():
        theirs = sorted((e.step, e.value, e.wall_time) for e in events.Scalars(key))
        assert theirs == [(s, pytest.approx(v, rel=1e-6), t) for s, v, t in
                          zip(history.steps.tolist(), history.values.tolist(),
                              history.timestamps.tolist())]
    session = readback.hparams(events)["session_start_info"].session_start_info
    assert session.hparams["optimizer.type"].string_value == "Adam"

    # artifacts: same bytes, version and SHA-256 everywhere; "best" on the best version
    versions = manager.list_artifact_versions(run_id, "checkpoint")
    assert [v.version for v in versions] == [1, 2, 3]
    tags = mlflow_run.data.tags
    for version in versions:
        path = client.download_artifacts(
            mlflow_run.info.run_id,
            f"artifacts/checkpoint/v{version.version}/model_epoch{version.version}.pt",
            str(tmp_path / f"download{version.version}"))
        assert Path(path).read_bytes() == Path(version.path).read_bytes()
        assert tags[f"neural.artifact.checkpoint.v{version.version}.sha256"] == version.sha256
    assert tags["neural.artifact.checkpoint.best"] == "v3"
    wandb_versions = {json_meta["version"]: (art, json_meta) for art in wandb_run.artifacts
                      for json_meta in [__import__("json").loads(art.metadata)]}
    for version in versions:
        artifact, meta = wandb_versions[version.version]
        assert meta["sha256"] == version.sha256
        (entry,) = artifact.manifest.contents
        assert entry.path == f"model_epoch{version.version}.pt"
        assert Path(entry.local_path).read_bytes() == Path(version.path).read_bytes()
    assert "best" in wandb_versions[3][0].aliases

    # plots
    assert [a.path for a in client.list_artifacts(mlflow_run.info.run_id, "plots")] == [
        "plots/curve.png"]
    assert len(events.Images("plots/curve")) == 1


def test_unreachable_mlflow_server_leaves_a_complete_local_run(
    tmp_path, closed_port_uri, manager, caplog, readback
):
    options = {"mlflow": {"tracking_uri": closed_port_uri}, "tensorboard": {}}
    with caplog.at_level(logging.WARNING, "neural_dsl_tracking.backends"):
        run_id, files_dir = train(tmp_path, ["mlflow", "tensorboard"], options, steps=600)
    record = manager.get_experiment(run_id)
    assert record.status == "completed"
    assert len(manager.get_metric_history(run_id, "loss").steps) == 600
    assert [v.version for v in manager.list_artifact_versions(run_id, "checkpoint")] == [1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("mlflow mirror failed")
    (first, at_finish) = record.mirror_failures
    assert first[0] == "mlflow" and first[1].startswith("mlflow mirror failed, retrying")
    assert at_finish[0] == "mlflow"
    assert at_finish[1].startswith("at finish: not sent: 1202 metric points, 4 parameters, "
                                   "artifacts checkpoint v1, plots curve, the run's end")
    # the healthy mirror is unaffected
    events = readback.tensorboard(files_dir / "tensorboard" / run_id)
    assert len(events.Scalars("loss")) == 600


def test_an_overwritten_checkpoint_never_reaches_a_mirror_with_the_wrong_bytes(
    tmp_path, mlflow_sqlite_uri, manager
):
    from mlflow import MlflowClient

    options = {"mlflow": {"tracking_uri": mlflow_sqlite_uri, "experiment": "overwrite"}}
    run_id, _ = train(tmp_path, ["mlflow"], options, steps=1500, checkpoint_name="last.pt")
    client = MlflowClient(mlflow_sqlite_uri)
    experiment = client.get_experiment_by_name("overwrite")
    (mlflow_run,) = client.search_runs([experiment.experiment_id])
    failures = " ".join(message for _, message in manager.get_experiment(run_id).mirror_failures)
    for version in manager.list_artifact_versions(run_id, "checkpoint"):
        folder = f"artifacts/checkpoint/v{version.version}"
        files = client.list_artifacts(mlflow_run.info.run_id, folder)
        if files:
            path = client.download_artifacts(mlflow_run.info.run_id, files[0].path,
                                             str(tmp_path / f"d{version.version}"))
            assert Path(path).read_bytes() == Path(version.path).read_bytes()
        else:
            assert f"changed after checkpoint v{version.version} was logged" in failures


@pytest.mark.slow
def test_mlflow_server_stopped_mid_run_leaves_a_complete_local_run(
    tmp_path, own_mlflow_server, manager, caplog
):
    from mlflow import MlflowClient

    from neural_dsl_tracking import ExperimentTracker

    server = own_mlflow_server
    client = MlflowClient(server.uri)
    with caplog.at_level(logging.WARNING, "neural_dsl_tracking.backends"):
        with ExperimentTracker("stopped", base_dir=tmp_path / "experiments", backend="mlflow",
                               backend_options={"mlflow": {"tracking_uri": server.uri}},
                               auto_visualize=False, flush_interval=0.1) as tracker:
            for step in range(100):
                tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the first 100 points reach the server
                found = client.get_experiment_by_name("stopped")
                runs = client.search_runs([found.experiment_id]) if found else []
                if runs and len(client.get_metric_history(runs[0].info.run_id, "loss")) == 100:
                    break
                time.sleep(0.2)
            else:
                pytest.fail("the first points never reached the server")
            server.stop()
            for step in range(100, 300):
                tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
            time.sleep(1.0)  # a flush meets the stopped server
    record = manager.get_experiment(tracker.run_id)
    assert record.status == "completed"
    assert manager.get_metric_history(tracker.run_id, "loss").steps.tolist() == list(range(300))
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert [backend for backend, _ in record.mirror_failures] == ["mlflow", "mlflow"]
    assert record.mirror_failures[1][1].startswith("at finish: not sent: 200 metric points")
