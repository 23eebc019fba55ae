"""The original tracking API's call forms, written as its users write them: each works here,
as a thin layer over our own names (docs/tracking.md, "Original API forms")."""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from neural_dsl_tracking.errors import NeuralError, TrackingError

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train(tracker, scale: float = 1.0, steps: int = 10) -> None:
    for step in range(steps):
        tracker.log_metrics({"loss": 1.0 - step * 0.1 * scale, "accuracy": step * 0.1}, step=step)


@pytest.fixture
def base_dir(tmp_path: Path) -> str:
    return str(tmp_path / "neural_experiments")


def test_log_model_is_versioned_under_the_file_name(base_dir, tmp_path):
    from neural_dsl_tracking import ExperimentTracker

    tracker = ExperimentTracker(experiment_name="models", base_dir=base_dir, auto_visualize=False)
    checkpoint = tmp_path / "checkpoint.pt"
    for epoch in range(3):
        checkpoint.write_bytes(f"weights {epoch}".encode())
        tracker.log_model(str(checkpoint), framework="pytorch", version=True)
    versions = tracker.list_artifact_versions("checkpoint.pt")
    assert [v.version for v in versions] == [1, 2, 3]
    assert all((v.metadata["type"], v.metadata["framework"]) == ("model", "pytorch")
               for v in versions)

    checkpoint.write_bytes(b"weights replaced")
    tracker.log_model(str(checkpoint), framework="pytorch", version=False)  # as log_artifact:
    (only,) = tracker.list_artifact_versions("checkpoint.pt")  # one version, the new content
    assert Path(only.path).read_bytes() == b"weights replaced"

    named = tracker.log_model(str(checkpoint), framework="pytorch", name="best_model")
    assert named.name == "best_model"
    tracker.finish()


def test_get_artifact_version_takes_version_as_the_keyword(base_dir, tmp_path):
    from neural_dsl_tracking import ExperimentTracker

    tracker = ExperimentTracker(experiment_name="versions", base_dir=base_dir, auto_visualize=False)
    for i in range(3):
        artifact = tmp_path / f"artifact_{i}.txt"
        artifact.write_text(f"Artifact version {i + 1}")
        tracker.log_artifact(str(artifact), name="model.txt", version=True)
    assert tracker.get_artifact_version("model.txt", version=-1).version == 3
    assert tracker.get_artifact_version("model.txt", version=1).version == 1
    assert tracker.get_artifact_version("model.txt", version=-3).version == 1
    assert tracker.get_artifact_version("model.txt", version="latest").version == 3
    assert tracker.get_artifact_version("model.txt", 2).version == 2  # our ref, positional
    with pytest.raises(TrackingError, match="not both"):
        tracker.get_artifact_version("model.txt", 2, version=1)
    tracker.finish()

    from neural_dsl_tracking import ExperimentManager

    manager = ExperimentManager(base_dir=base_dir)
    assert manager.get_artifact_version(tracker.run_id, "model.txt", version=2).version == 2


def test_artifact_version_has_checksum_timestamp_and_a_readable_path(base_dir, tmp_path):
    from neural_dsl_tracking import ExperimentTracker

    tracker = ExperimentTracker(experiment_name="checksums", base_dir=base_dir, auto_visualize=False)
    source = tmp_path / "test.txt"
    source.write_text("Test content")
    before = time.time()
    tracker.log_artifact(str(source), name="test.txt", version=True)
    version = tracker.get_artifact_version("test.txt", version=1)
    assert version.checksum == _sha256(source) and len(version.checksum) == 64
    assert before - 1 <= version.timestamp <= time.time() + 1
    with open(version.path, "rb") as handle:
        assert handle.read() == b"Test content"
    tracker.finish()


def _two_runs(base_dir: str) -> list[str]:
    from neural_dsl_tracking import ExperimentTracker

    ids = []
    for i in range(2):
        tracker = ExperimentTracker(experiment_name=f"exp_{i}", base_dir=base_dir,
                                    auto_visualize=False)
        tracker.log_hyperparameters({"lr": 0.01 * (i + 1)})
        _train(tracker, scale=i + 1)
        tracker.finish()
        ids.append(tracker.run_id)
    return ids


def test_export_comparison_without_a_folder_and_with_output_dir(base_dir, tmp_path):
    from neural_dsl_tracking import ExperimentManager

    ids = _two_runs(base_dir)
    manager = ExperimentManager(base_dir=base_dir)
    output_dir = manager.export_comparison(ids)
    assert os.path.isdir(output_dir)
    assert Path(output_dir).parent == Path(base_dir) / "comparisons"
    assert {"summary.json", "metrics.csv", "report.html"} <= set(os.listdir(output_dir))
    again = manager.export_comparison(ids)  # a new folder each time, never refused
    assert again != output_dir and os.path.isfile(os.path.join(again, "summary.json"))

    chosen = tmp_path / "my_comparison"
    assert manager.export_comparison(ids, output_dir=str(chosen)) == chosen
    assert (chosen / "report.html").is_file()
    with pytest.raises(TrackingError, match="not both"):
        manager.export_comparison(ids, tmp_path / "a", output_dir=tmp_path / "b")


def test_compare_experiments_keys_figures_by_metric_and_comparison_metric(base_dir):
    from neural_dsl_tracking import ExperimentManager

    ids = _two_runs(base_dir)
    manager = ExperimentManager(base_dir=base_dir)
    plots = manager.compare_experiments(ids, metrics=None)
    assert len(plots) > 0
    assert "comparison_loss" in plots or "comparison_accuracy" in plots
    assert plots["comparison_loss"] is plots["loss"]
    assert plots.get("comparison_accuracy") is plots["accuracy"]
    assert sorted(plots) == ["accuracy", "loss"]  # each figure listed once
    assert "comparison_nothing" not in plots and plots.get("comparison_nothing") is None


def test_experiment_name_may_be_left_out(base_dir):
    from neural_dsl_tracking import ExperimentManager, ExperimentTracker

    tracker = ExperimentTracker(base_dir=base_dir, auto_visualize=False)
    assert tracker.experiment_name.startswith("experiment_")
    tracker.finish()
    run = ExperimentManager(base_dir=base_dir).get_experiment(tracker.run_id)
    assert run.experiment == tracker.experiment_name


VALUES = [1.0 - 9 * 0.1, 0.1 + 0.2, 1 / 3, 0.7234567891234, 1e-310, 5e-324, 1.7976931348623157e308,
          2.0**-1074 * 3, 123456789.12345678]


def test_get_best_metric_returns_exactly_the_logged_value(store_kwargs):
    from neural_dsl_tracking import ExperimentTracker

    tracker = ExperimentTracker(experiment_name="exact", auto_visualize=False, **store_kwargs)
    _train(tracker)
    for i, value in enumerate(VALUES):
        tracker.log_metrics({f"m{i}": value, f"n{i}": -value}, step=0)
        tracker.log_metrics({f"m{i}": -1e308, f"n{i}": 1e308}, step=1)
    assert tracker.get_best_metric("loss", mode="min") == 1.0 - 9 * 0.1  # what was logged
    for finished in (False, True):
        for i, value in enumerate(VALUES):
            assert tracker.get_best_metric(f"m{i}", mode="max") == value, (i, finished)
            assert tracker.get_best_metric(f"n{i}", mode="min") == -value, (i, finished)
        tracker.finish()


def test_log_figure_keeps_the_png_name_and_lists_figures_as_artifacts(base_dir):
    import matplotlib.pyplot as plt

    from neural_dsl_tracking import ExperimentManager, ExperimentTracker

    tracker = ExperimentTracker(experiment_name="figures", base_dir=base_dir, auto_visualize=False)
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [1, 4, 9])
    saved = tracker.log_figure(fig, "test_plot.png")
    curve = tracker.log_figure(fig, "curve")
    plt.close(fig)
    assert saved.name == "test_plot.png" and saved.read_bytes().startswith(PNG)
    assert curve.name == "curve.png"
    (version,) = tracker.list_artifact_versions("test_plot.png")
    assert version.checksum == _sha256(saved) and version.metadata["type"] == "figure"
    tracker.finish()
    run = ExperimentManager(base_dir=base_dir).get_experiment(tracker.run_id)
    assert {"test_plot.png", "curve.png"} <= set(run.artifacts)


def test_metric_visualizer_static_methods(tmp_path):
    import matplotlib.pyplot as plt

    from neural_dsl_tracking import MetricVisualizer

    metrics_history = [{"step": i, "loss": 1.0 - i * 0.1, "accuracy": i * 0.1} for i in range(10)]
    plots = MetricVisualizer.create_metric_plots(metrics_history)
    assert len(plots) > 0
    assert {"metric_loss", "metric_accuracy", "all_metrics", "correlation"} <= set(plots)
    assert plots["all_metrics_individual"] is plots["all_metrics"]  # the original's key
    for fig in plots.values():
        plt.close(fig)
    dist_plots = MetricVisualizer.create_distribution_plots(metrics_history)
    assert list(dist_plots) == ["histograms"] and "metric_distributions" in dist_plots

    out_dir = tmp_path / "plots"
    written = MetricVisualizer.create_metric_plots(metrics_history, out_dir=out_dir)
    MetricVisualizer.create_distribution_plots(metrics_history, out_dir=str(out_dir))
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [f"{name}.png" for name in written] + ["histograms.png"])
    assert all(p.read_bytes().startswith(PNG) for p in out_dir.iterdir())
    assert MetricVisualizer.create_metric_plots([]) == {}
    # rows without a step are at their index; None values are skipped
    partial = MetricVisualizer.create_metric_plots([{"loss": 1.0}, {"loss": None}, {"loss": 0.5}])
    assert sorted(partial) == ["all_metrics", "metric_loss"]


def test_metric_visualizer_is_exported_without_importing_matplotlib():
    code = ("import sys; import neural_dsl_tracking as n; n.MetricVisualizer; "
            "n.ExperimentComparisonUI; print(sorted(m for m in ('matplotlib', 'dash') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---- serving: ExperimentComparisonUI and the standalone launcher --------------------------
def _serve(args: list[str], timeout: float = 90.0) -> tuple[subprocess.Popen, str]:
    """Start ``python *args``; returns the process and the URL its startup report names."""
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        if line.startswith("Neural experiments dashboard: "):
            return process, line.split(": ", 1)[1].strip()
    process.kill()
    raise AssertionError(f"no dashboard URL: {process.communicate(timeout=20)}")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return response.read().decode()


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    finally:
        process.kill()


def test_comparison_ui_run_serves_on_loopback(base_dir):
    _two_runs(base_dir)
    script = ("from neural_dsl_tracking import ExperimentComparisonUI\n"
              f"ExperimentComparisonUI(base_dir={base_dir!r}).run(debug=False, host='127.0.0.1', "
              "port=0)\n")
    process, url = _serve(["-c", script])
    try:
        assert url.startswith("http://127.0.0.1:")
        assert "<title>Neural experiments</title>" in _get(url)
    finally:
        assert _stop(process) == 0


def test_comparison_ui_from_a_manager_and_the_exposure_rule(base_dir):
    from neural_dsl_tracking import ExperimentComparisonUI, ExperimentManager

    ui = ExperimentComparisonUI(ExperimentManager(base_dir=base_dir), port=8052)
    assert (ui.base_dir, ui.port) == (Path(base_dir), 8052)
    with pytest.raises(NeuralError, match="auth"):  # refused before anything is served
        ui.run(host="0.0.0.0")


@pytest.mark.parametrize("launcher", [["neural_dsl_tracking/tracking/comparison_ui.py"],
                                      ["-m", "neural_dsl_tracking.dashboard"]])
def test_standalone_launcher_serves(base_dir, launcher):
    _two_runs(base_dir)
    process, url = _serve([*launcher, "--port", "0", "--base-dir", base_dir,
                           "--host", "127.0.0.1"])
    try:
        assert "<title>Neural experiments</title>" in _get(url)
    finally:
        assert _stop(process) == 0


def test_standalone_launcher_refuses_an_exposed_host_without_login(base_dir):
    out = subprocess.run([sys.executable, "neural_dsl_tracking/tracking/comparison_ui.py",
                          "--host", "0.0.0.0", "--base-dir", base_dir], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and len(out.stderr.splitlines()) == 1
