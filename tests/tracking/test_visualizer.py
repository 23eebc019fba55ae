"""Plots: valid PNG files, drawn off the hot path, skipped while a round is still drawing."""

from __future__ import annotations

import math
import threading

import pytest

from neural_dsl_tracking.tracking import ExperimentTracker
from neural_dsl_tracking.tracking.visualizer import MetricVisualizer, downsample_minmax

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()


def test_finish_draws_every_plot_as_valid_png(tmp_path):
    with ExperimentTracker("viz", base_dir=tmp_path, visualize_every=0) as tracker:
        for step in range(200):
            tracker.log_metrics({"loss": 1 / (step + 1), "acc": step / 200,
                                 "noisy": math.sin(step) if step != 50 else float("nan")})
    plots = tracker.run_dir / "plots"
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["all_metrics.png", "correlation.png", "histograms.png", "metric_acc.png",
                     "metric_loss.png", "metric_noisy.png"]
    for path in plots.iterdir():
        _assert_png(path)


def test_generate_visualizations_on_demand(tmp_path):
    tracker = ExperimentTracker("viz", base_dir=tmp_path, auto_visualize=False)
    tracker.log_metrics({"loss/train": 1.0})
    tracker.log_metrics({"loss/train": 0.5})
    paths = tracker.generate_visualizations()
    assert any(p.name.startswith("metric_loss_train-") for p in paths)
    for path in paths:
        _assert_png(path)
    tracker.finish()
    assert not (tracker.run_dir / "plots" / "correlation.png").exists()  # one metric only


def test_log_metrics_never_waits_for_drawing(tmp_path, monkeypatch):
    """With visualize_every=1 and drawing blocked, every log_metrics call still returns."""
    gate, drawing = threading.Event(), threading.Event()
    original = MetricVisualizer.generate

    def blocked_generate(self):
        drawing.set()
        gate.wait(timeout=60)
        return original(self)

    monkeypatch.setattr(MetricVisualizer, "generate", blocked_generate)
    tracker = ExperimentTracker("viz", base_dir=tmp_path, visualize_every=1)
    tracker.log_metrics({"loss": 1.0})
    assert drawing.wait(timeout=30)
    for step in range(1, 5000):
        tracker.log_metrics({"loss": 1.0 / step})
    assert not gate.is_set()  # all 5000 calls returned while a round was stuck drawing
    visualizer = tracker._visualizer
    assert visualizer.rounds == 0 and visualizer.skipped >= 4990
    gate.set()
    tracker.finish()
    assert visualizer.rounds >= 2  # the background round, then the final one
    _assert_png(tracker.run_dir / "plots" / "metric_loss.png")


def test_drawing_errors_do_not_break_the_run(tmp_path, monkeypatch):
    def broken(self, history):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(MetricVisualizer, "_draw_single", broken)
    with pytest.warns(RuntimeWarning, match="final plots failed"):
        with ExperimentTracker("viz", base_dir=tmp_path, visualize_every=1) as tracker:
            tracker.log_metrics({"loss": 1.0})
    assert tracker.status == "completed"


def test_downsampling_keeps_spikes():
    import numpy as np

    x = np.arange(100_000)
    y = np.zeros(100_000)
    y[73_123] = 50.0
    y[12_345] = -7.0
    dx, dy = downsample_minmax(x, y, 500)
    assert len(dx) <= 1000 and 50.0 in dy and -7.0 in dy and 73_123 in dx


def test_distinct_metric_names_never_share_a_file():
    from neural_dsl_tracking.tracking.visualizer import safe_filename

    names = ["loss/train", "loss_train", "loss train", "../etc", "λ", ""]
    files = [safe_filename(n) for n in names]
    assert len(set(files)) == len(files)
    assert safe_filename("loss_train") == "loss_train"
    assert all("/" not in f and not f.startswith(".") for f in files)


def test_after_a_round_the_worker_rests_as_long_as_it_drew(tmp_path, monkeypatch):
    import time

    def slow_generate(self):
        time.sleep(0.2)
        self.rounds += 1
        return []

    monkeypatch.setattr(MetricVisualizer, "generate", slow_generate)
    visualizer = MetricVisualizer(tmp_path, load=dict)
    visualizer.start()
    started = time.monotonic()
    visualizer.request()
    while visualizer.rounds == 0 or visualizer._busy.locked():
        time.sleep(0.01)
    assert visualizer._rest_until >= started + 0.4  # drew >= 0.2 s, then rests >= 0.2 s
    visualizer._rest_until = time.monotonic() + 60
    visualizer.request()
    assert visualizer.skipped == 1 and not visualizer._wake.is_set()
    visualizer.stop()
