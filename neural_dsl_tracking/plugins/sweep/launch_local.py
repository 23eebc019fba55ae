"""Running trials on this machine: in this process (``parallel: 1``), or in ``parallel``
worker processes (``parallel: N``), each importing the compiled program once and running
one trial at a time with ``CPUs / N`` PyTorch threads (see ``runner._threads``).

A launcher is a callable ``job -> Future[TrialResult]``; the driver waits on the futures.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable

from neural_dsl_tracking.plugins.sweep.trial import TrialJob, TrialResult, run_trial


def in_process(job: TrialJob) -> "Future[TrialResult]":
    """Run the trial now, in this process; the future is done when this returns."""
    future: Future[TrialResult] = Future()
    future.set_result(run_trial(job))
    return future


class LocalProcesses:
    """``workers`` processes (started fresh: no state copied from the driver) taking trials."""

    def __init__(self, workers: int) -> None:
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def __call__(self, job: TrialJob) -> "Future[TrialResult]":
        return self._pool.submit(run_trial, job)

    def close(self) -> None:
        """Wait for the trials started, then stop the workers."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def local_launcher(parallel: int) -> tuple[Callable[[TrialJob], "Future[TrialResult]"], Callable[[], None]]:
    """(launch, close) for ``parallel`` trials at once on this machine."""
    if parallel == 1:
        return in_process, lambda: None
    pool = LocalProcesses(parallel)
    return pool, pool.close
