"""A `.neural` file with ``backend: [mlflow, wandb, tensorboard]``, compiled and trained like
a user runs it; all three mirrors are read back and compared with our store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = """network TinyMirrored {{
  input: (8, 8, 1)
  layers:
    Flatten()
    Dense(16, activation="relu")
    Output(10, "softmax")
  loss: "sparse_categorical_crossentropy"
  optimizer: Adam(learning_rate=0.01)
  train {{
    epochs: 1
    batch_size: 64
  }}
  tracking <
    experiment: "tiny-mirrored"
    backend: [mlflow, wandb, tensorboard]
    mlflow.tracking_uri: "{uri}"
    mlflow.experiment: "compiled-program"
    wandb.mode: offline
    wandb.project: "compiled-program"
    visualize_every: 0
  >
}}
"""


def compile_and_run(tmp_path: Path, uri: str, launch: Path,
                    *overrides: str) -> subprocess.CompletedProcess[str]:
    """Compile TINY with MLflow at ``uri`` and train it from ``launch`` like a user would."""
    from neural_dsl_tracking.compiler import compile_network
    from neural_dsl_tracking.language import parse_text

    source = tmp_path / "tiny.neural"
    source.write_text(TINY.format(uri=uri), encoding="utf-8")
    train_py = compile_network(parse_text(source.read_text(), str(source)).network(), source,
                               tmp_path / "program")
    launch.mkdir()
    return subprocess.run(
        [sys.executable, str(train_py), "execution.threads=1", "data=synthetic",
         "data.samples=512", "tracking.store=store", *overrides],
        cwd=launch, env={**os.environ, "NEURAL_NO_PROGRESS": "1"}, capture_output=True,
        text=True, timeout=600)


@pytest.mark.slow
def test_compiled_program_mirrors_to_all_three(tmp_path, mlflow_sqlite_uri, readback):
    from mlflow import MlflowClient

    from neural_dsl_tracking.tracking import ExperimentManager

    launch = tmp_path / "launch"
    result = compile_and_run(tmp_path, mlflow_sqlite_uri, launch)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in launch.iterdir()) == ["store"]  # no mlruns/ or wandb/ litter

    manager = ExperimentManager(store=str(launch / "store"))
    try:
        (run,) = manager.list_experiments()
        assert run.status == "completed" and run.mirror_failures == []
        short, store = run.run_id[:8], launch / "store"
        assert f"run {short}: final plots, then sending to mlflow, wandb, tensorboard\n" in result.stdout
        assert result.stdout.endswith(f"run {short} completed, recorded in {store}: "
                                      f"neural experiments show {short} --store {store}\n")
        keys = manager.metric_keys(run.run_id)
        ours = {key: manager.get_metric_history(run.run_id, key) for key in keys}
        checkpoints = manager.list_artifact_versions(run.run_id, "checkpoint")
    finally:
        manager.close()
    assert {"loss", "batch_loss"} <= set(keys)

    client = MlflowClient(mlflow_sqlite_uri)
    (mlflow_run,) = client.search_runs(
        [client.get_experiment_by_name("compiled-program").experiment_id])
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["optimizer.lr"] == "0.01"
    for key, history in ours.items():
        theirs = sorted(client.get_metric_history(mlflow_run.info.run_id, key), key=lambda m: m.step)
        assert [(m.step, m.value) for m in theirs] == list(
            zip(history.steps.tolist(), history.values.tolist())), key
    for version in checkpoints:
        assert (mlflow_run.data.tags[f"neural.artifact.checkpoint.v{version.version}.sha256"]
                == version.sha256)

    files_dir = launch / "store"
    wandb_run = readback.wandb(files_dir / "wandb")
    assert wandb_run.run.project == "compiled-program" and wandb_run.exit_code == 0
    assert wandb_run.config["optimizer.lr"] == 0.01  # the program logs flattened params
    for key, history in ours.items():
        theirs = sorted((row["step"], row[key]) for row in wandb_run.history if key in row)
        assert theirs == list(zip(history.steps.tolist(), history.values.tolist())), key

    events = readback.tensorboard(files_dir / "tensorboard" / run.run_id)
    for key, history in ours.items():
        theirs = [(e.step, e.value) for e in sorted(events.Scalars(key), key=lambda e: e.step)]
        assert theirs == [(s, pytest.approx(v, rel=1e-6))
                          for s, v in zip(history.steps.tolist(), history.values.tolist())], key


@pytest.mark.slow
def test_a_failing_mirror_is_shown_on_the_console_and_the_run_completes(tmp_path, closed_port_uri):
    from neural_dsl_tracking.tracking import ExperimentManager

    launch = tmp_path / "launch"
    result = compile_and_run(tmp_path, closed_port_uri, launch, "tracking.backend=[local,mlflow]")
    assert result.returncode == 0, result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(problems) == 1, result.stderr
    assert problems[0].startswith("warning: mlflow mirror failed, retrying with backoff (the local "
                                  "store keeps everything): ")
    assert "\nmlflow: not sent: " in result.stderr
    assert "Traceback" not in result.stderr
    manager = ExperimentManager(store=str(launch / "store"))
    try:
        (run,) = manager.list_experiments()
    finally:
        manager.close()
    assert run.status == "completed"
    assert [backend for backend, _ in run.mirror_failures] == ["mlflow", "mlflow"]
