"""Neural DSL with declared experiment tracking.

The heavy parts (tracker, dashboard) are imported lazily so that ``neural check``
and ``neural compile`` start fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ExperimentTracker": "neural_dsl_tracking.tracking",
    "ExperimentManager": "neural_dsl_tracking.tracking",
    "ArtifactVersion": "neural_dsl_tracking.tracking",
    "launch_comparison_ui": "neural_dsl_tracking.dashboard",
    "parse_file": "neural_dsl_tracking.language",
    "parse_text": "neural_dsl_tracking.language",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'neural_dsl_tracking' has no attribute {name!r}")
    return getattr(import_module(module), name)
