"""Process-level hooks that close open runs: at exit, on SIGTERM, after an uncaught exception.

Installed once, when the first tracker starts. The SIGTERM handler is only installed from
the main thread and chains to whatever handler was there before; with the default handler
the process still terminates by SIGTERM after the runs are flushed.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import Any, Protocol


class Closable(Protocol):
    def _close_from_process_hook(self, status: str) -> None: ...


_open_runs: set[Any] = set()  # strong references: a run stays open until finished or exit
_installed = False
_signal_installed = False
_previous_sigterm: Any = None
_exit_status = "completed"
_install_lock = threading.Lock()


def register(tracker: Closable) -> None:
    """Keep ``tracker`` until it finishes, and finish it when the process ends."""
    _install()
    _open_runs.add(tracker)


def unregister(tracker: Closable) -> None:
    _open_runs.discard(tracker)


def _close_all(status: str) -> None:
    for tracker in list(_open_runs):
        try:
            tracker._close_from_process_hook(status)
        except Exception as error:  # noqa: BLE001 - the process is ending; say so and go on
            print(f"experiment tracking: could not close run: {error}", file=sys.stderr)


def _at_exit() -> None:
    _close_all(_exit_status)


def _on_sigterm(signum: int, frame: Any) -> None:
    _close_all("interrupted")
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install() -> None:
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
