"""A sweep starts (imports PyTorch, Optuna and Hydra, composes, records) with Python's cyclic
garbage collector off, about 0.4 s less CPU; its trials run with collection on, the startup's
objects frozen (shared as they are with the forked workers), and ``torch._dynamo`` (imported
at a program's first optimizer) already imported in every process that trains, in process too."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from neural_dsl_tracking.errors import ConfigError
from neural_dsl_tracking.plugins.sweep.cli import sweep

from .conftest import environment, write_network
from .test_prepare import _program

SWEEP = """
import sys
from pathlib import Path

from neural_dsl_tracking.compiler import compile_network
from neural_dsl_tracking.language import parse_file
from neural_dsl_tracking.plugins.sweep.cli import sweep

source = Path("model.neural")
compile_network(parse_file(source).network(), source, Path("program"))
with open("program/train.py", "a") as program:  # the collector when the program is imported, and at each trial
    program.write('''
import gc as _gc, os as _os, sys as _sys
with open("seen", "a") as _f:
    _f.write(f"import {_os.getpid()} {_gc.isenabled()}\\\\n")
_train = train

def train(config, composed):
    with open("seen", "a") as _f:
        _f.write(f"trial {_os.getpid()} {_gc.isenabled()} {_gc.get_freeze_count() > 0} "
                 f"{'torch._dynamo' in _sys.modules}\\\\n")
    return _train(config, composed)
''')
sys.exit(sweep(Path("program/train.py"), ["data=synthetic", "data.samples=256"], source=str(source)))
"""


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [1, 2])
def test_a_sweep_starts_without_collecting_and_collects_in_its_trials(tmp_path: Path, parallel: int) -> None:
    write_network(tmp_path, str(tmp_path / "runs"), epochs=1, trials=2, sampler="random", pruner="none",
                  parallel=parallel)
    done = subprocess.run([sys.executable, "-c", SWEEP], cwd=tmp_path, env=environment(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line.split() for line in (tmp_path / "seen").read_text().splitlines()]
    assert [line[2] for line in lines if line[0] == "import"] == ["False"]  # imported by the driver, starting
    trials = [line[1:] for line in lines if line[0] == "trial"]
    assert len(trials) == 2 and {tuple(trial[1:]) for trial in trials} == {("True", "True", "True")}
    assert len({pid for pid, *_ in trials}) == parallel


def test_collection_is_back_on_when_a_sweep_stops_at_a_mistake(tmp_path: Path) -> None:
    program = _program(tmp_path)
    assert gc.isenabled()
    with pytest.raises(ConfigError, match="did you mean 'train.epochs'"):
        sweep(program, ["train.epochz=3"], source=str(tmp_path / "model.neural"))
    assert gc.isenabled()
