"""ExperimentManager: list, read, compare, export and delete recorded runs."""

from __future__ import annotations

import hashlib
import itertools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.db import StoreAbsent
from neural_dsl_tracking.tracking.records import (
    ArtifactVersion,
    MetricHistory,
    ModelFacts,
    RunModel,
    RunRecord,
    SweepRecord,
    artifact_ref,
)
from neural_dsl_tracking.tracking.query import Query
from neural_dsl_tracking.tracking.store import T, Store, check_crash_after, store_locations
from neural_dsl_tracking.tracking.values import to_step
from neural_dsl_tracking.tracking.visualizer import FigureMap

if TYPE_CHECKING:  # comparison imports numpy: only comparing and exporting need it, not ls or show
    from neural_dsl_tracking.tracking import comparison

_NAMED_RUNS = 8  # a default comparison folder names at most this many runs in full


class ExperimentManager:
    """Read access (and deletion) for one store; reading never creates anything."""

    def __init__(self, base_dir: str | Path = "neural_experiments", store: str | None = None, *,
                 crash_after: float | None = None) -> None:
        self.base_dir = Path(base_dir)
        self.store_location = store
        self.crash_after = check_crash_after(crash_after)
        self._store: Store | None = None
        self.files_dir = store_locations(base_dir, store)[1]

    def _open(self) -> Store | None:
        if self._store is None:
            try:
                self._store = Store(self.base_dir, self.store_location, create=False)
            except StoreAbsent:
                return None
        return self._store

    def _existing(self, ref: str, kind: str = "run") -> Store:
        """The store, or a TrackingError about the ``kind`` ``ref`` when there is none."""
        store = self._open()
        if store is None:
            location = self.store_location or self.base_dir
            raise TrackingError(f"no {kind} {ref!r}: there is no experiment store at {location}")
        return store

    def _require(self, run_id: str) -> tuple[Store, str]:
        store = self._existing(run_id)
        return store, store.resolve_run_id(run_id)

    @property
    def exists(self) -> bool:
        """Whether there is a store at this location (finding out creates nothing)."""
        return self._open() is not None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # ---- reading ----------------------------------------------------------------------
    def list_experiments(self, experiment: str | None = None, status: str | None = None,
                         tag: str | None = None, *, changed_after: float | None = None) -> list[RunRecord]:
        """Runs, newest first, optionally filtered by experiment name, status and tag; with
        ``changed_after`` (a heartbeat, epoch seconds), only the runs written since then (at or after it) and
        those still marked running."""
        store = self._open()
        if store is None:
            return []
        return store.list_runs(experiment=experiment, status=status, tag=tag,
                               crash_after=self.crash_after, changed_after=changed_after)

    def runs_version(self) -> tuple[int, float, float] | None:
        """A token that changes when a run is added, deleted or written (``Store.runs_version``);
        None when there is no store."""
        store = self._open()
        return None if store is None else store.runs_version()

    def query_runs(self, query: Query | None = None, *, order: str = "-start", limit: int | None = None,
                   offset: int = 0) -> list[RunRecord]:
        """The runs matching a parsed query (``tracking.query.parse_query``; None: every run),
        sorted by ``order`` (``-start``: newest first), ``limit`` of them from ``offset``."""
        store = self._open()
        if store is None:
            return []
        return store.query_runs(query, order=order, limit=limit, offset=offset, crash_after=self.crash_after)

    def query_run_ids(self, query: Query | None = None) -> list[str]:
        """The ids of the runs matching a parsed query (None: every run), newest first, without
        reading the runs (``query_runs`` reads them)."""
        store = self._open()
        return [] if store is None else store.query_run_ids(query, crash_after=self.crash_after)

    def count_runs(self, query: Query | None = None) -> int:
        """How many runs match ``query`` (None: every run; 0 when there is no store)."""
        store = self._open()
        return 0 if store is None else store.count_runs(query, crash_after=self.crash_after)

    def get_experiment(self, run_id: str) -> RunRecord:
        """One run by id (or unique id prefix, or unique run name); TrackingError if absent."""
        store, full_id = self._require(run_id)
        return store.get_run(full_id, crash_after=self.crash_after)

    def metric_keys(self, run_id: str) -> list[str]:
        store, full_id = self._require(run_id)
        return store.metric_keys(full_id)

    def get_metric_history(self, run_id: str, key: str, after_step: int | None = None) -> MetricHistory:
        """Every point of ``key`` as numpy arrays, or only the points at a step greater than
        ``after_step``; TrackingError if the run never logged ``key``."""
        store, full_id = self._require(run_id)
        if after_step is not None:
            after_step = _step_bound(after_step)
        history = store.metric_history(full_id, key, after_step)
        if not len(history) and key not in store.metric_keys(full_id):
            known = ", ".join(store.metric_keys(full_id)) or "none"
            raise TrackingError(f"run {full_id[:8]} has no metric {key!r} (metrics: {known})")
        return history

    def get_metric_histories(self, run_ids: Iterable[str], keys: Iterable[str] | None = None,
                             steps: tuple[int, int] | None = None, times: tuple[float, float] | None = None
                             ) -> dict[tuple[str, str], MetricHistory]:
        """The histories of ``keys`` (default: every key) of ``run_ids``, read in bulk:
        ``{(run_id, key): MetricHistory}`` keyed by the run ids as given. Pairs a run never
        logged are absent; an unknown run is a TrackingError. ``steps`` (low, high) keeps only
        the points at steps from low to high, and reads only the chunks holding them; ``times``
        (low, high: seconds since the epoch) the same for the points' times."""
        for name, given in (("run_ids", run_ids), ("keys", keys)):
            if isinstance(given, (str, bytes)):
                raise TrackingError(f"get_metric_histories: {name} must be a list, got the string {given!r}")
        refs = list(run_ids)
        if not refs:
            return {}
        store = self._existing(refs[0])
        refs_of: dict[str, list[str]] = {}
        for ref, full_id in store.resolve_run_ids(refs).items():
            refs_of.setdefault(full_id, []).append(ref)
        read = store.metric_histories(list(refs_of), None if keys is None else list(keys), steps, times)
        return {(ref, key): history for (full_id, key), history in read.items()
                for ref in refs_of[full_id]}

    def list_artifact_versions(self, run_id: str, name: str | None = None) -> list[ArtifactVersion]:
        store, full_id = self._require(run_id)
        return store.artifact_versions(full_id, name)

    def get_artifact_version(self, run_id: str, name: str, ref: int | str = -1, *,
                             verify: bool = True, version: int | str | None = None
                             ) -> ArtifactVersion:
        """A version by number, negative index or alias (``ref`` or ``version=``), checksum
        verified (the version replacing it, when ``version=False`` replaced it meanwhile)."""
        ref = artifact_ref(ref, version)
        store, full_id = self._require(run_id)
        if not verify:
            return store.find_artifact_version(full_id, name, ref)
        return store.read_artifact_version(full_id, name, ref, store.objects.verify_version)[0]

    def read_artifact_version(self, run_id: str, name: str, ref: int | str,
                              read: Callable[[ArtifactVersion], T]) -> tuple[ArtifactVersion, T]:
        """A version and ``read(version)`` on its object (``Store.read_artifact_version``:
        the replacing version when ``version=False`` freed the object meanwhile)."""
        store, full_id = self._require(run_id)
        return store.read_artifact_version(full_id, name, ref, read)

    # ---- sweeps -----------------------------------------------------------------------
    def list_sweeps(self, experiment: str | None = None) -> list[SweepRecord]:
        """Sweeps, newest first, with their trials (none when there is no store)."""
        store = self._open()
        return [] if store is None else store.list_sweeps(experiment, crash_after=self.crash_after)

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        """One sweep by id, unique id prefix or unique name; TrackingError if absent."""
        store = self._existing(sweep_id, "sweep")
        return store.get_sweep(store.resolve_sweep_id(sweep_id), crash_after=self.crash_after)

    # ---- comparing --------------------------------------------------------------------
    # ---- models -----------------------------------------------------------------------
    def get_run_model(self, run_id: str) -> RunModel | None:
        """The recorded model of a run (id, prefix or name), or None when it recorded none
        (a run not started by a compiled program)."""
        store, full_id = self._require(run_id)
        return store.run_models([full_id]).get(full_id)

    def run_models(self, run_ids: Iterable[str]) -> dict[str, RunModel]:
        """The recorded models of runs given by full id, by run id (runs without one left out)."""
        store = self._open()
        return {} if store is None else store.run_models(list(run_ids))

    def model_facts(self, run_ids: Iterable[str] | None = None) -> dict[str, ModelFacts]:
        """The size and fingerprint of the recorded models of runs given by full id (of every
        run when None), by run id, without their specs."""
        store = self._open()
        return {} if store is None else store.model_facts(None if run_ids is None else list(run_ids))

    def fingerprint_twins(self, run_ids: Iterable[str]) -> dict[str, str]:
        """For each run (full ids) whose fingerprint another run shares: the oldest such run."""
        store = self._open()
        return {} if store is None else store.fingerprint_twins(list(run_ids))

    def completed_run_with_fingerprint(self, fingerprint: str) -> str | None:
        """The oldest completed run recorded with ``fingerprint``, or None."""
        store = self._open()
        found = [] if store is None else store.runs_with_fingerprint(fingerprint, status="completed")
        return found[0] if found else None

    def _gather(self, run_ids: Iterable[str], metrics: Iterable[str] | None
                ) -> tuple[list[RunRecord], comparison.Histories, list[str]]:
        """The runs (each once, in the order given), their histories, and the metrics."""
        for name, what, given in (("run_ids", "run ids", run_ids), ("metrics", "names", metrics)):
            if isinstance(given, (str, bytes)):
                raise TrackingError(f"{name} must be a list of {what}, got the string {given!r}")
        records = list({r.run_id: r for r in map(self.get_experiment, run_ids)}.values())
        if not records:
            raise TrackingError("name at least one run to compare")
        store = self._open()
        assert store is not None
        if metrics is None:
            metrics = sorted({key for r in records for key in r.metrics})
        else:
            metrics = list(dict.fromkeys(metrics))
            unknown = [m for m in metrics if not any(m in r.metrics for r in records)]
            if unknown:
                raise TrackingError(f"no run among those compared has metric(s) {', '.join(unknown)}")
        read = store.metric_histories([r.run_id for r in records], metrics)
        histories = {r.run_id: {key: read[(r.run_id, key)] for key in metrics if (r.run_id, key) in read}
                     for r in records}
        return records, histories, list(metrics)

    def compare_experiments(self, run_ids: list[str], metrics: list[str] | None = None,
                            out_dir: str | Path | None = None, *,
                            group: comparison.GroupOptions | None = None) -> FigureMap:
        """A figure per metric with one line per run (with ``group``, a line and band per group
        of runs), keyed by metric (and found under ``comparison_<metric>`` too, as the original
        API keyed them); PNGs saved to ``out_dir`` (default: ``<store>/comparisons/<run ids>/``)."""
        from neural_dsl_tracking.tracking import comparison

        if out_dir is not None:
            comparison.check_out_dir(Path(out_dir))
        records, histories, metrics = self._gather(run_ids, metrics)
        if group is not None:
            group = group.checked(records, metrics)
        figures = (comparison.comparison_figures(records, histories, metrics) if group is None
                   else comparison.group_figures(records, histories, metrics, group))
        comparison.save_figures(figures, Path(out_dir or self.comparison_dir(records)))
        return FigureMap(figures, {f"comparison_{key}": key for key in figures})

    def comparison_dir(self, records: list[RunRecord]) -> Path:
        """Where ``compare_experiments`` saves PNGs by default: ``<id8>_<id8>...``, or for
        more than 8 runs ``<three id8s>_and_<n>_more-<hash of all ids>`` (names stay short)."""
        ids = [r.run_id[:8] for r in records]
        name = "_".join(ids)
        if len(ids) > _NAMED_RUNS:
            digest = hashlib.sha256(" ".join(r.run_id for r in records).encode()).hexdigest()[:8]
            name = f"{'_'.join(ids[:3])}_and_{len(ids) - 3}_more-{digest}"
        return self.files_dir / "comparisons" / name

    def export_comparison(self, run_ids: list[str], out_dir: str | Path | None = None,
                          metrics: list[str] | None = None, *, overwrite: bool = False,
                          output_dir: str | Path | None = None,
                          group: comparison.GroupOptions | None = None) -> Path:
        """A folder with metrics.csv, summary.json, PNG plots and a self-contained report.html;
        returns it. ``out_dir`` (or ``output_dir=``, the original API's keyword) must be new or
        empty; ``overwrite`` replaces a previous export's files there. Without one, a new
        folder ``<store>/comparisons/<run ids>-export-<UTC time>`` is made. With ``group``, the
        export also holds groups.csv, the table of its runs grouped (``comparison.GroupOptions``)."""
        from neural_dsl_tracking.tracking import comparison

        if out_dir is not None and output_dir is not None:
            raise TrackingError("give the folder as out_dir or as output_dir, not both")
        chosen = out_dir if out_dir is not None else output_dir
        if chosen is not None:
            comparison.check_out_dir(Path(chosen), empty=not overwrite)
        records, histories, metrics = self._gather(run_ids, metrics)
        if group is not None:
            group = group.checked(records, metrics)
        target = Path(chosen) if chosen is not None else self._new_export_dir(records)
        if overwrite and target.is_dir():
            comparison.remove_export(target)
        return comparison.export(records, histories, metrics, target, group)

    def _new_export_dir(self, records: list[RunRecord]) -> Path:
        """A folder that does not exist yet beside ``comparison_dir(records)``, named by the time."""
        base = self.comparison_dir(records)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        names = (f"{base.name}-export-{stamp}" + (f"-{n}" if n > 1 else "")
                 for n in itertools.count(1))
        return next(path for path in map(base.with_name, names) if not path.exists())

    # ---- deleting ---------------------------------------------------------------------
    def delete_experiment(self, run_id: str) -> int:
        """Delete a run, its plots, and artifact objects no other run uses; returns bytes freed."""
        store, full_id = self._require(run_id)
        return store.delete_run(full_id)


def _step_bound(step: object) -> int:
    """``after_step`` as an int, or a TrackingError naming the bad value."""
    try:
        return to_step(step)
    except TypeError as error:
        raise TrackingError(f"after_step: {error}") from None
