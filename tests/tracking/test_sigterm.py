"""SIGTERM while the store is being written: the close waits for the write, loses nothing.

The signal is made to land inside a transaction deterministically: a ``sitecustomize``
put on the child's ``PYTHONPATH`` traces the store's ``Cursor`` and sends the process
SIGTERM from inside the first statement that matches (a real signal, a real store).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from neural_dsl_tracking.tracking import ExperimentManager

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "examples" / "digits.neural"

SIGTERM_INSIDE = '''
"""Armed by SIGTERM_AT_SQL: sends SIGTERM from inside the first store statement whose SQL
contains it (and whose parameters contain SIGTERM_AT_ARGUMENT, when set), in the main
thread, or in the metric writer's thread with SIGTERM_IN_WRITER=1 (which then holds its
transaction open for half a second, so the main thread handles the signal meanwhile).
"A|B" sends a second SIGTERM inside the first statement with B after that."""
import os, signal, sys, threading, time

SQL = os.environ.pop("SIGTERM_AT_SQL", None)  # popped: child processes are not armed
ARGUMENT = os.environ.pop("SIGTERM_AT_ARGUMENT", "")
IN_WRITER = os.environ.pop("SIGTERM_IN_WRITER", "") == "1"
_targets = SQL.split("|") if SQL else []


def _tracer(frame, event, arg):
    code = frame.f_code
    if not _targets or code.co_name not in ("execute", "executemany") or not code.co_filename.endswith("db.py"):
        return None
    sql, params = frame.f_locals.get("sql", ""), frame.f_locals.get("params", frame.f_locals.get("rows"))
    if _targets[0] in sql and ARGUMENT in repr(params):
        _targets.pop(0)
        print("SIGTERM inside:", " ".join(sql.split()[:3]), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        if IN_WRITER:
            time.sleep(0.5)
    return None


if SQL:
    (threading.settrace if IN_WRITER else sys.settrace)(_tracer)
'''


def _armed_env(tmp_path: Path, sql: str, argument: str = "", in_writer: bool = False) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SIGTERM_INSIDE)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
            "SIGTERM_AT_SQL": sql, "SIGTERM_AT_ARGUMENT": argument,
            "SIGTERM_IN_WRITER": "1" if in_writer else "", "NEURAL_NO_PROGRESS": "1"}


def _assert_terminated_cleanly(job: subprocess.CompletedProcess) -> None:
    assert job.returncode == -signal.SIGTERM, (job.returncode, job.stdout[-2000:], job.stderr[-2000:])
    assert "Traceback" not in job.stderr and "could not close" not in job.stderr, job.stderr


def _assert_every_point(manager: ExperimentManager, run_id: str, key: str, logged: int,
                        value=lambda steps: steps / 2) -> int:
    """Steps 0.. of ``key`` are all there, at least the ``logged`` ones; returns how many."""
    history = manager.get_metric_history(run_id, key)
    count = len(history.steps)
    assert count >= logged, f"{logged - count} of {logged} points lost"
    assert np.array_equal(history.steps, np.arange(count))
    assert np.array_equal(history.values, value(history.steps))
    return count


KINDS = {  # kind: (the statement the signal lands in, the call in the script that makes it)
    "artifact": ("INSERT INTO artifact_versions", "tracker.log_artifact(__file__, name='script')"),
    "hyperparameters": ("INSERT INTO params", "tracker.log_hyperparameters({'lr': 0.1, 'units': 64})"),
    "metric flush": ("INSERT INTO metric_chunks", "tracker.get_best_metric('loss')"),
    "writer flush": ("INSERT INTO metric_chunks", "pass"),
}

ONE_WRITE = """
    import sys, time
    from neural_dsl_tracking.tracking import ExperimentTracker
    base, store, interval = sys.argv[1], sys.argv[2] or None, float(sys.argv[3])
    tracker = ExperimentTracker("sigterm", base_dir=base, store=store, auto_visualize=False,
                                flush_interval=interval)
    print(tracker.run_id, flush=True)
    for step in range(100):
        tracker.log_metrics({{"loss": step / 2}}, step=step)
    print("logged 100", flush=True)
    {call}
    time.sleep(30)
    print("still alive", flush=True)
"""


@pytest.mark.parametrize("kind", list(KINDS))
def test_sigterm_inside_a_store_write_closes_the_run_interrupted_with_every_point(
        kind, store_kwargs, manager, tmp_path):
    sql, call = KINDS[kind]
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(ONE_WRITE.format(call=call)))
    in_writer = kind == "writer flush"
    job = subprocess.run(
        [sys.executable, str(script), str(store_kwargs["base_dir"]), store_kwargs["store"] or "",
         "0.3" if in_writer else "60"],
        env=_armed_env(tmp_path, sql, in_writer=in_writer), capture_output=True, text=True, timeout=90)
    _assert_terminated_cleanly(job)
    run_id, logged, inside = job.stdout.splitlines()[:3]
    assert logged == "logged 100" and inside.startswith("SIGTERM inside: INSERT INTO")
    run = manager.get_experiment(run_id)
    assert run.status == "interrupted"
    assert _assert_every_point(manager, run_id, "loss", 100) == 100
    if kind == "artifact":  # the write the signal landed in is complete
        assert [v.version for v in manager.list_artifact_versions(run_id, "script")] == [1]
    if kind == "hyperparameters":
        assert run.hyperparameters == {"lr": 0.1, "units": 64}


def test_a_second_sigterm_inside_the_close_waits_for_it(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(ONE_WRITE.format(call=KINDS["artifact"][1])))
    base = tmp_path / "store"
    env = _armed_env(tmp_path, "INSERT INTO artifact_versions|INSERT INTO metric_chunks")
    job = subprocess.run([sys.executable, str(script), str(base), "", "60"], env=env,
                         capture_output=True, text=True, timeout=90)
    _assert_terminated_cleanly(job)
    assert job.stdout.count("SIGTERM inside:") == 2, job.stdout
    run_id = job.stdout.split()[0]
    manager = ExperimentManager(base_dir=base)
    assert manager.get_experiment(run_id).status == "interrupted"
    assert _assert_every_point(manager, run_id, "loss", 100) == 100


@pytest.fixture(scope="module")
def digits_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from neural_dsl_tracking.compiler import compile_network
    from neural_dsl_tracking.language import parse_file

    out = tmp_path_factory.mktemp("digits")
    return compile_network(parse_file(DIGITS).network(), DIGITS, out / "program")


@pytest.mark.slow
def test_sigterm_inside_a_checkpoint_of_a_compiled_program(digits_program, store_kwargs, tmp_path):
    launch = tmp_path / "launch"
    launch.mkdir()
    store = store_kwargs["store"] or str(store_kwargs["base_dir"])
    env = _armed_env(tmp_path, "INSERT INTO artifact_versions", argument="'checkpoint'")
    env["TMPDIR"] = str(tmp_path)  # the program's work folder stays out of the real /tmp
    job = subprocess.run([sys.executable, str(digits_program), "execution.threads=1", "train.epochs=3",
                          "tracking.visualize_every=0", f"tracking.store={store}"],
                         cwd=launch, env=env, capture_output=True, text=True, timeout=300)
    _assert_terminated_cleanly(job)
    assert "epoch 1/3" in job.stdout and "SIGTERM inside: INSERT INTO artifact_versions" in job.stdout
    assert "epoch 2/3" not in job.stdout
    manager = ExperimentManager(base_dir=launch / "neural_experiments", store=store)
    (run,) = manager.list_experiments()
    assert run.status == "interrupted"
    assert run.metrics["batch_loss"]["count"] == 45 and run.metrics["val_accuracy"]["count"] == 1
    assert run.hyperparameters["train.epochs"] == 3
    checkpoints = manager.list_artifact_versions(run.run_id, "checkpoint")
    assert [(v.version, v.metadata["epoch"]) for v in checkpoints] == [(1, 1)]


LOGGING_LOOP = """
    import os, sys
    from neural_dsl_tracking.tracking import ExperimentTracker
    tracker = ExperimentTracker("chaos", base_dir=sys.argv[1], auto_visualize=False,
                                flush_interval=0.02)
    weights = os.path.join(sys.argv[1], "weights.bin")
    with open(weights, "wb") as out:
        out.write(os.urandom(4096))
    print("ready", tracker.run_id, flush=True)
    for step in range(10**6):
        tracker.log_metrics({"loss": step / 2}, step=step)
        print(step, flush=True)  # logged
        if step % 3 == 0:
            tracker.log_hyperparameters({f"p{step % 50}_{i}": i for i in range(200)})
        elif step % 3 == 1:
            tracker.log_artifact(weights, name="weights", metadata={"step": step})
        else:
            tracker.get_best_metric("loss")  # a flush from this thread
"""


def _one_random_sigterm(script: Path, base: Path, delay: float) -> str | None:
    """Run the loop, SIGTERM it after ``delay`` s; what went wrong, or None."""
    job = subprocess.Popen([sys.executable, str(script), str(base)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    ready = job.stdout.readline().split()
    time.sleep(delay)
    job.send_signal(signal.SIGTERM)
    try:
        out, err = job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        job.kill()
        job.communicate()
        return f"after {delay:.2f} s: still running 60 s after SIGTERM"
    if len(ready) != 2 or job.returncode != -signal.SIGTERM or "Traceback" in err or "could not" in err:
        return f"exit {job.returncode}, stderr {err[-800:]!r}"
    logged = [int(line) for line in out.split()]
    manager = ExperimentManager(base_dir=base, crash_after=3600)
    run = manager.get_experiment(ready[1])
    try:
        _assert_every_point(manager, run.run_id, "loss", logged[-1] + 1 if logged else 0)
    except AssertionError as error:
        return f"after {delay:.2f} s: {error}"
    finally:
        manager.close()
    return None if run.status == "interrupted" else f"after {delay:.2f} s: run {run.status}"


@pytest.mark.slow
def test_100_random_sigterms_against_a_logging_loop(tmp_path):
    script = tmp_path / "loop.py"
    script.write_text(textwrap.dedent(LOGGING_LOOP))
    delays = [random.Random(trial).uniform(0.0, 0.3) for trial in range(100)]
    with ThreadPoolExecutor(4) as pool:  # each trial is bounded by its timeouts
        problems = list(pool.map(lambda t: _one_random_sigterm(script, tmp_path / f"s{t}", delays[t]),
                                 range(100)))
    failed = [f"trial {t}: {p}" for t, p in enumerate(problems) if p]
    assert not failed, f"{len(failed)} of 100 trials failed:\n" + "\n".join(failed[:10])


@pytest.mark.parametrize("ending", ["sys.exit(0)", "os.kill(os.getpid(), signal.SIGTERM)"])
def test_a_forked_child_leaves_the_parents_run_alone(ending, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys
        from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker
        tracker = ExperimentTracker("fork", base_dir=sys.argv[1], auto_visualize=False,
                                    flush_interval=60)
        for step in range(10):
            tracker.log_metrics({{"loss": step / 2}}, step=step)
        child = os.fork()
        if child == 0:
            {ending}
        os.waitpid(child, 0)
        stored = ExperimentManager(base_dir=sys.argv[1]).get_experiment(tracker.run_id)
        print(tracker.run_id, stored.status, flush=True)
        for step in range(10, 20):
            tracker.log_metrics({{"loss": step / 2}}, step=step)
        tracker.finish()
    """))
    base = tmp_path / "store"
    job = subprocess.run([sys.executable, str(script), str(base)], capture_output=True, text=True,
                         timeout=60)
    assert job.returncode == 0 and "Traceback" not in job.stderr, job.stderr
    run_id, status_after_child = job.stdout.split()
    manager = ExperimentManager(base_dir=base)
    assert status_after_child == "running" and manager.get_experiment(run_id).status == "completed"
    assert _assert_every_point(manager, run_id, "loss", 20) == 20
