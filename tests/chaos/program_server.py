"""Runs one generated ``train.py`` many times without paying its imports each time.

``python program_server.py TRAIN_PY`` imports what the program imports (torch, Hydra, the
runtime, scikit-learn's digits, matplotlib for the final plots) once, then reads requests
on stdin, one JSON object a line: ``{"cwd": DIR, "args": [...], "out": FILE, "err": FILE}``.
For each it forks a child that runs ``TRAIN_PY`` as ``__main__`` with those arguments, in
that folder, its stdout and stderr going to those files: exactly what ``python train.py
ARGS`` does after its imports, in a real process that real signals reach. The server prints
``{"pid": PID}`` for each child it starts and ``{"exit": PID, "code": CODE, "cpu": SECONDS}`` when one
ends (``CODE`` negative for a signal, like ``Popen.returncode``; the CPU time it used). Single-threaded, so a fork never
copies a lock another thread holds.
"""

from __future__ import annotations

import json
import os
import runpy
import select
import sys


def preload(train_py: str) -> None:
    """Import everything a run of ``train_py`` imports, without running it."""
    runpy.run_path(train_py, run_name="preloaded_program")
    import matplotlib.backends.backend_agg  # noqa: F401 - the final plots
    import matplotlib.figure  # noqa: F401
    import sklearn.datasets  # noqa: F401 - data=digits
    import torch

    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # its first use imports torch._dynamo


def say(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def reap() -> None:
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        say({"exit": pid, "code": os.waitstatus_to_exitcode(status), "cpu": usage.ru_utime + usage.ru_stime})


def serve() -> dict | None:
    """Start children until stdin closes; in a child, return its request (the server returns None)."""
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], 0.01)
        reap()
        if not readable:
            continue
        line = sys.stdin.readline()
        if not line:
            return None
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            return request
        say({"pid": pid})


def become(request: dict, train_py: str) -> None:
    """Turn this child into ``python train_py ARGS`` run in ``request["cwd"]``."""
    os.chdir(request["cwd"])
    for fd, path in ((1, request["out"]), (2, request["err"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.argv = [train_py, *request["args"]]


if __name__ == "__main__":
    program = os.path.abspath(sys.argv[1])
    preload(program)
    say({"ready": True})
    job = serve()
    if job is not None:
        become(job, program)
        runpy.run_path(program, run_name="__main__")
