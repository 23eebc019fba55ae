"""Mirrors: copies of a tracked run in MLflow, Weights & Biases and TensorBoard.

The embedded store always records; the tracker feeds the mirrors from its flushed batches
through :func:`open_mirrors`. SDKs are imported only when a mirror starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import import_module
from typing import Any

from neural_dsl_tracking.backends.base import ArtifactRef, Mirror, RunInfo
from neural_dsl_tracking.backends.mirrorset import MirrorSet, OnFailure
from neural_dsl_tracking.errors import ConfigError

MIRRORS = {
    "mlflow": ("neural_dsl_tracking.backends.mlflow", "MlflowMirror", ("tracking_uri", "experiment")),
    "wandb": ("neural_dsl_tracking.backends.wandb", "WandbMirror", ("project", "entity", "mode")),
    "tensorboard": ("neural_dsl_tracking.backends.tensorboard", "TensorboardMirror", ("log_dir",)),
}
"""Mirror name -> (module, class, option keys)."""

__all__ = ["MIRRORS", "ArtifactRef", "Mirror", "MirrorSet", "RunInfo", "open_mirrors"]


def open_mirrors(
    names: Iterable[str],
    options: Mapping[str, Any] | None,
    run: RunInfo,
    on_failure: OnFailure,
) -> MirrorSet:
    """Start a worker per mirror named in ``names`` (``"local"`` is the store: skipped).

    ``options`` maps a mirror name to its section (a dict, a pydantic model or None).
    Raises ConfigError for an unknown name or option key; every later problem (missing
    SDK, server down) is reported through ``on_failure`` instead.
    """
    options = options or {}
    mirrors = []
    for name in dict.fromkeys(names):
        if name == "local":
            continue
        if name not in MIRRORS:
            known = ", ".join(["local", *MIRRORS])
            raise ConfigError(f"unknown tracking backend {name!r}; expected one of: {known}")
        module, cls, keys = MIRRORS[name]
        section = _as_dict(options.get(name))
        unknown = sorted(set(section) - set(keys))
        if unknown:
            raise ConfigError(
                f"unknown {name} option(s) {', '.join(unknown)}; expected: {', '.join(keys)}"
            )
        mirrors.append(getattr(import_module(module), cls)(run, section))
    return MirrorSet(mirrors, on_failure)


def _as_dict(section: Any) -> dict[str, Any]:
    if section is None:
        return {}
    if hasattr(section, "model_dump"):
        section = section.model_dump()
    return {key: value for key, value in dict(section).items() if value is not None}
