"""How a compiled program and ``neural run`` take SIGINT, SIGTERM and SIGHUP.

A compiled program stops the same way on Ctrl-C (SIGINT) and on SIGTERM (and SIGHUP, which it
turns into a SIGTERM to itself): the first of
them raises an exception in the main thread (``KeyboardInterrupt``, or :class:`Terminated`,
a kind of it), so the run's teardown and every ``finally`` block run; any later one is
ignored, the program being on its way out already. The tracker's own SIGTERM handler
(installed when the first run opens, see ``tracking/lifecycle.py``) comes first and chains
to this one: it closes the open runs ``interrupted``, and a SIGTERM landing inside a store
write waits until the write is over, so the exception is never raised inside one.

``neural run`` passes those signals on to the program it starts and ends as it ended; killed
by SIGKILL, it cannot, and the program gets SIGTERM from Linux (``PR_SET_PDEATHSIG``).
Only the standard library here (and ``child_process``): ``neural run`` imports this module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from typing import Any, Iterator, NoReturn

from neural_dsl_tracking.child_process import end_with_parent

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""What ``neural run`` passes on to the program (a scheduler, ``timeout`` or ``kill`` signal it only)."""


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM; a KeyboardInterrupt, so the program closes its run ``interrupted``."""


_stopping = False


def handle_stop_signals() -> None:
    """Stop on the first SIGINT or SIGTERM, and take SIGHUP (the terminal closed) as SIGTERM;
    a signal ignored (or taken) before stays so."""
    for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
        if signal.getsignal(signum) == default:
            signal.signal(signum, _stop)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_DFL:
        signal.signal(signal.SIGHUP, _hang_up)


@contextmanager
def stop_signals_handled() -> Iterator[None]:
    """:func:`handle_stop_signals` for the block, as a command running in its caller's process
    needs it (``neural sweep``): a stop raises inside it; after it the previous handlers are back
    and a later stop signal counts again."""
    global _stopping
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    handle_stop_signals()
    try:
        yield
    finally:
        _stopping = True  # a signal from here on is not raised in the middle of the restoring
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _stopping = False


def ignore_stop_signals() -> None:
    """The program is ending: a SIGINT or SIGTERM from now on changes nothing."""
    global _stopping
    _stopping = True


def _stop(signum: int, frame: Any) -> None:
    global _stopping
    if _stopping:
        return
    _stopping = True
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _hang_up(signum: int, frame: Any) -> None:
    """SIGHUP becomes a SIGTERM to this process, so it goes the same way: the tracker's handler
    (which holds it until a store write ends) first, then :func:`_stop`."""
    if not _stopping:
        os.kill(os.getpid(), signal.SIGTERM)


def end_by_signal(signum: int) -> NoReturn:
    """End this process as killed by ``signum``, as its parent expects (a shell: ``128 + signum``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    sys.exit(128 + signum)  # reached only while this thread blocks the signal


def run_forwarding(command: list[str]) -> int:
    """Run ``command``, passing on the :data:`FORWARDED` signals this process does not ignore.

    Returns its exit code; when one of those signals ended it, this process ends by the same
    signal (another signal is ``128 + signum``, as a shell reports it).
    """
    started: list[subprocess.Popen] = []
    pending: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        if started:
            started[0].send_signal(signum)
        else:
            pending.append(signum)

    taken = [signum for signum in FORWARDED if signal.getsignal(signum) not in (signal.SIG_IGN, None)]
    previous = {signum: signal.signal(signum, forward) for signum in taken}
    try:
        parent = os.getpid()
        # SIGKILLed, `neural run` cannot pass anything on: the program then gets SIGTERM from
        # Linux and closes its run `interrupted` instead of training on, orphaned
        started.append(subprocess.Popen(command, preexec_fn=lambda: end_with_parent(signal.SIGTERM, parent)))
        while pending:
            started[0].send_signal(pending.pop(0))
        code = started[0].wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if -code in previous:
        end_by_signal(-code)
    return code if code >= 0 else 128 - code
