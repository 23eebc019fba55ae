"""The plot process: draws a run's plots for :class:`~neural_dsl_tracking.tracking.plot_process.PlotProcess`.

Started as ``python -m neural_dsl_tracking.tracking.plot_child`` in its own session (a
Ctrl-C in the terminal reaches the training program, which then finishes the run and with
it this process), at a lower CPU priority than training (nice +10). Talks JSON lines: the
first line on stdin says where the run is (``{"files_dir", "store", "run_id",
"plots_dir"}``; ``store`` is a database URL or null, so a URL with a password never shows
in the process list); then each ``"draw"`` line reads the run's metrics from the store and
draws every plot, answered with ``{"paths": [...]}`` or ``{"error": "..."}``. It ends at
the end of stdin, so it never outlives the training process.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from neural_dsl_tracking.child_process import yield_cpu_to_training

def serve(inbox: TextIO, outbox: TextIO) -> None:
    from neural_dsl_tracking.tracking.store import Store
    from neural_dsl_tracking.tracking.visualizer import MetricVisualizer, load_histories

    opening = inbox.readline()
    if not opening:
        return
    where = json.loads(opening)
    try:
        store = Store(where["files_dir"], where["store"], create=False)
    except Exception as error:  # noqa: BLE001 - the parent warns and draws the final plots itself
        _reply(outbox, {"error": f"cannot open the store: {type(error).__name__}: {error}"})
        return
    visualizer = MetricVisualizer(Path(where["plots_dir"]),
                                  lambda: load_histories(store, where["run_id"]))
    try:
        for line in inbox:
            if json.loads(line) != "draw":
                continue
            try:
                reply = {"paths": [str(p) for p in visualizer.generate()]}
            except Exception as error:  # noqa: BLE001 - reported to the parent, which warns once
                reply = {"error": f"{type(error).__name__}: {error}"}
            _reply(outbox, reply)
    finally:
        store.close()


def _reply(outbox: TextIO, reply: dict) -> None:
    outbox.write(json.dumps(reply) + "\n")
    outbox.flush()


def main() -> int:
    yield_cpu_to_training()
    # Replies go to a private copy of stdout; whatever a library prints goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        serve(sys.stdin, replies)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
