"""A ``neural sweep`` process ends without the interpreter collecting its objects one by one
(about a second of CPU with PyTorch, Optuna and Hydra loaded, serial in every sweep)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import environment, write_network

SWEEP = """
import atexit, gc, sys
from neural_dsl_tracking.cli import main
before_exit = []
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > before_exit[0], flush=True))  # runs last
code = main(["sweep", "model.neural", "sweep.timeout=0.000001"])
made_after_the_sweep = [[number] for number in range(1000)]  # frozen at exit or never
before_exit.append(gc.get_freeze_count())  # the sweep froze its startup's objects already
sys.exit(code)
"""


def test_the_sweep_process_freezes_its_objects_at_exit(tmp_path: Path) -> None:
    write_network(tmp_path, "runs")
    done = subprocess.run([sys.executable, "-c", SWEEP], cwd=tmp_path, env=environment(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ": no trials\n" in done.stdout
    assert done.stdout.endswith("frozen at exit: True\n")
