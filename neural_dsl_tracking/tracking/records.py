"""Plain records the tracking engine hands out: runs, metric histories, artifact versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.db import redact
from neural_dsl_tracking.tracking.values import FINAL_STATUSES, TRIAL_STATES  # noqa: F401 (FINAL_STATUSES: the tracker's)

if TYPE_CHECKING:  # numpy is imported by what reads metric points, not by ls or show
    import numpy as np



@dataclass(frozen=True)
class MetricHistory:
    """Every logged point of one metric of one run, in logging order."""

    key: str
    steps: np.ndarray  # int64
    values: np.ndarray  # float64 (NaN and +-inf kept)
    timestamps: np.ndarray  # float64, seconds since the epoch

    def __len__(self) -> int:
        return int(self.steps.shape[0])


@dataclass(frozen=True)
class ArtifactVersion:
    """One version of a named artifact; ``path`` is its read-only content-addressed object."""

    name: str
    version: int
    sha256: str
    size: int
    created_at: datetime
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    run_id: str = ""

    @property
    def checksum(self) -> str:
        """The SHA-256 of the content (the original API's name for ``sha256``)."""
        return self.sha256

    @property
    def timestamp(self) -> float:
        """When the version was logged, in seconds since the epoch (``created_at``)."""
        return self.created_at.timestamp()


def artifact_ref(ref: int | str = -1, version: int | str | None = None) -> int | str:
    """The version asked for: ``ref``, or ``version`` (the original API's keyword) when given."""
    if version is None:
        return ref
    if ref != -1:
        raise TrackingError(f"give the version as ref or as version, not both "
                            f"(ref={ref!r}, version={version!r})")
    return version


@dataclass(frozen=True)
class MetricSummary:
    """The per-run, per-key summary kept up to date by every flush."""

    latest: float
    best: float | None
    min: float | None
    max: float | None
    count: int
    latest_step: int
    max_step: int

    def as_dict(self) -> dict[str, Any]:
        """The RunRecord.metrics entry: latest, best, min, max, count."""
        return {"latest": self.latest, "best": self.best, "min": self.min, "max": self.max,
                "count": self.count}


@dataclass(frozen=True)
class RunParent:
    """Where a forked run came from: the parent run's id and the fork point, the epoch and
    global step of the parent's checkpoint it started from (None when not known)."""

    run_id: str
    fork_epoch: int | None
    fork_step: int | None


@dataclass(frozen=True)
class RunEvent:
    """Something that happened to a run after it started: ``kind`` is one of RUN_EVENT_KINDS
    (``resumed``, ``forked``), ``detail`` a sentence for people."""

    at: datetime
    kind: str
    detail: str


RUN_EVENT_KINDS = ("resumed", "forked")


@dataclass(frozen=True)
class RunRecord:
    """What the store knows about one run (times are timezone-aware UTC datetimes)."""

    run_id: str
    experiment: str
    run_name: str
    status: str
    start_time: datetime
    end_time: datetime | None
    hyperparameters: dict[str, Any]
    tags: list[str]
    metrics: dict[str, dict[str, Any]]
    artifacts: list[str]
    mirror_failures: list[tuple[str, str]] = field(default_factory=list)
    heartbeat: datetime | None = None
    config: dict[str, Any] | None = None
    source_file: str | None = None
    source_sha256: str | None = None
    parent: RunParent | None = None  # set for a forked run
    children: tuple[str, ...] = ()  # the runs forked from this one, oldest first
    events: tuple[RunEvent, ...] = ()  # oldest first

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (or to the last heartbeat while running or crashed)."""
        end = self.end_time or self.heartbeat
        return None if end is None else max(0.0, (end - self.start_time).total_seconds())


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a sweep: its number, the run that trained it, its state and objective value
    (None until it completes), and the values it tried."""

    sweep_id: str
    number: int
    run_id: str | None
    state: str  # one of TRIAL_STATES
    value: float | None
    params: dict[str, Any]
    updated_at: datetime


@dataclass(frozen=True)
class SweepRecord:
    """A sweep (a hyperparameter search): its settings, where its Optuna study lives, and its
    trials in number order. ``study_storage`` is the URL Optuna opens (it may hold a password:
    print ``study_storage_shown``)."""

    sweep_id: str
    experiment: str
    name: str
    objective: str
    direction: str  # one of DIRECTIONS
    sampler: str
    pruner: str
    space: dict[str, Any]
    study_storage: str
    study_name: str
    requested_trials: int
    created_at: datetime
    source_file: str | None = None
    source_sha256: str | None = None
    trials: tuple[TrialRecord, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        """How many trials are in each state, every state listed (``{"running": 0, ...}``)."""
        return {state: sum(t.state == state for t in self.trials) for state in TRIAL_STATES}

    def ranked_trials(self) -> list[TrialRecord]:
        """The trials best first by objective (direction-aware); those without a value last,
        in number order."""
        sign = -1.0 if self.direction == "maximize" else 1.0
        return sorted(self.trials, key=lambda t: (t.value is None, sign * (t.value or 0.0), t.number))

    @property
    def best_trial(self) -> TrialRecord | None:
        """The complete trial with the best value (the lowest-numbered on a tie), or None."""
        done = [t for t in self.ranked_trials() if t.state == "complete" and t.value is not None]
        return done[0] if done else None

    @property
    def study_storage_shown(self) -> str:
        """``study_storage`` without its password, for printing."""
        return redact(self.study_storage) if "://" in self.study_storage else self.study_storage


@dataclass(frozen=True)
class RunModel:
    """The model of a compiled run: its normalised spec (``{"layers": [...], "input", "output",
    "params", "macs"}``, see docs/tracking.md), total parameters, multiply-accumulates per
    sample and fingerprint (None when the run did not record one)."""

    run_id: str
    spec: dict[str, Any]
    params: int | None
    macs: int | None
    fingerprint: str | None


@dataclass(frozen=True)
class ModelFacts:
    """A run's model without its spec, for listing many runs: total parameters,
    multiply-accumulates per sample and fingerprint (each None when not recorded)."""

    params: int | None
    macs: int | None
    fingerprint: str | None


def oldest_twins(fingerprints: dict[str, str | None], oldest_first: Iterable[tuple[str, str | None]]
                 ) -> dict[str, str]:
    """The rule ``ls``, ``show`` and the dashboard mark runs with ("same as 3f2a91c0"): for each
    run of ``fingerprints`` (run id -> its fingerprint) whose fingerprint another run shares, the
    oldest such other run. ``oldest_first``: (run id, fingerprint) of the runs to look among,
    oldest first (by start time, then run id)."""
    firsts: dict[str, list[str]] = {}  # fingerprint -> its two oldest runs
    for run_id, fingerprint in oldest_first:
        found = firsts.setdefault(fingerprint, []) if fingerprint else None
        if found is not None and len(found) < 2 and run_id not in found:
            found.append(run_id)
    twins = {}
    for run_id, fingerprint in fingerprints.items():
        others = [other for other in firsts.get(fingerprint or "", ()) if other != run_id]
        if others:
            twins[run_id] = others[0]
    return twins


def jsonable(value: Any) -> Any:
    """Records as strict JSON: datetimes ISO, paths str, NaN/inf as "NaN"/"Infinity"/"-Infinity"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # a numpy scalar
        return jsonable(value.item())
    return value
