"""The tracker feeds mirrors from its flushed batches; a missing mirror never stops the run."""

from __future__ import annotations

import sys

import pytest

from neural_dsl_tracking.errors import NeuralError
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker


def test_tensorboard_mirror_receives_metrics_and_params(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with ExperimentTracker("mirrored", base_dir=tmp_path, backend=["local", "tensorboard"],
                           auto_visualize=False) as tracker:
        tracker.log_hyperparameters({"lr": 0.1})
        for step in range(50):
            tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    record = ExperimentManager(base_dir=tmp_path).get_experiment(tracker.run_id)
    assert record.mirror_failures == []
    accumulator = EventAccumulator(str(tmp_path / "tensorboard" / tracker.run_id),
                                   size_guidance={"scalars": 0})
    accumulator.Reload()
    tag = next(t for t in accumulator.Tags()["scalars"] if t.endswith("loss"))
    events = accumulator.Scalars(tag)
    assert [e.step for e in events] == list(range(50))
    assert events[-1].value == pytest.approx(1 / 50)


def test_missing_backends_package_warns_once_and_records_locally(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "neural_dsl_tracking.backends", None)
    with pytest.warns(RuntimeWarning, match="mlflow, wandb unavailable") as caught:
        tracker = ExperimentTracker("local-only", base_dir=tmp_path, backend=["mlflow", "wandb"],
                                    auto_visualize=False)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    tracker.log_metrics({"loss": 1.0})
    tracker.finish()
    record = ExperimentManager(base_dir=tmp_path).get_experiment(tracker.run_id)
    assert record.status == "completed" and record.metrics["loss"]["count"] == 1
    assert [backend for backend, _ in record.mirror_failures] == ["mlflow", "wandb"]


def test_misspelt_backend_fails_the_run_with_a_clear_error(tmp_path):
    with pytest.raises(NeuralError, match="mlfow"):
        ExperimentTracker("typo", base_dir=tmp_path, backend="mlfow", auto_visualize=False)
    (run,) = ExperimentManager(base_dir=tmp_path).list_experiments()
    assert run.status == "failed"
