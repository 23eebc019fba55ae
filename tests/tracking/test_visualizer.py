"""Plots: valid PNG files, drawn in a separate process during the run, skipped while a round
is still drawing, and drawn here when that process is gone."""

from __future__ import annotations

import math
import os
import signal
import time
import warnings

import pytest

from neural_dsl_tracking.tracking import ExperimentTracker
from neural_dsl_tracking.tracking.downsample import downsample_minmax
from neural_dsl_tracking.tracking.plot_process import PlotProcess
from neural_dsl_tracking.tracking.visualizer import MetricVisualizer

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


def _wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_background_rounds_draw_in_a_separate_process_during_the_run(store_kwargs):
    """On SQLite and on PostgreSQL: the plot process reads the store itself."""
    tracker = ExperimentTracker("viz", **store_kwargs, visualize_every=5, flush_interval=0.05)
    plots = tracker.run_dir / "plots"
    for step in range(5):
        tracker.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 10})
    _wait_for(lambda: tracker._plots.rounds >= 1)  # a whole round, before the run finishes
    for name in ("metric_loss.png", "metric_acc.png", "all_metrics.png", "histograms.png"):
        _assert_png(plots / name)
    child = tracker._plots._process
    assert child.pid != os.getpid() and tracker._plots.rounds >= 1
    assert os.getsid(child.pid) != os.getsid(0)  # a Ctrl-C in the terminal does not reach it
    assert os.getpriority(os.PRIO_PROCESS, child.pid) >= os.getpriority(os.PRIO_PROCESS, 0) + 10
    tracker.log_metrics({"late": 3.0})
    tracker.finish()
    assert child.returncode == 0  # stopped at finish
    _assert_png(plots / "metric_late.png")  # the final round saw everything logged


def test_log_metrics_never_waits_for_drawing(tmp_path):
    """With visualize_every=1 and the plot process frozen, every log_metrics call returns."""
    tracker = ExperimentTracker("viz", base_dir=tmp_path, visualize_every=1)
    tracker.log_metrics({"loss": 1.0})
    _wait_for(lambda: tracker._plots._process is not None)
    child = tracker._plots._process
    os.kill(child.pid, signal.SIGSTOP)
    try:
        for step in range(1, 5000):
            tracker.log_metrics({"loss": 1.0 / step})
        plots = tracker._plots
        assert plots.rounds <= 1 and plots.skipped >= 4990  # at most one round got going
    finally:
        os.kill(child.pid, signal.SIGCONT)
    tracker.finish()
    assert child.returncode == 0
    _assert_png(tracker.run_dir / "plots" / "metric_loss.png")


def test_a_dead_plot_process_is_warned_once_and_the_final_plots_are_drawn_here(tmp_path):
    tracker = ExperimentTracker("viz", base_dir=tmp_path, visualize_every=1, flush_interval=0.05)
    tracker.log_metrics({"loss": 1.0})
    _wait_for(lambda: tracker._plots.rounds >= 1)
    os.kill(tracker._plots._process.pid, signal.SIGKILL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 300):
            tracker.log_metrics({"loss": 1.0 / step, "late": float(step)})
            time.sleep(0.002)
        tracker.finish()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "plot process ended unexpectedly" in messages[0], messages
    assert tracker.status == "completed"
    _assert_png(tracker.run_dir / "plots" / "metric_late.png")  # drawn in this process


def test_a_plot_process_that_cannot_start_is_warned_once(tmp_path, monkeypatch):
    from neural_dsl_tracking.tracking import plot_process

    def no_process(*args, **kwargs):
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(plot_process, "spawn_module", no_process)
    with pytest.warns(RuntimeWarning, match="could not start") as caught:
        with ExperimentTracker("viz", base_dir=tmp_path, visualize_every=1) as tracker:
            for step in range(100):
                tracker.log_metrics({"loss": 1.0 / (step + 1)})
    assert len([w for w in caught if "plot process" in str(w.message)]) == 1
    _assert_png(tracker.run_dir / "plots" / "metric_loss.png")


def test_drawing_errors_do_not_break_the_run(tmp_path, monkeypatch):
    def broken(self, histories):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(MetricVisualizer, "_draw_combined", broken)
    with pytest.warns(RuntimeWarning, match="final plots failed"):
        with ExperimentTracker("viz", base_dir=tmp_path, visualize_every=0) as tracker:
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


def test_downsampling_keeps_each_buckets_extremes_around_nan():
    import numpy as np

    rng = np.random.default_rng(1)
    y = rng.normal(size=10_001)
    y[::7] = np.nan
    x = np.arange(y.size)
    dx, dy = downsample_minmax(x, y, 100)
    assert len(dx) <= 200 and np.all(np.diff(dx) > 0)
    assert np.nanmax(dy) == np.nanmax(y) and np.nanmin(dy) == np.nanmin(y)


def test_distinct_metric_names_never_share_a_file():
    from neural_dsl_tracking.tracking.visualizer import safe_filename

    names = ["loss/train", "loss_train", "loss train", "../etc", "λ", ""]
    files = [safe_filename(n) for n in names]
    assert len(set(files)) == len(files)
    assert safe_filename("loss_train") == "loss_train"
    assert all("/" not in f and not f.startswith(".") for f in files)


def test_after_a_round_the_worker_rests_as_long_as_it_drew(monkeypatch):
    def slow_round(self):
        time.sleep(0.2)
        return []

    monkeypatch.setattr(PlotProcess, "_round", slow_round)
    plots = PlotProcess({})
    started = time.monotonic()
    plots.request()
    _wait_for(lambda: plots.rounds == 1 and not plots._busy.locked())
    assert plots._rest_until >= started + 0.4  # drew >= 0.2 s, then rests >= 0.2 s
    plots._rest_until = time.monotonic() + 60
    plots.request()
    assert plots.skipped == 1 and not plots._wake.is_set()
    assert plots.final(lambda: ["drawn here"]) == []  # the final round still runs


def test_metrics_without_finite_values_or_with_one_point_still_plot(tmp_path):
    with ExperimentTracker("viz", base_dir=tmp_path, visualize_every=0) as tracker:
        tracker.log_metrics({"all_nan": float("nan"), "spiky": 1e9})
        tracker.log_metrics({"all_nan": float("inf"), "once": 2.0})
    plots = tracker.run_dir / "plots"
    for name in ("metric_all_nan.png", "metric_spiky.png", "metric_once.png", "all_metrics.png"):
        _assert_png(plots / name)


def test_a_round_redraws_only_the_metric_plots_whose_series_grew(tmp_path):
    tracker = ExperimentTracker("viz", base_dir=tmp_path, auto_visualize=False)
    tracker.log_metrics({"loss": 1.0, "acc": 0.1, "epoch_time": 3.0})
    tracker.log_metrics({"loss": 0.5, "acc": 0.2, "epoch_time": 2.0})
    first = {p.name: p.stat().st_mtime_ns for p in tracker.generate_visualizations()}
    time.sleep(0.05)
    tracker.log_metrics({"loss": 0.25})
    (tracker.run_dir / "plots" / "metric_acc.png").unlink()  # a missing file is drawn again
    second = {p.name: p.stat().st_mtime_ns for p in tracker.generate_visualizations()}
    assert second["metric_epoch_time.png"] == first["metric_epoch_time.png"]  # kept
    assert second["metric_loss.png"] > first["metric_loss.png"]
    assert second["all_metrics.png"] > first["all_metrics.png"]
    _assert_png(tracker.run_dir / "plots" / "metric_acc.png")
    tracker.finish()


def test_no_plots_folder_without_a_plot(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"w")
    with ExperimentTracker("quiet", base_dir=tmp_path / "off", auto_visualize=False) as off:
        off.log_metrics({"loss": 1.0})
        off.log_artifact(tmp_path / "w.pt")
    with ExperimentTracker("empty", base_dir=tmp_path / "on", visualize_every=1) as nothing:
        nothing.log_hyperparameters({"lr": 0.1})
    for tracker in (off, nothing):
        assert not (tracker.run_dir / "plots").exists()
    with ExperimentTracker("drawn", base_dir=tmp_path / "on", visualize_every=0) as drawn:
        drawn.log_metrics({"loss": 1.0})
    assert (drawn.run_dir / "plots" / "metric_loss.png").exists()
