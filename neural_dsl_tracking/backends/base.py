"""The small interface every mirror implements, and the values passed to it.

A mirror copies one run of the embedded store to another tracking system. It is driven by
a single worker thread of :class:`~neural_dsl_tracking.backends.workers.MirrorWorkers`, so an
implementation needs no locking; it may raise from any method, and the worker decides
whether to retry (see :meth:`Mirror.is_permanent`).
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, ClassVar

MetricPoint = tuple[str, int, float, float]
"""``(key, step, value, unix timestamp in seconds)``, as flushed by the tracker."""

MetricColumns = Mapping[str, tuple[Any, Any, Any]]
"""Per key, the columns ``(steps, values, unix timestamps)`` as equal-length sequences or
NumPy arrays: how the tracker hands over a flushed batch (cheap to pickle, no per-point work)."""

OnFailure = Callable[[str, str], None]
"""``on_failure(backend, message)``: records a mirror's failure on the run."""

ENDED_NORMALLY = ("completed", "pruned")
"""Our statuses that mirrors report as a normal end (MLflow FINISHED, W&B exit code 0,
TensorBoard success): a sweep's pruned trial trained what it did on purpose, as Optuna's
own MLflow callback and W&B sweeps' early termination record it. The exact status goes
along (MLflow tag ``neural.status``, W&B summary ``neural_status``, TensorBoard text ``status``)."""

LOG = logging.getLogger("neural_dsl_tracking.backends")
"""Where mirrors warn (once per failing mirror) and report recoveries."""


@dataclass(frozen=True)
class RunInfo:
    """What a mirror needs to know about the run it copies."""

    run_id: str
    experiment: str
    run_name: str | None = None
    tags: Sequence[str] = ()
    store_dir: Path = field(default_factory=lambda: Path("neural_experiments"))
    start_time: float | None = None
    """When the run started (unix seconds), for a mirror that records it; None: now."""


@dataclass(frozen=True)
class ArtifactRef:
    """One stored artifact version, as the tracker hands it to the mirrors."""

    path: Path
    name: str
    version: int
    sha256: str
    aliases: tuple[str, ...] = ()
    original_name: str | None = None

    @property
    def filename(self) -> str:
        """The file name to publish under: the name the file was logged with if known, else
        the stored file's own name unless that is just its hash, then the artifact's name."""
        if self.original_name:
            return self.original_name
        base = self.path.name
        stem = base.split(".", 1)[0]
        if stem.lower() == self.sha256.lower() or re.fullmatch(r"[0-9a-f]{64}", stem):
            return self.name + base[len(stem):]
        return base


PERMANENT_ERRORS = (ImportError, FileNotFoundError, IsADirectoryError, TypeError, ValueError)


class Mirror(ABC):
    """One external tracking system receiving a copy of one run."""

    name: ClassVar[str]
    metrics_per_call: ClassVar[int] = 10_000
    """Largest batch of points handed to :meth:`log_metrics` at once."""

    def __init__(self, run: RunInfo, options: Mapping[str, Any]) -> None:
        self.run = run
        self.options = dict(options)

    @abstractmethod
    def start(self) -> None:
        """Import the SDK and open (or resume) the run. Called once before anything else."""

    @abstractmethod
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters; ``params`` may be nested (see :func:`neural_dsl_tracking.dotted.flatten`)."""

    @abstractmethod
    def log_metrics(self, points: Sequence[MetricPoint]) -> None:
        """Record a batch of at most :attr:`metrics_per_call` points, in logging order."""

    @abstractmethod
    def log_artifact(self, artifact: ArtifactRef) -> None:
        """Record one artifact version with its version number, SHA-256 and aliases."""

    @abstractmethod
    def log_figure(self, path: Path, name: str) -> None:
        """Record (or replace) the plot image ``path`` under ``name``."""

    @abstractmethod
    def finish(self, status: str, end_time: float | None = None) -> None:
        """Close the run with our final status (``completed``, ``failed``, ...) and, for a
        mirror that records it, its end time (unix seconds; None: now)."""

    def already_sent(self, params: Mapping[str, Any], metric_keys: Sequence[str]) -> None:
        """Before anything is logged: what an earlier session sent to the run this one
        reopens (``neural experiments sync`` continuing). A mirror that writes a summary of
        them at :meth:`finish` keeps them; the default does nothing."""

    def is_permanent(self, error: BaseException) -> bool:
        """True when retrying the failed call cannot help: a missing SDK, a file that is
        gone, a value the library rejects. Network and server errors are retried."""
        return isinstance(error, PERMANENT_ERRORS)


def as_points(batch: Sequence[MetricPoint] | MetricColumns) -> list[MetricPoint]:
    """Metric points from either form a batch comes in, keys in order, each in logging order."""
    if not isinstance(batch, Mapping):
        return batch if isinstance(batch, list) else list(batch)
    points: list[MetricPoint] = []
    for key, (steps, values, times) in batch.items():
        points.extend(zip(repeat(key), _as_list(steps, int), _as_list(values, float),
                          _as_list(times, float)))
    return points


def _as_list(column: Any, kind: type) -> list[Any]:
    """A column as a list of Python numbers (NumPy arrays convert in C)."""
    return column.tolist() if hasattr(column, "tolist") else [kind(x) for x in column]


def deep_merge(into: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Merge nested ``update`` into ``into`` in place (later values win) and return it."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        elif isinstance(value, Mapping):
            into[key] = deep_merge({}, value)
        else:
            into[key] = value
    return into


def safe_name(name: str) -> str:
    """``name`` as one safe path component: letters, digits, ``_ - .``; no leading dot."""
    cleaned = re.sub(r"[^\w.\-]+", "_", name).strip("._")
    return cleaned or "_"


def describe_error(error: BaseException) -> str:
    """One line naming the error: ``ConnectionError: ...`` cut to a readable length."""
    text = " ".join(str(error).split()) or "no message"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(error).__name__}: {text}"
