"""The sweep plugin's contribution to generated programs: the per-epoch objective, reported
to the trial the program is training for, which may stop it (pruning).

The hooks run after the tracking plugin's (``order = 1``), so an epoch is logged before
it can end the trial. Outside a sweep's trial (``neural run``, ``python train.py``),
:func:`report_epoch` does nothing.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from neural_dsl_tracking.compiler.codegen import CodeWriter, Expr, call
from neural_dsl_tracking.errors import ConfigError


class SweepHooks:
    """``after_epoch``: ``report_epoch(epoch, epoch_metrics)``; nothing at the other points."""

    uses_workdir = False
    order = 1

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    def imports(self) -> list[str]:
        return ["from neural_dsl_tracking.plugins.sweep.hooks import report_epoch"]

    def after_epoch(self) -> list[str]:
        out = CodeWriter()
        out.line(call("report_epoch", Expr("epoch"), Expr("epoch_metrics")))
        return out.lines

    def checkpoint_every(self) -> None:
        return None

    def setup(self) -> list[str]:
        return []

    after_batch = on_checkpoint = teardown = setup


class TrialPruned(Exception):
    """The pruner stopped the trial after an epoch; its run is finished ``pruned``."""


@dataclass
class ActiveTrial:
    """The Optuna trial a program is training for, and the run it opened for it."""

    trial: Any
    objective: str
    tracker: Any = None
    last_value: float | None = None
    epochs: int = 0
    last_epoch: int | None = None
    """The program's last epoch: never pruned (stopping there saves no training, and would
    take a finished trial out of the candidates for best)."""

    def report(self, epoch: int, metrics: dict[str, float]) -> None:
        """Report the epoch's objective; before the last epoch, finish the run ``pruned`` and
        raise when the pruner says so."""
        if self.objective not in metrics:
            raise ConfigError(f"the sweep's objective {self.objective!r} is not a metric of the program's "
                              f"epochs ({', '.join(sorted(metrics))})")
        value = float(metrics[self.objective])
        self.last_value, self.epochs = value, epoch
        self.trial.report(value if math.isfinite(value) else float("nan"), epoch)
        if epoch != self.last_epoch and self.trial.should_prune():
            if self.tracker is not None:
                self.tracker.finish("pruned")
            raise TrialPruned(f"trial {self.trial.number} pruned after epoch {epoch}")


active_trial: ContextVar[ActiveTrial | None] = ContextVar("neural_sweep_active_trial", default=None)


def report_epoch(epoch: int, metrics: dict[str, float]) -> None:
    """Called by generated programs after each epoch: report to the active trial, if any."""
    trial = active_trial.get()
    if trial is not None:
        trial.report(epoch, metrics)
