"""The child process behind MirrorSet: isolation from the training process and its end."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest

from neural_dsl_tracking.backends import RunInfo, open_mirrors
from neural_dsl_tracking.backends import mirrorset


def mirror_children() -> list[int]:
    """Pids of this process's mirror children (from /proc)."""
    pids = []
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        for pid in children.read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"neural_dsl_tracking.backends.child" in cmdline:
                pids.append(int(pid))
    return pids


def test_the_child_runs_in_its_own_session_and_exits_after_finish(tmp_path, readback):
    before = set(mirror_children())
    mirrors = open_mirrors(["tensorboard"], {}, RunInfo("r", "e", None, (), tmp_path), lambda *a: None)
    (child,) = set(mirror_children()) - before
    assert os.getsid(child) != os.getsid(0)  # a Ctrl-C in the terminal does not reach it
    lower = os.getpriority(os.PRIO_PROCESS, 0) + 10  # training gets the CPU first
    deadline = time.monotonic() + 30
    while os.getpriority(os.PRIO_PROCESS, child) != lower and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.getpriority(os.PRIO_PROCESS, child) == lower
    mirrors.metrics([("loss", s, float(s), 1000.0 + s) for s in range(100)])
    mirrors.params({"lr": 0.1, "schedule": lambda epoch: 0.1})  # a value pickle cannot carry
    assert mirrors.finish("completed", timeout=30) == []
    assert child not in mirror_children()
    events = readback.tensorboard(tmp_path / "tensorboard" / "r")
    assert [e.step for e in events.Scalars("loss")] == list(range(100))
    (_, config), = readback.text(events, "config")
    assert '"lr": "0.1"' in config and '"schedule": "<function' in config


def test_a_killed_child_is_a_recorded_failure_and_the_caller_carries_on(tmp_path, caplog):
    failures: list[tuple[str, str]] = []
    before = set(mirror_children())
    mirrors = open_mirrors(["tensorboard"], {}, RunInfo("r", "e", None, (), tmp_path),
                           lambda *a: failures.append(a))
    (child,) = set(mirror_children()) - before
    mirrors.metrics([("loss", 0, 1.0, 1.0)])
    with caplog.at_level(logging.WARNING, "neural_dsl_tracking.backends"):
        os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not failures and time.monotonic() < deadline:
            time.sleep(0.05)
        mirrors.metrics([("loss", 1, 2.0, 2.0)])  # still never blocks or raises
        mirrors.params({"lr": 0.1})
        began = time.monotonic()
        unsent = mirrors.finish("completed", timeout=30)
    assert time.monotonic() - began < 2
    assert failures == [("tensorboard", "the mirror process ended unexpectedly (exit code -9); "
                                        "the run continues locally")]
    assert unsent == ["tensorboard: not sent: everything after the mirror process ended "
                      "(exit code -9)"]
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_columns_of_numpy_arrays_arrive_as_the_same_points(tmp_path, readback):
    import numpy as np

    steps = np.arange(500, dtype=np.int64)
    times = 1_700_000_000.0 + steps * 0.25
    columns = {"loss": (steps, 1.0 / (steps + 1), times), "acc": (steps[::5], steps[::5] / 500, times[::5])}
    mirrors = open_mirrors(["tensorboard"], {}, RunInfo("r", "e", None, (), tmp_path), lambda *a: None)
    mirrors.metrics(columns)
    mirrors.metrics({"loss": ([500], [0.5], [1_700_000_200.0])})  # plain lists work too
    assert mirrors.finish("completed", timeout=30) == []
    events = readback.tensorboard(tmp_path / "tensorboard" / "r")
    assert [(e.step, e.value, e.wall_time) for e in events.Scalars("loss")] == [
        *((s, np.float32(1.0 / (s + 1)), 1_700_000_000.0 + s * 0.25) for s in range(500)),
        (500, 0.5, 1_700_000_200.0)]
    assert [e.step for e in events.Scalars("acc")] == list(range(0, 500, 5))


def test_a_child_that_does_not_finish_in_time_is_stopped_with_one_report(
    tmp_path, caplog, monkeypatch
):
    monkeypatch.setattr(mirrorset, "FINISH_GRACE", 0.5)
    failures: list[tuple[str, str]] = []
    before = set(mirror_children())
    mirrors = open_mirrors(["tensorboard"], {}, RunInfo("r", "e", None, (), tmp_path),
                           lambda *a: failures.append(a))
    (child,) = set(mirror_children()) - before
    os.kill(child, signal.SIGSTOP)  # hung: it will never answer
    with caplog.at_level(logging.WARNING, "neural_dsl_tracking.backends"):
        unsent = mirrors.finish("completed", timeout=1)
        time.sleep(0.5)  # the reader sees the end of the pipe
    message = ("tensorboard: the mirror process did not finish within 1 s and was stopped; "
               "what it had not sent is lost to the mirrors")
    assert unsent == [message]
    assert [r.getMessage() for r in caplog.records] == [message]  # not "ended unexpectedly"
    assert failures == [] and child not in mirror_children()


def test_the_child_reports_its_own_failure_to_the_parent_without_a_traceback(tmp_path):
    import pickle
    import subprocess
    import sys

    from neural_dsl_tracking.backends import frames

    to_child_read, to_child_write = os.pipe()
    from_child_read, from_child_write = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-m", "neural_dsl_tracking.backends.child", str(to_child_read),
         str(from_child_write)], pass_fds=(to_child_read, from_child_write),
        stderr=subprocess.PIPE)
    os.close(to_child_read)
    os.close(from_child_write)
    with os.fdopen(to_child_write, "wb") as inbox:
        inbox.write(frames.encode(("open", [])))
        payload = b"not a pickle"
        inbox.write(frames.HEADER.pack(len(payload)) + payload)
    with os.fdopen(from_child_read, "rb") as outbox:
        replies = []
        while (message := frames.read(outbox)) is not None:
            replies.append(message)
    assert child.wait(30) == 1
    assert child.stderr.read() == b""
    with pytest.raises(pickle.UnpicklingError) as unpickling:
        pickle.loads(payload)
    assert replies == [("log", logging.ERROR, "the mirror process failed: UnpicklingError: "
                        + str(unpickling.value))]
