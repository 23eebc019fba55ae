"""MLflow mirror: one MLflow run per tracked run, written through ``MlflowClient.log_batch``.

What lands where (see docs/backends.md): parameters flattened with dots and stringified;
every metric point with its step and millisecond timestamp; artifact versions under
``artifacts/<name>/v<version>/`` with tags ``neural.artifact.<name>.v<version>.sha256`` and
``neural.artifact.<name>.<alias>``; plots under ``plots/``; our final status mapped to
MLflow's. The SDK is imported in :meth:`MlflowMirror.start`.
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from neural_dsl_tracking.dotted import flatten
from neural_dsl_tracking.backends.base import (
    ENDED_NORMALLY,
    ArtifactRef,
    MetricPoint,
    Mirror,
    safe_name,
)

STATUS = {"interrupted": "KILLED", "running": "RUNNING"} | dict.fromkeys(ENDED_NORMALLY, "FINISHED")
"""Our run status -> MLflow's (``pruned`` is FINISHED); ``failed`` and ``crashed`` (and
anything else) are FAILED. The exact status is the tag ``neural.status``."""

MAX_PARAMS_PER_CALL = 100
MAX_KEY_LENGTH = 250
REJECTED = {
    "INVALID_PARAMETER_VALUE",
    "BAD_REQUEST",
    "INVALID_STATE",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "RESOURCE_DOES_NOT_EXIST",
}
"""MLflow error codes that no retry can fix."""


class MlflowMirror(Mirror):
    """Mirror to MLflow (a local store or ``mlflow server``)."""

    name = "mlflow"
    metrics_per_call = 1000  # MLflow's log_batch limit

    def start(self) -> None:
        from mlflow import MlflowClient
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        uri = tracking_uri(self.options)
        if uri.startswith(("http://", "https://")):
            # Fail each call fast; our worker retries with its own backoff. A user's own
            # settings win.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        self._max_value = MAX_PARAM_VAL_LENGTH
        _create_sqlite_store(uri)
        self._client = MlflowClient(tracking_uri=uri)
        self._keys: dict[str, str] = {}
        experiment_id = self._experiment_id(uri)
        existing = self._existing_run(experiment_id)
        if existing is not None:
            self.run_id = existing.info.run_id
            self._params = dict(existing.data.params)
            self._client.update_run(self.run_id, status="RUNNING")
            return
        tags = {"neural.run_id": self.run.run_id, "neural.experiment": self.run.experiment}
        if self.run.tags:
            tags["neural.tags"] = ", ".join(self.run.tags)
            tags.update(self._key_value(tag) for tag in self.run.tags)
        start = None if self.run.start_time is None else int(round(self.run.start_time * 1000))
        created = self._client.create_run(experiment_id, run_name=self.run.run_name, tags=tags,
                                          start_time=start)
        self.run_id = created.info.run_id
        self._params = {}

    def _experiment_id(self, uri: str) -> str:
        from mlflow.exceptions import MlflowException

        name = self.options.get("experiment") or self.run.experiment
        found = self._client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self._client.create_experiment(name, artifact_location=_artifact_root(uri))
        except MlflowException as error:  # another process created it first
            found = self._client.get_experiment_by_name(name)
            if found is None:
                raise error
            return found.experiment_id

    def _existing_run(self, experiment_id: str) -> Any:
        """The MLflow run a resumed tracker run was mirrored to before, if any."""
        if not re.fullmatch(r"[\w.\-]+", self.run.run_id):
            return None
        runs = self._client.search_runs(
            [experiment_id], f"tags.`neural.run_id` = '{self.run.run_id}'", max_results=1
        )
        return runs[0] if runs else None

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param, RunTag

        values = {
            self._key(key): str(value)[: self._max_value]
            for key, value in flatten(params).items()
        }
        new = [Param(k, v) for k, v in values.items() if k not in self._params]
        # MLflow parameters are immutable: a changed value is kept as a tag instead.
        changed = [
            RunTag(self._key(f"neural.param_changed.{k}"), v)
            for k, v in values.items()
            if k in self._params and self._params[k] != v
        ]
        for start in range(0, len(new), MAX_PARAMS_PER_CALL):
            chunk = new[start : start + MAX_PARAMS_PER_CALL]
            self._client.log_batch(self.run_id, params=chunk)
            self._params.update((param.key, param.value) for param in chunk)
        for start in range(0, len(changed), MAX_PARAMS_PER_CALL):
            self._client.log_batch(self.run_id, tags=changed[start : start + MAX_PARAMS_PER_CALL])

    def log_metrics(self, points: Sequence[MetricPoint]) -> None:
        from mlflow.entities import Metric

        batch = [
            Metric(self._key(key), float(value), int(round(time * 1000)), int(step))
            for key, step, value, time in points
        ]
        self._client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, artifact: ArtifactRef) -> None:
        from mlflow.entities import RunTag

        name = safe_name(artifact.name)
        folder = f"artifacts/{name}/v{artifact.version}"
        with _published_as(artifact.path, safe_name(artifact.filename)) as path:
            self._client.log_artifact(self.run_id, str(path), folder)
        prefix = f"neural.artifact.{name}"
        tags = [RunTag(self._key(f"{prefix}.v{artifact.version}.sha256"), artifact.sha256)]
        tags += [
            RunTag(self._key(f"{prefix}.{alias}"), f"v{artifact.version}")
            for alias in artifact.aliases
        ]
        self._client.log_batch(self.run_id, tags=tags)

    def log_figure(self, path: Path, name: str) -> None:
        with _published_as(path, safe_name(name) + path.suffix) as published:
            self._client.log_artifact(self.run_id, str(published), "plots")

    def finish(self, status: str, end_time: float | None = None) -> None:
        self._client.set_tag(self.run_id, "neural.status", status)
        end = None if end_time is None else int(round(end_time * 1000))
        self._client.set_terminated(self.run_id, STATUS.get(status, "FAILED"), end_time=end)

    def is_permanent(self, error: BaseException) -> bool:
        code = getattr(error, "error_code", None)
        return super().is_permanent(error) or code in REJECTED

    def _key_value(self, tag: str) -> tuple[str, str]:
        """Our tag as an MLflow tag: ``key=value`` as key and value (as an MLflow import
        reads it), an imported run's ``source:<system>:<id>`` as ``neural.source`` (our
        bookkeeping, left out by an import), any other tag as a key with an empty value."""
        if tag.startswith("source:"):
            return "neural.source", tag[len("source:"):]
        key, _, value = tag.partition("=")
        return (self._key(key), value) if key and value else (self._key(tag), "")

    def _key(self, key: str) -> str:
        """``key`` as a valid MLflow metric/param/tag name (cached; usually unchanged)."""
        valid = self._keys.get(key)
        if valid is None:
            valid = re.sub(r"[^\w./\- ]", "_", key)[:MAX_KEY_LENGTH]
            if not valid or posixpath.normpath(valid) != valid:
                valid = safe_name(valid.replace("/", "_"))
            self._keys[key] = valid
        return valid


def tracking_uri(options: Mapping[str, Any]) -> str:
    """Where the mirror writes: the ``tracking_uri`` option, else ``MLFLOW_TRACKING_URI``,
    else MLflow's own default."""
    uri = options.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    import mlflow

    return mlflow.get_tracking_uri()


def _sqlite_database(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0]).resolve()


def _artifact_root(uri: str) -> str | None:
    """Artifacts of a new experiment in a SQLite store go next to the database, not into
    the current directory; servers and other stores keep their own default."""
    database = _sqlite_database(uri)
    return None if database is None else (database.parent / "mlartifacts").as_uri()


def _create_sqlite_store(uri: str) -> None:
    """Create a new SQLite store with its artifact root next to the database. Left to
    ``MlflowClient``, the store MLflow creates gives its ``Default`` experiment the current
    directory's ``./mlruns``, where a run mirrored or synced to experiment ``Default`` would
    then write its artifacts."""
    database = _sqlite_database(uri)
    if database is None or database.exists():
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(uri, _artifact_root(uri))


@contextmanager
def _published_as(path: Path, filename: str) -> Iterator[Path]:
    """``path`` under the file name ``filename`` (a symlink in a temporary directory)."""
    if path.name == filename:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="neural-mlflow-") as tmp:
        link = Path(tmp) / filename
        link.symlink_to(path.resolve())
        yield link
