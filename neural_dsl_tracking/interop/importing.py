"""Bringing runs of other tracking systems into the store: the part every source shares.

A source module (``from_mlflow``, ``from_tensorboard``, ``from_wandb``) lists its runs as
:class:`SourceRun`: the system, the run's id there, and a function reading the run whole into
an :class:`ImportedRun`. :func:`import_runs` writes each run whole or not at all:

- The run's id in the store derives from its source tag ``source:<system>:<id>`` (also kept
  as a tag), so a run already imported is found at once and skipped.
- A run is created ``running`` and given its final status last (never ``running``: a source
  run still running is imported ``crashed``). A failure deletes it again; a process killed
  mid-import leaves it ``running`` (shown ``crashed`` once its heartbeat is stale, never
  complete), and the next import deletes that part and imports the run again.
- One import at a time per store (a lock file in the store's folder), so a run found
  ``running`` under its source id is always an import that was killed.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import sys
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.humanize import shows_progress
from neural_dsl_tracking.tracking.values import MAX_NAME

SOURCE_NAMESPACE = uuid.UUID("0c7f2f7e-4b1e-4d5e-9a57-6e657572616c")
POINTS_PER_WRITE = 1_000_000
"""Metric points written per transaction (a big run holds the write lock in short turns)."""

Series = tuple[np.ndarray, np.ndarray, np.ndarray]  # steps, values, wall times (seconds)


@dataclass
class ImportedArtifact:
    """A file to store as version 1 of artifact ``name``."""

    name: str
    path: Path
    created_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    filename: str | None = None
    """The file's name as logged (default: ``path``'s name)."""


@dataclass
class ImportedRun:
    """Everything read of one source run, ready to write."""

    experiment: str
    run_name: str | None
    status: str
    start_time: float | None = None
    end_time: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    metrics: dict[str, Series] = field(default_factory=dict)
    artifacts: list[ImportedArtifact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def points(self) -> int:
        return sum(len(steps) for steps, _, _ in self.metrics.values())

    def last_time(self) -> float | None:
        """The latest wall time among the points (the start when there are none)."""
        latest = [float(times.max()) for _, _, times in self.metrics.values() if len(times)]
        return max(latest, default=self.start_time)


@dataclass
class SourceRun:
    """One run of a source system: ``read(scratch)`` reads it whole (files it needs to copy,
    such as downloaded artifacts, may go in the folder ``scratch``)."""

    system: str
    ident: str
    label: str
    read: Callable[[Path], ImportedRun]

    @property
    def tag(self) -> str:
        return source_tag(self.system, self.ident)

    @property
    def run_id(self) -> str:
        return uuid.uuid5(SOURCE_NAMESPACE, self.tag).hex


@dataclass
class Outcome:
    """What happened to one source run: ``imported``, ``skipped`` or ``failed``."""

    label: str
    run_id: str
    status: str
    points: int = 0
    notes: list[str] = field(default_factory=list)


def source_tag(system: str, ident: str) -> str:
    """``source:<system>:<ident>``; an ident too long for a tag is replaced by its SHA-256."""
    tag = f"source:{system}:{ident}"
    if len(tag) <= MAX_NAME:
        return tag
    return f"source:{system}:sha256:{hashlib.sha256(ident.encode()).hexdigest()}"


def source_folder(system: str, location: str) -> Path:
    """``location`` as a folder, or a TrackingError saying it is a file or absent."""
    root = Path(location)
    if not root.is_dir():
        what = "it is a file, not a folder" if root.exists() else "it does not exist"
        raise TrackingError(f"cannot import from {system} at {location}: {what}")
    return root


def series(steps: Sequence[int], values: Sequence[float], times: Sequence[float]) -> Series:
    """Columns of one metric as the store keeps them, ordered by step (then wall time)."""
    steps_a = np.asarray(steps, np.int64)
    values_a = np.asarray(values, np.float64)
    times_a = np.asarray(times, np.float64)
    order = np.lexsort((times_a, steps_a))
    if np.all(order[1:] > order[:-1]):
        return steps_a, values_a, times_a
    return steps_a[order], values_a[order], times_a[order]


def import_runs(runs: Sequence[SourceRun], store: Any, *, progress: bool = True) -> list[Outcome]:
    """Import ``runs`` into ``store`` one by one (a progress bar on a terminal's stderr);
    a run that cannot be read or written is a ``failed`` outcome with the reason."""
    outcomes: list[Outcome] = []
    with store_lock(store), _progress(len(runs), progress) as advance:
        for source in runs:
            outcomes.append(import_one(source, store))
            advance(outcomes[-1].points)
    return outcomes


def import_one(source: SourceRun, store: Any) -> Outcome:
    """Import one run whole (skipped when imported before); never raises for a bad run."""
    from neural_dsl_tracking.tracking.importer import remove_partial_run

    outcome = Outcome(source.label, source.run_id, "imported")
    try:
        if store.run_exists(outcome.run_id):
            if store.get_run(outcome.run_id, crash_after=math.inf).status != "running":
                outcome.status = "skipped"
                outcome.notes.append("already imported")
                return outcome
            remove_partial_run(store, outcome.run_id, TrackingError("an earlier import was cut short"))
            outcome.notes.append("an earlier import of this run was cut short; imported again")
        with tempfile.TemporaryDirectory(prefix="neural-import-") as scratch:
            run = _read(source, Path(scratch))
            _write(store, source, run)
    except (OSError, ValueError, TrackingError) as error:
        outcome.status = "failed"
        outcome.notes.append(str(error))
        return outcome
    outcome.points = run.points
    outcome.notes.extend(run.notes)
    return outcome


def _read(source: SourceRun, scratch: Path) -> ImportedRun:
    """``source.read``; what its system's SDK raises (a damaged record, an unreadable store)
    becomes a TrackingError naming it, so the run fails alone."""
    try:
        return source.read(scratch)
    except (OSError, ValueError, TrackingError):
        raise
    except Exception as error:  # noqa: BLE001 - any SDK's errors: this run cannot be read
        raise TrackingError(f"cannot read it: {type(error).__name__}: {error}") from error


def _write(store: Any, source: SourceRun, run: ImportedRun) -> None:
    """Create the run and write everything of it, its status last; deleted again on failure."""
    from neural_dsl_tracking.tracking.importer import remove_partial_run

    run_id = source.run_id
    store.create_run(experiment=run.experiment, run_name=run.run_name, run_id=run_id,
                     tags=[source.tag, *run.tags], start_time=run.start_time)
    try:
        if run.params:
            store.log_params(run_id, run.params)
        for batch in _batches(run.metrics):
            store.append_metrics(run_id, batch)
        for artifact in run.artifacts:
            with store.objects.stage(artifact.path) as content:
                store.add_artifact_version(run_id, artifact.name, content,
                                           filename=artifact.filename or artifact.path.name,
                                           metadata=artifact.metadata,
                                           aliases=(), created_at=artifact.created_at)
        store.set_status(run_id, run.status, end_time=run.end_time or run.last_time())
    except BaseException as error:
        remove_partial_run(store, run_id, error)
        raise


def _batches(metrics: dict[str, Series]) -> Iterator[dict[str, Series]]:
    """The series in groups of about POINTS_PER_WRITE points (a longer series is cut)."""
    batch: dict[str, Series] = {}
    size = 0
    for key, (steps, values, times) in metrics.items():
        for start in range(0, max(len(steps), 1), POINTS_PER_WRITE):
            part = slice(start, start + POINTS_PER_WRITE)
            if batch and (key in batch or size + len(steps[part]) > POINTS_PER_WRITE):
                yield batch  # full, or a cut series whose next part goes in the next write
                batch, size = {}, 0
            batch[key] = (steps[part], values[part], times[part])
            size += len(steps[part])
    if batch:
        yield batch


@contextmanager
def store_lock(store: Any, action: str = "import") -> Iterator[None]:
    """Hold the store's lock for ``action`` (``import``, ``sync``: a file ``<action>.lock`` in
    its folder), or a TrackingError when another process holds it."""
    folder = Path(store.files_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{action}.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TrackingError(f"another {action} into {folder} is running; "
                                "wait for it to finish") from None
        yield


@contextmanager
def _progress(total: int, wanted: bool) -> Iterator[Callable[[int], None]]:
    """A runs progress bar (with points) on stderr when it is a terminal, else nothing."""
    if not (wanted and total > 1 and shows_progress()):
        yield lambda points: None
        return
    from tqdm import tqdm

    points = 0
    with tqdm(total=total, unit="run", file=sys.stderr, leave=False, mininterval=0.2,
              desc="importing") as bar:
        def advance(added: int) -> None:
            nonlocal points
            points += added
            bar.set_postfix_str(f"{points:,} points", refresh=False)
            bar.update(1)

        yield advance


def summary_line(system: str, outcomes: Sequence[Outcome]) -> str:
    """``mlflow: imported 3 runs (30,000 points), skipped 1 already imported, failed 0``."""
    done = [o for o in outcomes if o.status == "imported"]
    skipped = sum(o.status == "skipped" for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    points = sum(o.points for o in done)
    return (f"{system}: imported {len(done)} run{'' if len(done) == 1 else 's'} "
            f"({points:,} point{'' if points == 1 else 's'}), skipped {skipped} already imported, "
            f"failed {failed}")


SOURCES = {"mlflow": "from_mlflow", "tensorboard": "from_tensorboard", "wandb": "from_wandb"}
"""The systems runs are imported from, and the module of this package reading each."""


def source_runs(system: str, location: str, experiment: str | None = None) -> list[SourceRun]:
    """The runs at ``location`` of ``system`` (a key of SOURCES), read lazily; a TrackingError
    when the location is not such a store or the system's SDK is not installed."""
    from importlib import import_module

    module = import_module(f"neural_dsl_tracking.interop.{SOURCES[system]}")
    try:
        return module.list_runs(location, experiment)
    except ImportError as error:
        raise TrackingError(f"cannot import from {system}: its package is not installed "
                            f"({error}); pip install 'neural-dsl-tracking[{system}]'") from None
