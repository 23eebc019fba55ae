"""Importing W&B offline runs (``offline-run-*/run-<id>.wandb``), read from their ``.wandb``
files: W&B's LevelDB-log framing (32 KiB blocks of records with a CRC-32 each) of
``wandb_internal_pb2.Record`` protos.

A run's folders (a resumed run has one per session) are read in order as one run, the run's
W&B project is its experiment. Config (flattened to dotted keys), tags, every numeric history
value at its ``_step`` and ``_timestamp`` (nested keys joined with ``.``; ``/`` kept), the status
from the exit record (0 completed, 130/143 interrupted, others failed, none crashed; a summary
``neural_status`` written by our mirror wins), the files of each folder's ``files/`` as
``files/<path>``, and logged artifacts as ``<artifact>/<path>`` when their file is still on
this machine in the folder imported or W&B's artifact staging folder and its MD5 is the one
recorded. A file cut short or damaged is read up to its last whole record, and noted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from neural_dsl_tracking.dotted import flatten
from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.interop.importing import (
    ImportedArtifact,
    ImportedRun,
    SourceRun,
    series,
    source_folder,
)
from neural_dsl_tracking.tracking.values import RUN_STATUSES

SYSTEM = "wandb"
MAGIC = b":W&B"
FILE_HEADER = 7
BLOCK = 32768
RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
INTERRUPTED_CODES = (130, 143)  # SIGINT, SIGTERM


@dataclass
class _Folder:
    """One offline-run folder and what its first records say."""

    path: Path
    file: Path
    run_id: str
    project: str


@dataclass
class _History:
    """Metric columns being read, and what was left out."""

    columns: dict[str, tuple[list, list, list]] = field(default_factory=dict)
    skipped: int = 0
    rows: int = 0


def list_runs(location: str, experiment: str | None = None) -> list[SourceRun]:
    """The runs under ``location`` (an offline-run folder, or a folder holding them or a
    ``wandb/`` folder), those of the project ``experiment`` only when given."""
    _record_type()  # W&B's protos: a missing package is one error before anything is read
    root = source_folder("W&B", location)
    files = _run_files(root)
    if not files:
        raise TrackingError(f"cannot import from W&B at {location}: no offline runs "
                            "(offline-run-*/run-*.wandb) in it or in its wandb/ folder")
    groups: dict[tuple[str, str], list[_Folder]] = {}
    notes: list[str] = []
    for folder in filter(None, (_identify(file, notes) for file in files)):
        groups.setdefault((folder.project, folder.run_id), []).append(folder)
    if not groups:
        why = f" ({notes[0]})" if notes else ""
        raise TrackingError(f"cannot import from W&B at {location}: no run record in "
                            f"{', '.join(f.name for f in files[:3])}{why}")
    if experiment is not None:
        groups = {key: folders for key, folders in groups.items() if key[0] == experiment}
        if not groups:
            raise TrackingError(f"no W&B run of project {experiment!r} in {location}")
    roots = _artifact_roots(root)
    return [SourceRun(SYSTEM, f"{project}/{run_id}", f"{project}/{run_id}",
                      _reader(folders, roots))
            for (project, run_id), folders in groups.items()]


def _run_files(root: Path) -> list[Path]:
    """The ``run-*.wandb`` files of the offline-run folders at or under ``root`` (a linked
    file or run folder, such as a link to another run's folder, is left out)."""
    for base in (root, root / "wandb"):
        here = sorted(base.glob("run-*.wandb"))
        found = here or [f for f in sorted(base.glob("*run-*/run-*.wandb")) if not f.parent.is_symlink()]
        if found:
            return [f for f in found if f.is_file() and not f.is_symlink()]
    return []


def _identify(file: Path, notes: list[str]) -> _Folder | None:
    """The folder of ``file`` with its run id and project (from its first run record), or
    None when it has no run record (nothing to import; why in ``notes``)."""
    for record in _records(file, notes):
        if record.WhichOneof("record_type") == "run":
            return _Folder(file.parent, file, record.run.run_id, record.run.project or "uncategorized")
    return None


def _artifact_roots(root: Path) -> tuple[Path, ...]:
    """Where an artifact's file may be read from: the folder imported and W&B's staging."""
    from wandb.env import get_data_dir

    return root.resolve(), (Path(get_data_dir()) / "artifacts").resolve()


def _reader(folders: list[_Folder], roots: tuple[Path, ...]) -> Any:
    def read(scratch: Path) -> ImportedRun:
        return read_run(folders, roots)

    return read


def read_run(folders: list[_Folder], roots: tuple[Path, ...]) -> ImportedRun:
    """One run from its folders, in order."""
    run = ImportedRun(experiment=folders[0].project, run_name=None, status="crashed")
    config: dict[str, Any] = {}
    history, ours, exit_code, runtime = _History(), None, None, None
    for folder in folders:
        for record in _records(folder.file, run.notes):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                _take_run(record.run, run, config)
            elif kind == "config":
                _update(config, record.config.update, record.config.remove)
            elif kind == "history":
                _take_history(record.history.item, history)
            elif kind == "summary":
                ours = _our_status(record.summary.update) or ours
            elif kind == "artifact":
                run.artifacts.extend(_artifact(record.artifact, roots, run.notes))
            elif kind == "exit":
                exit_code, runtime = record.exit.exit_code, record.exit.runtime
        run.artifacts.extend(_files(folder.path / "files"))
    config.pop("_wandb", None)
    run.params = flatten(config)
    run.metrics = {key: series(*columns) for key, columns in history.columns.items()}
    if history.skipped:
        plural = "s that are" if history.skipped > 1 else " that is"
        run.notes.append(f"skipped {history.skipped} history value{plural} not a number "
                         "(media, text, tables)")
    run.status = _status(exit_code, ours)
    if runtime is not None and run.start_time is not None:
        run.end_time = max(run.start_time + runtime, run.last_time() or 0.0)
    return run


def _take_run(record: Any, run: ImportedRun, config: dict[str, Any]) -> None:
    run.run_name = record.display_name or record.run_id
    run.tags = list(dict.fromkeys(record.tags))
    if record.HasField("start_time") and run.start_time is None:
        run.start_time = record.start_time.seconds + record.start_time.nanos / 1e9
    _update(config, record.config.update, ())


def _update(config: dict[str, Any], updates: Any, removals: Any) -> None:
    config.update(_items(updates))
    for item in removals:
        config.pop(_key(item), None)


def _items(items: Any) -> dict[str, Any]:
    return {_key(item): json.loads(item.value_json) for item in items}


def _key(item: Any) -> str:
    return item.key or ".".join(item.nested_key)


def _take_history(items: Any, history: _History) -> None:
    """The numeric values of one history row at its ``_step`` and ``_timestamp`` (a JSON
    number's text is read with ``float``: W&B writes a value per item, most of them numbers)."""
    row: list[tuple[str, float]] = []
    step, stamp = history.rows, 0.0
    for item in items:
        key = item.key or ".".join(item.nested_key)
        try:
            number = float(item.value_json)
        except ValueError:  # text, a bool, null, media, a table
            history.skipped += not key.startswith("_")
            continue
        if key == "_step":
            step = int(item.value_json)
        elif key == "_timestamp":
            stamp = number
        elif not key.startswith("_"):
            row.append((key, number))
    history.rows += 1
    for key, number in row:
        steps, values, times = history.columns.setdefault(key, ([], [], []))
        steps.append(step)
        values.append(number)
        times.append(stamp)


def _our_status(items: Any) -> str | None:
    """The ``neural_status`` our W&B mirror writes into the summary, if this update has it."""
    for item in items:  # a status is JSON text: numbers (most values) are passed over at once
        if item.value_json.startswith('"') and _key(item) == "neural_status":
            return json.loads(item.value_json)
    return None


def _status(exit_code: int | None, ours: Any) -> str:
    if ours in RUN_STATUSES and ours != "running":
        return ours
    if exit_code is None:
        return "crashed"
    if exit_code == 0:
        return "completed"
    return "interrupted" if exit_code in INTERRUPTED_CODES else "failed"


def _artifact(record: Any, roots: tuple[Path, ...], notes: list[str]) -> Iterator[ImportedArtifact]:
    """The files of a logged artifact that are still on this machine, unchanged."""
    for entry in record.manifest.contents:
        name = f"{record.name}/{entry.path}"
        path = Path(entry.local_path).resolve() if entry.local_path else None
        why = _unreadable(path, roots, entry.digest)
        if why:
            notes.append(f"artifact {name!r}: {why}; not imported")
            continue
        yield ImportedArtifact(name, path, metadata={"type": record.type, "wandb_artifact": record.name},
                               filename=entry.path.rsplit("/", 1)[-1])


def _unreadable(path: Path | None, roots: tuple[Path, ...], digest: str) -> str | None:
    """Why the artifact file at ``path`` is not read, or None."""
    if path is None or not path.is_file():
        return "its file is no longer on this machine"
    if not any(path.is_relative_to(root) for root in roots):
        return f"its file {path} is outside the folder imported and W&B's artifact folder"
    md5 = hashlib.md5()  # noqa: S324 - W&B's manifest digest
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            md5.update(block)
    if base64.b64encode(md5.digest()).decode() != digest:
        return f"its file {path} has changed since it was logged (MD5 differs)"
    return None


def _files(folder: Path) -> Iterator[ImportedArtifact]:
    """The regular files under a run's ``files/`` (links are not followed)."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for parent, folders, names in os.walk(folder):
        folders.sort()
        for name in sorted(names):
            path = Path(parent, name)
            if path.is_file() and not path.is_symlink():
                yield ImportedArtifact(f"files/{path.relative_to(folder).as_posix()}", path)


def _record_type() -> Any:
    """W&B's ``Record`` proto class."""
    from wandb.proto import wandb_internal_pb2

    return wandb_internal_pb2.Record


def _records(file: Path, notes: list[str]) -> Iterator[Any]:
    """The records of a ``.wandb`` file; a cut-short or damaged tail is noted in ``notes``."""
    record_type = _record_type()
    data = file.read_bytes()
    if data[:len(MAGIC)] != MAGIC:
        notes.append(f"{file.name} is not a W&B run file (it does not start with {MAGIC!r})")
        return
    position, pending, count = FILE_HEADER, b"", 0
    while True:
        left = BLOCK - position % BLOCK
        if left < RECORD_HEADER.size:  # the block's padding
            position += left
        if position + RECORD_HEADER.size > len(data):
            break
        crc, length, kind = RECORD_HEADER.unpack_from(data, position)
        body = data[position + RECORD_HEADER.size:position + RECORD_HEADER.size + length]
        if len(body) < length or zlib.crc32(body, zlib.crc32(bytes([kind]))) != crc or kind > LAST:
            break
        position += RECORD_HEADER.size + length
        pending = body if kind in (FULL, FIRST) else pending + body
        if kind in (FULL, LAST):
            yield record_type.FromString(pending)
            pending, count = b"", count + 1
    if position < len(data.rstrip(b"\x00")) or pending:
        notes.append(f"{file.name} is truncated or damaged after {count} whole records; "
                     "imported what is complete")
