"""The sweep plugin: ``sweep < ... >`` blocks, their spec, and the search they drive
over the network's ``HPO(...)`` spaces (``neural sweep``)."""

from __future__ import annotations

from typing import Any

from neural_dsl_tracking.plugins.base import Plugin
from neural_dsl_tracking.plugins.sweep.spec import SweepSpec, resolve_objective


def _complete(spec: SweepSpec, network: Any) -> SweepSpec:
    """Objective, direction and sampler defaults from the network's other settings."""
    tracking = network.plugins.get("tracking")
    return resolve_objective(
        spec,
        monitor=getattr(tracking, "monitor", None),
        mode=getattr(tracking, "mode", None),
        search_method=network.train.search_method,
    )


plugin = Plugin(
    keyword="sweep",
    grammar_file="sweep.lark",
    spec_model=SweepSpec,
    hooks="neural_dsl_tracking.plugins.sweep.hooks:SweepHooks",
    complete=_complete,
    config_group="sweep",
)

__all__ = ["SweepSpec", "plugin"]
