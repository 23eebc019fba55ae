"""The sweep driver: prepare a sweep from a compiled program, then claim trials and hand
them to a launcher until the requested number are finished or running.

:func:`prepare` composes the program's config with the user's overrides once (with Hydra,
checked like ``neural run`` checks them), reads the ``sweep`` and ``tracking`` sections,
turns ``hpo.space`` into Optuna distributions, and creates the sweep (its record in the
store, its study in the store's database) or, with ``resume``, finds it again. :func:`drive`
runs the trials: each claim asks Optuna (ask-and-tell) for a trial under the sweep's lock
(see ``study.py``) and sends a :class:`~neural_dsl_tracking.plugins.sweep.trial.TrialJob`
to the launcher, at most ``parallel`` at once.
"""

from __future__ import annotations

import math
import os
import sys
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, CancelledError, Future, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from neural_dsl_tracking.errors import ConfigError, NeuralError
from neural_dsl_tracking.plugins.sweep import space as spaces
from neural_dsl_tracking.plugins.sweep.checks import check_composed
from neural_dsl_tracking.plugins.sweep.spec import SweepSpec
from neural_dsl_tracking.plugins.sweep.study import StudySettings, claim, open_study, storage_url, this_worker
from neural_dsl_tracking.plugins.sweep.trial import TrialJob, TrialResult, load_program
from neural_dsl_tracking.tracking.db import is_database_url
from neural_dsl_tracking.tracking.store import Store

Launcher = Callable[[TrialJob], "Future[TrialResult]"]
FAILURES_IN_A_ROW = 3
"""Trials failing one after the other (a failed trial does not count towards the sweep's
number) after which no new trial starts: a mistake every trial makes stops the sweep."""


@dataclass(frozen=True)
class SweepPlan:
    """A prepared sweep: what to search, where it is recorded, how many trials."""

    program: str
    config: dict[str, Any]
    distributions: dict[str, Any]
    settings: StudySettings
    sweep_id: str
    name: str
    spec: SweepSpec
    store: dict[str, str | None]
    threads: int | None
    started: float = field(default_factory=time.monotonic)
    """When the sweep was prepared (``time.monotonic``): its ``timeout`` counts from here."""


def prepare(program: Path, overrides: list[str], *, trials: int | None = None,
            resume: str | None = None, source: str | None = None) -> tuple[SweepPlan, Store]:
    """Compose, check and record the sweep (or find the one ``resume`` names); ``source``
    (the user's file) names the file in messages and is the sweep's recorded source."""
    from omegaconf import OmegaConf

    cfg, (config, composed) = _compose(program, overrides)
    tracking = getattr(config, "tracking", None)
    if tracking is None:
        raise ConfigError(f"{source or _source(program)}: a sweep records each trial as a tracked run; add a "
                          "tracking block to the network (e.g. tracking < monitor: val_accuracy; mode: max >)")
    spec = getattr(config, "sweep", None)
    if spec is None:
        raise ConfigError(f"{source or _source(program)}: the network has no sweep block, whose hooks report "
                          "each epoch's objective to the search; add one (e.g. sweep < trials: 20 >)")
    check_composed(spec, config.loss)
    store_args = _store_args(tracking.store)
    store = Store(store_args["base_dir"] or "neural_experiments", store_args["store"])
    space = _space(composed, overrides)
    grid = spaces.grid(space) if spec.sampler == "grid" else None
    if resume is not None:
        sweep = store.get_sweep(store.resolve_sweep_id(resume))
        if sweep.space != _recorded(space):
            raise ConfigError(f"sweep {sweep.name}: the network's search space is not the one the sweep "
                              "started with; resume it with the same file and overrides, or start a new sweep")
        target = _resumed_target(trials, overrides, spec.trials, sweep.requested_trials, grid)
        if target != sweep.requested_trials:
            store.set_requested_trials(sweep.sweep_id, target)
        spec = spec.model_copy(update={"objective": sweep.objective, "direction": sweep.direction,
                                       "sampler": sweep.sampler, "pruner": sweep.pruner, "trials": target})
        settings = StudySettings(sweep.study_storage, sweep.study_name, sweep.direction, sweep.sampler,
                                 sweep.pruner, _joining_seed(spec.seed), config.train.epochs, grid)
        sweep_id, name = sweep.sweep_id, sweep.name
    else:
        spec = spec.model_copy(update={"trials": _grid_trials(trials or spec.trials, grid)})
        sweep_id = uuid.uuid4().hex
        settings = StudySettings(storage_url(store), f"neural-sweep-{sweep_id}", spec.direction or "minimize",
                                 spec.sampler, spec.pruner, spec.seed, config.train.epochs, grid)
        name = _create(store, settings, spec, sweep_id, tracking.experiment or "default", space,
                       Path(source).resolve() if source else Path(_source(program)))
    open_study(settings, create=resume is None)
    plan = SweepPlan(program=str(program), config=OmegaConf.to_container(cfg, resolve=False),
                     distributions=spaces.distributions(space), settings=settings, sweep_id=sweep_id,
                     name=name, spec=spec, store=store_args, threads=_threads(config.execution.threads,
                                                                              spec.parallel))
    return plan, store


def _create(store: Store, settings: StudySettings, spec: SweepSpec, sweep_id: str, experiment: str,
            space: dict[str, dict[str, Any]], source: Path) -> str:
    """Record the new sweep in the store, its ``source`` the file swept; returns its name."""
    from neural_dsl_tracking.tracking.objects import hash_regular_file

    store.create_sweep(experiment=experiment, objective=spec.objective or "val_loss",
                       direction=settings.direction, sampler=spec.sampler, pruner=spec.pruner,
                       space=_recorded(space), study_storage=settings.storage,
                       study_name=settings.study_name, requested_trials=spec.trials, sweep_id=sweep_id,
                       source_file=str(source), source_sha256=hash_regular_file(source, "source file"))
    return store.get_sweep(sweep_id).name


def _resumed_target(trials: int | None, overrides: list[str], composed: int, recorded: int,
                    grid: dict[str, list[Any]] | None) -> int:
    """The resumed sweep's number of trials: ``--trials``, else a ``sweep.trials=`` override,
    else the recorded one (the compiled block's ``trials`` does not change it)."""
    if trials is None and "sweep.trials" not in _overridden(overrides):
        return recorded
    return _grid_trials(trials or composed, grid)


def _joining_seed(seed: int | None) -> int | None:
    """The sampler's seed in a process resuming or joining a sweep: the block's seed plus this
    process's id, so processes sharing the sweep do not propose the same values."""
    return None if seed is None else (seed + os.getpid()) % 2**32


def _grid_trials(trials: int, grid: dict[str, list[Any]] | None) -> int:
    """``trials``, or the grid's size when the grid has fewer points (said on stderr)."""
    if grid is None or spaces.grid_size(grid) >= trials:
        return trials
    size = spaces.grid_size(grid)
    print(f"note: the grid has {size} points: {size} trials, not {trials}", file=sys.stderr)
    return size


def drive(plan: SweepPlan, store: Store, launch: Launcher, report: Callable[[TrialResult], None],
          interrupt: Callable[[], None] | None = None) -> list[TrialResult]:
    """Claim trials and launch them, ``parallel`` at once, until none is left to claim (or the
    timeout passed); a NeuralError when :data:`FAILURES_IN_A_ROW` trials failed one after the other.

    Stopped (a KeyboardInterrupt: Ctrl-C, SIGTERM), it calls ``interrupt`` (which stops the
    trials the launcher runs elsewhere), reports how the trials running ended, and raises again."""
    pending: set[Future[TrialResult]] = set()
    try:
        return _drive(plan, store, launch, report, pending)
    except KeyboardInterrupt:
        if interrupt is not None and pending:
            interrupt()
            _report_stopped(pending, report)
        raise


def _report_stopped(pending: set[Future[TrialResult]], report: Callable[[TrialResult], None]) -> None:
    """Wait for the interrupted trials to end and report each (a worker gone reports nothing)."""
    for future in as_completed(pending):
        try:
            report(future.result())
        except (BrokenExecutor, CancelledError):
            pass


def _drive(plan: SweepPlan, store: Store, launch: Launcher, report: Callable[[TrialResult], None],
           pending: set[Future[TrialResult]]) -> list[TrialResult]:
    """:func:`drive`'s loop; ``pending`` holds the trials launched and not yet reported."""
    deadline = math.inf if plan.spec.timeout is None else plan.started + plan.spec.timeout
    results: list[TrialResult] = []
    while True:
        while len(pending) < plan.spec.parallel and time.monotonic() < deadline and not _failing(results):
            job = _next_job(plan, store)
            if job is None:
                break
            pending.add(launch(job))
        if not pending:
            if _failing(results):
                raise NeuralError(f"sweep {plan.name}: {FAILURES_IN_A_ROW} trials in a row failed, the last with: "
                                  f"{results[-1].message}; fix that, then resume with --resume {plan.sweep_id[:8]}")
            return results
        done = wait(pending, return_when=FIRST_COMPLETED).done
        for future in done:
            pending.discard(future)
            try:
                result = future.result()
            except BrokenExecutor as error:
                raise NeuralError(f"sweep {plan.name}: a worker process died ({error}); its trial is failed at "
                                  f"the next claim: resume with --resume {plan.sweep_id[:8]}") from None
            results.append(result)
            report(result)


def _failing(results: list[TrialResult]) -> bool:
    """True when the last :data:`FAILURES_IN_A_ROW` trials all failed (no new trial starts)."""
    last = results[-FAILURES_IN_A_ROW:]
    return len(last) == FAILURES_IN_A_ROW and all(result.state == "failed" for result in last)


def _next_job(plan: SweepPlan, store: Store) -> TrialJob | None:
    """The next trial as a job, or None when the sweep has all its trials."""

    def failed(number: int) -> None:
        _mark_failed(store, plan.sweep_id, number)

    runs_here = plan.spec.launcher == "local" and plan.spec.parallel == 1  # see launch_local.local_launcher
    trial = claim(store, plan.settings, plan.spec.trials, plan.distributions, failed, runs_here=runs_here)
    if trial is None:
        return None
    return TrialJob(program=plan.program, config=plan.config, values=spaces.config_values(trial.params),
                    number=trial.number, trial_id=trial._trial_id, study=plan.settings,  # noqa: SLF001
                    sweep_id=plan.sweep_id, store=plan.store, objective=plan.spec.objective or "val_loss",
                    threads=plan.threads, claimed_by=this_worker())


def _mark_failed(store: Store, sweep_id: str, number: int) -> None:
    """A trial whose process vanished: failed in the sweep, its run (if it has one) crashed."""
    sweep = store.get_sweep(sweep_id)
    trial = next((t for t in sweep.trials if t.number == number), None)
    store.record_trial(sweep_id, number, state="failed")
    if trial is not None and trial.run_id is not None:
        run = store.get_run(trial.run_id)
        if run.status in ("running", "crashed"):
            store.set_status(trial.run_id, "crashed", end_time=run.heartbeat.timestamp() if run.heartbeat else None)


def best_checkpoint(store: Store, sweep: Any) -> Any | None:
    """The sweep's best checkpoint: the ``best`` checkpoint (its best epoch by the objective)
    of the best trial's run; None before a trial completes, or when it kept no checkpoint."""
    from neural_dsl_tracking.errors import TrackingError

    best = sweep.best_trial
    if best is None or best.run_id is None:
        return None
    try:
        return store.find_artifact_version(best.run_id, "checkpoint", "best")
    except TrackingError:
        return None


# ---------------------------------------------------------------- helpers


def _compose(program: Path, overrides: list[str]) -> tuple[Any, tuple[Any, dict[str, Any]]]:
    """The program's config with the user's overrides, checked as ``neural run`` checks them,
    and what the program's ``settings`` made of it (the run config, the composed config as
    plain data): the config the check composed, not composed a second time."""
    from neural_dsl_tracking.compiler import runtime
    from neural_dsl_tracking.resources import configs_dir

    flags = [arg for arg in overrides if arg.startswith("-")]
    if flags:
        raise ConfigError(f"{flags[0]}: a sweep takes overrides (KEY=VALUE), not program flags")
    search = f"hydra.searchpath=[{configs_dir().resolve().as_uri()}]"
    module = load_program(str(program))
    checked: list[tuple[Any, tuple[Any, dict[str, Any]]]] = []
    runtime.preflight(program.parent / "conf", list(overrides), search,
                      check=lambda cfg: checked.append((cfg, module.settings(cfg))))
    return checked[-1]


def _space(composed: dict[str, Any], overrides: list[str]) -> dict[str, dict[str, Any]]:
    """The searched part of ``hpo.space``: without repeat counts and settings the user fixed."""
    everything = (composed.get("hpo") or {}).get("space") or {}
    fixed = _overridden(overrides)
    for path in everything:
        if path.startswith(spaces.REPEAT_PREFIX):
            print(f"note: {path[len(spaces.REPEAT_PREFIX):]}: a repeat count is not searched "
                  "(another count is another network); the sweep keeps the compiled one", file=sys.stderr)
    searched = spaces.searched(everything, fixed)
    if not searched:
        raise ConfigError("nothing to search: the network has no HPO(...) expression"
                          + (" that the overrides leave free" if everything else ""))
    return searched


def _overridden(overrides: list[str]) -> set[str]:
    """The config keys the overrides set (``+key=``, ``~key`` and ``key=`` alike)."""
    return {line.partition("=")[0].lstrip("+~") for line in overrides}


def _recorded(space: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The space as recorded: each entry without its Hydra sweep expression."""
    return {path: {k: v for k, v in entry.items() if k != "sweep"} for path, entry in space.items()}


def _store_args(location: str) -> dict[str, str | None]:
    """``Store`` arguments of the runs' store, a relative folder resolved against this directory."""
    if is_database_url(location):
        return {"base_dir": str(Path.cwd() / "neural_experiments"), "store": location}
    path = Path(location).expanduser()
    return {"base_dir": None, "store": str(path if path.is_absolute() else Path.cwd() / path)}


def _threads(configured: int | None, parallel: int) -> int | None:
    """PyTorch threads per trial: the configured number, else this machine's CPUs shared out."""
    if configured is not None or parallel == 1:
        return configured
    return max(1, (os.cpu_count() or 1) // parallel)


def _source(program: Path) -> str:
    return str(program.resolve().parent / "source.neural")
