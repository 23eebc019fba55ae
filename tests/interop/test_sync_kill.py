"""A sync killed with SIGKILL mid-run continues where it stopped: the next sync sends the
rest, and the destination ends with every point exactly once (read back with the
destination's own reader)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest

from neural_dsl_tracking.tracking.store import Store

pytestmark = pytest.mark.chaos
KEYS = ("loss", "val/accuracy", "lr")  # bench/interop.py's, read back by its reader


def _big_run(base: Path, points: int) -> SimpleNamespace:
    """A completed run written through the store: three metrics of ``points`` points each,
    distinct wall times, an artifact."""
    store = Store(str(base))
    try:
        run_id = store.create_run(experiment="big", run_name="big", tags=["x"], start_time=1.7e9)
        store.log_params(run_id, {"lr": 0.1, "epochs": 3})
        steps = np.arange(points, dtype=np.int64)
        series = {key: (steps, np.sin(steps / (i + 7.0)), 1.7e9 + steps * 0.0137 + i)
                  for i, key in enumerate(KEYS)}
        store.append_metrics(run_id, series)
        store.set_status(run_id, "completed", end_time=1.8e9)
    finally:
        store.close()
    return SimpleNamespace(run_id=run_id, series=series, base=base)


def _sync_command(run: SimpleNamespace, *args: str) -> list[str]:
    return [sys.executable, "-m", "neural_dsl_tracking", "experiments", "--base-dir", str(run.base),
            "sync", run.run_id, *args]


def _env() -> dict[str, str]:
    """The sync's environment: as a shell's, without the W&B service this test process may
    have started (inherited, it would outlive the killed sync and hold its run id)."""
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    return {**env, "NEURAL_NO_PROGRESS": "1"}


def _sent(base: Path) -> tuple[int, bool]:
    """Points confirmed so far by the running sync, and whether it has finished."""
    import json

    try:
        with sqlite3.connect(f"file:{base / 'store.db'}?mode=ro", uri=True, timeout=0.2) as db:
            rows = db.execute("SELECT state FROM sync_progress").fetchall()
    except sqlite3.Error:
        return 0, False
    if not rows:
        return 0, False
    state = json.loads(rows[0][0])
    return sum(state["metrics"].values()), state["finished"] is not None


def _kill_midway(command: list[str], base: Path, total: int, timeout: float = 60,
                 midway: Callable[[], bool] | None = None) -> int:
    """Start ``command``, SIGKILL it once some but not all points are confirmed (or once
    ``midway()`` says so); returns how many were confirmed then."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sent, finished = _sent(base)
            assert not finished and process.poll() is None, "the sync ended before it was killed"
            if midway() if midway else sent >= total // 10:
                process.send_signal(signal.SIGKILL)
                process.wait(10)
                return sent
            time.sleep(0.005)
        raise AssertionError(f"no progress within {timeout} s")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _finish(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout


def test_tensorboard_sync_killed_midway_ends_with_every_point_once(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = _big_run(tmp_path / "store", 40_000)
    log_dir = tmp_path / "tb"
    command = _sync_command(run, "--to", "tensorboard", "--log-dir", str(log_dir))
    confirmed = _kill_midway(command, run.base, 3 * 40_000)
    out = _finish(command)
    assert f"{3 * 40_000 - confirmed:,} points" in out  # only what was not confirmed
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 2  # the killed one, cut back

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    for key, (steps, values, times) in run.series.items():
        got = events.Scalars(key)
        assert [e.step for e in got] == steps.tolist()
        assert [e.value for e in got] == values.astype(np.float32).tolist()
        assert [e.wall_time for e in got] == times.tolist()
    # the params went in the killed session; the HParams summary at the end still has them
    start = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    assert {k: v.number_value for k, v in start.hparams.items()} == {"lr": 0.1, "epochs": 3}
    assert start.start_time_secs == 1.7e9  # the run's own start


def test_mlflow_sync_killed_midway_ends_with_every_point_once(tmp_path):
    from mlflow import MlflowClient

    run = _big_run(tmp_path / "store", 3_000)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    command = _sync_command(run, "--to", "mlflow", "--tracking-uri", uri)
    _kill_midway(command, run.base, 3 * 3_000)
    _finish(command)

    client = MlflowClient(tracking_uri=uri)
    [mlflow_run] = client.search_runs([client.get_experiment_by_name("big").experiment_id])
    assert mlflow_run.info.status == "FINISHED"
    for key, (steps, values, times) in run.series.items():
        got = sorted((m.step, m.value, m.timestamp)
                     for m in client.get_metric_history(mlflow_run.info.run_id, key))
        assert got == list(zip(steps.tolist(), values.tolist(),
                               np.round(times * 1000).astype(np.int64).tolist()))


def test_wandb_sync_killed_midway_ends_with_every_point_once(tmp_path, monkeypatch, bench_interop):
    """A W&B session is confirmed whole: the killed session's folder goes, the next sync
    sends the run again as the same run id, and the offline runs hold every point once."""
    for name, value in bench_interop.wandb_env(tmp_path).items():  # staging, cache: not in ~
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-out"))
    run = _big_run(tmp_path / "store", 20_000)
    command = _sync_command(run, "--to", "wandb")
    files = tmp_path / "wandb-out" / "wandb"

    def writing() -> bool:  # the session's run file has a good part of the history
        return any(f.stat().st_size > 300_000 for f in files.glob("offline-run-*/run-*.wandb"))

    assert _kill_midway(command, run.base, 3 * 20_000, midway=writing) == 0  # none confirmed
    _finish(command)
    assert len(list(files.glob("offline-run-*/run-*.wandb"))) == 1  # the killed one removed
    [back] = bench_interop.read_wandb(files).values()
    row_times = np.max([times for _, _, times in run.series.values()], axis=0)  # one per W&B row
    for key, (steps, values, _times) in run.series.items():
        assert back.metrics[key] == list(zip(steps.tolist(), values.tolist(), row_times.tolist()))
