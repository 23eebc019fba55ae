"""``parallel: N`` workers are forked from the driver: the compiled program (and PyTorch with
it) is imported once, by the driver, not again by each worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import environment, load_study, write_network

pytestmark = pytest.mark.slow

SWEEP = """
import sys
from pathlib import Path

from neural_dsl_tracking.compiler import compile_network
from neural_dsl_tracking.language import parse_file
from neural_dsl_tracking.plugins.sweep.cli import sweep

source = Path("model.neural")
compile_network(parse_file(source).network(), source, Path("program"))
with open("program/train.py", "a") as program:  # each import of the program leaves its pid
    program.write("\\nimport os as _os\\nwith open('imports', 'a') as _f:\\n    _f.write(f'{_os.getpid()}\\\\n')\\n")
sys.exit(sweep(Path("program/train.py"), ["data=synthetic", "data.samples=256"], source=str(source)))
"""


def test_workers_are_forked_from_the_driver_with_the_program_imported(tmp_path: Path) -> None:
    store = tmp_path / "runs"
    write_network(tmp_path, str(store), epochs=1, trials=2, sampler="random", pruner="none", parallel=2)
    driver = subprocess.Popen([sys.executable, "-c", SWEEP], cwd=tmp_path, env=environment(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output

    (sweep,) = ExperimentManager(store=str(store)).list_sweeps()
    assert {t.state for t in sweep.trials} == {"complete"}
    workers = {trial.system_attrs["neural:worker"].rpartition(":")[2] for trial in load_study(sweep).trials}
    assert len(workers) == 2 and str(driver.pid) not in workers  # two workers ran the trials
    assert (tmp_path / "imports").read_text().split() == [str(driver.pid)]  # imported by the driver only


def test_the_workers_end_when_the_driver_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed driver left its forked workers training, then blocked on the trial queue for
    ever (each holds the queue's other end); they now end with the driver."""
    import signal
    import time

    import psutil

    from .conftest import start_sweep

    write_network(tmp_path, str(tmp_path / "runs"), epochs=200, trials=4, sampler="random", pruner="none",
                  parallel=2)
    driver, workers = start_sweep(tmp_path, "model.neural", "data=synthetic", "data.samples=256"), []
    try:
        deadline = time.monotonic() + 120
        while len(psutil.Process(driver.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = psutil.Process(driver.pid).children()
        assert len(workers) == 2
        for line in driver.stdout:  # both workers are training
            if line.startswith("epoch 2/"):
                break
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        gone, alive = psutil.wait_procs(workers, timeout=20)
        assert alive == [], [worker.pid for worker in alive]
    finally:
        driver.kill()
        driver.wait(30)
        for worker in workers:  # no longer the test's descendants once the driver is gone
            if worker.is_running():
                worker.kill()
