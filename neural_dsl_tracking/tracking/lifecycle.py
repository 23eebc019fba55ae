"""Process-level hooks that close open runs: at exit, on SIGTERM, after an uncaught exception.

Installed once, when the first tracker starts. The SIGTERM handler is only installed from
the main thread and chains to whatever handler was there before; with the default handler
the process still terminates by SIGTERM after the runs are flushed.

Python runs a signal handler in the main thread between two instructions, possibly in the
middle of a store transaction, a flush or a ``finish()`` of that thread. Closing the runs
there would re-enter the store (a transaction inside the transaction, a lock the thread
already holds), so those blocks run inside :func:`sigterm_deferred`: a SIGTERM that arrives
in one is held, and the runs are closed when the outermost block ends.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Protocol


class Closable(Protocol):
    def finish(self, status: str) -> None: ...


_open_runs: set[Any] = set()  # strong references: a run stays open until finished or exit
_installed = False
_signal_installed = False
_previous_sigterm: Any = None
_exit_status = "completed"
_install_lock = threading.Lock()
_holding = 0  # depth of the main thread's sigterm_deferred blocks
_deferred: tuple[int, Any] | None = None  # a SIGTERM that arrived inside one, to handle at its end
# a forked child inherits the parent's runs (and their store connection) but must not close them
os.register_at_fork(after_in_child=_open_runs.clear)


def register(tracker: Closable) -> None:
    """Keep ``tracker`` until it finishes, and finish it when the process ends."""
    install()
    _open_runs.add(tracker)


def unregister(tracker: Closable) -> None:
    _open_runs.discard(tracker)


@contextmanager
def sigterm_deferred() -> Iterator[None]:
    """Hold a SIGTERM that arrives in this block until the block ends, then close the runs.

    For the main thread's work on the store (a transaction, a flush, a finish), which the
    handler's close must not interrupt; other threads never run signal handlers.
    """
    global _holding, _deferred
    if threading.get_ident() != threading.main_thread().ident:
        yield
        return
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
        if not _holding and _deferred is not None:
            signum, frame = _deferred
            _deferred = None
            _on_sigterm(signum, frame)


def _close_all(status: str) -> None:
    for tracker in list(_open_runs):
        try:
            tracker.finish(status)  # a SIGTERM while it runs waits for it to end
        except Exception as error:  # noqa: BLE001 - the process is ending; say so and go on
            print(f"experiment tracking: could not close run: {error}", file=sys.stderr)


def _at_exit() -> None:
    _close_all(_exit_status)


def _on_sigterm(signum: int, frame: Any) -> None:
    global _deferred
    if _holding:
        _deferred = (signum, frame)
        return
    _close_all("interrupted")
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def install() -> None:
    """Install the hooks (once): from here on a SIGTERM also closes runs not registered yet."""
    global _installed, _signal_installed, _previous_sigterm
    with _install_lock:
        if not _installed:
            _installed = True
            atexit.register(_at_exit)
            previous_hook = sys.excepthook

            def excepthook(kind, value, traceback):  # type: ignore[no-untyped-def]
                global _exit_status
                _exit_status = "interrupted" if issubclass(kind, KeyboardInterrupt) else "failed"
                previous_hook(kind, value, traceback)

            sys.excepthook = excepthook
        if not _signal_installed and threading.current_thread() is threading.main_thread():
            _signal_installed = True
            _previous_sigterm = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _on_sigterm)
