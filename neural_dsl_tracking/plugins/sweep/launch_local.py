"""Running trials on this machine: in this process (``parallel: 1``), or in ``parallel``
worker processes (``parallel: N``), each running one trial at a time with ``CPUs / N``
PyTorch threads (see ``runner._threads``).

Workers are forked from the driver, which has imported the compiled program (and with it
PyTorch) and run no trial and no thread of its own: a worker starts in a fraction of a
second, where a fresh interpreter spends seconds importing, and ends with ``os._exit``
(no interpreter teardown). Each opens its own database connections (``study._storage``,
``trial._store`` are per process).

A launcher is a callable ``job -> Future[TrialResult]``; the driver waits on the futures.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable

from neural_dsl_tracking.child_process import end_with_parent
from neural_dsl_tracking.plugins.sweep.trial import TrialJob, TrialResult, run_trial


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
        return self._pool.submit(run_trial, job)

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
    """A new worker: the default stop signals, and an end with the driver. A SIGKILLed driver
    otherwise leaves its workers training, then blocked on the trial queue for ever (each forked
    worker holds the queue's other end, so none sees it close). SIGKILL, since a trial handles
    SIGTERM and the worker would then wait on the queue; its trial, left running, is failed by
    the next claim (its process is gone) and its run reads crashed, as when a one-process sweep
    is killed."""
    _default_signals()
    end_with_parent(signal.SIGKILL, driver)


def _default_signals() -> None:
    """A worker's stop signals as a fresh interpreter's (not the driver's handlers), ignored
    ones left ignored: SIGINT interrupts its trial (failed, ``interrupted``), SIGTERM and SIGHUP end it."""
    for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL),
                            (signal.SIGHUP, signal.SIG_DFL)):
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, default)


def local_launcher(parallel: int) -> tuple[Callable[[TrialJob], "Future[TrialResult]"], Callable[[], None]]:
    """(launch, close) for ``parallel`` trials at once on this machine."""
    _warm_up()
    if parallel == 1:
        return in_process, lambda: None
    pool = LocalProcesses(parallel)
    return pool, pool.close
