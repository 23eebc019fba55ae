"""Importing TensorBoard log folders: every folder holding ``events.out.tfevents.*`` files is
a run, named by its path relative to the folder given (as TensorBoard names runs), in the
experiment named by ``--experiment`` or else by that folder.

Each event file's records are read straight from its TFRecord framing (length, masked
CRC32C, data, masked CRC32C, checked with the C CRC32C when installed) and parsed as
TensorBoard's ``Event`` protos. Scalars are simple values and scalar tensors of the scalars
plugin (``tf.summary.scalar``, ``SummaryWriter.add_scalar(new_style=True)``); hyperparameters
are the hparams plugin's session start info. A file cut short (or a record whose checksum does
not match) is read up to its last whole record and noted. TensorBoard keeps no tags, status or
artifacts: an imported run is ``completed``, from its first to its last event's wall time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from neural_dsl_tracking.backends.event_file import CRC, LENGTH, masked_crc32c
from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.interop.importing import ImportedRun, SourceRun, series, source_folder

SYSTEM = "tensorboard"
EVENT_FILE = "events.out.tfevents."
SCALAR_PLUGINS = ("scalars", "")
HPARAMS_START = "_hparams_/session_start_info"


def list_runs(location: str, experiment: str | None = None) -> list[SourceRun]:
    """The run folders under the log folder ``location`` (itself included)."""
    _event_type()  # TensorBoard's protos: a missing package is one error before anything is read
    root = source_folder("TensorBoard", location)
    folders = _run_folders(root)
    if not folders:
        raise TrackingError(f"cannot import from TensorBoard at {location}: no event files "
                            f"({EVENT_FILE}*) in it or below it")
    name = experiment or root.resolve().name
    return [SourceRun(SYSTEM, str(folder.resolve()), _run_name(root, folder),
                      _reader(folder, name, _run_name(root, folder))) for folder in folders]


def _run_folders(root: Path) -> list[Path]:
    """Folders at or below ``root`` holding event files (symbolic links are not followed)."""
    found = []
    for folder, folders, files in os.walk(root):
        folders.sort()
        if any(name.startswith(EVENT_FILE) for name in files):
            found.append(Path(folder))
    return found


def _run_name(root: Path, folder: Path) -> str:
    relative = folder.relative_to(root).as_posix()
    return root.resolve().name if relative == "." else relative


def _reader(folder: Path, experiment: str, name: str) -> Any:
    def read(scratch: Path) -> ImportedRun:
        return read_run(folder, experiment, name)

    return read


def _event_type() -> Any:
    """TensorBoard's ``Event`` proto class."""
    from tensorboard.compat.proto.event_pb2 import Event

    return Event


def read_run(folder: Path, experiment: str, name: str) -> ImportedRun:
    """Every scalar point and the hyperparameters of the event files in ``folder``."""
    Event = _event_type()
    points: dict[str, tuple[list, list, list]] = {}
    plugins: dict[str, str] = {}
    run = ImportedRun(experiment=experiment, run_name=name, status="completed")
    times: list[float] = []
    files = sorted(p for p in folder.iterdir()
                   if p.name.startswith(EVENT_FILE) and p.is_file() and not p.is_symlink())
    for path in files:
        for data in _records(path, run.notes):
            try:
                event = Event.FromString(data)
            except Exception:  # noqa: BLE001 - protobuf's DecodeError: not an event
                run.notes.append(f"{path.name}: a record is not a TensorBoard event; read up to it")
                break
            times.append(event.wall_time)
            _take(event, points, plugins, run.params)
    if not times:
        raise TrackingError(f"{folder}: no readable TensorBoard events")
    run.start_time, run.end_time = min(times), max(times)
    run.metrics = {key: series(*columns) for key, columns in points.items()}
    return run


def _take(event: Any, points: dict[str, tuple[list, list, list]], plugins: dict[str, str],
          params: dict[str, Any]) -> None:
    """The scalars (and hyperparameters) of one event."""
    for value in event.summary.value:
        if value.HasField("metadata"):
            plugins.setdefault(value.tag, value.metadata.plugin_data.plugin_name)
        kind = value.WhichOneof("value")
        if value.tag == HPARAMS_START and value.HasField("metadata"):
            params.update(_hparams(value.metadata.plugin_data.content))
            continue
        if kind == "simple_value":
            number = value.simple_value
        elif kind == "tensor" and plugins.get(value.tag, "") in SCALAR_PLUGINS:
            number = _scalar(value.tensor)
            if number is None:
                continue
        else:
            continue
        steps, values, times = points.setdefault(value.tag, ([], [], []))
        steps.append(event.step)
        values.append(number)
        times.append(event.wall_time)


def _scalar(tensor: Any) -> float | None:
    """A one-element numeric tensor's value, else None."""
    from tensorboard.util import tensor_util

    array = tensor_util.make_ndarray(tensor)
    if array.size != 1 or array.dtype.kind not in "fiub":
        return None
    return float(array.reshape(-1)[0])


def _hparams(content: bytes) -> dict[str, Any]:
    """The hyperparameters of the hparams plugin's session start info (whole numbers as ints)."""
    from google.protobuf.json_format import MessageToDict
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    params = {}
    for key, value in start.hparams.items():
        found = MessageToDict(value)
        whole = isinstance(found, float) and found.is_integer() and abs(found) < 2**53
        params[key] = int(found) if whole else found
    return params


def _records(path: Path, notes: list[str]) -> Iterator[bytes]:
    """The data of each whole record of a TFRecord file; a cut-short or damaged tail is noted
    in ``notes``."""
    masked = masked_crc32c()
    data = path.read_bytes()
    position, count = 0, 0
    while position < len(data):
        head = data[position:position + LENGTH.size]
        end = position + LENGTH.size + CRC.size
        if end > len(data) or CRC.unpack_from(data, position + LENGTH.size)[0] != masked(head):
            break
        length = LENGTH.unpack(head)[0]
        body_end = end + length
        if body_end + CRC.size > len(data) or \
                CRC.unpack_from(data, body_end)[0] != masked(data[end:body_end]):
            break
        yield data[end:body_end]
        position, count = body_end + CRC.size, count + 1
    if position < len(data):
        notes.append(f"{path.name} is truncated or damaged after {count} whole records "
                     f"({len(data) - position} bytes not read); imported what is complete")

