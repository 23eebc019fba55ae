"""``neural experiments import``: runs written by the original Neural DSL tracker.

That tracker wrote ``<name>_<id8>/`` folders with ``metadata.json``,
``hyperparameters.json``, ``metrics.json`` (a list of ``{timestamp, step, key: value}``),
``artifacts.json``, ``artifacts/`` and ``plots/``. A run is imported once: its id is
derived from the original experiment id, so importing the same folder again is a no-op.
A ``metrics.json`` truncated by the original tracker is salvaged up to its last complete entry.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.store import Store
from neural_dsl_tracking.tracking.values import to_float

_LEGACY_NAMESPACE = uuid.UUID("5b0e4a52-8d8e-4c8e-9f1e-6e657572616c")
_STATUSES = {"completed": "completed", "failed": "failed", "interrupted": "interrupted",
             "running": "crashed", "created": "crashed"}


@dataclass
class ImportResult:
    """What happened to one run folder."""

    folder: Path
    run_id: str | None = None
    status: str = "imported"  # imported | skipped | error
    notes: list[str] = field(default_factory=list)


def find_run_folders(source: Path) -> list[Path]:
    source = Path(source)
    if not source.is_dir():
        what = "it is a file, not a folder" if source.exists() else "it does not exist"
        raise TrackingError(f"cannot import {source}: {what}")
    if (source / "metadata.json").is_file():
        return [source]
    folders = sorted(p for p in source.iterdir() if (p / "metadata.json").is_file())
    if not folders:
        raise TrackingError(f"cannot import {source}: no run folders (with metadata.json) found")
    return folders


def import_runs(source: Path, store: Store) -> list[ImportResult]:
    """Import every run folder under ``source`` (or ``source`` itself)."""
    results = []
    for folder in find_run_folders(source):
        try:
            results.append(import_run(folder, store))
        except (OSError, ValueError, TrackingError) as error:
            results.append(ImportResult(folder, status="error", notes=[str(error)]))
    return results


def import_run(folder: Path, store: Store) -> ImportResult:
    result = ImportResult(folder)
    metadata = _read_json(folder / "metadata.json", required=True)
    summary = _read_json(folder / "summary.json") or {}
    legacy_id = str(summary.get("experiment_id") or folder.name)
    experiment = str(summary.get("experiment_name") or _name_part(folder.name))
    run_id = uuid.uuid5(_LEGACY_NAMESPACE, f"{experiment}/{legacy_id}").hex
    result.run_id = run_id
    if store.run_exists(run_id):
        result.status = "skipped"
        result.notes.append("already imported")
        return result
    entries, note = _read_metric_entries(folder / "metrics.json")
    if note:
        result.notes.append(note)
    series, skipped = _series(entries)
    if skipped:
        result.notes.append(f"skipped {skipped} non-numeric metric value(s)")
    start = _timestamp(metadata.get("start_time")) or (folder / "metadata.json").stat().st_mtime
    end = _timestamp(metadata.get("end_time"))
    status = _STATUSES.get(str(metadata.get("status", "")).lower(), "crashed")
    store.create_run(
        experiment=experiment, run_name=folder.name, tags=["imported"], run_id=run_id,
        start_time=start, status=status,
        config={"imported_from": str(folder.resolve()), "legacy_metadata": metadata})
    params = _read_json(folder / "hyperparameters.json") or {}
    if isinstance(params, dict):
        store.log_params(run_id, params)
    else:
        result.notes.append("hyperparameters.json is not an object; not imported")
    if series:
        store.append_metrics(run_id, series)
    _import_artifacts(folder, store, run_id, result)
    _copy_plots(folder / "plots", store.run_dir(run_id) / "plots")
    last_time = max((float(s[2][-1]) for s in series.values()), default=start)
    store.set_status(run_id, status, end_time=end or max(start, last_time))
    return result


def _import_artifacts(folder: Path, store: Store, run_id: str, result: ImportResult) -> None:
    listing = _read_json(folder / "artifacts.json") or {}
    for name, info in listing.items():
        info = info if isinstance(info, dict) else {}
        # only files inside the run folder: an imported folder never pulls in other files
        candidates = [folder / "artifacts" / Path(str(info.get("path") or name)).name,
                      folder / "artifacts" / Path(str(name)).name]
        source = next((c for c in candidates if _inside(c, folder) and c.is_file()), None)
        if source is None:
            result.notes.append(f"artifact {name!r}: file not found in {folder / 'artifacts'}, "
                                "not imported")
            continue
        sha256, size = store.objects.put(source)
        metadata = {k: v for k, v in info.items() if k in ("type", "framework")}
        store.add_artifact_version(run_id, str(name), sha256=sha256, size=size,
                                   filename=source.name, metadata=metadata, aliases=(),
                                   created_at=_timestamp(info.get("timestamp")))


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _copy_plots(source: Path, target: Path) -> None:
    """Regular files of the old ``plots/`` (symbolic links are not followed)."""
    if not source.is_dir():
        return
    for path in source.rglob("*"):
        if path.is_file() and not path.is_symlink():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)


def _series(entries: list[Any]) -> tuple[dict, int]:
    columns: dict[str, tuple[list, list, list]] = {}
    skipped = 0
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            skipped += 1
            continue
        step = entry.get("step")
        step = index if not isinstance(step, int) or isinstance(step, bool) else step
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


def _read_metric_entries(path: Path) -> tuple[list[Any], str | None]:
    if not path.is_file():
        return [], None
    text = path.read_text(encoding="utf-8", errors="replace")
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


def _read_json(path: Path, required: bool = False) -> Any:
    if not path.is_file():
        if required:
            raise TrackingError(f"{path} is missing")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise TrackingError(f"{path}: invalid JSON ({error})") from None


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
