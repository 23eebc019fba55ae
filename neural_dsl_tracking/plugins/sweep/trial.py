"""One trial of a sweep, run where it is sent: ``run_trial(job) -> TrialResult``.

A :class:`TrialJob` is plain, picklable data (a worker process or a Ray task can take
it): the compiled program, the config composed with the user's overrides, the trial's
values, where the study and the store are. :func:`run_trial` applies the values to the
config as overrides of their config paths, validates it like the program does, and
calls the program's ``train`` in this process (the program is imported once per
process), inside:

- the trial's :class:`~neural_dsl_tracking.plugins.sweep.hooks.ActiveTrial`, so the
  program's per-epoch objective is reported to Optuna and the pruner can stop it;
- a run scope (``tracking/scope.py``) that links the run the program opens to the sweep
  as this trial, and skips the run's plots (drawn later, off the trial's critical path);
- a heartbeat in the study, and this process as the trial's worker, so a trial whose
  process vanished is failed.

Then the trial is told to Optuna (complete with the objective's last value, pruned, or
failed) and recorded in the store's sweep.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from neural_dsl_tracking.errors import NeuralError
from neural_dsl_tracking.plugins.sweep.hooks import ActiveTrial, TrialPruned, active_trial
from neural_dsl_tracking.plugins.sweep.study import (WORKER_ATTR, Heartbeat, StudySettings, claimed_trial, open_study,
                                                     this_worker)
from neural_dsl_tracking.tracking.scope import run_scope
from neural_dsl_tracking.tracking.store import Store


@dataclass(frozen=True)
class TrialJob:
    """Everything a process needs to run one trial."""

    program: str
    """The compiled ``train.py``."""
    config: dict[str, Any]
    """The program's config composed with the user's overrides (unresolved)."""
    values: dict[str, Any]
    """This trial's value of each searched config path."""
    number: int
    trial_id: int
    study: StudySettings
    sweep_id: str
    store: dict[str, str | None]
    """``Store(**store)``: the run store's ``base_dir`` and ``store``."""
    objective: str
    threads: int | None = None
    """PyTorch CPU threads for the trial (``execution.threads``); None keeps the config's."""
    claimed_by: str = ""
    """The worker (``host:pid``) that claimed the trial; another process running it records itself."""


@dataclass(frozen=True)
class TrialResult:
    """How a trial ended: ``complete``, ``pruned`` or ``failed`` (with why)."""

    number: int
    state: str
    value: float | None = None
    run_id: str | None = None
    epochs: int = 0
    message: str = ""
    values: dict[str, Any] = field(default_factory=dict)


def run_trial(job: TrialJob, *, raise_interrupt: bool = True) -> TrialResult:
    """Train the trial's configuration, tell Optuna how it ended, record it in the sweep.

    A KeyboardInterrupt (Ctrl-C, SIGTERM) during training fails the trial (``interrupted``),
    then is raised again; with ``raise_interrupt`` False (a worker whose driver stops the
    sweep) the trial's result is returned instead."""
    trial = _optuna_trial(job)
    claimed_here = job.claimed_by == this_worker()  # the claim recorded the worker and the first beat
    if not claimed_here:
        trial.study._storage.set_trial_system_attr(job.trial_id, WORKER_ATTR, this_worker())  # noqa: SLF001
    active = ActiveTrial(trial, job.objective, last_epoch=job.study.epochs)
    with Heartbeat(job.study, job.trial_id, beaten=claimed_here):
        try:
            state, message = _train(job, active), ""
        except TrialPruned:
            state, message = "pruned", ""
        except NeuralError as error:
            state, message = "failed", str(error)
        except KeyboardInterrupt:
            result = _finish(job, active, "failed", "interrupted")
            if raise_interrupt:
                raise
            return result
        except Exception as error:  # noqa: BLE001 - a trial's crash fails the trial, not the sweep
            state, message = "failed", f"{type(error).__name__}: {error}"
    return _finish(job, active, state, message)


def interrupted(job: TrialJob) -> TrialResult:
    """Fail a claimed trial that was stopped before its training began (``interrupted``)."""
    return _finish(job, ActiveTrial(None, job.objective), "failed", "interrupted")


def _train(job: TrialJob, active: ActiveTrial) -> str:
    """Run the program on the trial's config; ``complete`` when it reported the objective."""
    module = load_program(job.program)
    config, composed = module.settings(trial_config(job))

    def opened(tracker: Any) -> None:
        active.tracker = tracker
        _store(job).record_trial(job.sweep_id, job.number, state="running", run_id=tracker.run_id,
                                 params=job.values)

    token = active_trial.set(active)
    try:
        with run_scope(final_plots=False, on_open=opened):
            module.train(config, composed)
    finally:
        active_trial.reset(token)
    if active.last_value is None:
        raise NeuralError(f"the program never reported the objective {job.objective!r}")
    return "complete"


def trial_config(job: TrialJob) -> Any:
    """The job's config with the trial's values (and threads) set at their config paths, and
    the sweep's objective as the run's checkpoint monitor.

    The object is this process's one for the job's config and those paths, its values set
    again for each trial (copying it would cost more than the whole update): every trial of a
    sweep sets the same paths, so nothing of an earlier trial is left. It is valid until the
    next call in this process."""
    from omegaconf import OmegaConf

    settings = _trial_settings(job)
    config = _base_config(job.config, tuple(settings))
    for path, value in settings.items():
        OmegaConf.update(config, path, value, merge=False)
    return config


def _trial_settings(job: TrialJob) -> dict[str, Any]:
    """What a trial sets in the config, by config path."""
    settings = dict(job.values)
    if job.threads is not None:
        settings["execution.threads"] = job.threads
    if "tracking" in job.config:  # the run's checkpoint alias ``best``: its best epoch by the objective
        settings["tracking.monitor"] = job.objective
        settings["tracking.mode"] = "max" if job.study.direction == "maximize" else "min"
    return settings


_created: list[tuple[dict[str, Any], tuple[str, ...], Any]] = []
"""The last job's config, the paths its trials set, and its OmegaConf object, in this process."""


def _base_config(config: dict[str, Any], paths: tuple[str, ...]) -> Any:
    """``config`` as an OmegaConf object, created once per sweep and process (creating one
    costs about 3.5 ms): the same object while the config and the paths set in it are the same."""
    from omegaconf import OmegaConf

    if not _created or _created[0][1] != paths or _created[0][0] != config:
        _created[:] = [(config, paths, OmegaConf.create(config))]
    return _created[0][2]


def _finish(job: TrialJob, active: ActiveTrial, state: str, message: str) -> TrialResult:
    """Tell Optuna and the store how the trial ended."""
    from optuna.trial import TrialState

    value = active.last_value
    if state == "complete" and (value is None or not math.isfinite(value)):
        state, message = "failed", message or f"the objective {job.objective!r} is {value}"
    study = open_study(job.study)
    if state == "complete":
        study.tell(job.number, value, skip_if_finished=True)
    else:
        study.tell(job.number, state=TrialState.PRUNED if state == "pruned" else TrialState.FAIL,
                   skip_if_finished=True)
    run_id = active.tracker.run_id if active.tracker is not None else None
    _store(job).record_trial(job.sweep_id, job.number, state=state, run_id=run_id,
                             value=value if state != "failed" else None, params=job.values)
    return TrialResult(job.number, state, value, run_id, active.epochs, message, dict(job.values))


def _optuna_trial(job: TrialJob) -> Any:
    """The job's Optuna trial: the one this process claimed, else built again from the study."""
    import optuna

    return claimed_trial(job.trial_id) or optuna.trial.Trial(open_study(job.study), job.trial_id)


def load_program(train_py: str) -> ModuleType:
    """The compiled program imported as a module (its ``__main__`` block does not run), once
    per file: a relative path (``build/.cache/...``) names another file in another folder."""
    return _load_program(Path(train_py).resolve())


@lru_cache(maxsize=4)
def _load_program(path: Path) -> ModuleType:
    name = f"neural_sweep_program_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise NeuralError(f"cannot load the compiled program {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_stores: dict[tuple, Store] = {}


def _store(job: TrialJob) -> Store:
    """This process's connection to the run store (one per store)."""
    key = (job.store.get("base_dir"), job.store.get("store"), os.getpid())
    if key not in _stores:
        _stores[key] = Store(job.store.get("base_dir") or "neural_experiments", job.store.get("store"))
    return _stores[key]
