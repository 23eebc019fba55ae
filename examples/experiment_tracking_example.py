"""Experiment tracking in five examples, written as users of the original tracker write them.

1. Basic tracking: hyperparameters, metrics, a figure, the best value.
2. Artifact versioning: five checkpoints, listed, the latest fetched and its checksum verified.
3. Backend integration: MLflow (a local SQLite store), W&B (offline) and TensorBoard, each
   read back with its own library.
4. Comparison and export: three learning rates side by side, exported to a folder.
5. Automatic visualisation: the PNGs the tracker and ``MetricVisualizer`` draw.

Runs offline in well under a minute and writes only under one folder::

    python examples/experiment_tracking_example.py              # a new temporary folder
    python examples/experiment_tracking_example.py --out DIR    # or DIR (created if needed)

Then ``neural experiments --base-dir DIR/neural_experiments`` opens the dashboard on them.
Example 3 needs the ``mlflow``, ``wandb`` and ``tensorboard`` extras
(``pip install 'neural-dsl-tracking[mlflow,wandb,tensorboard]'``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import struct
import tempfile
import time
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display needed: every figure goes to a file

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neural_dsl_tracking import ExperimentManager, ExperimentTracker, MetricVisualizer  # noqa: E402

STORE = "neural_experiments"  # the tracker's store, inside the output folder
RNG = np.random.default_rng(0)


def banner(title: str) -> None:
    print("\n" + "=" * 60)
    print(title)
    print("=" * 60)


def simulate_training(tracker: ExperimentTracker, epochs: int = 50, lr: float = 0.01,
                      also: Sequence = ()) -> list[dict]:
    """A stand-in for a training loop: logs four metrics per epoch to ``tracker`` (and to the
    integrations in ``also``); returns what it logged."""
    print(f"Starting training for {epochs} epochs with lr={lr}")
    history = []
    for epoch in range(epochs):
        row = {
            "train_loss": float(np.exp(-epoch * lr * 5) + RNG.normal(0, 0.02)),
            "val_loss": float(1.2 * np.exp(-epoch * lr * 4) + RNG.normal(0, 0.03)),
            "train_accuracy": float(np.clip(1 - np.exp(-epoch * lr * 6) + RNG.normal(0, 0.02), 0, 1)),
            "val_accuracy": float(np.clip(1 - np.exp(-epoch * lr * 5) + RNG.normal(0, 0.03), 0, 1)),
        }
        for sink in (tracker, *also):
            sink.log_metrics(row, step=epoch)
        history.append({"step": epoch, **row})
        if epoch % 25 == 0:
            print(f"  epoch {epoch}: train_loss={row['train_loss']:.4f}, val_accuracy={row['val_accuracy']:.4f}")
    return history


# ---- 1 ---------------------------------------------------------------------------------
def example_basic_tracking(out: Path) -> str:
    """Example 1: hyperparameters, metrics, a figure, the best value."""
    banner("Example 1: Basic Experiment Tracking")
    tracker = ExperimentTracker(experiment_name="basic_training", base_dir=out / STORE,
                                tags=["example", "baseline"])
    tracker.log_hyperparameters({"learning_rate": 0.01, "batch_size": 32,
                                 "optimizer": "adam", "model_architecture": "cnn"})
    simulate_training(tracker, epochs=50, lr=0.01)

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(RNG.integers(0, 50, size=(10, 10)), cmap="Blues")
    ax.set_title("Confusion matrix")
    figure_path = tracker.log_figure(fig, "confusion_matrix.png")
    plt.close(fig)

    best = tracker.get_best_metric("val_accuracy", mode="max")
    tracker.finish()
    print(f"Run id: {tracker.run_id}")
    print(f"Run directory: {tracker.run_dir}")
    print(f"Figure: {figure_path}")
    print(f"Best val_accuracy: {best:.4f}")
    return tracker.run_id


# ---- 2 ---------------------------------------------------------------------------------
def example_artifact_versioning(out: Path) -> str:
    """Example 2: five checkpoints of one file, listed; the latest fetched and verified."""
    banner("Example 2: Artifact Versioning")
    tracker = ExperimentTracker(experiment_name="versioned_artifacts", base_dir=out / STORE,
                                auto_visualize=False)
    tracker.log_hyperparameters({"learning_rate": 0.001, "batch_size": 64})
    checkpoint = out / "work" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    for number in range(1, 6):
        tracker.log_metrics({"val_loss": 1.0 / number}, step=number)
        weights = {"epoch": number, "weights": RNG.normal(size=(64, 64)).astype(np.float32)}
        checkpoint.write_bytes(pickle.dumps(weights))
        tracker.log_model(str(checkpoint), framework="pytorch", version=True)
        print(f"Logged checkpoint {number}")

    print("\nModel versions:")
    for version in tracker.list_artifact_versions("checkpoint.pt"):
        print(f"  Version {version.version}: {version.size} bytes, sha256 {version.checksum[:12]}..., "
              f"aliases {', '.join(version.aliases) or '-'}")

    latest = tracker.get_artifact_version("checkpoint.pt", version=-1)
    with open(latest.path, "rb") as stored:
        digest = hashlib.sha256(stored.read()).hexdigest()
    print(f"\nLatest: version {latest.version}, logged {time.ctime(latest.timestamp)}")
    print(f"Checksum verified: {digest == latest.checksum}")
    print(f"Epoch in the latest checkpoint: {pickle.loads(Path(latest.path).read_bytes())['epoch']}")
    tracker.finish()
    return tracker.run_id


# ---- 3 ---------------------------------------------------------------------------------
def example_backend_integration(out: Path) -> str:
    """Example 3: the same training sent to MLflow (a local SQLite store), W&B (offline) and
    TensorBoard through the integrations, each read back with its own library."""
    from neural_dsl_tracking.tracking.integrations import (
        MLflowIntegration,
        TensorBoardIntegration,
        WandbIntegration,
    )

    banner("Example 3: Backend Integration")
    mlflow_uri = f"sqlite:///{(out / 'mlflow.db').resolve()}"
    tensorboard_dir = out / "tensorboard"
    hyperparameters = {"learning_rate": 0.005, "batch_size": 128, "optimizer": "sgd"}
    tracker = ExperimentTracker(experiment_name="backend_integration", base_dir=out / STORE,
                                auto_visualize=False)
    integrations = [
        MLflowIntegration(experiment_name="backend_integration", tracking_uri=mlflow_uri,
                          run_name="sgd-lr0.005"),
        WandbIntegration(experiment_name="backend_integration", project_name="neural-examples",
                         mode="offline"),
        TensorBoardIntegration(experiment_name="backend_integration", log_dir=str(tensorboard_dir)),
    ]
    tracker.log_hyperparameters(hyperparameters)
    for integration in integrations:
        integration.log_params(hyperparameters)
    simulate_training(tracker, epochs=30, lr=0.005, also=integrations)
    for integration in integrations:
        integration.finish()
    tracker.finish()
    # In a real training loop, ExperimentTracker(backend=["mlflow", "wandb", "tensorboard"])
    # sends the same from a separate low-priority process instead (docs/backends.md).

    print("\nRead back:")
    print_mlflow(mlflow_uri)
    print_wandb(out / "wandb")
    print_tensorboard(tensorboard_dir)
    return tracker.run_id


def print_mlflow(uri: str) -> None:
    """Every MLflow run of the SQLite store: experiment, run name, final metrics."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(run.data.metrics.items()))
            print(f"  MLflow      {experiment.name}/{run.info.run_name} ({run.info.status}): {metrics}")


def print_wandb(wandb_dir: Path) -> None:
    """Every offline W&B run under ``wandb_dir``: its history rows and the last values."""
    for run_file in sorted(wandb_dir.rglob("offline-run-*/run-*.wandb")):
        rows = wandb_history(run_file)
        last = {k: v for row in rows for k, v in row.items() if not k.startswith("_") and k != "step"}
        values = ", ".join(f"{k}={v:.4f}" for k, v in sorted(last.items()))
        print(f"  W&B offline {run_file.parent.name}: {len(rows)} history rows; last {values}")


def wandb_history(run_file: Path, timeout: float = 30.0) -> list[dict]:
    """The history rows of an offline ``.wandb`` file (W&B writes it in the background, so
    wait for its exit record). The file is a LevelDB-style log of protobuf records."""
    from wandb.proto import wandb_internal_pb2

    deadline = time.monotonic() + timeout
    while True:
        records = list(_wandb_records(run_file.read_bytes(), wandb_internal_pb2.Record))
        kinds = [record.WhichOneof("record_type") for record in records]
        if "exit" in kinds or time.monotonic() > deadline:
            return [{item.key or "/".join(item.nested_key): json.loads(item.value_json)
                     for item in record.history.item}
                    for record, kind in zip(records, kinds) if kind == "history"]
        time.sleep(0.2)


def _wandb_records(data: bytes, record_type: type):  # type: ignore[no-untyped-def]
    block, pos, pending = 32768, 7, b""  # 7 bytes of file header, then 32 KiB blocks
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # too little left in the block for a header: padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = record_type()
            try:
                record.ParseFromString(pending)
            except Exception:  # noqa: BLE001 - the record being written right now
                return
            yield record
            pending = b""


def print_tensorboard(log_dir: Path) -> None:
    """Every TensorBoard event folder under ``log_dir``: its scalar tags and last values."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for folder in sorted({p.parent for p in log_dir.rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        events.Reload()
        tags = events.Tags()["scalars"]
        values = ", ".join(f"{t}={events.Scalars(t)[-1].value:.4f}" for t in sorted(tags))
        points = sum(len(events.Scalars(t)) for t in tags)
        print(f"  TensorBoard {folder.relative_to(log_dir)}: {points} points; last {values}")


# ---- 4 ---------------------------------------------------------------------------------
def example_experiment_comparison(out: Path) -> list[str]:
    """Example 4: three learning rates, compared and exported."""
    banner("Example 4: Experiment Comparison")
    manager = ExperimentManager(base_dir=out / STORE)
    experiment_ids = []
    for lr in (0.001, 0.01, 0.1):
        tracker = ExperimentTracker(experiment_name="lr_comparison", base_dir=out / STORE,
                                    run_name=f"lr={lr}", auto_visualize=False)
        tracker.log_hyperparameters({"learning_rate": lr, "batch_size": 32, "optimizer": "adam"})
        simulate_training(tracker, epochs=30, lr=lr)
        tracker.finish()
        experiment_ids.append(tracker.run_id)

    print(f"\nComparing {len(experiment_ids)} experiments...")
    plots = manager.compare_experiments(experiment_ids)
    print(f"Generated {len(plots)} comparison plots")
    for metric in plots:
        print(f"  - comparison_{metric}: {type(plots[f'comparison_{metric}']).__name__}")

    output_dir = manager.export_comparison(experiment_ids)
    print(f"\nComparison exported to: {output_dir}")
    for path in sorted(Path(output_dir).iterdir()):
        print(f"  {path.name}")
    summary = json.loads((Path(output_dir) / "summary.json").read_text())
    print(f"Best val_loss: run {summary['best']['val_loss']['run_name']}")
    return experiment_ids


# ---- 5 ---------------------------------------------------------------------------------
def example_visualizations(out: Path) -> str:
    """Example 5: the plots drawn while training, and MetricVisualizer on a plain history."""
    banner("Example 5: Automatic Visualizations")
    tracker = ExperimentTracker(experiment_name="visualization_demo", base_dir=out / STORE,
                                auto_visualize=True, visualize_every=50)
    tracker.log_hyperparameters({"learning_rate": 0.01, "batch_size": 32})
    history = simulate_training(tracker, epochs=100, lr=0.01)

    print("\nGenerating comprehensive visualizations...")
    saved_plots = tracker.generate_visualizations()
    tracker.finish()
    print(f"Generated {len(saved_plots)} visualizations:")
    for path in saved_plots:
        print(f"  - {path}")

    figures_dir = out / "figures"
    figures = MetricVisualizer.create_metric_plots(history, out_dir=figures_dir)
    figures.update(MetricVisualizer.create_distribution_plots(history, out_dir=figures_dir))
    print(f"\nMetricVisualizer drew {len(figures)} figures from a list of dicts:")
    for path in sorted(figures_dir.glob("*.png")):
        print(f"  - {path}")
    return tracker.run_id


def main(argv: list[str] | None = None) -> int:
    """Run the five examples into ``--out`` (default: a new temporary folder)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for everything written (default: a new temporary folder)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="neural-tracking-example-"))
    out.mkdir(parents=True, exist_ok=True)
    offline(out)
    started = time.monotonic()

    print("=" * 60)
    print("Neural Experiment Tracking Examples")
    print("=" * 60)
    print(f"Writing under {out}")
    run_1 = example_basic_tracking(out)
    run_2 = example_artifact_versioning(out)
    run_3 = example_backend_integration(out)
    comparison_ids = example_experiment_comparison(out)
    run_5 = example_visualizations(out)

    banner("All Examples Complete!")
    print("Runs created:")
    print(f"  1. Basic tracking: {run_1}")
    print(f"  2. Artifact versioning: {run_2}")
    print(f"  3. Backend integration: {run_3}")
    print(f"  4. Comparison: {', '.join(comparison_ids)}")
    print(f"  5. Visualizations: {run_5}")
    print(f"Done in {time.monotonic() - started:.1f} s.")
    print("\nTo compare them in the browser:")
    print(f"  neural experiments --base-dir {out / STORE}")
    return 0


def offline(out: Path) -> None:
    """No network, no telemetry, and the SDKs' own files under ``out`` too."""
    os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    for name, folder in (("WANDB_DIR", "."), ("WANDB_CACHE_DIR", "wandb/cache"),
                         ("WANDB_CONFIG_DIR", "wandb/config"), ("WANDB_DATA_DIR", "wandb/data")):
        os.environ[name] = str((out / folder).resolve())  # runs go to WANDB_DIR/wandb/
        Path(os.environ[name]).mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
    raise SystemExit(main())
