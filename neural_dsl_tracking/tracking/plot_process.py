"""PlotProcess: a run's background plot rounds, drawn in a child process.

Drawing is matplotlib work in Python; in a thread of the training process it would hold
the GIL and slow training. So rounds run in ``python -m neural_dsl_tracking.tracking.plot_child``
(see there), started at the first requested round and kept for the run. The child reads
the metrics from the store itself: what the writer has flushed (every ``flush_interval``),
so a background round may miss the last fraction of a second; the final round comes after
the last flush. Here a thread sends ``draw`` and waits for the answer, so ``request``
(called from ``log_metrics``) only sets an event. A round requested while one is drawing,
or within as long again after it, is skipped. If the child cannot start or dies, that is
warned once and the final plots are drawn in this process.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

from neural_dsl_tracking.child_process import spawn_module

FINAL_TIMEOUT = 60.0
"""Seconds ``final`` waits for the child's rounds before stopping it and drawing here."""
STOP_TIMEOUT = 5.0
IN_PROCESS = "the final plots are drawn in the training process"


class PlotProcess:
    """Background plot rounds of one run. ``where`` is the opening message of the child:
    ``{"files_dir", "store" (a URL or None), "run_id", "plots_dir"}``."""

    def __init__(self, where: dict[str, str | None]) -> None:
        self.where = where
        self.rounds = 0
        self.skipped = 0
        self._problem: str | None = None  # why the child is unusable, to warn about once
        self._warned = False
        self._dead = False
        self._final_paths: list[Path] | None = None
        self._process: subprocess.Popen[str] | None = None
        self._rest_until = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._final = False
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """Ask for a round; skipped (and counted) while one is drawing, for as long again
        after it, or once the child is gone. Never waits."""
        if self._problem is not None:
            self._warn_once()
        if (self._dead or self._busy.locked() or self._wake.is_set()
                or time.monotonic() < self._rest_until):
            self.skipped += 1
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="neural-tracking-plots",
                                            daemon=True)
            self._thread.start()
        self._wake.set()

    def final(self, draw_here: Callable[[], list[Path]]) -> list[Path]:
        """The last round, complete when this returns: in the child if it is running (it
        has matplotlib loaded already), else ``draw_here()``. Then the child is stopped."""
        if self._thread is None:
            return draw_here()
        self._final = True
        self._wake.set()
        self._thread.join(FINAL_TIMEOUT)
        if self._thread.is_alive():
            self._set_problem(f"the plot process did not finish within {FINAL_TIMEOUT:g} s "
                              f"and was stopped; {IN_PROCESS}")
            self._end_child()
            self._thread.join()
        self._end_child()
        if self._problem is not None:
            self._warn_once()
        if self._final_paths is not None:
            return self._final_paths
        return draw_here()

    def stop(self) -> None:
        """Stop the child without a final round (the run could not be flushed)."""
        self._stop.set()
        self._wake.set()
        self._end_child()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)

    # ---- the worker thread ------------------------------------------------------------
    def _loop(self) -> None:
        while not self._dead:
            self._wake.wait()
            if self._stop.is_set():
                return
            with self._busy:
                self._wake.clear()
                final = self._final
                started = time.monotonic()
                paths = self._round()
                if final:
                    self._final_paths = paths
                    return
                if paths is not None:
                    self.rounds += 1
                finished = time.monotonic()
                self._rest_until = finished + (finished - started)

    def _round(self) -> list[Path] | None:
        """One round in the child: the files written, or None if it failed."""
        try:
            if self._process is None:
                self._process = spawn_module(
                    "neural_dsl_tracking.tracking.plot_child", stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                    encoding="utf-8")
                self._process.stdin.write(json.dumps(self.where) + "\n")
            self._process.stdin.write(json.dumps("draw") + "\n")
            self._process.stdin.flush()
            answer = self._process.stdout.readline()
        except OSError as error:
            answer = ""
            if self._process is None:
                self._give_up(f"the plot process could not start ({error}); {IN_PROCESS}")
                return None
        if not answer:
            code = self._process.poll() if self._process else None
            self._give_up(f"the plot process ended unexpectedly (exit code {code}); {IN_PROCESS}")
            return None
        reply = json.loads(answer)
        if "error" in reply:
            self._set_problem(f"background plots failed: {reply['error']}")
            return None
        return [Path(p) for p in reply["paths"]]

    def _give_up(self, problem: str) -> None:
        self._dead = True
        self._set_problem(problem)

    def _set_problem(self, problem: str) -> None:
        if self._problem is None:
            self._problem = problem

    def _warn_once(self) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(self._problem, RuntimeWarning, stacklevel=4)

    def _end_child(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            process.stdin.close()  # the child ends at the end of its input
        except OSError:
            pass
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
