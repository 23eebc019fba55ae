"""Reading a sweep's Optuna study: parameter importances, for ``neural experiments show SWEEP``
and the dashboard's Sweeps tab. Optuna is imported only when asked."""

from __future__ import annotations

import warnings
from typing import Any

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.records import SweepRecord

IMPORTANCE_METHOD = "PED-ANOVA"


def load_study(sweep: SweepRecord) -> Any:
    """The sweep's Optuna study, opened read-side from its storage; TrackingError when it is
    gone or Optuna is not installed."""
    try:
        import optuna
    except ImportError:
        raise TrackingError("reading a sweep's study needs Optuna: "
                            "pip install 'neural-dsl-tracking[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=sweep.study_name, storage=sweep.study_storage)
    except Exception as error:  # noqa: BLE001 - storage errors come from SQLAlchemy, drivers, Optuna
        raise TrackingError(f"cannot open the study {sweep.study_name!r} of sweep {sweep.sweep_id[:8]} "
                            f"in {sweep.study_storage_shown}: {error}") from None


def param_importances(sweep: SweepRecord) -> dict[str, float]:
    """How much each parameter explains the objective among the complete trials (Optuna's
    PED-ANOVA evaluator, normalised to sum to 1), most important first; TrackingError with the
    reason when they cannot be computed (no complete trial yet, the study is gone)."""
    study = load_study(sweep)
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PED-ANOVA is marked experimental
        try:
            found = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
        except (ValueError, RuntimeError) as error:
            raise TrackingError(f"no parameter importances yet: {error}") from None
    return {name: float(value) for name, value in found.items()}
