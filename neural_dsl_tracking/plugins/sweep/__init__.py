"""The sweep plugin: ``sweep < ... >`` blocks, their spec, and the search they drive
over the network's ``HPO(...)`` spaces (``neural sweep``)."""

from __future__ import annotations

from typing import Any

from neural_dsl_tracking.plugins.base import Plugin, Problem, ProgramInfo
from neural_dsl_tracking.plugins.sweep.spec import SweepSpec, resolve_objective


def _complete(spec: SweepSpec, network: Any) -> SweepSpec:
    """Objective, direction and sampler defaults from the network's other settings (the
    tracking block's ``mode`` only when it is written: its default ``min`` says nothing)."""
    tracking = network.plugins.get("tracking")
    return resolve_objective(
        spec,
        monitor=getattr(tracking, "monitor", None),
        mode=tracking.mode if tracking is not None and "mode" in tracking.model_fields_set else None,
        search_method=network.train.search_method,
    )


def _check(spec: SweepSpec, network: Any, program: ProgramInfo) -> list[Problem]:
    """The block's mistakes found before the first trial (see ``checks``; imported only here,
    so loading the plugin stays light for the programs it is discovered in)."""
    from neural_dsl_tracking.plugins.sweep.checks import check_sweep

    return check_sweep(spec, network, program)


plugin = Plugin(
    keyword="sweep",
    grammar_file="sweep.lark",
    spec_model=SweepSpec,
    hooks="neural_dsl_tracking.plugins.sweep.hooks:SweepHooks",
    complete=_complete,
    config_group="sweep",
    changes_results=False,
    check=_check,
)

__all__ = ["SweepSpec", "plugin"]
