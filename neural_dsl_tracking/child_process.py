"""Starting a helper process of this package (the mirror process, the plot process).

The child runs ``python -m <module>`` with the same interpreter, finds this package even
when it is not installed (a checkout), and gets its own session: a Ctrl-C in the terminal
reaches the training program, which then closes its helpers in order.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import neural_dsl_tracking


def spawn_module(module: str, args: list[str] | tuple[str, ...] = (), **popen: Any) -> subprocess.Popen:
    """Start ``python -m module *args``; ``popen`` goes to :class:`subprocess.Popen`."""
    package_root = str(Path(neural_dsl_tracking.__file__).resolve().parents[1])
    python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-m", module, *args],
                            env={**os.environ, "PYTHONPATH": python_path},
                            start_new_session=True, **popen)


NICENESS = 10


def yield_cpu_to_training() -> None:
    """Run this helper process only on CPU time that training leaves idle.

    ``nice +10`` everywhere, and Linux's ``SCHED_IDLE`` where available, so the mirror and
    plot processes catch up when a core is free instead of slowing the training loop.
    """
    os.nice(NICENESS)
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass  # not permitted here: nice alone still lowers the priority


_PR_SET_PDEATHSIG = 1


def end_with_parent(signum: int, parent: int) -> None:
    """Have Linux send this process ``signum`` when ``parent`` (its parent, by pid) ends, so a
    SIGKILLed parent leaves no orphan at work; ends this process at once if ``parent`` has ended
    already. Elsewhere than Linux, nothing happens. Safe in a ``preexec_fn`` and a forked child."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent ended before the request
        os._exit(1)
