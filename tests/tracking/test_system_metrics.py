"""System metrics (``system_metrics=N``): a background thread samples the machine into ``system/*``
metrics at wall-time steps, never waits for the writer, and stops with the run (finish, SIGTERM),
and in a forked child does not exist.

GPUs: this machine has none. The real nvidia-ml-py is exercised without a driver (no GPU, nothing
recorded, no error); the reading of GPUs is checked against a stand-in ``pynvml`` module with
nvidia-ml-py's function names and result fields (nothing here talks to a real NVIDIA driver).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from neural_dsl_tracking.errors import NeuralValidationError, TrackingError
from neural_dsl_tracking.language import parse_text
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker
from neural_dsl_tracking.tracking.system_metrics import SYSTEM_PREFIX, Gpus

MACHINE_KEYS = {"system/cpu_percent", "system/process_cpu_percent", "system/process_rss_mb",
                "system/memory_percent", "system/memory_used_mb", "system/net_sent_mb_per_s",
                "system/net_recv_mb_per_s"}


def sampler_threads(run_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"neural-system-metrics-{run_id[:8]}"]


def system_keys(manager: ExperimentManager, run_id: str) -> list[str]:
    return [key for key in manager.metric_keys(run_id) if key.startswith(SYSTEM_PREFIX)]


def log_for(tracker: ExperimentTracker, seconds: float, every: float = 0.05) -> int:
    """Log ``loss`` every ``every`` seconds for ``seconds``; returns the number of calls."""
    deadline, calls = time.monotonic() + seconds, 0
    while time.monotonic() < deadline and calls < 10_000:
        tracker.log_metrics({"loss": 1.0 / (calls + 1)})
        calls += 1
        time.sleep(min(every, max(0.0, deadline - time.monotonic())))
    return calls


def test_a_run_records_system_metrics_at_wall_time_steps(store_kwargs):
    tracker = ExperimentTracker("sys", **store_kwargs, auto_visualize=False, system_metrics=1,
                                flush_interval=0.1)
    calls = log_for(tracker, 3.3, every=2.0)  # fewer steps than seconds: see the resume below
    tracker.finish()
    assert sampler_threads(tracker.run_id) == []  # stopped with the run
    manager = ExperimentManager(**store_kwargs)
    try:
        run = manager.get_experiment(tracker.run_id)
        assert MACHINE_KEYS <= set(system_keys(manager, tracker.run_id))
        for key in system_keys(manager, tracker.run_id):
            history = manager.get_metric_history(tracker.run_id, key)
            assert len(history.steps) >= 2, key
            assert np.all(np.diff(history.steps) > 0), (key, history.steps)
            seconds = history.timestamps - run.start_time.timestamp()  # steps are seconds since the start
            assert np.all(np.abs(history.steps - seconds) <= 1.5), (key, history.steps, seconds)
            assert np.all(history.values >= 0), (key, history.values)
        rss = manager.get_metric_history(tracker.run_id, "system/process_rss_mb").values
        assert np.all((rss > 1) & (rss < 1e6))
        cpu = manager.get_metric_history(tracker.run_id, "system/cpu_percent").values
        assert np.all(cpu <= 100)
        memory = manager.get_metric_history(tracker.run_id, "system/memory_percent").values
        assert np.all((memory > 0) & (memory <= 100))
        loss = manager.get_metric_history(tracker.run_id, "loss")  # the run's own steps untouched
        assert loss.steps.tolist() == list(range(calls))
    finally:
        manager.close()
    # a resumed run continues the run's own steps, not the seconds of its system metrics
    with ExperimentTracker(run_id=tracker.run_id, **store_kwargs, auto_visualize=False,
                           system_metrics=0) as resumed:
        resumed.log_metrics({"loss": 0.0})
        assert resumed.get_metric_history("loss").steps[-1] == calls


def test_zero_turns_system_metrics_off(tmp_path):
    tracker = ExperimentTracker("off", base_dir=tmp_path, auto_visualize=False, system_metrics=0)
    assert sampler_threads(tracker.run_id) == []
    log_for(tracker, 1.2)
    tracker.finish()
    manager = ExperimentManager(base_dir=tmp_path)
    assert system_keys(manager, tracker.run_id) == []
    assert manager.metric_keys(tracker.run_id) == ["loss"]


def test_sampling_goes_on_while_the_writer_is_stuck(tmp_path):
    """The writer holds its lock through a slow store write: samples are still buffered and
    log_metrics still returns, since neither takes that lock."""
    tracker = ExperimentTracker("stuck", base_dir=tmp_path, auto_visualize=False, system_metrics=1,
                                flush_interval=0.05)
    writer = tracker._writer
    buffered = []
    with writer._flush_lock:  # a flush that does not end
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not buffered:
            tracker.log_metrics({"loss": 1.0})  # returns: the writer is not needed to log
            buffered = [point for point in list(writer.pending)
                        if any(key.startswith(SYSTEM_PREFIX) for key in point[2])]
            time.sleep(0.05)
    assert buffered, "no system sample was buffered while the writer held its lock"
    tracker.finish()
    assert system_keys(ExperimentManager(base_dir=tmp_path), tracker.run_id)


SCRIPT_HEAD = """
import os, signal, sys, threading, time
from neural_dsl_tracking.tracking import ExperimentTracker
tracker = ExperimentTracker("sys", base_dir=sys.argv[1], auto_visualize=False, system_metrics=1,
                            flush_interval=60)  # points reach the store at finish only
print(tracker.run_id, flush=True)
def system_points():
    return sum(1 for point in list(tracker._writer.pending) if any(k.startswith("system/") for k in point[2]))
def wait_for_points(n):
    deadline = time.monotonic() + 10
    while system_points() < n and time.monotonic() < deadline:
        time.sleep(0.05)
"""


def run_script(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess, Path]:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT_HEAD + textwrap.dedent(body))
    base = tmp_path / "store"
    job = subprocess.run([sys.executable, str(script), str(base)], capture_output=True, text=True,
                         timeout=60)
    assert "Traceback" not in job.stderr, job.stderr
    return job, base


def test_sigterm_stops_sampling_and_keeps_the_samples(tmp_path):
    job, base = run_script(tmp_path, """
        wait_for_points(2)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    """)
    assert job.returncode == -signal.SIGTERM, job.stderr
    run_id = job.stdout.split()[0]
    manager = ExperimentManager(base_dir=base)
    assert manager.get_experiment(run_id).status == "interrupted"
    history = manager.get_metric_history(run_id, "system/process_rss_mb")
    assert len(history.steps) >= 2 and np.all(np.diff(history.steps) > 0)


def test_a_forked_child_does_not_sample(tmp_path):
    job, base = run_script(tmp_path, """
        wait_for_points(1)
        child = os.fork()
        if child == 0:  # the sampler's thread is the parent's: none here, nothing added
            before = system_points()
            time.sleep(2.5)
            alive = [t.name for t in threading.enumerate() if t.name.startswith("neural-system-metrics")]
            os._exit(0 if not alive and system_points() == before else 3)
        _, status = os.waitpid(child, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
        wait_for_points(4)  # the parent goes on sampling
        tracker.finish()
    """)
    assert job.returncode == 0, job.stderr
    run_id, child_exit = job.stdout.split()
    assert child_exit == "0"
    history = ExperimentManager(base_dir=base).get_metric_history(run_id, "system/cpu_percent")
    assert len(history.steps) >= 4 and np.all(np.diff(history.steps) > 0)


def test_a_mirror_receives_system_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracker = ExperimentTracker("mirrored", base_dir=tmp_path, backend=["local", "tensorboard"],
                                auto_visualize=False, system_metrics=1, flush_interval=0.1)
    log_for(tracker, 2.3)
    tracker.finish()
    stored = ExperimentManager(base_dir=tmp_path).get_metric_history(tracker.run_id, "system/process_rss_mb")
    accumulator = EventAccumulator(str(tmp_path / "tensorboard" / tracker.run_id), size_guidance={"scalars": 0})
    accumulator.Reload()
    tag = next(t for t in accumulator.Tags()["scalars"] if t.endswith("process_rss_mb"))
    events = accumulator.Scalars(tag)
    assert [e.step for e in events] == stored.steps.tolist()
    assert [e.value for e in events] == pytest.approx(stored.values.tolist())


def test_the_run_plots_leave_system_metrics_out(tmp_path):
    """Their steps are seconds, not the run's: in the correlation plot (values at the steps all
    metrics share) they would pair a loss with whatever second matches its epoch."""
    with ExperimentTracker("plots", base_dir=tmp_path, visualize_every=0, system_metrics=0) as tracker:
        for step in range(6):
            tracker.log_metrics({"loss": 1 / (step + 1), "accuracy": step / 6, "system/cpu_percent": 50.0},
                                step=step)
        paths = tracker.generate_visualizations()
    names = sorted(path.name for path in paths)
    assert names == ["all_metrics.png", "correlation.png", "histograms.png", "metric_accuracy.png",
                     "metric_loss.png"]


# ---- the setting ------------------------------------------------------------------------
HEAD = """network Net {
  input: (4,)
  layers:
    Dense(2)
  loss: "mse"
  optimizer: Adam()
"""


def test_the_block_sets_it():
    spec = parse_text(HEAD + "  tracking < system_metrics: 0 >\n}\n").networks[0].plugins.get("tracking")
    assert spec.system_metrics == 0
    default = parse_text(HEAD + "  tracking < backend: local >\n}\n").networks[0].plugins.get("tracking")
    assert default.system_metrics == 10


@pytest.mark.parametrize("seconds", [0, 1])
def test_the_tracking_section_reaches_the_tracker(seconds, tmp_path):
    """What a generated program opens: ``open_tracker`` with the run's ``tracking`` section."""
    from neural_dsl_tracking.plugins.tracking import TrackingSpec
    from neural_dsl_tracking.plugins.tracking.hooks import open_tracker

    source = tmp_path / "model.neural"
    source.write_text(HEAD + "}\n")
    section = TrackingSpec(system_metrics=seconds, store=str(tmp_path / "store"), visualize_every=0)
    tracker = open_tracker(section, {}, launch_dir=tmp_path, source_file=source)
    try:
        assert len(sampler_threads(tracker.run_id)) == seconds
    finally:
        tracker.finish()
    assert sampler_threads(tracker.run_id) == []


@pytest.mark.parametrize(("value", "says"), [
    ("-1", "'system_metrics' must be >= 0, got -1"),
    ('"10"', "'system_metrics' must be an integer"),
    ("often", "'system_metrics' must be an integer"),
    ("2.5", "'system_metrics' must be an integer"),
])
def test_a_bad_value_is_one_located_message(value, says):
    with pytest.raises(NeuralValidationError) as caught:
        parse_text(HEAD + f"  tracking < system_metrics: {value} >\n}}\n", filename="model.neural")
    message = str(caught.value)
    assert says in message and "model.neural:7:" in message, message
    assert "pydantic" not in message and "Input should be" not in message


@pytest.mark.parametrize("value", [-1, 1.5, True, "10", 86_401])
def test_the_python_api_refuses_a_bad_interval(value, tmp_path):
    with pytest.raises(TrackingError, match="system_metrics must be"):
        ExperimentTracker("bad", base_dir=tmp_path, system_metrics=value)


# ---- GPUs -------------------------------------------------------------------------------
def test_without_an_nvidia_driver_there_are_no_gpus():
    """The real nvidia-ml-py on a machine without a driver: no GPU, nothing read, no error."""
    pytest.importorskip("pynvml")
    gpus = Gpus()
    try:
        assert gpus.count == 0 and gpus.read() == {}
    finally:
        gpus.close()


class FakeNvml(SimpleNamespace):
    """A stand-in for nvidia-ml-py's ``pynvml`` with two GPUs: its names and result fields only."""

    class NVMLError(Exception):
        pass

    NVML_TEMPERATURE_GPU = 0

    def __init__(self) -> None:
        super().__init__(calls=[])

    def nvmlInit(self):
        self.calls.append("init")

    def nvmlShutdown(self):
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=40 + handle, memory=5)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(total=8 * 2**30, used=2**30 * (handle + 1), free=0)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        assert sensor == self.NVML_TEMPERATURE_GPU
        return 60 + handle


def test_each_gpu_is_read_through_the_nvml_calls(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpus = Gpus()
    assert gpus.count == 2
    assert gpus.read() == {
        "system/gpu0/utilization_percent": 40.0, "system/gpu0/memory_used_mb": 1024.0,
        "system/gpu0/memory_percent": 12.5, "system/gpu0/temperature_c": 60.0,
        "system/gpu1/utilization_percent": 41.0, "system/gpu1/memory_used_mb": 2048.0,
        "system/gpu1/memory_percent": 25.0, "system/gpu1/temperature_c": 61.0,
    }
    gpus.close()
    gpus.close()
    assert fake.calls == ["init", "shutdown"]
