"""SIGTERM ends a compiled program the way Ctrl-C does, and `neural run` passes signals on.

A terminated program closes its run ``interrupted``, runs its ``finally`` blocks (the run's
teardown, removing its ``neural-run-*`` work folder), prints ``terminated`` and dies by
SIGTERM. Every program runs with ``TMPDIR`` in the test's folder, so a work folder left
behind is seen. Signals are real; where one must land at an exact place, a
``sitecustomize`` on the child's ``PYTHONPATH`` sends it when a named function is called.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import DIGITS

pytestmark = pytest.mark.slow

SIGTERM_AT = '''
"""Armed by SIGTERM_AT="file:function,...": sends this process SIGTERM when the main thread
calls each function in turn (the first call of the first, then the next call of the second...)."""
import os, signal, sys

_targets = [t.rpartition(":") for t in os.environ.pop("SIGTERM_AT", "").split(",") if t]


def _rearm(frame, event, arg):
    """Python turns off a trace function that raises (the SIGTERM's exception): turn it on again."""
    sys.setprofile(None)
    sys.settrace(_tracer)


def _tracer(frame, event, arg):
    if _targets and event == "call":
        where, _, name = _targets[0]
        if frame.f_code.co_name == name and frame.f_code.co_filename.endswith(where):
            _targets.pop(0)
            print("SIGTERM at", name, flush=True)
            if _targets:
                sys.setprofile(_rearm)
            os.kill(os.getpid(), signal.SIGTERM)
    return None


if _targets:
    sys.settrace(_tracer)
'''


@pytest.fixture(scope="module")
def digits_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from neural_dsl_tracking.compiler import compile_network
    from neural_dsl_tracking.language import parse_file

    out = tmp_path_factory.mktemp("digits")
    return compile_network(parse_file(DIGITS).network(), DIGITS, out / "program")


def _environment(tmp: Path, sigterm_at: str = "") -> dict[str, str]:
    """The program's environment: its temporary files in ``tmp/tmp``, armed with ``sigterm_at``."""
    (tmp / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp / "tmp"), "NEURAL_NO_PROGRESS": "1"}
    if sigterm_at:
        site = tmp / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(SIGTERM_AT)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
        env["SIGTERM_AT"] = sigterm_at
    return env


def _arguments(tmp: Path, epochs: int = 200) -> list[str]:
    return ["execution.threads=1", f"train.epochs={epochs}", "tracking.visualize_every=0",
            f"tracking.store={tmp / 'store'}"]


def _runs(tmp: Path) -> list:
    if not (tmp / "store").exists():
        return []
    manager = ExperimentManager(store=str(tmp / "store"), crash_after=3600)
    try:
        return manager.list_experiments()
    finally:
        manager.close()


def _work_folders(tmp: Path) -> list[str]:
    return sorted(path.name for path in (tmp / "tmp").glob("neural-run-*"))


def _assert_terminated(tmp: Path, returncode: int, stdout: str, stderr: str) -> None:
    """No work folder left; died by SIGTERM after saying so once; no traceback."""
    context = f"exit {returncode}\nstdout: {stdout[-1500:]}\nstderr: {stderr[-1500:]}"
    assert _work_folders(tmp) == [], context
    assert returncode == -signal.SIGTERM, context
    assert "Traceback" not in stderr and "could not close" not in stderr, context
    assert stderr.endswith("terminated\n") and stderr.count("terminated") == 1, context


def _start(command: list[str], tmp: Path, env: dict[str, str], **options) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **options)


def _wait_for_line(process: subprocess.Popen, prefix: str, timeout: float = 300) -> list[str]:
    """The program's stdout lines up to the first starting with ``prefix``."""
    assert process.stdout is not None
    lines, deadline = [], time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line)
        if line.startswith(prefix):
            return lines
        assert time.monotonic() < deadline, f"no {prefix!r} line in {timeout} s"
    _, stderr = process.communicate(timeout=60)
    raise AssertionError(f"the program ended (exit {process.returncode}) before {prefix!r}: {stderr[-2000:]}")


def _communicate(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """The rest of the program's output once it has ended; killed when it runs ``timeout`` s more."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"the program still ran {timeout} s after SIGTERM") from None


# ---------------------------------------------------------------- the compiled program


def _one_random_sigterm(program: Path, tmp: Path, delay: float) -> None:
    tmp.mkdir()
    process = _start([sys.executable, str(program), *_arguments(tmp)], tmp, _environment(tmp))
    lines = _wait_for_line(process, "DigitsCNN:")
    time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = _communicate(process, 120)
    _assert_terminated(tmp, process.returncode, "".join(lines) + stdout, stderr)
    assert all(run.status == "interrupted" for run in _runs(tmp)), [run.status for run in _runs(tmp)]


def test_sigterm_at_random_moments_closes_the_run_and_removes_the_work_folder(digits_program, tmp_path):
    """From the first line (model built, data loaded, tracker about to open) into the epochs."""
    delays = [random.Random(trial).uniform(0.0, 1.5) for trial in range(6)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda t: _one_random_sigterm(digits_program, tmp_path / f"t{t}", delays[t]),
                      range(len(delays))))


@pytest.mark.parametrize("moments, epochs, status", [
    ("db.py:_write_once", 200, "interrupted"),  # creating the run: the tracker's first store write
    ("db.py:_write_once,db.py:_write_once", 200, "interrupted"),  # again in the close's set_status
    ("runtime.py:evaluate,hooks.py:finish_run,shutil.py:rmtree", 200, "interrupted"),  # twice in cleanup
    ("runtime.py:evaluate,runtime.py:_remove_work_folder,runtime.py:_remove_work_folders", 200, "interrupted"),
    ("runtime.py:_remove_work_folder", 1, "completed"),  # the run is over, its folder not removed yet
], ids=["inside-a-store-write", "again-inside-the-close", "again-during-cleanup", "again-while-removing",
        "while-removing-after-the-run"])
def test_sigterm_at_exact_moments(digits_program, tmp_path, moments, epochs, status):
    from neural_dsl_tracking.tracking.store import Store

    Store(store=str(tmp_path / "store")).close()  # so the program's first store write makes its run
    process = _start([sys.executable, str(digits_program), *_arguments(tmp_path, epochs)], tmp_path,
                     _environment(tmp_path, moments))
    stdout, stderr = _communicate(process, 300)
    assert stdout.count("SIGTERM at") == moments.count(",") + 1, stdout
    _assert_terminated(tmp_path, process.returncode, stdout, stderr)
    assert [run.status for run in _runs(tmp_path)] == [status]


def test_sighup_stops_the_program_like_sigterm(digits_program, tmp_path):
    """A closed terminal (SIGHUP) killed the program at once: its work folder stayed and its
    run read 'crashed' later."""
    process = _start([sys.executable, str(digits_program), *_arguments(tmp_path)], tmp_path,
                     _environment(tmp_path))
    lines = _wait_for_line(process, "epoch 1/")
    process.send_signal(signal.SIGHUP)
    stdout, stderr = _communicate(process, 120)
    _assert_terminated(tmp_path, process.returncode, "".join(lines) + stdout, stderr)
    assert [run.status for run in _runs(tmp_path)] == ["interrupted"]


def test_a_program_that_ends_normally_removes_its_work_folder(digits_program, tmp_path):
    result = subprocess.run([sys.executable, str(digits_program), *_arguments(tmp_path, epochs=1)],
                            cwd=tmp_path, env=_environment(tmp_path), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert [run.status for run in _runs(tmp_path)] == ["completed"]
    assert _work_folders(tmp_path) == []


# ---------------------------------------------------------------- neural run


def _training_process(parent: int, timeout: float = 30) -> int:
    """The pid of ``parent``'s child (the training program)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise AssertionError(f"process {parent} started no program")


def _assert_gone(pid: int, timeout: float = 30) -> None:
    """``pid`` has ended (a zombie left to init counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":
            return
        time.sleep(0.1)
    raise AssertionError(f"the training process {pid} outlived `neural run` by {timeout} s")


def _stop_neural_run(tmp: Path, send: Callable[[subprocess.Popen], None]) -> tuple[int, str, str]:
    """Start `neural run` in its own process group, ``send`` it a signal once epoch 1 is done;
    its exit code, stdout and stderr once it and the program have ended."""
    command = [sys.executable, "-m", "neural_dsl_tracking", "run", str(DIGITS), *_arguments(tmp)]
    process = _start(command, tmp, _environment(tmp), start_new_session=True)
    try:
        lines = _wait_for_line(process, "epoch 1/")
        child = _training_process(process.pid)
        send(process)
        process.wait(timeout=120)
        _assert_gone(child)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever outlived a failure
    return process.returncode, "".join(lines) + stdout, stderr


def test_sigterm_to_neural_run_reaches_the_training_program(tmp_path):
    """A scheduler, `timeout` or `kill PID` signals `neural run` only: the program still closes cleanly."""
    returncode, stdout, stderr = _stop_neural_run(tmp_path, lambda process: process.send_signal(signal.SIGTERM))
    _assert_terminated(tmp_path, returncode, stdout, stderr)
    (run,) = _runs(tmp_path)
    assert run.status == "interrupted" and run.metrics["batch_loss"]["count"] >= 45  # epoch 1's batches


def test_ctrl_c_on_neural_run_lets_the_program_close_its_run(tmp_path):
    """Ctrl-C signals the whole foreground group: the program gets SIGINT from the terminal and
    from `neural run`, and still closes its run and removes its work folder."""
    returncode, stdout, stderr = _stop_neural_run(tmp_path, lambda process: os.killpg(process.pid, signal.SIGINT))
    context = f"exit {returncode}\nstdout: {stdout[-1500:]}\nstderr: {stderr[-1500:]}"
    assert _work_folders(tmp_path) == [], context
    assert [run.status for run in _runs(tmp_path)] == ["interrupted"], context
    assert returncode == 130 and "Traceback" not in stderr, context
    assert stderr.endswith("interrupted\n") and stderr.count("interrupted") == 1, context


def test_sigkill_to_neural_run_stops_the_program_and_closes_its_run(tmp_path):
    """`neural run` SIGKILLed (an OOM killer, `kill -9 PID`) cannot pass anything on: the program
    gets SIGTERM from Linux and closes its run `interrupted` instead of training on, orphaned."""
    command = [sys.executable, "-m", "neural_dsl_tracking", "run", str(DIGITS), *_arguments(tmp_path, epochs=50)]
    process = _start(command, tmp_path, _environment(tmp_path), start_new_session=True)
    try:
        _wait_for_line(process, "epoch 1/")
        child = _training_process(process.pid)
        process.kill()
        process.wait(timeout=60)
        _assert_gone(child, timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever outlived a failure
    (run,) = _runs(tmp_path)
    assert run.status == "interrupted"
    assert _work_folders(tmp_path) == []
