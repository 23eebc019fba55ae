"""Running trials as Ray tasks (``launcher: ray``): on the cluster at ``address``
(``HOST:PORT`` of its head), or on a Ray started for the sweep on this machine.

Each trial is one task calling :func:`~neural_dsl_tracking.plugins.sweep.trial.run_trial`
with its :class:`~neural_dsl_tracking.plugins.sweep.trial.TrialJob`, ``parallel`` tasks in
flight (the driver claims the trials; a task is not retried: its trial was claimed once).
The task reports into the sweep's store and study itself, so both must be reachable from
every node: a PostgreSQL store, or a store folder on a filesystem the nodes share at the
same path; the compiled program and the data must be at the same paths too. Ray is
imported only here, when the launcher is made.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from neural_dsl_tracking.errors import ConfigError
from neural_dsl_tracking.plugins.sweep.spec import RAY_ADDRESS_FORMS, ray_address_problem
from neural_dsl_tracking.plugins.sweep.trial import TrialJob, TrialResult, run_trial

CONNECT_TIMEOUT = 5.0
"""Seconds to reach the head's port before giving up (``ray.init`` itself retries forever)."""


def run_in(cwd: str, job: TrialJob) -> TrialResult:
    """``run_trial(job)`` in the driver's working directory when this node has it (relative
    paths in the config then mean what they mean to the driver)."""
    if os.path.isdir(cwd):
        os.chdir(cwd)
    return run_trial(job)


def ray_launcher(plan: Any) -> tuple[Callable[[TrialJob], "Future[TrialResult]"], Callable[[], None]]:
    """(launch, close): ``launch(job)`` starts the trial as a Ray task; ``close`` waits for
    nothing (the driver waited for its tasks) and disconnects from Ray."""
    import ray

    _connect(ray, plan.spec.address, plan.spec.parallel)
    task = ray.remote(num_cpus=1, max_retries=0)(run_in)
    cwd = os.getcwd()

    def launch(job: TrialJob) -> "Future[TrialResult]":
        job = dataclasses.replace(job, program=str(Path(job.program).resolve()))
        return task.remote(cwd, job).future()

    return launch, ray.shutdown


def _connect(ray: Any, address: str | None, parallel: int) -> None:
    """Join the cluster at ``address`` (else ``RAY_ADDRESS``), or start a Ray on this machine
    with ``parallel`` CPUs."""
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": "WARNING",
                               "runtime_env": {"env_vars": _worker_env()}}
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=parallel, include_dashboard=False, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:  # what ray.init raises for a Ray it cannot use
        where = f"the Ray cluster at {address}" if address else "a Ray on this machine"
        raise ConfigError(f"sweep.launcher=ray: cannot connect to {where}: {error}") from None


def _check_reachable(address: str) -> None:
    """Refuse an address Ray cannot connect to (the sweep block's rule, ``spec.ray_address_problem``,
    which the block's address has passed and ``RAY_ADDRESS`` passes here), or a ``HOST:PORT`` whose
    port does not answer (``auto`` and ``ray://`` addresses are left to Ray)."""
    problem = ray_address_problem(address)
    if problem is not None:
        raise ConfigError(f"RAY_ADDRESS={address!r}: {problem}: a Ray cluster's address is {RAY_ADDRESS_FORMS}")
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise ConfigError(f"sweep.address={address}: no Ray cluster answers there ({error.strerror or error}); "
                          "start one with `ray start --head --port PORT`, or leave the address out to run "
                          "Ray on this machine") from None


def _worker_env() -> dict[str, str]:
    """Settings of this process that the trials' processes need too."""
    names = ("NEURAL_NO_PROGRESS", "NEURAL_DISABLE_PLUGINS", "PYTHONHASHSEED")
    return {name: os.environ[name] for name in names if name in os.environ}
