"""Mirrors: copies of a tracked run in MLflow, Weights & Biases and TensorBoard.

The embedded store always records; the tracker feeds the mirrors from its flushed batches
through :func:`open_mirrors`. The mirrors work in a child process; SDKs are imported there,
only when a mirror starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from neural_dsl_tracking.backends.base import ArtifactRef, Mirror, OnFailure, RunInfo
from neural_dsl_tracking.backends.mirrorset import MirrorSet
from neural_dsl_tracking.backends.registry import MIRRORS, checked_options

__all__ = ["MIRRORS", "ArtifactRef", "Mirror", "MirrorSet", "RunInfo", "open_mirrors"]


def open_mirrors(
    names: Iterable[str],
    options: Mapping[str, Any] | None,
    run: RunInfo,
    on_failure: OnFailure,
) -> MirrorSet:
    """Start mirroring ``run`` to the mirrors in ``names`` (``"local"``, the store, is skipped).

    ``options`` maps a mirror name to its section (a dict, a pydantic model or None).
    Raises ConfigError for an unknown name or option key; every later problem (missing
    SDK, server down, the mirror process dying) goes to ``on_failure(backend, message)``,
    called from a background thread.
    """
    options = options or {}
    specs = [
        (name, run, checked_options(name, options.get(name)))
        for name in dict.fromkeys(names)
        if name != "local"
    ]
    return MirrorSet(specs, on_failure)
