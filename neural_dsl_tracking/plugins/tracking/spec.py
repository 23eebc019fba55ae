"""TrackingSpec: the validated content of a ``tracking < ... >`` block.

The same model validates the block in a `.neural` file and the ``tracking`` section of
a Hydra-composed run config, so a key means the same thing in both places
(``mlflow.tracking_uri`` in the DSL is ``tracking.mlflow.tracking_uri=...`` in Hydra).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from neural_dsl_tracking import limits
from neural_dsl_tracking.tracking.values import MAX_NAME, metric_mode

Backend = Literal["local", "mlflow", "wandb", "tensorboard"]


def _within_name_limit(value: str) -> str:
    """``value`` when the store can record it as a name or tag (MAX_NAME characters)."""
    if len(value) > MAX_NAME:
        raise ValueError(f"has {len(value):,} characters; the limit is {MAX_NAME}")
    return value


Name = Annotated[str, AfterValidator(_within_name_limit)]
"""An experiment name, run name or tag: refused here rather than when the run starts."""


def fork_point(text: str) -> tuple[str, int | None]:
    """``RUN@EPOCH`` as (run, epoch), ``RUN`` as (run, None); a ValueError when the run is
    missing or the epoch is not a whole number >= 1."""
    run, at, epoch = text.strip().rpartition("@")
    if not at:
        run, epoch = epoch, ""
    if not run.strip() or (at and not (epoch.isdigit() and int(epoch) >= 1)):
        raise ValueError(f"fork must be RUN or RUN@EPOCH (an epoch number >= 1), got {text!r}")
    return run.strip(), int(epoch) if at else None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MlflowOptions(_Section):
    """Where the MLflow mirror writes."""

    tracking_uri: str | None = None
    experiment: str | None = None


class WandbOptions(_Section):
    """Where the W&B mirror writes; ``mode`` None means W&B's own default (``WANDB_MODE``)."""

    project: str | None = None
    entity: str | None = None
    mode: Literal["offline", "online", "disabled"] | None = None


class TensorboardOptions(_Section):
    """Where the TensorBoard mirror writes; None means ``<store>/tensorboard/<run id>``."""

    log_dir: str | None = None


class TrackingSpec(_Section):
    """Fields, types and defaults of the tracking block (see docs/language.md)."""

    backend: list[Backend] = Field(default_factory=lambda: ["local"])
    experiment: Name | None = None
    run_name: Name | None = None
    tags: list[Name] = Field(default_factory=list)
    visualize_every: int = limits.VISUALIZE_EVERY.field(10)
    version_artifacts: bool = True
    log_every: int = limits.LOG_EVERY.field(1)
    checkpoint_every: int = limits.CHECKPOINT_EVERY.field(1)
    system_metrics: int = limits.SYSTEM_METRICS.field(10)
    monitor: str = "val_loss"
    mode: Literal["min", "max"] | None = None
    """Whether lower or higher ``monitor`` is better; None: from its name (``best_mode``)."""
    store: str = "neural_experiments"
    mlflow: MlflowOptions = Field(default_factory=MlflowOptions)
    wandb: WandbOptions = Field(default_factory=WandbOptions)
    tensorboard: TensorboardOptions = Field(default_factory=TensorboardOptions)
    resume: str | None = None
    """A run (id, id prefix or name) to continue from its latest checkpoint: set by
    ``neural run FILE --resume RUN`` (``tracking.resume=RUN``)."""
    fork: str | None = None
    """``RUN`` or ``RUN@EPOCH``: start a new run from that run's checkpoint (the latest, or the
    one of that epoch); set by ``neural run FILE --fork RUN[@EPOCH]`` (``tracking.fork=...``)."""

    @property
    def best_mode(self) -> Literal["min", "max"]:
        """``mode``, or when it is not set the monitor's direction as the store ranks it:
        ``max`` for an accuracy-like name (accuracy, f1, auc, ...), else ``min``."""
        return self.mode or metric_mode(self.monitor)  # type: ignore[return-value]

    @field_validator("backend", "tags", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if isinstance(value, str):
            return [value]
        return value

    @field_validator("store")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a folder or a database URL, not empty text "
                             "(which would record into the launch directory)")
        return value

    @field_validator("fork")
    @classmethod
    def _fork_point(cls, value: str | None) -> str | None:
        if value is not None:
            fork_point(value)
        return value

    @model_validator(mode="after")
    def _resume_or_fork(self) -> "TrackingSpec":
        if self.resume is not None and self.fork is not None:
            raise ValueError("resume and fork cannot both be set: resume continues a run, fork starts "
                             "a new one from it")
        return self

    @field_validator("backend")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @property
    def mirrors(self) -> list[str]:
        """The backends other than the embedded store, which always records."""
        return [name for name in self.backend if name != "local"]
