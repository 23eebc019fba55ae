"""The tracking plugin: ``tracking < ... >`` blocks, their spec, and the hooks that
inject an ExperimentTracker into generated training programs."""

from __future__ import annotations

from neural_dsl_tracking.plugins.base import Plugin
from neural_dsl_tracking.plugins.tracking.spec import TrackingSpec


def _complete(spec: TrackingSpec, network_name: str) -> TrackingSpec:
    """The experiment defaults to the network's name."""
    if spec.experiment is None:
        return spec.model_copy(update={"experiment": network_name})
    return spec


plugin = Plugin(
    keyword="tracking",
    grammar_file="tracking.lark",
    spec_model=TrackingSpec,
    hooks="neural_dsl_tracking.plugins.tracking.hooks:TrackingHooks",
    complete=_complete,
)

__all__ = ["TrackingSpec", "plugin"]
