"""Durability: concurrent writer processes, kill -9, SIGTERM, exit without finish()."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body))
    return path


def _spawn(script: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


WRITER = """
    import sys
    from neural_dsl_tracking.tracking import ExperimentTracker
    base, store, index, n = sys.argv[1], sys.argv[2] or None, int(sys.argv[3]), int(sys.argv[4])
    tracker = ExperimentTracker("multirun", base_dir=base, store=store, run_name=f"job{index}",
                                auto_visualize=False, flush_interval=0.05)
    for step in range(n):
        tracker.log_metrics({"loss": step * 0.5 + index}, step=step)
    tracker.finish()
    print(tracker.run_id)
"""


def test_four_processes_write_one_store_without_loss(store_kwargs, tmp_path):
    n = 50_000
    script = _script(tmp_path, WRITER)
    base, store = str(store_kwargs["base_dir"]), store_kwargs["store"] or ""
    jobs = [_spawn(script, base, store, str(i), str(n)) for i in range(4)]
    outputs = [job.communicate(timeout=240) for job in jobs]
    for job, (out, err) in zip(jobs, outputs):
        assert job.returncode == 0, err
        assert "Traceback" not in err
    manager = ExperimentManager(**store_kwargs)
    runs = manager.list_experiments(experiment="multirun")
    assert sorted(r.run_name for r in runs) == ["job0", "job1", "job2", "job3"]
    for run in runs:
        index = int(run.run_name[-1])
        assert run.status == "completed" and run.metrics["loss"]["count"] == n
        history = manager.get_metric_history(run.run_id, "loss")
        assert np.array_equal(history.steps, np.arange(n))
        assert np.array_equal(history.values, np.arange(n) * 0.5 + index)


KILLED = """
    import sys, time
    from neural_dsl_tracking.tracking import ExperimentTracker
    tracker = ExperimentTracker("doomed", base_dir=sys.argv[1], auto_visualize=False,
                                flush_interval=0.05)
    print(tracker.run_id, flush=True)
    step = 0
    while True:
        tracker.log_metrics({"loss": float(step)}, step=step)
        step += 1
        if step % 1000 == 0:
            print(step, flush=True)
            time.sleep(0.01)
"""


def test_sigkill_mid_logging_keeps_flushed_points_and_shows_crashed(tmp_path):
    base = tmp_path / "store"
    job = _spawn(_script(tmp_path, KILLED), str(base))
    run_id = job.stdout.readline().strip()
    while int(job.stdout.readline()) < 20_000:
        pass
    time.sleep(0.3)  # several flush rounds have committed by now
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=30)

    manager = ExperimentManager(base_dir=base, crash_after=0.5)
    time.sleep(0.6)
    run = manager.get_experiment(run_id)
    assert run.status == "crashed"
    history = manager.get_metric_history(run_id, "loss")
    assert len(history) >= 20_000 and run.metrics["loss"]["count"] == len(history)
    # what was flushed is a gap-free prefix of what was logged
    assert np.array_equal(history.steps, np.arange(len(history)))
    assert np.array_equal(history.values, np.arange(len(history), dtype=float))
    # the store still takes new runs
    with ExperimentTracker("after", base_dir=base, auto_visualize=False) as tracker:
        tracker.log_metrics({"x": 1.0})
    assert manager.get_experiment(tracker.run_id).status == "completed"
    # with the default threshold (30 s) the same run still reads as running
    assert ExperimentManager(base_dir=base).get_experiment(run_id).status == "running"


SIGTERMED = """
    import sys, time
    from neural_dsl_tracking.tracking import ExperimentTracker
    tracker = ExperimentTracker("term", base_dir=sys.argv[1], auto_visualize=False,
                                flush_interval=60)
    for step in range(1234):
        tracker.log_metrics({"loss": float(step)})
    print(tracker.run_id, flush=True)
    time.sleep(60)
"""


def test_sigterm_flushes_and_marks_interrupted_then_terminates(tmp_path):
    base = tmp_path / "store"
    job = _spawn(_script(tmp_path, SIGTERMED), str(base))
    run_id = job.stdout.readline().strip()
    job.send_signal(signal.SIGTERM)
    job.wait(timeout=30)
    assert job.returncode == -signal.SIGTERM
    run = ExperimentManager(base_dir=base).get_experiment(run_id)
    assert run.status == "interrupted" and run.metrics["loss"]["count"] == 1234


def test_previous_sigterm_handler_is_chained(tmp_path):
    base = tmp_path / "store"
    script = _script(tmp_path, """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *a: (print("previous handler ran", flush=True), sys.exit(3)))
        from neural_dsl_tracking.tracking import ExperimentTracker
        tracker = ExperimentTracker("term", base_dir=sys.argv[1], auto_visualize=False)
        tracker.log_metrics({"loss": 1.0})
        print(tracker.run_id, flush=True)
        time.sleep(60)
    """)
    job = _spawn(script, str(base))
    run_id = job.stdout.readline().strip()
    job.send_signal(signal.SIGTERM)
    out, _ = job.communicate(timeout=30)
    assert job.returncode == 3 and "previous handler ran" in out
    assert ExperimentManager(base_dir=base).get_experiment(run_id).status == "interrupted"


@pytest.mark.parametrize("ending, status", [("pass", "completed"),
                                            ("raise ValueError('boom')", "failed")])
def test_exit_without_finish_flushes_and_records_the_outcome(tmp_path, ending, status):
    base = tmp_path / "store"
    job = _spawn(_script(tmp_path, f"""
        import sys
        from neural_dsl_tracking.tracking import ExperimentTracker
        tracker = ExperimentTracker("exit", base_dir=sys.argv[1], auto_visualize=False,
                                    flush_interval=60)
        for step in range(500):
            tracker.log_metrics({{"loss": float(step)}})
        print(tracker.run_id, flush=True)
        {ending}
    """), str(base))
    out, _ = job.communicate(timeout=60)
    run = ExperimentManager(base_dir=base).get_experiment(out.split()[0])
    assert run.status == status and run.metrics["loss"]["count"] == 500


def test_context_manager_records_failed_and_interrupted(tmp_path):
    base = tmp_path / "store"
    with pytest.raises(RuntimeError):
        with ExperimentTracker("ctx", base_dir=base, auto_visualize=False) as failed:
            failed.log_metrics({"loss": 1.0})
            raise RuntimeError("diverged")
    with pytest.raises(KeyboardInterrupt):
        with ExperimentTracker("ctx", base_dir=base, auto_visualize=False) as stopped:
            raise KeyboardInterrupt
    with ExperimentTracker("ctx", base_dir=base, auto_visualize=False) as ok:
        ok.log_metrics({"loss": 1.0})
    manager = ExperimentManager(base_dir=base)
    assert manager.get_experiment(failed.run_id).status == "failed"
    assert manager.get_experiment(failed.run_id).metrics["loss"]["count"] == 1
    assert manager.get_experiment(stopped.run_id).status == "interrupted"
    assert manager.get_experiment(ok.run_id).status == "completed"
    assert (failed.status, stopped.status, ok.status) == ("failed", "interrupted", "completed")


def test_store_file_is_consistent_after_kill(tmp_path):
    """SQLite's own integrity check passes on a store whose writer was killed."""
    import sqlite3

    base = tmp_path / "store"
    job = _spawn(_script(tmp_path, KILLED), str(base))
    job.stdout.readline()
    while int(job.stdout.readline()) < 5_000:
        pass
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    with sqlite3.connect(base / "store.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_locked_store_delays_writes_but_loses_nothing(tmp_path):
    """Another process holding the write lock: the writer waits and retries; logging goes on."""
    import sqlite3

    base = tmp_path / "store"
    tracker = ExperimentTracker("locked", base_dir=base, auto_visualize=False, flush_interval=0.05)
    blocker = sqlite3.connect(base / "store.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    for step in range(10_000):
        tracker.log_metrics({"loss": float(step)})
    time.sleep(0.5)  # several flush rounds find the store locked
    blocker.execute("COMMIT")
    blocker.close()
    tracker.finish()
    history = ExperimentManager(base_dir=base).get_metric_history(tracker.run_id, "loss")
    assert np.array_equal(history.values, np.arange(10_000, dtype=float))


def test_postgresql_connection_dropped_mid_run_reconnects_without_loss(postgres_url, tmp_path):
    import psycopg

    tracker = ExperimentTracker("dropped", base_dir=tmp_path, store=postgres_url,
                                auto_visualize=False, flush_interval=0.05)
    for step in range(1000):
        tracker.log_metrics({"loss": float(step)})
    tracker.get_best_metric("loss")  # flushed
    conninfo = "postgresql://" + postgres_url.split("://", 1)[1]
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    for step in range(1000, 2000):
        tracker.log_metrics({"loss": float(step)})
    tracker.finish()
    manager = ExperimentManager(base_dir=tmp_path, store=postgres_url)
    assert manager.get_experiment(tracker.run_id).status == "completed"
    history = manager.get_metric_history(tracker.run_id, "loss")
    assert np.array_equal(history.values, np.arange(2000, dtype=float))


@pytest.mark.parametrize("value", ["abc", "nan", "-5"])
def test_a_bad_crash_after_setting_is_a_clear_error(tmp_path, monkeypatch, value):
    from neural_dsl_tracking.errors import TrackingError

    with ExperimentTracker("c", base_dir=tmp_path, auto_visualize=False):
        pass
    monkeypatch.setenv("NEURAL_TRACKING_CRASH_AFTER", value)
    with pytest.raises(TrackingError, match=f"NEURAL_TRACKING_CRASH_AFTER.*{value!r}"):
        ExperimentManager(base_dir=tmp_path).list_experiments()
    monkeypatch.setenv("NEURAL_TRACKING_CRASH_AFTER", "")  # empty: the default
    assert len(ExperimentManager(base_dir=tmp_path).list_experiments()) == 1
    if value != "abc":
        with pytest.raises(TrackingError, match=f"crash_after must be.*{value}"):
            ExperimentManager(base_dir=tmp_path, crash_after=float(value))


KILLED_WHILE_FREEING = """
    import os, signal, sys
    from pathlib import Path
    from neural_dsl_tracking.tracking import ExperimentTracker
    from neural_dsl_tracking.tracking.objects import ObjectStore
    base, store, scratch = sys.argv[1], sys.argv[2] or None, Path(sys.argv[3])
    tracker = ExperimentTracker("freeing", base_dir=base, store=store, auto_visualize=False)
    print(tracker.run_id, flush=True)
    (scratch / "model.bin").write_bytes(b"first")
    tracker.log_artifact(scratch / "model.bin", name="single", version=False)
    freeing = ObjectStore.delete

    def delete_then_die(self, sha256):
        freed = freeing(self, sha256)  # the replaced object is gone from disk ...
        os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies right after
        return freed

    ObjectStore.delete = delete_then_die
    (scratch / "model.bin").write_bytes(b"second")
    tracker.log_artifact(scratch / "model.bin", name="single", version=False)
"""


def test_a_process_killed_while_freeing_a_replaced_artifact_loses_no_object(store_kwargs, tmp_path):
    """Replacing an artifact (``version=False``) frees the old object only once the new version
    has committed: killed right after the unlink, the store's version still has its object."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    job = _spawn(_script(tmp_path, KILLED_WHILE_FREEING), str(store_kwargs["base_dir"]),
                 store_kwargs["store"] or "", str(scratch))
    run_id = job.stdout.readline().strip()
    assert job.wait(timeout=60) == -signal.SIGKILL, job.stderr.read()

    manager = ExperimentManager(**store_kwargs)
    try:
        [version] = manager.list_artifact_versions(run_id)
        stored = manager.get_artifact_version(run_id, "single", version.version)  # hashes it
        assert stored.path.read_bytes() == b"second"
    finally:
        manager.close()
