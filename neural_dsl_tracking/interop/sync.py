"""``neural experiments sync``: send stored runs to MLflow, W&B or TensorBoard through the
mirrors of :mod:`neural_dsl_tracking.backends`, resumably.

What has been sent is recorded per (run, target, destination) in the store's
``sync_progress`` table: the points sent per metric, the last version sent per artifact,
whether the parameters and the final status went. A cursor moves only once the mirror has
the batch (MLflow: committed by its store; TensorBoard: flushed to the event file; W&B:
the offline run finished), so a sync killed at any moment continues where it stopped:

- MLflow: the same remote run (found by its ``neural.run_id`` tag); a batch sent again after
  a kill is dropped by MLflow's SQL stores, which keep one row per (key, step, timestamp, value).
- TensorBoard: the event file of a killed session is cut back to its last confirmed batch;
  the next session writes a new event file with the points after the cursors.
- W&B (offline): the folder of a killed session is removed; the next session resumes the
  same run id. A W&B session is confirmed as a whole, at its end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

from neural_dsl_tracking.backends.base import ArtifactRef, RunInfo, describe_error
from neural_dsl_tracking.backends.mlflow import tracking_uri
from neural_dsl_tracking.backends.registry import MIRRORS, checked_options, create_mirror
from neural_dsl_tracking.backends.tensorboard import default_log_dir
from neural_dsl_tracking.backends.wandb import files_root
from neural_dsl_tracking.errors import ConfigError, TrackingError
from neural_dsl_tracking.humanize import shows_progress

TARGETS = tuple(MIRRORS)
"""Where runs can be sent: every mirror."""


@dataclass
class Progress:
    """What one destination has of one run; saved as JSON in ``sync_progress.state``."""

    params: str | None = None  # digest of the parameters sent
    metrics: dict[str, int] = field(default_factory=dict)  # points sent, per key
    tails: dict[str, list[float]] = field(default_factory=dict)  # [step, time] of the last one
    artifacts: dict[str, int] = field(default_factory=dict)  # last version sent, per name
    finished: str | None = None  # the status sent at finish
    pending: dict[str, Any] | None = None  # a session not confirmed yet: what to undo


@dataclass(frozen=True)
class SyncResult:
    """One run's sync: how much went, or that the destination was up to date."""

    run_id: str
    points: int
    artifacts: int
    up_to_date: bool
    destination: str


# ---- options ------------------------------------------------------------------------------
def target_options(target: str, given: Mapping[str, Any], config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The mirror's options: the run's own ``tracking.<target>`` section (where its mirror
    wrote during training) overridden by ``given``; checked as the tracking block checks
    them. ConfigError for an unknown option or value."""
    section = ((config or {}).get("tracking") or {}).get(target) or {}
    return _validated(target, {**{k: v for k, v in dict(section).items() if v is not None}, **given})


def _validated(target: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` of mirror ``target`` checked by the tracking block's own model."""
    from pydantic import ValidationError

    from neural_dsl_tracking.plugins.tracking.spec import TrackingSpec

    checked_options(target, options)
    try:
        spec = TrackingSpec.model_validate({target: dict(options)})
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"][1:])
        raise ConfigError(f"--{where.replace('_', '-')}: {problem['msg']}") from None
    return checked_options(target, getattr(spec, target))


def destination(target: str, options: Mapping[str, Any], run: Any, files_dir: Path) -> str:
    """Where ``run`` goes, as one string (the progress table's key, printed: no password)."""
    if target == "mlflow":
        from neural_dsl_tracking.tracking.db import redact

        uri = tracking_uri(options)
        uri = redact(uri) if "://" in uri else uri
        return f"{uri} experiment={options.get('experiment') or run.experiment}"
    if target == "wandb":
        root = files_root(files_dir)
        return (f"{root} project={options.get('project') or run.experiment} "
                f"entity={options.get('entity') or '-'} mode={options.get('mode') or 'offline'}")
    return str(Path(options.get("log_dir") or default_log_dir(files_dir, run.run_id)).resolve())


# ---- progress in the store -----------------------------------------------------------------
def load_progress(store: Any, run_id: str, target: str, dest: str) -> Progress:
    """What ``dest`` of ``target`` has of the run (nothing yet: an empty Progress)."""
    state = store.sync_state(run_id, target, dest)
    return Progress(**json.loads(state)) if state else Progress()


def save_progress(store: Any, run_id: str, target: str, dest: str, progress: Progress) -> None:
    """Record ``progress`` as what ``dest`` of ``target`` has of the run (one write)."""
    store.set_sync_state(run_id, target, dest, json.dumps(progress.__dict__, sort_keys=True))


# ---- one run ------------------------------------------------------------------------------
@dataclass
class _Run:
    """Everything of one stored run that a sync sends."""

    record: Any
    params: dict[str, Any]
    digest: str | None
    histories: dict[str, Any]
    versions: list[Any]

    def pending_work(self, progress: Progress) -> bool:
        return (progress.pending is not None or self.digest != progress.params
                or progress.finished != self.record.status
                or any(len(h) > progress.metrics.get(k, 0) for k, h in self.histories.items())
                or any(v.version > progress.artifacts.get(v.name, 0) for v in self.versions))


def _read_run(store: Any, run_id: str) -> _Run:
    record = store.get_run(run_id)
    if record.status == "running":
        raise TrackingError(f"run {run_id[:8]} is still running; sync it once it has ended "
                            "(while it runs, its mirrors get its points as they are logged)")
    params = dict(record.hyperparameters)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest() \
        if params else None
    histories = {key: h for (_run, key), h in sorted(store.metric_histories([run_id]).items())}
    versions = sorted(store.artifact_versions(run_id), key=lambda v: (v.name, v.version))
    return _Run(record, params, digest, histories, versions)


class _Session:
    """One mirror session sending one run, moving the cursors as batches are confirmed."""

    def __init__(self, store: Any, run: _Run, target: str, options: Mapping[str, Any], dest: str,
                 progress: Progress) -> None:
        self.store, self.run, self.target, self.dest, self.progress = store, run, target, dest, progress
        self.options = dict(options)
        self.points = self.artifacts = 0
        self.present: set[tuple[str, int, float]] = set()  # points the destination already has

    def open(self) -> None:
        """Undo what a killed session left unconfirmed, then start the mirror."""

        _undo(self.progress.pending)
        self.progress.pending = None
        if not self.progress.metrics:  # what the run's own mirror wrote there, if it did
            if self.target == "tensorboard":
                self.present = _tensorboard_points(Path(self.dest))
            elif self.target == "wandb":
                self.present = _wandb_points(files_root(self.store.files_dir), self.run.record.run_id)
        record = self.run.record
        info = RunInfo(run_id=record.run_id, experiment=record.experiment, run_name=record.run_name,
                       tags=list(record.tags), store_dir=Path(self.store.files_dir),
                       start_time=record.start_time.timestamp())
        if self.target == "wandb":
            self.options.setdefault("mode", "offline")
        mirror = create_mirror(self.target, info, self.options)
        mirror.start()
        sent_keys = [k for k, n in self.progress.metrics.items() if n]
        if self.progress.params is not None or sent_keys:
            mirror.already_sent(self.run.params if self.progress.params else {}, sent_keys)
        self.mirror = mirror
        self.progress.pending = self._pending()
        self._save()

    def _pending(self) -> dict[str, Any] | None:
        """What undoes this session's unconfirmed part if it is killed."""
        if self.target == "wandb":
            return {"remove": str(self.mirror.session_dir)}
        if self.target == "tensorboard":
            path, size = self.mirror.written
            return {"truncate": str(path), "size": size}
        return None

    def _identity(self, point: tuple[str, int, float, float]) -> tuple[str, int, float]:
        """How a point is recognised at the destination: TensorBoard keeps each point's wall
        time, W&B one time per row, so there its value."""
        key, step, value, time_ = point
        return (key, step, value) if self.target == "wandb" else (key, step, time_)

    def confirm(self) -> None:
        """The mirror has everything sent so far (W&B: only when its session ends)."""
        if self.target == "wandb":
            return
        self.progress.pending = self._pending()
        self._save()

    def _save(self) -> None:
        save_progress(self.store, self.run.record.run_id, self.target, self.dest, self.progress)

    def send(self, report: Callable[[int], None]) -> None:
        """Everything not sent yet, then the final status; ``report(points)`` after each batch."""
        mirror, progress = self.mirror, self.progress
        if self.run.digest != progress.params and self.run.params:
            mirror.log_params(self.run.params)
            progress.params = self.run.digest
            self.confirm()
        for points in _batches(self.run.histories, progress.metrics, mirror.metrics_per_call):
            new = [p for p in points if self._identity(p) not in self.present] if self.present else points
            if new:
                mirror.log_metrics(new)
            for key, step, _value, time_ in points:
                progress.metrics[key] = progress.metrics.get(key, 0) + 1
                progress.tails[key] = [step, time_]
            self.points += len(new)
            self.confirm()
            report(len(points))
        for version in self.run.versions:
            if version.version > progress.artifacts.get(version.name, 0):
                mirror.log_artifact(_artifact_ref(self.store, version))
                progress.artifacts[version.name] = version.version
                self.artifacts += 1
                self.confirm()
        record = self.run.record
        mirror.finish(record.status, record.end_time.timestamp() if record.end_time else None)
        if self.target == "wandb":
            _wait_for_exit_record(self.mirror.session_dir)
        progress.finished, progress.pending = record.status, None
        self._save()


def _batches(histories: Mapping[str, Any], sent: Mapping[str, int],
             size: int) -> Iterator[list[tuple[str, int, float, float]]]:
    """The points not sent yet, all keys merged in the order they were logged (by step,
    then wall time; each key's own points keep their order, so the points sent of a key are
    always its first ones), at most ``size`` at a time and cut between steps where possible
    (a step's points stay one W&B row, one TensorBoard event)."""
    from heapq import merge

    columns = [zip(h.steps[sent.get(k, 0):].tolist(), h.timestamps[sent.get(k, 0):].tolist(),
                   repeat(k), h.values[sent.get(k, 0):].tolist())
               for k, h in histories.items() if len(h) > sent.get(k, 0)]
    points = [(key, step, value, time) for step, time, key, value
              in merge(*columns, key=lambda point: (point[0], point[1]))]
    start = 0
    while start < len(points):
        end = min(start + size, len(points))
        if end < len(points):
            cut = end
            while cut > start and points[cut - 1][1] == points[end][1]:
                cut -= 1
            end = cut if cut > start else end
        yield points[start:end]
        start = end


def _tensorboard_points(log_dir: Path) -> set[tuple[str, int, float]]:
    """(tag, step, wall time) of the scalars already in ``log_dir``: what the run's TensorBoard
    mirror sent during training, not to be written twice by a first sync there."""
    from neural_dsl_tracking.interop.from_tensorboard import EVENT_FILE, read_run

    if not log_dir.is_dir() or not any(p.name.startswith(EVENT_FILE) for p in log_dir.iterdir()):
        return set()
    try:
        run = read_run(log_dir, "", "")
    except TrackingError:
        return set()
    return {(key, step, time) for key, (steps, _values, times) in run.metrics.items()
            for step, time in zip(steps.tolist(), times.tolist())}


def _wandb_points(root: Path, run_id: str) -> set[tuple[str, int, float]]:
    """(key, step, value) of the history the run's W&B mirror already wrote offline under
    ``root`` (its ``step`` column, else W&B's ``_step``), not to be written twice."""
    from neural_dsl_tracking.interop.from_wandb import _records

    found: set[tuple[str, int, float]] = set()
    for file in sorted(root.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")):
        for record in _records(file, []):
            if record.WhichOneof("record_type") != "history":
                continue
            row = {(item.key or ".".join(item.nested_key)): json.loads(item.value_json)
                   for item in record.history.item}
            step = row.get("step", row.get("_step"))
            found.update((key, int(step), float(value)) for key, value in row.items()
                         if not key.startswith("_") and key != "step" and isinstance(value, (int, float)))
    return found


def _wait_for_exit_record(folder: Path, timeout: float = 60.0) -> None:
    """W&B's service finishes writing a run file after ``finish`` returns: wait (bounded) for
    the file's exit record, the session's last, before the session counts as confirmed."""
    from neural_dsl_tracking.interop.from_wandb import _records

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for file in folder.glob("run-*.wandb"):
            if any(r.WhichOneof("record_type") == "exit" for r in _records(file, [])):
                return
        time.sleep(0.1)
    raise TrackingError(f"W&B did not finish writing {folder} within {timeout:g} s")


def _artifact_ref(store: Any, version: Any) -> Any:
    return ArtifactRef(path=store.objects.verify_version(version), name=version.name,
                       version=version.version, sha256=version.sha256, aliases=tuple(version.aliases),
                       original_name=version.metadata.get("filename"))


def _undo(pending: Mapping[str, Any] | None) -> None:
    """Take back what a killed session wrote after its last confirmed batch."""
    if not pending:
        return
    if "remove" in pending:
        shutil.rmtree(pending["remove"], ignore_errors=True)
    elif "truncate" in pending and Path(pending["truncate"]).exists():
        with open(pending["truncate"], "r+b") as handle:
            handle.truncate(int(pending["size"]))


def sync_run(store: Any, run_id: str, target: str, given: Mapping[str, Any],
             report: Callable[[int], None] = lambda n: None, *, again: bool = False) -> SyncResult:
    """Send what ``target`` does not have yet of the stored run ``run_id`` (``again``: forget
    what was sent there before, as when it was deleted at the destination)."""
    run = _read_run(store, run_id)
    options = target_options(target, given, run.record.config)
    dest = destination(target, options, run.record, Path(store.files_dir))
    progress = load_progress(store, run_id, target, dest)
    if again:
        progress = Progress(pending=progress.pending)
    _check_prefixes(run, progress)
    if not run.pending_work(progress):
        return SyncResult(run_id, 0, 0, True, dest)
    session = _Session(store, run, target, options, dest, progress)
    session.open()
    session.send(report)
    return SyncResult(run_id, session.points, session.artifacts, False, dest)


def _check_prefixes(run: _Run, progress: Progress) -> None:
    """TrackingError when a series no longer starts with the points sent of it (a run resumed
    from an earlier checkpoint drops the points after it): the cursors would skip new points
    and the destination keeps the dropped ones."""
    for key, sent in progress.metrics.items():
        history = run.histories.get(key)
        tail = progress.tails.get(key)
        if not sent or tail is None:
            continue
        if history is None or len(history) < sent or \
                [int(history.steps[sent - 1]), float(history.timestamps[sent - 1])] != tail:
            raise TrackingError(
                f"metric {key!r} of run {run.record.run_id[:8]} changed since it was sent there "
                "(points were dropped, as when a run resumes from an earlier checkpoint): the "
                "destination still has them; sync it to a fresh destination, or delete it "
                "there and sync again with --again")


def total_points(store: Any, run_ids: Sequence[str]) -> int:
    """How many metric points the runs hold (for a progress bar; from their summaries)."""
    return sum(s.count for run_id in run_ids for s in store.metric_summaries(run_id).values())


def sync_runs(store: Any, refs: Sequence[str], target: str, given: Mapping[str, Any], *,
              again: bool = False) -> Iterator[tuple[str, bool]]:
    """Sync each run ``refs`` names to ``target``; yields a line per run and whether it went.
    Bad input (an unknown run, target or option) is an error before anything is sent; a
    mirror failing on one run is that run's line, and the next runs still go."""
    _check_given(target, given)
    run_ids = list(dict.fromkeys(store.resolve_run_id(ref) for ref in refs))
    if "log_dir" in given and len(run_ids) > 1:
        raise ConfigError("--log-dir is one run's folder, and TensorBoard would show these runs "
                          "as one; sync one run per command with it, or leave it out (each run "
                          "then goes to <store>/tensorboard/<run id>)")
    from neural_dsl_tracking.interop.importing import store_lock

    with store_lock(store, "sync"), _progress_bar(total_points(store, run_ids)) as advance:
        for run_id in run_ids:
            yield _sync_one(store, run_id, target, given, advance, again)


def _check_given(target: str, given: Mapping[str, Any]) -> None:
    """ConfigError for an unknown target, an option of another mirror or a bad value."""
    if target not in TARGETS:
        raise ConfigError(f"unknown sync target {target!r}; expected one of: {', '.join(TARGETS)}")
    keys = MIRRORS[target][2]
    for key in given:
        if key not in keys:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in keys)
            raise ConfigError(f"--{key.replace('_', '-')} is not an option of {target}; "
                              f"--to {target} takes {flags}")
    _validated(target, given)


def _sync_one(store: Any, run_id: str, target: str, given: Mapping[str, Any],
              advance: Callable[[int], None], again: bool) -> tuple[str, bool]:
    """One run's line: what was sent, or why not."""
    try:
        result = sync_run(store, run_id, target, given, advance, again=again)
    except (ConfigError, TrackingError) as error:
        return f"{run_id[:8]}  not sent: {error}", False
    except ImportError as error:
        return (f"{run_id[:8]}  not sent: {target} needs its package ({error}); "
                f"pip install 'neural-dsl-tracking[{target}]'"), False
    except Exception as error:  # noqa: BLE001 - the SDK's own errors: one line, the next run goes
        return (f"{run_id[:8]}  {target} failed: {describe_error(error)}; what it confirmed is "
                "kept: run the same command again to continue"), False
    if result.up_to_date:
        return f"{run_id[:8]}  up to date in {target} ({result.destination})", True
    return (f"{run_id[:8]}  sent to {target}: {result.points:,} points, "
            f"{result.artifacts} artifact version(s) ({result.destination})"), True


@contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[int], None]]:
    """A points progress bar on stderr when it is a terminal, else nothing."""
    if total < 10_000 or not shows_progress():
        yield lambda points: None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="point", unit_scale=True, file=sys.stderr, leave=False,
              mininterval=0.2, desc="syncing") as bar:
        yield bar.update
