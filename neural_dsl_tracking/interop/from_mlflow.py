"""Importing runs from a local MLflow tracking store (``sqlite:///...``, ``file:///...`` or a
folder), read through the MLflow SDK (imported when an import starts).

What becomes what (docs/interop.md): params (strings in MLflow) become numbers, booleans or
null when their text reads back the same, else stay text; a tag ``key`` with a value becomes
our tag ``key=value``, one without a value the tag ``key`` (MLflow tag keys have no ``=``), and
one whose ``key=value`` is longer than a tag may be becomes the parameter ``tags.key``;
``mlflow.*`` tags are MLflow's bookkeeping and ``neural.*`` ones our mirror's, and are left out
(``mlflow.runName`` is the run name; ``neural.status``, our exact status, wins over MLflow's).
Every metric point keeps its step and millisecond time; every artifact file becomes version 1
of an artifact named by its path in the run's artifacts, bytes identical.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterator

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.interop.importing import ImportedArtifact, ImportedRun, SourceRun, series
from neural_dsl_tracking.tracking.values import MAX_NAME, RUN_STATUSES

SYSTEM = "mlflow"
STATUS = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "interrupted"}
"""MLflow's run status -> ours; RUNNING and SCHEDULED (a run that never ended) are crashed."""
PAGE = 1000
_PARAM_WORDS = {"True": True, "False": False, "None": None}


def tracking_uri(location: str) -> str:
    """The MLflow tracking URI of a local store: ``sqlite:///``, ``file:///`` or a path (an
    MLflow ``.db`` file, an ``mlruns`` folder, or a folder holding one of them). Anything
    else, or a store that does not exist, is a TrackingError: nothing is created."""
    if location.startswith("sqlite:///"):
        return _sqlite_uri(Path(location.removeprefix("sqlite:///")), location)
    if location.startswith("file://"):
        return _folder_uri(Path(location.removeprefix("file://")), location)
    if "://" in location or location.startswith("databricks"):
        raise TrackingError(f"cannot import from MLflow at {location}: only a local store is "
                            "read (sqlite:///path, file:///path or a folder), never over the "
                            "network")
    path = Path(location)
    if path.is_file():
        return _sqlite_uri(path, location)
    return _folder_uri(path, location)


def _sqlite_uri(path: Path, given: str) -> str:
    if not path.is_file():
        raise TrackingError(f"cannot import from MLflow at {given}: {path} does not exist")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise TrackingError(f"cannot import from MLflow at {given}: {path} is not an SQLite "
                            f"database ({error})") from None
    if not {"experiments", "runs", "metrics"} <= tables:
        raise TrackingError(f"cannot import from MLflow at {given}: {path} is an SQLite database "
                            "but not an MLflow tracking store (no experiments, runs and metrics "
                            "tables)")
    return f"sqlite:///{path.resolve()}"


def _folder_uri(path: Path, given: str) -> str:
    if not path.is_dir():
        raise TrackingError(f"cannot import from MLflow at {given}: {path} does not exist")
    for candidate in (path, path / "mlruns"):
        if (candidate / "0" / "meta.yaml").is_file() or any(candidate.glob("*/meta.yaml")):
            return candidate.resolve().as_uri()
    if (path / "mlflow.db").is_file():
        return _sqlite_uri(path / "mlflow.db", given)
    raise TrackingError(f"cannot import from MLflow at {given}: {path} is not an MLflow store "
                        "(no experiment folders with meta.yaml, no mlruns/, no mlflow.db)")


def list_runs(location: str, experiment: str | None = None) -> list[SourceRun]:
    """The runs of the store at ``location`` (of the experiment named ``experiment`` only)."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(location)
    if uri.startswith("file:"):  # MLflow 3 opens its (read-only here) folder store only when asked
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        client = MlflowClient(tracking_uri=uri)
        experiments = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
    except MlflowException as error:  # an out-of-date schema, a damaged store
        raise TrackingError(f"cannot import from MLflow at {location}: {error.message}") from None
    if experiment is not None:
        chosen = [e for e in experiments if e.name == experiment]
        if not chosen:
            known = ", ".join(sorted(repr(e.name) for e in experiments)) or "none"
            raise TrackingError(f"no MLflow experiment {experiment!r} in {location} "
                                f"(experiments: {known})")
        experiments = chosen
    names = {e.experiment_id: e.name for e in experiments}
    return [SourceRun(SYSTEM, run.info.run_id, f"{names[run.info.experiment_id]}/{run.info.run_name}",
                      _reader(client, uri, run, names[run.info.experiment_id]))
            for run in _runs(client, list(names))]


def _runs(client: Any, experiment_ids: list[str]) -> Iterator[Any]:
    """Every active run of the experiments, oldest first, page by page."""
    token = None
    while experiment_ids:
        page = client.search_runs(experiment_ids, max_results=PAGE, page_token=token,
                                  order_by=["attributes.start_time ASC"])
        yield from page
        token = page.token
        if not token:
            return


def _reader(client: Any, uri: str, run: Any, experiment: str) -> Any:
    def read(scratch: Path) -> ImportedRun:
        return _read_run(client, uri, run, experiment, scratch)

    return read


def _read_run(client: Any, uri: str, run: Any, experiment: str, scratch: Path) -> ImportedRun:
    """One MLflow run whole: params, tags, every metric point, its artifacts (downloaded)."""
    info, data = run.info, run.data
    tags, tag_params = _tags(data.tags)
    status = data.tags.get("neural.status")
    imported = ImportedRun(
        experiment=experiment, run_name=info.run_name or None,
        status=status if status in RUN_STATUSES and status != "running"
        else STATUS.get(info.status, "crashed"),
        start_time=_seconds(info.start_time), end_time=_seconds(info.end_time),
        params={**{key: param_value(text) for key, text in data.params.items()}, **tag_params},
        tags=tags)
    for key in data.metrics:
        imported.metrics[key] = _history(client, uri, info.run_id, key)
    imported.artifacts = _artifacts(client, uri, info.run_id, scratch)
    return imported


def _history(client: Any, uri: str, run_id: str, key: str) -> Any:
    """Every point of one metric: from an SQLite store in one query of its ``metrics`` table
    (about 100 times faster than the SDK's ORM, same values: NaN where ``is_nan``), else
    through ``get_metric_history``."""
    if not uri.startswith("sqlite:///"):
        points = client.get_metric_history(run_id, key)
        return series([p.step for p in points], [p.value for p in points],
                      [p.timestamp / 1000 for p in points])
    with sqlite3.connect(f"file:{uri.removeprefix('sqlite:///')}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT step, timestamp, CASE WHEN is_nan THEN NULL ELSE value END "
                          "FROM metrics WHERE run_uuid = ? AND key = ? ORDER BY step, timestamp",
                          (run_id, key)).fetchall()
    steps, stamps, values = zip(*rows) if rows else ((), (), ())
    return series(steps, [math.nan if v is None else v for v in values],
                  [stamp / 1000 for stamp in stamps])


def _artifacts(client: Any, uri: str, run_id: str, scratch: Path) -> list[ImportedArtifact]:
    """The run's artifact files, downloaded into ``scratch``: one artifact per file, named by
    its path in the run's artifacts."""
    from mlflow.artifacts import download_artifacts

    if not client.list_artifacts(run_id):
        return []
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # the import draws its own
    root = Path(download_artifacts(run_id=run_id, tracking_uri=uri, dst_path=str(scratch)))
    found = []
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            path = Path(folder, name)
            found.append(ImportedArtifact(path.relative_to(root).as_posix(), path))
    return sorted(found, key=lambda artifact: artifact.name)


def _tags(tags: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Our tags and tag-parameters from MLflow's tags (module docstring)."""
    ours, params = [], {}
    for key, value in sorted(tags.items()):
        if key.startswith(("mlflow.", "neural.")):
            continue
        tag = f"{key}={value}" if value else key
        if len(tag) <= MAX_NAME:
            ours.append(tag)
        else:
            params[f"tags.{key}"] = value
    return ours, params


def param_value(text: str) -> Any:
    """A parameter's text as the value it spells when that value prints back as the same text
    (``0.01`` -> 0.01, ``32`` -> 32, ``True`` -> True); anything else stays text."""
    if text in _PARAM_WORDS:
        return _PARAM_WORDS[text]
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, (int, float)) and not isinstance(value, bool) and str(value) == text:
        return value
    return text


def _seconds(milliseconds: int | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1000
