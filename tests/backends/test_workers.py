"""MirrorWorkers behaviour (queueing, batching, retries, bounded finish), driven through a small
in-test Mirror whose calls can be made to fail or hang on demand. The real mirrors are
tested against the real libraries in the other test files."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import pytest

from neural_dsl_tracking.dotted import flatten
from neural_dsl_tracking.backends import RunInfo, open_mirrors
from neural_dsl_tracking.backends import workers as workers_module
from neural_dsl_tracking.backends.base import ArtifactRef, Mirror, safe_name
from neural_dsl_tracking.backends.pacing import Pacer
from neural_dsl_tracking.backends.workers import MirrorWorkers
from neural_dsl_tracking.errors import ConfigError


class Down(ConnectionError):
    """What a mirror raises while its service is unreachable."""


class ScriptedMirror(Mirror):
    """Records every call; ``down`` makes calls fail, ``gate`` makes start() wait,
    ``call_seconds`` makes every call take that long."""

    name = "scripted"
    metrics_per_call = 3

    def __init__(self, run: RunInfo, start_error: BaseException | None = None) -> None:
        super().__init__(run, {})
        self.calls: list[tuple[str, object]] = []
        self.down = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.attempts = 0
        self.start_error = start_error
        self.call_seconds = 0.0

    def _call(self, kind: str, payload: object) -> None:
        if self.call_seconds:
            time.sleep(self.call_seconds)
        self.attempts += 1
        if self.down.is_set():
            raise Down("connection refused")
        self.calls.append((kind, payload))

    def start(self) -> None:
        self.gate.wait()
        if self.start_error is not None:
            raise self.start_error
        self._call("start", None)

    def log_params(self, params):
        self._call("params", params)

    def log_metrics(self, points):
        self._call("metrics", list(points))

    def log_artifact(self, artifact: ArtifactRef):
        self._call("artifact", artifact)

    def log_figure(self, path, name):
        self._call("figure", name)

    def finish(self, status):
        self._call("finish", status)

    def points(self) -> list[tuple]:
        return [p for kind, batch in self.calls if kind == "metrics" for p in batch]


@pytest.fixture
def run_info(tmp_path: Path) -> RunInfo:
    return RunInfo("run1", "exp", "name", ["t"], tmp_path)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers_module, "FIRST_RETRY_DELAY", 0.02)
    monkeypatch.setattr(workers_module, "MAX_RETRY_DELAY", 0.1)


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def points(n: int, key: str = "loss", start: int = 0) -> list[tuple[str, int, float, float]]:
    return [(key, start + i, float(i), 1000.0 + i) for i in range(n)]


def test_everything_arrives_in_order_in_batches_within_the_limit(run_info, failures, artifact_file):
    mirror = ScriptedMirror(run_info)
    mirrors = MirrorWorkers([mirror], lambda *a: failures.append(a))
    mirrors.params({"lr": 0.1, "opt": {"name": "adam"}})
    sent = points(7) + points(2, "acc") + points(1, "lr")
    mirrors.metrics(sent[:7])
    mirrors.metrics(sent[7:8])
    mirrors.metrics(sent[8:])
    mirrors.artifact(artifact_file[0], "checkpoint", 2, artifact_file[1], ["latest", "best"], "ckpt.pt")
    mirrors.figure("/x/loss.png", "loss")
    assert mirrors.finish("completed", timeout=10) == []
    kinds = [kind for kind, _ in mirror.calls]
    assert kinds[:2] == ["start", "params"] and kinds[-3:] == ["artifact", "figure", "finish"]
    assert mirror.points() == sent
    assert all(len(batch) <= 3 for kind, batch in mirror.calls if kind == "metrics")
    assert mirror.calls[-1] == ("finish", "completed")
    artifact = mirror.calls[-3][1]
    assert (artifact.name, artifact.version, artifact.aliases) == ("checkpoint", 2, ("latest", "best"))
    assert artifact.filename == "ckpt.pt"
    assert failures == []


def test_calls_never_block_even_while_the_mirror_is_stuck(run_info):
    mirror = ScriptedMirror(run_info)
    mirror.gate.clear()  # start() hangs until released
    mirrors = MirrorWorkers([mirror], lambda *a: None)
    began = time.perf_counter()
    for i in range(200):
        mirrors.metrics(points(50, start=50 * i))
        mirrors.params({"i": i})
    assert time.perf_counter() - began < 1.0
    mirror.gate.set()
    assert mirrors.finish("completed", timeout=30) == []
    assert len(mirror.points()) == 200 * 50


def test_a_failing_mirror_warns_once_retries_and_delivers_everything(
    run_info, failures, caplog, fast_retries
):
    mirror = ScriptedMirror(run_info)
    mirror.down.set()
    mirrors = MirrorWorkers([mirror], lambda *a: failures.append(a))
    with caplog.at_level(logging.DEBUG, "neural_dsl_tracking.backends"):
        mirrors.params({"lr": 0.1})
        mirrors.metrics(points(10))
        wait_until(lambda: mirror.attempts >= 5)  # backoff retries happen
        mirror.down.clear()
        wait_until(lambda: len(mirror.points()) == 10)
        mirrors.metrics(points(5, start=10))
        assert mirrors.finish("completed", timeout=10) == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Down: connection refused" in warnings[0].getMessage()
    assert "retrying" in warnings[0].getMessage()
    assert [backend for backend, _ in failures] == ["scripted"]
    assert mirror.points() == points(10) + points(5, start=10)
    assert any("recovered" in r.getMessage() for r in caplog.records)


def test_finish_gives_a_failing_mirror_one_last_try_and_reports_what_is_unsent(
    run_info, failures, fast_retries, artifact_file
):
    mirror = ScriptedMirror(run_info)
    mirrors = MirrorWorkers([mirror], lambda *a: failures.append(a))
    mirrors.metrics(points(4))
    wait_until(lambda: len(mirror.points()) == 4)
    mirror.down.set()  # the service goes away mid-run
    healthy_attempts = mirror.attempts
    mirrors.metrics(points(1200, start=4))
    mirrors.params({"a": 1, "b": {"c": 2}})
    mirrors.artifact(artifact_file[0], "model", 1, artifact_file[1])
    mirrors.figure("/x/loss.png", "loss")
    wait_until(lambda: mirror.attempts >= healthy_attempts + 3)
    attempts = mirror.attempts
    began = time.monotonic()
    unsent = mirrors.finish("failed", timeout=60)
    assert time.monotonic() - began < 5  # not the whole bound: it was already down
    assert mirror.attempts == attempts + 1
    assert unsent == [
        "scripted: not sent: 1200 metric points, 2 parameters, artifacts model v1, plots loss, "
        "the run's end (status failed) (unreachable: Down: connection refused)"
    ]
    # on_failure reported the failure while running; the summary is finish's return value
    assert [message.split(":")[0] for _, message in failures] == [
        "scripted mirror failed, retrying with backoff (the local store keeps everything)"
    ]


def test_finish_is_bounded_when_a_mirror_hangs(run_info):
    mirror = ScriptedMirror(run_info)
    mirror.gate.clear()
    mirrors = MirrorWorkers([mirror], lambda *a: None)
    mirrors.metrics(points(3))
    began = time.monotonic()
    unsent = mirrors.finish("completed", timeout=0.5)
    assert time.monotonic() - began < 3
    assert len(unsent) == 1
    assert unsent[0].startswith("scripted: not sent: 3 metric points, the run's end")
    assert "finish timed out after 0.5 s" in unsent[0]
    mirror.gate.set()
    time.sleep(0.1)
    assert mirror.points() == []  # abandoned: nothing sent after finish returned


def test_missing_library_disables_the_mirror_with_one_warning(run_info, failures, caplog):
    mirror = ScriptedMirror(run_info, start_error=ModuleNotFoundError("No module named 'x'"))
    mirrors = MirrorWorkers([mirror], lambda *a: failures.append(a))
    with caplog.at_level(logging.WARNING, "neural_dsl_tracking.backends"):
        mirrors.metrics(points(5))
        wait_until(lambda: failures)
        mirrors.metrics(points(5, start=5))
        mirrors.params({"lr": 1})
        unsent = mirrors.finish("completed", timeout=5)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert failures == [("scripted", "scripted mirror disabled, nothing will be mirrored: "
                                     "ModuleNotFoundError: No module named 'x'")]
    assert unsent == ["scripted: not sent: 10 metric points, 1 parameters, the run's end "
                      "(status completed) (disabled: ModuleNotFoundError: No module named 'x')"]


def test_a_broken_mirror_does_not_hold_up_the_others(run_info, fast_retries):
    healthy, broken = ScriptedMirror(run_info), ScriptedMirror(run_info)
    broken.down.set()
    mirrors = MirrorWorkers([healthy, broken], lambda *a: None)
    mirrors.metrics(points(9))
    wait_until(lambda: len(healthy.points()) == 9)
    unsent = mirrors.finish("completed", timeout=5)
    assert healthy.calls[-1] == ("finish", "completed")
    assert len(unsent) == 1 and unsent[0].startswith("scripted: not sent: 9 metric points")


def test_calls_after_finish_are_ignored(run_info):
    mirror = ScriptedMirror(run_info)
    mirrors = MirrorWorkers([mirror], lambda *a: None)
    assert mirrors.finish("completed", 5) == []
    mirrors.metrics(points(3))
    assert mirrors.finish("completed", 5) == []
    assert mirror.points() == []


def test_open_mirrors_skips_local_and_rejects_unknown_names_and_options(run_info):
    assert len(open_mirrors(["local"], {}, run_info, lambda *a: None)) == 0
    with pytest.raises(ConfigError, match="unknown tracking backend 'mlfow'.*mlflow"):
        open_mirrors(["mlfow"], {}, run_info, lambda *a: None)
    with pytest.raises(ConfigError, match="unknown mlflow option.*tracking_url"):
        open_mirrors(["mlflow"], {"mlflow": {"tracking_url": "x"}}, run_info, lambda *a: None)


def test_helpers():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {
        "a.b": 1, "a.c.d": [1, 2], "e": {}}
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("best model.pt") == "best_model.pt"
    sha = "ab" * 32
    assert ArtifactRef(Path(f"/o/ab/{sha}"), "checkpoint", 1, sha).filename == "checkpoint"
    assert ArtifactRef(Path("/x/ck.pt"), "checkpoint", 1, sha).filename == "ck.pt"


def test_an_artifact_file_changed_after_logging_is_never_sent(run_info, failures, artifact_file):
    path, sha = artifact_file
    mirror = ScriptedMirror(run_info)
    mirror.gate.clear()
    mirrors = MirrorWorkers([mirror], lambda *a: failures.append(a))
    mirrors.artifact(path, "checkpoint", 1, sha, ["latest"], "ckpt.pt")
    path.write_bytes(b"the next epoch's weights")  # overwritten before the worker got to it
    mirror.gate.set()
    unsent = mirrors.finish("completed", timeout=10)
    assert [kind for kind, _ in mirror.calls] == ["start", "finish"]
    assert unsent == [f"scripted: not sent: artifacts checkpoint v1 (rejected: ArtifactChangedError: "
                      f"{path} changed after checkpoint v1 was logged; its original bytes are in "
                      "the local store only)"]
    assert failures[0][1].startswith("scripted mirror rejected artifact: ArtifactChangedError")


def test_a_backlog_over_the_bound_is_reported_once_and_counted(
    run_info, failures, monkeypatch, caplog
):
    monkeypatch.setattr(workers_module, "MAX_PENDING_POINTS", 10)
    mirror = ScriptedMirror(run_info)
    mirror.gate.clear()  # the mirror is stuck, the backlog grows
    mirrors = MirrorWorkers([mirror], lambda *a: failures.append(a))
    with caplog.at_level(logging.WARNING, "neural_dsl_tracking.backends"):
        for i in range(5):
            mirrors.metrics(points(4, start=4 * i))
    assert len(failures) == 1 and "too far behind (backlog over 10 points)" in failures[0][1]
    assert len(caplog.records) == 1
    mirror.gate.set()
    unsent = mirrors.finish("completed", timeout=10)
    assert mirror.points() == points(4) + points(4, start=4)
    assert unsent == ["scripted: not sent: 12 metric points (backlog over 10 points)"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_pacer_keeps_busy_time_within_its_share_unless_too_far_behind():
    clock = FakeClock()
    pacer = Pacer(share=0.25, max_lag=10.0, burst=1.0, clock=clock)
    assert pacer.delay() == 0  # a full bucket
    pacer.spent(1.5)  # 0.5 s over budget: 0.5 / 0.25 s to earn it back
    assert pacer.delay() == pytest.approx(2.0)
    clock.now += 1.0
    assert pacer.delay() == pytest.approx(1.0)
    clock.now += 60.0
    assert pacer.delay() == 0
    pacer.spent(1.0 + 2.0)  # the bucket holds at most `burst`, however long the quiet spell
    assert pacer.delay() == pytest.approx(8.0)
    pacer.report_lag(1, 6.0)
    pacer.report_lag(2, 5.0)  # 11 s of work queued: no more waiting until caught up
    assert pacer.delay() == 0
    pacer.report_lag(2, 1.0)
    assert pacer.delay() == pytest.approx(8.0)


def test_paced_mirrors_trail_training_and_finish_sends_the_rest_at_once(run_info, failures):
    mirror = ScriptedMirror(run_info)
    mirror.call_seconds = 0.05  # with a share of 0.001, each call earns a 50 s wait
    mirrors = MirrorWorkers([mirror], lambda *a: failures.append(a),
                            pacer=Pacer(share=0.001, max_lag=1e9, burst=0.0))
    mirrors.metrics(points(9))  # three calls of metrics_per_call = 3
    wait_until(lambda: len(mirror.points()) == 3)
    time.sleep(0.5)
    assert len(mirror.points()) == 3  # the second call waits for the budget
    started = time.monotonic()
    assert mirrors.finish("completed", timeout=30) == []
    assert time.monotonic() - started < 10  # not the 100 s the budget would take
    assert mirror.points() == points(9)
    assert mirror.calls[-1] == ("finish", "completed") and failures == []


def test_a_mirror_too_far_behind_catches_up_without_waiting_for_finish(
    run_info, failures, caplog, monkeypatch
):
    monkeypatch.setattr(workers_module, "FINISH_NOTICE_SECONDS", 0.01)
    mirror = ScriptedMirror(run_info)
    mirror.call_seconds = 0.05  # ~0.017 s per point, learnt from the first call
    mirrors = MirrorWorkers([mirror], lambda *a: failures.append(a),
                            pacer=Pacer(share=0.001, max_lag=0.2, burst=0.0))
    mirrors.metrics(points(60))  # ~1 s of work queued, far over max_lag
    wait_until(lambda: len(mirror.points()) >= 45)
    time.sleep(0.3)
    assert len(mirror.points()) < 60  # within max_lag of the end, pacing applies again
    with caplog.at_level(logging.INFO, "neural_dsl_tracking.backends"):
        assert mirrors.finish("completed", timeout=30) == []
    assert re.search(r"sending the queued metric points \(scripted \d+\), about \d+ s",
                     caplog.text)
    assert mirror.points() == points(60)


def test_mirrors_start_one_at_a_time_but_a_stuck_start_holds_no_one_for_long(
    run_info, failures, monkeypatch
):
    monkeypatch.setattr(workers_module, "START_TURN_WAIT", 0.5)
    starts: list[tuple[str, float, float]] = []

    class Timed(ScriptedMirror):
        def start(self) -> None:
            began = time.monotonic()
            super().start()
            time.sleep(0.2)
            starts.append((self.name, began, time.monotonic()))

    first, second = Timed(run_info), Timed(run_info)
    first.name, second.name = "first", "second"
    mirrors = MirrorWorkers([first, second], lambda *a: failures.append(a))
    mirrors.metrics(points(1))
    wait_until(lambda: len(starts) == 2)
    (_, began_a, ended_a), (_, began_b, ended_b) = sorted(starts, key=lambda s: s[1])
    assert ended_a <= began_b  # never both importing at once
    mirrors.finish("completed", timeout=10)

    stuck, free = Timed(run_info), Timed(run_info)
    stuck.name, free.name = "stuck", "free"
    stuck.gate.clear()  # its start hangs, as on a service that never answers
    starts.clear()
    mirrors = MirrorWorkers([stuck, free], lambda *a: failures.append(a))
    mirrors.metrics(points(1))
    wait_until(lambda: [name for name, _, _ in starts] == ["free"], timeout=5)
    stuck.gate.set()
    assert mirrors.finish("completed", timeout=10) == []
