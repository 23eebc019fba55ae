"""A real small sweep for the tests that read one: an Optuna study (ask-and-tell, TPE, median
pruning) in the store's own database, each trial a run logged by ExperimentTracker, the sweep and
its trials recorded through the store's sweep API. Trial 5 fails; some trials are pruned."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neural_dsl_tracking.tracking import ExperimentTracker
from neural_dsl_tracking.tracking.db import SQLITE_FILE
from neural_dsl_tracking.tracking.store import Store, store_locations

TRIALS, EPOCHS, FAILING = 8, 4, 5
SPACE = {"lr": {"type": "log_range", "low": 1e-4, "high": 1e-1},
         "units": {"type": "choice", "values": [16, 32, 64, 128]}}


@dataclass(frozen=True)
class MadeSweep:
    sweep_id: str
    storage: str
    study_name: str
    run_ids: dict[int, str]  # trial number -> run id


def study_storage(base_dir: Path, store: str | None) -> str:
    """The Optuna storage URL of the store's database (its SQLite file, or the PostgreSQL URL)."""
    location, _ = store_locations(base_dir, store)
    if store is not None:
        return location
    return f"sqlite:///{Path(location).resolve() / SQLITE_FILE}"


def accuracy(lr: float, units: int, epoch: int) -> float:
    """A made-up val_accuracy: best near lr=0.01 and many units, growing with the epochs."""
    import math

    closeness = 1.0 - min(1.0, abs(math.log10(lr) + 2.0) / 3.0)
    return round(0.3 + 0.4 * closeness * (epoch + 1) / EPOCHS + 0.1 * math.log2(units) / 7, 6)


def make_sweep(base_dir: Path, store: str | None = None, *, experiment: str = "digits",
               name: str = "digits-search") -> MadeSweep:
    """Run the sweep into the store at ``base_dir``/``store``; returns what it made."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = study_storage(base_dir, store)
    opened = Store(base_dir, store)
    try:
        sweep_id = opened.create_sweep(
            experiment=experiment, name=name, objective="val_accuracy", direction="maximize",
            sampler="tpe", pruner="median", space=SPACE, study_storage=storage,
            study_name=f"{experiment}-{name}", requested_trials=TRIALS)
        study = optuna.create_study(
            study_name=f"{experiment}-{name}", storage=storage, direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=0),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
        run_ids = {}
        for _ in range(TRIALS):
            trial = study.ask()
            params = {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                      "units": trial.suggest_categorical("units", [16, 32, 64, 128])}
            run_ids[trial.number] = _train(opened, study, trial, sweep_id, params, base_dir, store, experiment)
    finally:
        opened.close()
    return MadeSweep(sweep_id, storage, f"{experiment}-{name}", run_ids)


def _train(opened: Store, study, trial, sweep_id: str, params: dict, base_dir: Path,
           store: str | None, experiment: str) -> str:
    """One trial as a tracked run: per-epoch val_accuracy reported to the pruner."""
    import optuna

    tracker = ExperimentTracker(experiment, base_dir=str(base_dir), store=store, auto_visualize=False,
                                run_name=f"trial-{trial.number}", tags=["sweep"])
    tracker.log_hyperparameters(params)
    opened.record_trial(sweep_id, trial.number, state="running", run_id=tracker.run_id, params=params)
    value = None
    for epoch in range(EPOCHS):
        if trial.number == FAILING and epoch == 1:
            tracker.finish("failed")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            opened.record_trial(sweep_id, trial.number, state="failed")
            return tracker.run_id
        value = accuracy(params["lr"], params["units"], epoch)
        tracker.log_metrics({"val_accuracy": value, "loss": 1.0 - value}, step=epoch)
        trial.report(value, epoch)
        if trial.should_prune():
            tracker.finish("pruned")
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            opened.record_trial(sweep_id, trial.number, state="pruned", value=value)
            return tracker.run_id
    tracker.finish("completed")
    study.tell(trial, value)
    opened.record_trial(sweep_id, trial.number, state="complete", value=value)
    return tracker.run_id
