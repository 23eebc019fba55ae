"""Weights & Biases mirror: one W&B run per tracked run (``offline`` mode works without network).

History rows carry our step in the ``step`` column (declared as every metric's x-axis with
``define_metric``) and the points' own time in ``_timestamp``; points at the same step go in
one row. W&B's own ``_step`` is our step too while steps go forward; a row whose step repeats
or goes back (epoch metrics next to batch metrics, a resumed run), which W&B would drop at
that ``_step``, goes at the next ``_step`` instead, so every point is kept. Artifacts become
``wandb.Artifact``s carrying our SHA-256 and version in their metadata and our aliases;
plots are logged as ``wandb.Image`` (Plotly HTML as ``wandb.Html``) under
``plots/<name>``. Files go under ``$WANDB_DIR/wandb/`` when ``WANDB_DIR`` is set, else
``<store_dir>/wandb/``, never the current directory. The SDK is imported in ``start``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from neural_dsl_tracking.backends.base import (
    ENDED_NORMALLY,
    ArtifactRef,
    MetricPoint,
    Mirror,
    safe_name,
)

STEP = "step"
MAX_TAG = 64
"""W&B refuses a run whose tags are longer (the whole ``wandb.init``)."""
MODEL_NAMES = ("model", "checkpoint")


def files_root(store_dir: str | Path) -> Path:
    """The folder whose ``wandb/`` a run's files go to: ``WANDB_DIR``, else the store's."""
    return Path(os.environ.get("WANDB_DIR") or store_dir).resolve()

class WandbMirror(Mirror):
    """Mirror to Weights & Biases."""

    name = "wandb"

    def start(self) -> None:
        import wandb

        settings = wandb.Settings(
            console="off",  # never wrap the training program's stdout/stderr
            x_disable_stats=True,  # no system-metrics sampling competing with training
            x_save_requirements=False,
            silent=True,
        )
        files_dir = files_root(self.run.store_dir)
        files_dir.mkdir(parents=True, exist_ok=True)
        self._wandb = wandb
        self._run = wandb.init(
            project=_clean(self.options.get("project") or self.run.experiment),
            entity=self.options.get("entity"),
            mode=self.options.get("mode"),
            dir=str(files_dir),
            id=_clean(self.run.run_id, allowed=r"\w\-"),
            name=self.run.run_name,
            tags=[tag for tag in self.run.tags if len(tag) <= MAX_TAG] or None,
            resume="allow",
            reinit="create_new",
            settings=settings,
        )
        self._run.define_metric(STEP)
        too_long = [tag for tag in self.run.tags if len(tag) > MAX_TAG]
        if too_long:  # e.g. an imported run's source:tensorboard:<folder path>
            self._run.summary["neural_long_tags"] = too_long
        self._defined: set[str] = set()
        self._last_step = 0
        self._next_step = 0  # W&B's own step (``_step``) of the next row

    @property
    def session_dir(self) -> Path:
        """The folder W&B writes this session of the run to (``offline-run-*`` offline)."""
        return Path(self._run.settings.sync_dir)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._run.config.update(dict(params), allow_val_change=True)

    def log_metrics(self, points: Sequence[MetricPoint]) -> None:
        row: dict[str, Any] = {}
        for key, step, value, time in sorted(points, key=itemgetter(1)):
            if key not in self._defined:
                self._run.define_metric(key, step_metric=STEP)
                self._defined.add(key)
            if row and (row[STEP] != step or key in row):
                self._log_row(row)
                row = {}
            if not row:
                row = {STEP: step, "_timestamp": time}
            row[key] = value
            row["_timestamp"] = max(row["_timestamp"], time)
        if row:
            self._log_row(row)
            self._last_step = max(self._last_step, row[STEP])

    def _log_row(self, row: dict[str, Any]) -> None:
        """One history row, at W&B's step ``_step`` = our step when that does not go back
        (as the run's own ``wandb.log(..., step=)`` would have put it), else at the next one."""
        if row[STEP] >= self._next_step:
            self._run.log(row, step=row[STEP], commit=True)
            self._next_step = row[STEP] + 1
        else:
            self._run.log(row)
            self._next_step += 1

    def log_artifact(self, artifact: ArtifactRef) -> None:
        kind = "model" if artifact.name.lower().startswith(MODEL_NAMES) else "artifact"
        entry = self._wandb.Artifact(
            _clean(artifact.name),
            type=kind,
            metadata={
                "sha256": artifact.sha256,
                "version": artifact.version,
                "neural_run_id": self.run.run_id,
            },
        )
        # Our objects never change, so W&B may reference the file instead of copying it.
        entry.add_file(str(artifact.path), name=safe_name(artifact.filename), policy="immutable")
        self._run.log_artifact(entry, aliases=list(artifact.aliases) or None)

    def log_figure(self, path: Path, name: str) -> None:
        if path.suffix.lower() in (".html", ".htm"):  # a Plotly figure
            media = self._wandb.Html(path.read_text(encoding="utf-8"))
        else:
            media = self._wandb.Image(str(path))
        self._run.log({f"plots/{name}": media, STEP: self._last_step})
        self._next_step += 1

    def finish(self, status: str, end_time: float | None = None) -> None:
        """W&B records the end itself; ``end_time`` is not kept."""
        self._run.summary["neural_status"] = status
        self._run.finish(exit_code=0 if status in ENDED_NORMALLY else 1)

    def is_permanent(self, error: BaseException) -> bool:
        usage_error = getattr(getattr(self, "_wandb", None), "errors", None)
        return super().is_permanent(error) or (
            usage_error is not None and isinstance(error, usage_error.UsageError)
        )


def _clean(text: str, allowed: str = r"\w.\-") -> str:
    """``text`` without the characters W&B rejects in project, run and artifact names."""
    return re.sub(rf"[^{allowed}]", "_", text)[:128] or "_"
