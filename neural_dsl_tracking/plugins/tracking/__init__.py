"""The tracking plugin: ``tracking < ... >`` blocks, their spec, and the hooks that
inject an ExperimentTracker into generated training programs."""

from __future__ import annotations

from typing import Any

from neural_dsl_tracking.plugins.base import Plugin
from neural_dsl_tracking.plugins.tracking.spec import TrackingSpec


def _complete(spec: TrackingSpec, network: Any) -> TrackingSpec:
    """The experiment defaults to the network's name."""
    if spec.experiment is None:
        return spec.model_copy(update={"experiment": network.name})
    return spec


plugin = Plugin(
    keyword="tracking",
    grammar_file="tracking.lark",
    spec_model=TrackingSpec,
    hooks="neural_dsl_tracking.plugins.tracking.hooks:TrackingHooks",
    complete=_complete,
    config_group="tracking",
    changes_results=False,
)

__all__ = ["TrackingSpec", "plugin"]
