"""``neural experiments import``: runs written by the original Neural DSL tracker.

That tracker wrote ``<name>_<id8>/`` folders with ``metadata.json``,
``hyperparameters.json``, ``metrics.json`` (a list of ``{timestamp, step, key: value}``),
``artifacts.json``, ``artifacts/`` and ``plots/``. A run is imported once: its id is
derived from the original experiment id, so importing the same folder again is a no-op.
A ``metrics.json`` truncated by the original tracker is salvaged up to its last complete entry.
Only regular files are read: a symbolic link (or a FIFO, a device) anywhere in a run folder,
or a run folder that is itself a link, is skipped and named in the result's notes. Each run
is imported whole or not at all: when anything fails after its run was created, the run is
deleted again, with the objects only it used.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.objects import file_kind
from neural_dsl_tracking.tracking.store import Store
from neural_dsl_tracking.tracking.values import to_float, to_step

_LEGACY_NAMESPACE = uuid.UUID("5b0e4a52-8d8e-4c8e-9f1e-6e657572616c")
_STATUSES = {"completed": "completed", "failed": "failed", "interrupted": "interrupted",
             "running": "crashed", "created": "crashed"}
SKIPPED_SHOWN = 5


@dataclass
class ImportResult:
    """What happened to one run folder."""

    folder: Path
    run_id: str | None = None
    status: str = "imported"  # imported | skipped (already present) | link | error
    notes: list[str] = field(default_factory=list)


@dataclass
class _RunFolder:
    """A run folder's regular files (``name``, ``artifacts/name``, ``plots/.../name``), listed
    without following a symbolic link, and what was skipped (``{path: "a FIFO"}``)."""

    root: Path
    files: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def scan(cls, root: Path) -> "_RunFolder":
        found = cls(root)
        folders = found._scan("", recursive=False)
        for name, recursive in (("artifacts", False), ("plots", True)):
            if name in folders:
                found._scan(name, recursive)
        return found

    def _scan(self, start: str, recursive: bool) -> set[str]:
        """Lists ``start`` (and below it with ``recursive``); returns the folders seen."""
        pending, folders = [start], set()
        while pending:
            relative = pending.pop()
            with os.scandir(self.root / relative) as entries:
                for entry in entries:
                    path = f"{relative}/{entry.name}" if relative else entry.name
                    if entry.is_symlink():
                        self.skipped[path] = f"a symbolic link to {os.readlink(entry.path)}"
                    elif entry.is_file(follow_symlinks=False):
                        self.files.add(path)
                    elif entry.is_dir(follow_symlinks=False):
                        folders.add(path)
                        if recursive:
                            pending.append(path)
                    else:
                        self.skipped[path] = file_kind(entry.stat(follow_symlinks=False).st_mode)
        return folders

    def skipped_note(self) -> str | None:
        """One line naming the first entries that were not read, or None."""
        if not self.skipped:
            return None
        names = sorted(self.skipped)
        shown = ", ".join(f"{name} ({self.skipped[name]})" for name in names[:SKIPPED_SHOWN])
        more = f" and {len(names) - SKIPPED_SHOWN} more" if len(names) > SKIPPED_SHOWN else ""
        entries = "entry" if len(names) == 1 else "entries"
        return (f"skipped {len(names)} {entries} that are not regular files (symbolic links are "
                f"never followed): {shown}{more}")

    def read_json(self, name: str, required: bool = False) -> Any:
        """The parsed ``name``; None when it is absent or skipped (an error when ``required``)."""
        text = self.read_text(name, required)
        if text is None:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise TrackingError(f"{self.root / name}: invalid JSON ({error})") from None

    def read_text(self, name: str, required: bool = False) -> str | None:
        if name in self.files:
            return (self.root / name).read_text(encoding="utf-8", errors="replace")
        if required:
            why = f"is {self.skipped[name]}, not read" if name in self.skipped else "is missing"
            raise TrackingError(f"{self.root / name} {why}")
        return None


def find_run_folders(source: Path) -> list[Path]:
    """``source`` if it is a run folder, else the run folders in it (links among them too)."""
    source = Path(source)
    if not source.is_dir():
        what = "it is a file, not a folder" if source.exists() else "it does not exist"
        raise TrackingError(f"cannot import {source}: {what}")
    if _is_run_folder(source):
        return [source]
    folders = sorted(p for p in source.iterdir() if _is_run_folder(p))
    if not folders:
        raise TrackingError(f"cannot import {source}: no run folders (with metadata.json) found")
    return folders


def _is_run_folder(path: Path) -> bool:
    return os.path.lexists(path / "metadata.json")


def import_runs(source: Path, store: Store) -> list[ImportResult]:
    """Import every run folder under ``source`` (or ``source`` itself, even through a link:
    it was named); a run folder under ``source`` that is a symbolic link is not followed."""
    results = []
    for folder in find_run_folders(source):
        if folder != Path(source) and folder.is_symlink():
            results.append(ImportResult(folder, status="link", notes=[
                f"a symbolic link to {os.readlink(folder)}; links are not followed "
                "(name the folder itself to import it)"]))
            continue
        try:
            results.append(import_run(folder, store))
        except (OSError, ValueError, TrackingError) as error:
            results.append(ImportResult(folder, status="error", notes=[f"not imported: {error}"]))
    return results


def import_run(folder: Path, store: Store) -> ImportResult:
    """Import one run folder, reading only its regular files."""
    result = ImportResult(folder)
    files = _RunFolder.scan(folder)
    metadata = files.read_json("metadata.json", required=True)
    if not isinstance(metadata, dict):
        raise TrackingError(f"{folder / 'metadata.json'} is not a JSON object")
    summary = files.read_json("summary.json")
    summary = summary if isinstance(summary, dict) else {}
    legacy_id = str(summary.get("experiment_id") or folder.name)
    experiment = str(summary.get("experiment_name") or _name_part(folder.name))
    run_id = uuid.uuid5(_LEGACY_NAMESPACE, f"{experiment}/{legacy_id}").hex
    result.run_id = run_id
    if store.run_exists(run_id):
        result.status = "skipped"
        result.notes.append("already imported")
        return result
    not_read = files.skipped_note()
    if not_read:
        result.notes.append(not_read)
    entries, note = _read_metric_entries(files)
    if note:
        result.notes.append(note)
    series, skipped = _series(entries)
    if skipped:
        result.notes.append(f"skipped {skipped} non-numeric metric value(s)")
    start = _timestamp(metadata.get("start_time")) or (folder / "metadata.json").stat().st_mtime
    store.create_run(  # running until the last write gives it its status
        experiment=experiment, run_name=folder.name, tags=["imported"], run_id=run_id,
        start_time=start,
        config={"imported_from": str(folder.resolve()), "legacy_metadata": metadata})
    try:
        _fill_run(files, metadata, series, start, store, run_id, result)
    except BaseException as error:
        remove_partial_run(store, run_id, error)
        raise
    return result


def remove_partial_run(store: Store, run_id: str, error: BaseException) -> None:
    """Delete the run an import created before failing with ``error``, with the objects only
    it used; if even that fails, a TrackingError saying both and how to remove the run."""
    try:
        store.delete_run(run_id)
    except TrackingError as undo:
        raise TrackingError(f"{error}; the partly imported run could not be removed ({undo}): "
                            f"remove it with `neural experiments rm {run_id[:8]}`") from error


def _fill_run(files: _RunFolder, metadata: dict, series: dict, start: float, store: Store,
              run_id: str, result: ImportResult) -> None:
    """Everything of a created run: parameters, metrics, artifacts, plots, then its status."""
    end = _timestamp(metadata.get("end_time"))
    status = _STATUSES.get(str(metadata.get("status", "")).lower(), "crashed")
    params = files.read_json("hyperparameters.json") or {}
    if isinstance(params, dict):
        store.log_params(run_id, params)
    else:
        result.notes.append("hyperparameters.json is not an object; not imported")
    if series:
        store.append_metrics(run_id, series)
    _import_artifacts(files, store, run_id, result)
    _copy_plots(files, store.run_dir(run_id) / "plots")
    last_time = max((float(s[2][-1]) for s in series.values()), default=start)
    store.set_status(run_id, status, end_time=end or max(start, last_time))


def _import_artifacts(files: _RunFolder, store: Store, run_id: str, result: ImportResult) -> None:
    listing = files.read_json("artifacts.json") or {}
    if not isinstance(listing, dict):
        result.notes.append("artifacts.json is not an object; no artifacts imported")
        return
    for name, info in listing.items():
        info = info if isinstance(info, dict) else {}
        # only regular files in the run folder's artifacts/: never other files of the machine
        candidates = [f"artifacts/{Path(str(info.get('path') or name)).name}",
                      f"artifacts/{Path(str(name)).name}"]
        source = next((c for c in candidates if c in files.files), None)
        if source is None:
            why = next((f"{c} is {files.skipped[c]}" for c in candidates if c in files.skipped),
                       f"file not found in {files.root / 'artifacts'}")
            result.notes.append(f"artifact {name!r}: {why}, not imported")
            continue
        metadata = {k: v for k, v in info.items() if k in ("type", "framework")}
        with store.objects.stage(files.root / source) as content:
            store.add_artifact_version(run_id, str(name), content, filename=Path(source).name,
                                       metadata=metadata, aliases=(),
                                       created_at=_timestamp(info.get("timestamp")))


def _copy_plots(files: _RunFolder, target: Path) -> None:
    """The regular files found under the old ``plots/``."""
    for relative in sorted(files.files):
        if relative.startswith("plots/"):
            destination = target / relative.removeprefix("plots/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files.root / relative, destination)


def _series(entries: list[Any]) -> tuple[dict, int]:
    columns: dict[str, tuple[list, list, list]] = {}
    skipped = 0
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            skipped += 1
            continue
        step = entry.get("step")
        step = index if not isinstance(step, int) or isinstance(step, bool) else _step(index, step)
        stamp = entry.get("timestamp")
        stamp = float(stamp) if isinstance(stamp, (int, float)) else 0.0
        for key, value in entry.items():
            if key in ("step", "timestamp"):
                continue
            try:
                number = to_float(key, value)
            except TypeError:
                skipped += 1
                continue
            steps, values, times = columns.setdefault(key, ([], [], []))
            steps.append(step)
            values.append(number)
            times.append(stamp)
    series = {key: (np.asarray(s, np.int64), np.asarray(v, np.float64), np.asarray(t, np.float64))
              for key, (s, v, t) in columns.items()}
    return series, skipped


def _step(index: int, step: int) -> int:
    """``step`` of entry ``index``, or a TrackingError when it is beyond 64 bits."""
    try:
        return to_step(step)
    except TypeError as error:
        raise TrackingError(f"metrics.json entry {index + 1}: {error}") from None


def _read_metric_entries(files: _RunFolder) -> tuple[list[Any], str | None]:
    text = files.read_text("metrics.json")
    if text is None:
        return [], None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        entries = _salvage(text)
        return entries, (f"metrics.json is truncated or invalid; imported its {len(entries)} "
                         "complete entries")
    if not isinstance(data, list):
        return [], "metrics.json is not a list; no metrics imported"
    return data, None


def _salvage(text: str) -> list[Any]:
    """The complete objects at the start of a truncated JSON array."""
    decoder = json.JSONDecoder()
    start = text.find("[")
    if start < 0:
        return []
    entries, position = [], start + 1
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        try:
            entry, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return entries
        entries.append(entry)


def _timestamp(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def _name_part(folder_name: str) -> str:
    head, _, tail = folder_name.rpartition("_")
    return head if head and len(tail) == 8 else folder_name
