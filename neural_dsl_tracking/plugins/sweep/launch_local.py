"""Running trials on this machine: in this process (``parallel: 1``), or in ``parallel``
worker processes (``parallel: N``), each running one trial at a time with ``CPUs / N``
PyTorch threads (see ``runner._threads``).

Workers are forked from the driver, which has imported the compiled program (and with it
PyTorch) and run no trial and no thread of its own: a worker starts in a fraction of a
second, where a fresh interpreter spends seconds importing, and ends with ``os._exit``
(no interpreter teardown). Each opens its own database connections (``study._storage``,
``trial._store`` are per process).

A launcher is a callable ``job -> Future[TrialResult]``; the driver waits on the futures.
A driver stopped by Ctrl-C or SIGTERM passes the stop on to its workers (:meth:`LocalProcesses.interrupt`):
each trial running ends as a one-process trial does (its run ``interrupted``, failed in
Optuna) and the driver reports it before it ends.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable

from neural_dsl_tracking.child_process import end_with_parent
from neural_dsl_tracking.plugins.sweep.trial import TrialJob, TrialResult, interrupted, run_trial


def in_process(job: TrialJob) -> "Future[TrialResult]":
    """Run the trial now, in this process; the future is done when this returns."""
    future: Future[TrialResult] = Future()
    future.set_result(run_trial(job))
    return future


class LocalProcesses:
    """``workers`` processes (forked from the driver) taking trials."""

    def __init__(self, workers: int) -> None:
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                         initializer=_start_worker, initargs=(os.getpid(),))

    def __call__(self, job: TrialJob) -> "Future[TrialResult]":
        return self._pool.submit(_run_in_worker, job)

    def interrupt(self) -> None:
        """Stop the workers' trials (SIGINT to each worker, see :func:`_stop_trial`)."""
        for pid in list(self._pool._processes or {}):  # noqa: SLF001 - the pool's worker processes
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Wait for the trials started, then stop the workers."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _warm_up() -> None:
    """Import in the driver, once, what the first trial of each process would import on its
    own: ``torch._dynamo``, which PyTorch imports at a program's first optimizer (about a
    second of CPU per process), here while the sweep starts (with no garbage collection, see
    ``cli._collecting_from_the_trials``). Forked workers inherit it; it starts no thread."""
    if "torch" in sys.modules:
        import torch._dynamo  # noqa: F401


def _start_worker(driver: int) -> None:
    """A new worker: its own stop signals, and an end with the driver. A SIGKILLed driver
    otherwise leaves its workers training, then blocked on the trial queue for ever (each forked
    worker holds the queue's other end, so none sees it close). SIGKILL, since a trial handles
    SIGTERM and the worker would then wait on the queue; its trial, left running, is failed by
    the next claim (its process is gone) and its run reads crashed, as when a one-process sweep
    is killed."""
    _worker_signals()
    end_with_parent(signal.SIGKILL, driver)


def _worker_signals() -> None:
    """A worker's stop signals stop its trial (:func:`_stop_trial`), not the worker: the driver
    ends the workers. SIGINT always, being how the driver stops them (not SIGTERM: the
    tracker's SIGTERM handler closes the run at once, and would wait for ever on the store's
    SQLite file when the signal lands inside an Optuna write to it); SIGTERM and SIGHUP unless
    ignored."""
    signal.signal(signal.SIGINT, _stop_trial)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, _stop_trial)


_in_trial = False
"""True while this worker runs a trial that no stop signal has interrupted yet."""
_stopping = False
"""True once this worker got a stop signal: a trial it takes from then on is failed at once."""


def _stop_trial(signum: int, frame: object) -> None:
    """A stop signal in a worker: interrupt the trial running (once), as Ctrl-C interrupts a
    one-process trial; the program's teardown closes the run ``interrupted``."""
    global _in_trial, _stopping
    _stopping = True
    if _in_trial:
        _in_trial = False
        raise KeyboardInterrupt


def _run_in_worker(job: TrialJob) -> TrialResult:
    """:func:`run_trial` in a worker: a stop signal ends the trial ``failed`` (``interrupted``)
    and its result goes back to the driver, the worker left to take the next call."""
    global _in_trial
    _in_trial = True
    try:
        if _stopping:
            raise KeyboardInterrupt
        return run_trial(job, raise_interrupt=False)
    except KeyboardInterrupt:  # before the trial's training began
        return interrupted(job)
    finally:
        _in_trial = False


def local_launcher(parallel: int) -> tuple[Callable[[TrialJob], "Future[TrialResult]"], Callable[[], None],
                                           Callable[[], None] | None]:
    """(launch, close, interrupt) for ``parallel`` trials at once on this machine; no interrupt
    with one (the trial runs in this process and takes the signal itself)."""
    _warm_up()
    if parallel == 1:
        return in_process, lambda: None, None
    pool = LocalProcesses(parallel)
    return pool, pool.close, pool.interrupt
