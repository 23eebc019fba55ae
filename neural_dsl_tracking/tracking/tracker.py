"""ExperimentTracker: what a training run logs through.

``log_metrics`` validates and appends to memory only; a background writer flushes to the
store (see ``writer.py``), a plot process redraws plots (``plot_process.py``), and
mirrors (MLflow, W&B, TensorBoard) are fed from each flushed batch.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Iterator

from neural_dsl_tracking import limits
from neural_dsl_tracking.errors import NeuralError, TrackingError
from neural_dsl_tracking.tracking import lifecycle
from neural_dsl_tracking.tracking.db import is_database_url
from neural_dsl_tracking.tracking.objects import hash_regular_file
from neural_dsl_tracking.tracking.records import (
    FINAL_STATUSES,
    ArtifactVersion,
    MetricHistory,
    artifact_ref,
)
from neural_dsl_tracking.tracking.plot_process import PlotProcess
from neural_dsl_tracking.tracking.scope import current_scope
from neural_dsl_tracking.tracking.store import Store
from neural_dsl_tracking.tracking.system_metrics import SystemSampler, is_system_metric
from neural_dsl_tracking.tracking.values import (
    MAX_NAME,
    MAX_STEP,
    MIN_STEP,
    clean_metrics,
    to_step,
)
from neural_dsl_tracking.tracking.visualizer import MetricVisualizer, load_histories, safe_filename
from neural_dsl_tracking.tracking.writer import FLUSH_INTERVAL, MetricWriter

MIRROR_FINISH_TIMEOUT = 30.0
_now = time.time


def generated_experiment_name() -> str:
    """The name of an experiment given none: ``experiment_<local date>_<time>``."""
    return time.strftime("experiment_%Y%m%d_%H%M%S")


def _check_system_metrics(interval: object) -> None:
    """Refuse a ``system_metrics`` that is not a whole number of seconds within its bounds."""
    if isinstance(interval, bool) or not isinstance(interval, int):
        raise TrackingError(f"system_metrics must be a whole number of seconds, got {interval!r}")
    problem = limits.SYSTEM_METRICS.problem(interval)
    if problem:
        raise TrackingError(f"system_metrics must be {problem} seconds, got {interval}")


class _StoreAccess:
    """A tracker's way to its store: one connection of its own while the run is open, closed
    by ``release()`` when it finishes; after that each use opens a connection and closes it
    again, so a finished tracker holds none. The tracker's callbacks (plot data, mirror
    failures) go through this object rather than the tracker, so no reference cycle keeps a
    dropped tracker alive until the garbage collector runs."""

    def __init__(self, base_dir: str | Path, store: str | None) -> None:
        self._where = (base_dir, store)
        self.store = Store(base_dir, store, create=True)
        self.released = False

    @contextmanager
    def using(self) -> Iterator[Store]:
        """The open store, or after ``release()`` one opened for this use only."""
        if not self.released:
            yield self.store
            return
        store = Store(*self._where, create=False)
        try:
            yield store
        finally:
            store.close()

    def release(self) -> None:
        """Close the run's own connection (idempotent)."""
        self.released = True
        self.store.close()

    def histories(self, run_id: str) -> dict[str, MetricHistory]:
        with self.using() as store:
            return load_histories(store, run_id)

    def record_mirror_failure(self, run_id: str, backend: str, message: str) -> None:
        """Record a mirror's failure on the run; a warning if even that fails."""
        try:
            with self.using() as store:
                store.record_mirror_failure(run_id, backend, message)
        except NeuralError as error:
            warnings.warn(f"could not record mirror failure ({backend}: {message}): {error}",
                          RuntimeWarning, stacklevel=2)


class ExperimentTracker:
    """One run of an experiment: hyperparameters, metrics, artifacts, figures, plots."""

    def __init__(self, experiment_name: str | None = None,
                 base_dir: str | Path = "neural_experiments", *,
                 store: str | None = None, backend: str | list[str] = "local",
                 backend_options: dict | None = None, run_name: str | None = None,
                 tags: list[str] | None = None, auto_visualize: bool = True,
                 visualize_every: int = 10, run_id: str | None = None,
                 config: dict | None = None, source_file: str | Path | None = None,
                 flush_interval: float = FLUSH_INTERVAL, system_metrics: int = 10) -> None:
        if experiment_name is None:
            experiment_name = generated_experiment_name()
        if not isinstance(experiment_name, str) or not experiment_name.strip():
            raise TrackingError("experiment_name must be a non-empty string")
        if isinstance(visualize_every, bool) or not isinstance(visualize_every, int) \
                or visualize_every < 0:
            raise TrackingError(f"visualize_every must be an integer >= 0, got {visualize_every!r}")
        _check_system_metrics(system_metrics)
        self._access = _StoreAccess(base_dir, store)
        self._store = self._access.store  # for writes, while the run is open
        self._finished = False
        self.status = "running"
        scope = current_scope()
        auto_visualize = auto_visualize and (scope is None or scope.final_plots)
        lifecycle.install()
        try:
            with lifecycle.sigterm_deferred():  # a SIGTERM from here on closes the run once open
                self.run_id = (self._resume(run_id, tags or []) if run_id is not None else
                               self._create(experiment_name, run_name, tags or [], config,
                                            source_file))
                self._open(store, backend, backend_options or {}, visualize_every,
                           auto_visualize, flush_interval, system_metrics)
                lifecycle.register(self)
        except BaseException:
            self._access.release()
            raise
        if scope is not None and scope.on_open is not None:
            try:
                scope.on_open(self)
            except BaseException:
                self.finish("failed")
                raise

    def _create(self, experiment_name: str, run_name: str | None, tags: list[str],
                config: dict | None, source_file: str | Path | None) -> str:
        """A new run in the store; returns its id."""
        source_sha = None
        if source_file is not None:
            source_sha = hash_regular_file(Path(source_file), "source file")
        self._next_step = 0
        return self._store.create_run(
            experiment=experiment_name, run_name=run_name, tags=tags, config=config,
            source_file=None if source_file is None else str(source_file),
            source_sha256=source_sha)

    def _open(self, store: str | None, backend: str | list[str], backend_options: dict,
              visualize_every: int, auto_visualize: bool, flush_interval: float,
              system_metrics: int) -> None:
        """Start what serves the run: mirrors, the metric writer, the plot process, the
        system metrics sampler."""
        record = self._store.get_run(self.run_id)
        self.experiment_name = record.experiment
        self.run_name = record.run_name
        self.run_dir = self._store.run_dir(self.run_id)  # plots/ appears with the first plot

        self._mirrors = self._open_mirrors(backend, backend_options, record.tags)
        self._writer = MetricWriter(self._store, self.run_id, interval=flush_interval,
                                    on_flushed=self._mirrors.metrics if self._mirrors else None)
        self._append = self._writer.pending.append
        self._visualize_every = visualize_every if auto_visualize else 0
        self._auto_visualize = auto_visualize
        self._log_calls = 0
        self._visualizer = MetricVisualizer(self.run_dir / "plots",
                                            partial(self._access.histories, self.run_id))
        self._plots = PlotProcess({
            "files_dir": str(self._store.files_dir.resolve()),
            "store": str(store) if store is not None and is_database_url(str(store)) else None,
            "run_id": self.run_id, "plots_dir": str((self.run_dir / "plots").resolve()),
        }) if self._visualize_every else None
        self._writer.start()
        self._system = self._start_sampler(system_metrics, record.start_time.timestamp())

    def _start_sampler(self, interval: int, started: float) -> SystemSampler | None:
        """The system metrics thread, feeding the writer's buffer at steps of seconds since
        ``started`` (None when ``interval`` is 0)."""
        if not interval:
            return None
        sampler = SystemSampler(interval, self._append, started,
                                name=f"neural-system-metrics-{self.run_id[:8]}")
        sampler.start()
        return sampler

    def _resume(self, ref: str, tags: list[str]) -> str:
        """Reopen the run ``ref`` names (an id, a unique id prefix, or a unique run name)."""
        try:
            run_id = self._store.resolve_run_id(ref)
        except TrackingError as error:
            raise TrackingError(f"cannot resume: {error}") from None
        self._store.reopen_run(run_id)
        if tags:
            self._store.add_tags(run_id, tags)
        summaries = self._store.metric_summaries(run_id)
        self._next_step = max((s.max_step for key, s in summaries.items() if not is_system_metric(key)),
                              default=-1) + 1
        return run_id

    # ---- context manager --------------------------------------------------------------
    @property
    def mirrors(self) -> list[str]:
        """The mirrors this run is copied to (``mlflow``, ``wandb``, ``tensorboard``)."""
        return list(self._mirrors.names) if self._mirrors else []

    @property
    def store_location(self) -> str:
        """Where the run is recorded: the store's directory, or its URL without a password."""
        return self._store.location

    def __enter__(self) -> "ExperimentTracker":
        return self

    def __exit__(self, kind, value, traceback) -> bool:  # type: ignore[no-untyped-def]
        if kind is None:
            self.finish("completed")
        elif issubclass(kind, KeyboardInterrupt):
            self.finish("interrupted")
        else:
            self.finish("failed")
        return False

    # ---- logging ----------------------------------------------------------------------
    def log_hyperparameters(self, params: dict[str, Any]) -> None:
        """Record hyperparameters (JSON values; numpy/torch scalars become numbers)."""
        self._check_open()
        if not isinstance(params, dict):
            raise TypeError(f"hyperparameters must be a dict, got {type(params).__name__}")
        self._store.log_params(self.run_id, params)
        if self._mirrors:
            self._mirrors.params(dict(params))

    def log_model_spec(self, spec: dict[str, Any], fingerprint: str | None = None) -> None:
        """Record the run's model: its normalised spec (layers, shapes, parameter counts; the
        totals in ``spec["params"]`` and ``spec["macs"]``) and its fingerprint, replacing any
        recorded before (the format is in docs/tracking.md)."""
        self._check_open()
        self._store.set_run_model(self.run_id, spec, params=spec.get("params"), macs=spec.get("macs"),
                                  fingerprint=fingerprint)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Append one point per metric at ``step`` (next step if None). Memory only; fast."""
        if self._finished:
            raise TrackingError(f"run {self.run_id[:8]} is finished; metrics can no longer be logged")
        values = metrics.copy() if type(metrics) is dict else clean_metrics(metrics)
        for key, value in values.items():
            if type(value) is not float or type(key) is not str or len(key) > MAX_NAME:
                values = clean_metrics(values)
                break
        if step is None:
            step = self._next_step
        elif type(step) is not int or not MIN_STEP <= step <= MAX_STEP:
            step = to_step(step)
        self._next_step = step + 1
        self._append((step, _now(), values))  # one append per call: atomic across threads
        if self._visualize_every:
            self._log_calls += 1
            if self._log_calls % self._visualize_every == 0:
                self._plots.request()

    def log_artifact(self, path: str | Path, name: str | None = None, version: bool = True,
                     aliases: Iterable[str] = (), metadata: dict | None = None,
                     monitor: str | None = None, mode: str = "min") -> ArtifactVersion:
        """Store a file as a new version of artifact ``name`` (default: the file name)."""
        result = self._record_artifact(Path(path), name, version, aliases, metadata, monitor, mode)
        if self._mirrors:
            # the stored object, not the user's file, which may be overwritten before it is sent
            self._mirrors.artifact(str(result.path), result.name, result.version, result.sha256,
                                   list(result.aliases), filename=Path(path).name)
        return result

    def _record_artifact(self, path: Path, name: str | None, version: bool,
                         aliases: Iterable[str], metadata: dict | None, monitor: str | None,
                         mode: str) -> ArtifactVersion:
        """``log_artifact`` in the store only (the mirrors are not told)."""
        self._check_open()
        if mode not in ("min", "max"):
            raise TrackingError(f"mode must be 'min' or 'max', got {mode!r}")
        if isinstance(aliases, str):
            aliases = [aliases]
        name = name or path.name
        metadata = dict(metadata or {})
        aliases = list(aliases)
        with self._store.objects.stage(path) as content:
            if monitor is not None:
                value = self._monitored_value(monitor)
                metadata["monitor"] = {"key": monitor, "mode": mode, "value": value}
                if value is not None and self._is_best(name, monitor, mode, value):
                    aliases.append("best")
            number = self._store.add_artifact_version(
                self.run_id, name, content, filename=path.name, metadata=metadata,
                aliases=aliases, replace=not version)
        return self._store.find_artifact_version(self.run_id, name, number)

    def _monitored_value(self, key: str) -> float | None:
        self._writer.flush()
        summary = self._store.metric_summaries(self.run_id).get(key)
        if summary is None or summary.latest != summary.latest:
            warnings.warn(f"monitor {key!r} has no value yet; alias 'best' not moved",
                          RuntimeWarning, stacklevel=3)
            return None
        return summary.latest

    def _is_best(self, name: str, key: str, mode: str, value: float) -> bool:
        for earlier in self._store.artifact_versions(self.run_id, name):
            seen = earlier.metadata.get("monitor") or {}
            if seen.get("key") != key or seen.get("value") is None:
                continue
            if (value >= seen["value"]) if mode == "min" else (value <= seen["value"]):
                return False
        return True

    def log_model(self, path: str | Path, framework: str = "pytorch", version: bool = True,
                  name: str | None = None) -> ArtifactVersion:
        """A model file as an artifact (default name: the file name) tagged with its framework;
        ``version=False`` replaces the latest version instead of adding one."""
        return self.log_artifact(path, name=name, version=version,
                                 metadata={"type": "model", "framework": framework})

    def log_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as PNG (a Plotly figure as HTML) in the run's figures/ and
        record it as a version of the artifact ``<name>.png`` (``.html``; a name that already
        ends with that suffix keeps it); mirrors receive it as a plot."""
        self._check_open()
        suffix = ".png" if hasattr(fig, "savefig") else ".html"
        if suffix == ".html" and not hasattr(fig, "write_html"):
            raise TypeError(f"log_figure needs a matplotlib or Plotly figure, got {type(fig).__name__}")
        stem = name[:-len(suffix)] if name.lower().endswith(suffix) and len(name) > len(suffix) else name
        folder = self.run_dir / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{safe_filename(stem)}{suffix}"
        if suffix == ".png":
            fig.savefig(path, format="png")
        else:
            fig.write_html(str(path), include_plotlyjs=True)
        self._record_artifact(path, stem + suffix, True, (), {"type": "figure"}, None, "min")
        if self._mirrors:  # as a plot, not also as an artifact
            self._mirrors.figure(str(path), stem)
        return path

    # ---- reading back -----------------------------------------------------------------
    def list_artifact_versions(self, name: str) -> list[ArtifactVersion]:
        with self._access.using() as store:
            return store.artifact_versions(self.run_id, name)

    def get_artifact_version(self, name: str, ref: int | str = -1, *, verify: bool = True,
                             version: int | str | None = None) -> ArtifactVersion:
        """A version by number, negative index or alias (``ref``, or ``version=`` as the
        original API spelt it); its checksum is verified."""
        ref = artifact_ref(ref, version)
        with self._access.using() as store:
            if not verify:
                return store.find_artifact_version(self.run_id, name, ref)
            return store.read_artifact_version(self.run_id, name, ref,
                                               store.objects.verify_version)[0]

    def get_best_metric(self, key: str, mode: str = "min") -> float | None:
        """Smallest (``min``) or largest (``max``) value logged for ``key``; None if never logged."""
        if mode not in ("min", "max"):
            raise TrackingError(f"mode must be 'min' or 'max', got {mode!r}")
        if not self._finished:
            self._writer.flush()
        with self._access.using() as store:
            summary = store.metric_summaries(self.run_id).get(key)
        if summary is None:
            return None
        best = summary.min if mode == "min" else summary.max
        return float("nan") if best is None else best

    def get_metric_history(self, key: str) -> MetricHistory:
        if not self._finished:
            self._writer.flush()
        with self._access.using() as store:
            return store.metric_history(self.run_id, key)

    # ---- resume and fork -------------------------------------------------------------
    def metric_steps(self) -> dict[str, int]:
        """The last step of each metric logged so far (system metrics aside), everything
        logged flushed first: what a checkpoint records so that resuming from it can drop
        the points logged after it."""
        self._check_open()
        self._writer.flush()
        return {key: summary.max_step for key, summary in self._store.metric_summaries(self.run_id).items()
                if not is_system_metric(key)}

    def rewind_metrics(self, last_steps: dict[str, int]) -> int:
        """Drop this run's points logged after the step ``last_steps`` gives each metric (all
        of a metric it does not name; system metrics are kept): a resumed run continuing
        from a checkpoint. Returns how many points were dropped (the mirrors keep theirs)."""
        self._check_open()
        self._writer.flush()
        cuts = {key: last_steps.get(key) for key in self._store.metric_keys(self.run_id)
                if not is_system_metric(key)}
        dropped = self._store.truncate_metrics(self.run_id, cuts)
        self._next_step = max((last for last in cuts.values() if last is not None), default=-1) + 1
        return dropped

    def record_parent(self, parent_run_id: str, fork_epoch: int | None, fork_step: int | None) -> None:
        """Record that this run was forked from ``parent_run_id`` at that epoch and step."""
        self._check_open()
        self._store.set_run_parent(self.run_id, parent_run_id, fork_epoch, fork_step)

    def record_event(self, kind: str, detail: str) -> None:
        """Add an event (``resumed``, ``forked``) to this run's history."""
        self._check_open()
        self._store.add_run_event(self.run_id, kind, detail)

    def generate_visualizations(self) -> list[Path]:
        """Flush, then draw every plot now (in this thread); returns the PNG files."""
        if not self._finished:
            self._writer.flush()
        return self._visualizer.generate()

    # ---- mirrors ----------------------------------------------------------------------
    def _open_mirrors(self, backend: str | list[str], options: dict, tags: list[str]) -> Any:
        names = [backend] if isinstance(backend, str) else list(backend)
        names = [n for n in dict.fromkeys(names) if n != "local"]
        if not names:
            return None
        try:
            from neural_dsl_tracking.backends import open_mirrors
            from neural_dsl_tracking.backends.base import RunInfo
        except ImportError as error:
            return self._mirrors_unavailable(names, f"neural_dsl_tracking.backends: {error}")
        info = RunInfo(run_id=self.run_id, experiment=self.experiment_name,
                       run_name=self.run_name, tags=list(tags), store_dir=self._store.files_dir)
        try:
            return open_mirrors(names, options, info,
                                partial(self._access.record_mirror_failure, self.run_id))
        except NeuralError:  # a misspelt backend or option: the run stops here, loudly
            self._store.set_status(self.run_id, "failed")
            raise
        except Exception as error:  # noqa: BLE001 - a mirror never stops the local record
            return self._mirrors_unavailable(names, str(error))

    def _mirrors_unavailable(self, names: list[str], reason: str) -> None:
        warnings.warn(f"mirrors {', '.join(names)} unavailable ({reason}); recording locally only",
                      RuntimeWarning, stacklevel=3)
        for name in names:
            self._access.record_mirror_failure(self.run_id, name, f"not started: {reason}")
        return None

    # ---- finishing --------------------------------------------------------------------
    def finish(self, status: str = "completed") -> None:
        """Flush everything, draw the final plots, close mirrors, record ``status``, and close
        the run's store connection (reading methods still work: each opens its own).

        A SIGTERM arriving meanwhile is handled once this returns."""
        if self._finished:
            return
        if status not in FINAL_STATUSES:
            raise TrackingError(f"status must be one of {', '.join(FINAL_STATUSES)}, got {status!r}")
        with lifecycle.sigterm_deferred():
            if not self._finished:  # a SIGTERM just before the line above has finished it
                self._finish(status)

    def _finish(self, status: str) -> None:
        self._finished = True
        lifecycle.unregister(self)
        try:
            self._wind_up(status)
        finally:
            self._access.release()

    def _wind_up(self, status: str) -> None:
        if self._system:
            self._system.stop()  # its last points go out with the writer's last flush
        try:
            self._writer.close()
        except NeuralError as error:
            if self._plots:
                self._plots.stop()
            raise TrackingError(f"run {self.run_id[:8]}: the last metrics could not be written: "
                                f"{error}") from error
        self._store.set_status(self.run_id, status)
        self.status = status
        plots: list[Path] = []
        if self._auto_visualize:
            try:
                plots = (self._plots.final(self._visualizer.generate) if self._plots
                         else self._visualizer.generate())
            except Exception as error:  # noqa: BLE001 - plots never change a run's outcome
                warnings.warn(f"final plots failed: {error}", RuntimeWarning, stacklevel=2)
        if self._mirrors:
            for plot in plots:
                self._mirrors.figure(str(plot), plot.stem)
            for unsent in self._mirrors.finish(status, MIRROR_FINISH_TIMEOUT) or []:
                backend, _, message = str(unsent).partition(": ")
                if not message:  # no "<mirror names>: " prefix
                    backend, message = "mirrors", str(unsent)
                self._access.record_mirror_failure(self.run_id, backend, f"at finish: {message}")

    def _check_open(self) -> None:
        if self._finished:
            raise TrackingError(f"run {self.run_id[:8]} is finished")

    def __repr__(self) -> str:
        return (f"ExperimentTracker(experiment={self.experiment_name!r}, run_id={self.run_id!r}, "
                f"status={self.status!r})")

