"""``parallel: N``: what every worker's first trial would import on its own (``torch._dynamo``,
about a second of CPU each, at a program's first optimizer) is imported once, by the driver,
before it forks them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
with open("program/train.py", "a") as program:  # each trial says whether its process had torch._dynamo
    program.write('''
import os as _os, sys as _sys
_train = train

def train(config, composed):
    with open("first", "a") as _f:
        _f.write(f"{_os.getpid()} {'torch._dynamo' in _sys.modules}\\\\n")
    return _train(config, composed)
''')
sys.exit(sweep(Path("program/train.py"), ["data=synthetic", "data.samples=256"], source=str(source)))
"""


def test_workers_have_torch_dynamo_imported_at_their_first_trial(tmp_path: Path) -> None:
    write_network(tmp_path, str(tmp_path / "runs"), epochs=1, trials=2, sampler="random", pruner="none",
                  parallel=2)
    done = subprocess.run([sys.executable, "-c", SWEEP], cwd=tmp_path, env=environment(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line.split() for line in (tmp_path / "first").read_text().splitlines()]
    assert len(lines) == 2 and {imported for _, imported in lines} == {"True"}
