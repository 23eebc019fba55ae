"""The mirrors by name, their option keys, and how to build one."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

from neural_dsl_tracking.backends.base import Mirror, RunInfo
from neural_dsl_tracking.errors import ConfigError

MIRRORS = {
    "mlflow": (
        "neural_dsl_tracking.backends.mlflow", "MlflowMirror", ("tracking_uri", "experiment")
    ),
    "wandb": ("neural_dsl_tracking.backends.wandb", "WandbMirror", ("project", "entity", "mode")),
    "tensorboard": ("neural_dsl_tracking.backends.tensorboard", "TensorboardMirror", ("log_dir",)),
}
"""Mirror name -> (module, class, option keys). The SDK itself is imported when it starts."""


def checked_options(name: str, section: Any) -> dict[str, Any]:
    """``section`` (a dict, a pydantic model or None) as a dict of the set options;
    ConfigError for an unknown mirror or option."""
    if name not in MIRRORS:
        known = ", ".join(["local", *MIRRORS])
        raise ConfigError(f"unknown tracking backend {name!r}; expected one of: {known}")
    if section is None:
        return {}
    if hasattr(section, "model_dump"):
        section = section.model_dump()
    options = {key: value for key, value in dict(section).items() if value is not None}
    keys = MIRRORS[name][2]
    unknown = sorted(set(options) - set(keys))
    if unknown:
        raise ConfigError(
            f"unknown {name} option(s) {', '.join(unknown)}; expected: {', '.join(keys)}"
        )
    return options


def create_mirror(name: str, run: RunInfo, options: Mapping[str, Any]) -> Mirror:
    module, cls, _keys = MIRRORS[name]
    return getattr(import_module(module), cls)(run, options)
