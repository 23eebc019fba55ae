"""``parallel: N`` workers are forked as soon as the config is checked, and warm up (import
what a program's first trial imports) while the driver records the sweep: that work was
serial before each worker's first trial."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import environment, write_network

pytestmark = pytest.mark.slow

SWEEP = """
import sys
from pathlib import Path

from neural_dsl_tracking.compiler import compile_network
from neural_dsl_tracking.language import parse_file
from neural_dsl_tracking.plugins.sweep.cli import sweep

source = Path("model.neural")
compile_network(parse_file(source).network(), source, Path("program"))
with open("program/train.py", "a") as program:
    program.write('''
import os as _os, sys as _sys, time as _time

def _forked():
    with open("forked", "a") as _f:
        _f.write(f"{_os.getpid()} {_time.time()}\\\\n")

_os.register_at_fork(after_in_child=_forked)
_train = train

def train(config, composed):
    with open("first", "a") as _f:
        _f.write(f"{_os.getpid()} {'torch._dynamo' in _sys.modules}\\\\n")
    return _train(config, composed)
''')
sys.exit(sweep(Path("program/train.py"), ["data=synthetic", "data.samples=256"], source=str(source)))
"""


def test_workers_start_and_warm_up_while_the_sweep_is_recorded(tmp_path: Path) -> None:
    store = tmp_path / "runs"
    write_network(tmp_path, str(store), epochs=1, trials=2, sampler="random", pruner="none", parallel=2)
    done = subprocess.run([sys.executable, "-c", SWEEP], cwd=tmp_path, env=environment(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    (sweep,) = ExperimentManager(store=str(store)).list_sweeps()
    forked = dict(line.split() for line in (tmp_path / "forked").read_text().splitlines())
    assert len(forked) == 2 and all(float(at) < sweep.created_at.timestamp() for at in forked.values())
    first = dict(line.split() for line in (tmp_path / "first").read_text().splitlines())
    assert set(first) <= set(forked) and set(first.values()) == {"True"}  # warmed before its first trial
