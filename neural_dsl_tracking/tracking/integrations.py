"""The original API's integrations: one MLflow, W&B or TensorBoard run written directly, in
this process, by the same mirror code that copies tracked runs (``neural_dsl_tracking.backends``).

A tracked run reaches these systems through ``ExperimentTracker(backend=...)``; these classes
are for a script that wants only the external run. The backends (a later stage than tracking)
are imported when an integration is created.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.objects import hash_file
from neural_dsl_tracking.tracking.tracker import generated_experiment_name
from neural_dsl_tracking.tracking.values import clean_metrics, to_step

DEFAULT_DIR = "neural_experiments"


class Integration:
    """One run in one external system: ``log_params``, ``log_metrics(metrics, step)``,
    ``log_artifact(path)``, ``finish()``. Usable as a context manager."""

    backend: ClassVar[str]

    def __init__(self, experiment_name: str | None, options: Mapping[str, Any], *,
                 run_name: str | None = None, tags: Iterable[str] | None = None,
                 files_dir: str | Path = DEFAULT_DIR) -> None:
        from neural_dsl_tracking.backends.base import RunInfo
        from neural_dsl_tracking.backends.registry import checked_options, create_mirror

        self.experiment_name = experiment_name or generated_experiment_name()
        self.run_id = uuid.uuid4().hex
        run = RunInfo(self.run_id, self.experiment_name, run_name, list(tags or ()),
                      Path(files_dir))
        self._mirror = create_mirror(self.backend, run, checked_options(self.backend, options))
        self._mirror.start()
        self._next_step = 0
        self._versions: dict[str, int] = {}
        self._finished = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters (nested dicts allowed)."""
        self._check_open()
        if not isinstance(params, Mapping):
            raise TypeError(f"hyperparameters must be a dict, got {type(params).__name__}")
        self._mirror.log_params(params)

    log_hyperparameters = log_params  # the original API's name

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """One point per metric at ``step`` (the step after the last one when None)."""
        self._check_open()
        values = clean_metrics(metrics)
        step = self._next_step if step is None else to_step(step)
        self._next_step = step + 1
        now = time.time()
        points = [(key, step, value, now) for key, value in values.items()]
        size = self._mirror.metrics_per_call
        for start in range(0, len(points), size):
            self._mirror.log_metrics(points[start:start + size])

    def log_artifact(self, path: str | Path, name: str | None = None) -> int:
        """Send a file as the next version of artifact ``name`` (default: the file name);
        returns the version number."""
        from neural_dsl_tracking.backends.base import ArtifactRef

        self._check_open()
        path = Path(path)
        if not path.is_file():
            raise TrackingError(f"cannot log artifact {path}: it is not a file")
        name = name or path.name
        version = self._versions[name] = self._versions.get(name, 0) + 1
        self._mirror.log_artifact(ArtifactRef(path, name, version, hash_file(path),
                                              original_name=path.name))
        return version

    def finish(self, status: str = "completed") -> None:
        """Close the run with ``status`` (``completed``, ``failed``, ``interrupted``); idempotent."""
        if not self._finished:
            self._finished = True
            self._mirror.finish(status)

    def _check_open(self) -> None:
        if self._finished:
            raise TrackingError(f"the {self.backend} run {self.run_id[:8]} is finished")

    def __enter__(self) -> "Integration":
        return self

    def __exit__(self, kind, value, traceback) -> bool:  # type: ignore[no-untyped-def]
        self.finish("completed" if kind is None else "failed")
        return False


class MLflowIntegration(Integration):
    """An MLflow run in experiment ``experiment_name`` at ``tracking_uri`` (default: MLflow's
    own, ``MLFLOW_TRACKING_URI``)."""

    backend = "mlflow"

    def __init__(self, experiment_name: str | None = None, tracking_uri: str | None = None,
                 run_name: str | None = None, tags: Iterable[str] | None = None) -> None:
        super().__init__(experiment_name, {"tracking_uri": tracking_uri},
                         run_name=run_name, tags=tags)


class WandbIntegration(Integration):
    """A W&B run named ``experiment_name`` in ``project_name``; ``mode="offline"`` (or
    ``WANDB_MODE``) writes it under ``<dir>/wandb/`` without a network."""

    backend = "wandb"

    def __init__(self, experiment_name: str | None = None, project_name: str = "neural",
                 config: Mapping[str, Any] | None = None, tags: Iterable[str] | None = None, *,
                 mode: str | None = None, entity: str | None = None,
                 dir: str | Path = DEFAULT_DIR) -> None:
        super().__init__(experiment_name, {"project": project_name, "mode": mode, "entity": entity},
                         run_name=experiment_name, tags=tags, files_dir=dir)
        if config:
            self.log_params(config)


class TensorBoardIntegration(Integration):
    """Event files under ``<log_dir>/<experiment_name>`` (``log_dir`` itself without a name)."""

    backend = "tensorboard"

    def __init__(self, experiment_name: str | None = None, log_dir: str | Path = "runs/neural"
                 ) -> None:
        self.log_dir = Path(log_dir) / experiment_name if experiment_name else Path(log_dir)
        super().__init__(experiment_name, {"log_dir": str(self.log_dir)})
