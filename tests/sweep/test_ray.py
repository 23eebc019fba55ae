"""``launcher: ray``: a sweep's trials run as Ray tasks on a real Ray head (2 CPUs on
127.0.0.1, started for the module and stopped by its process group), reporting into the
shared store and study: a store folder on this machine's filesystem, and PostgreSQL."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import environment, load_study, start_sweep, sweep_command, write_network

pytestmark = pytest.mark.slow

RAY = Path(sys.executable).with_name("ray")
AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
"""Ray's token authentication, set for the head and the driver alike (a head started where
``~/.ray/auth_token`` exists turns it on by itself; a driver given an address never does)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A Ray head on 127.0.0.1 with 2 CPUs (``ray start --head --block`` in its own process
    group, in a short temp dir: Ray's socket paths must stay short); yields ``HOST:PORT``."""
    if not RAY.exists():
        pytest.skip("ray is not installed (pip install -e '.[ray]')")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    port = _free_port()
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
        env={**environment(), **AUTH}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the Ray head did not listen within 60 s"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(params=["folder", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_store(request, tmp_path: Path) -> str:
    """Where the driver and the Ray workers record the sweep."""
    return str(tmp_path / "runs") if request.param == "folder" else request.getfixturevalue("postgres_url")


def test_a_sweep_runs_its_trials_as_ray_tasks_on_a_ray_head(tmp_path: Path, ray_head: str, shared_store: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AUTH.items():
        monkeypatch.setenv(name, value)
    write_network(tmp_path, shared_store, epochs=1, trials=4, sampler="random", pruner="none", parallel=2)
    driver = start_sweep(tmp_path, "model.neural", "--launcher", "ray", "--address", ray_head)
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output

    manager = ExperimentManager(store=shared_store)
    (sweep,) = manager.list_sweeps()
    assert sorted(t.number for t in sweep.trials) == [0, 1, 2, 3]
    assert {t.state for t in sweep.trials} == {"complete"}
    assert sweep.counts["complete"] == 4 and sweep.best_trial is not None
    for trial in sweep.trials:
        run = manager.get_experiment(trial.run_id)
        assert run.status == "completed"
        assert run.hyperparameters["optimizer.lr"] == trial.params["optimizer.lr"]
        assert trial.value == pytest.approx(manager.get_metric_history(run.run_id, "val_accuracy").values[-1])

    study = load_study(sweep)
    assert sorted((t.number, t.state.name) for t in study.trials) == [(n, "COMPLETE") for n in range(4)]
    workers = {int(t.system_attrs["neural:worker"].rpartition(":")[2]) for t in study.trials}
    assert driver.pid not in workers  # the trials ran in Ray's worker processes, not in the driver
    assert f"best trial {sweep.best_trial.number}" in output


def test_an_address_where_no_ray_cluster_answers_is_one_error(tmp_path: Path) -> None:
    write_network(tmp_path, str(tmp_path / "runs"), epochs=1, trials=2, sampler="random", pruner="none")
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there: ray.init would retry for ever
    done = subprocess.run(sweep_command("model.neural", "--launcher", "ray", "--address", address),
                          cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"error: sweep.address={address}: no Ray cluster answers there (Connection "
                                   "refused); start one with `ray start --head --port PORT`, or leave the "
                                   "address out to run Ray on this machine")
