"""Run statuses in colour on a terminal: ``neural experiments ls``, ``show`` and the dashboard's
startup report, each run in a real pseudo-terminal (``pty.fork``) and through a pipe."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from neural_dsl_tracking.tracking import ExperimentTracker

from .test_cli import NEURAL

GREEN, BLUE, RED, YELLOW, RESET = "\x1b[32m", "\x1b[34m", "\x1b[31m", "\x1b[33m", "\x1b[0m"
COLORED = {"completed": GREEN, "running": BLUE, "failed": RED, "interrupted": YELLOW}
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without colour settings, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "FORCE_COLOR")}
    return {**env, **extra}


def in_terminal(args: list[str], env: dict[str, str], interrupt_after: str | None = None,
                timeout: float = 60.0) -> str:
    """What ``python args`` writes to a pseudo-terminal, until it exits (Ctrl-C once
    ``interrupt_after`` has appeared)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        os.execve(sys.executable, [sys.executable, *args], env)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], 0.5)[0]:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child has exited and closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if interrupt_after and interrupt_after.encode() in output:
                os.kill(pid, signal.SIGINT)
                interrupt_after = None
    finally:
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    return output.decode().replace("\r\n", "\n")


def piped(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Runs completed, failed and interrupted, and one still running while the tests run."""
    base = tmp_path_factory.mktemp("colors") / "store"
    for status in ("completed", "failed", "interrupted"):
        tracker = ExperimentTracker("colors", base_dir=base, run_name=f"run-{status}", auto_visualize=False)
        tracker.log_metrics({"loss": 0.5})
        tracker.finish(status)
    running = ExperimentTracker("colors", base_dir=base, run_name="run-running", auto_visualize=False)
    running.log_metrics({"loss": 0.5})
    yield base
    running.finish()


def finished_rows(listing: str) -> list[str]:
    """The lines of ``ls`` but the running run's (its duration grows between two listings)."""
    return [line for line in listing.splitlines() if "run-running" not in line]


def ls_args(store) -> list[str]:
    return ["-c", NEURAL, "experiments", "ls", "--base-dir", str(store)]


def test_ls_colours_each_status_on_a_terminal_with_columns_aligned(store):
    shown = in_terminal(ls_args(store), environment())
    for status, color in COLORED.items():
        assert f"{color}{status}{RESET}" in shown, (status, shown)
    plain = piped(ls_args(store), environment())
    assert finished_rows(ESCAPE.sub("", shown)) == finished_rows(plain)  # the codes take no columns
    assert "\x1b" not in plain


def test_no_color_turns_colour_off_on_a_terminal(store):
    shown = in_terminal(ls_args(store), environment(NO_COLOR="1"))
    assert "run-completed" in shown and "\x1b" not in shown


def test_force_color_colours_a_pipe(store):
    assert f"{GREEN}completed{RESET}" in piped(ls_args(store), environment(FORCE_COLOR="1"))
    assert "\x1b" not in piped(ls_args(store), environment(FORCE_COLOR="1", NO_COLOR="1"))


def test_show_colours_the_status(store):
    args = ["-c", NEURAL, "experiments", "show", "--base-dir", str(store), "run-failed"]
    shown = in_terminal(args, environment())
    assert f"status     {RED}failed{RESET}\n" in shown
    plain = piped(args, environment())
    assert "status     failed\n" in plain and "\x1b" not in plain


def test_dashboard_startup_report_colours_statuses(store):
    args = ["-m", "neural_dsl_tracking.dashboard", "--base-dir", str(store), "--port", "0"]
    shown = in_terminal(args, environment(), interrupt_after="Press Ctrl-C")
    assert "stopped" in shown, shown
    report = [line for line in shown.splitlines() if "run-" in line]
    assert len(report) == 4
    for status, color in COLORED.items():
        (line,) = [line for line in report if f"run-{status}" in line]
        assert f"{color}{status}{RESET}" in line
    columns = {ESCAPE.sub("", line).index(" colors / ") for line in report}
    assert len(columns) == 1  # names start in one column whatever the status's colour

    quiet = in_terminal(args, environment(NO_COLOR="x"), interrupt_after="Press Ctrl-C")
    assert "run-completed" in quiet and "\x1b" not in quiet
