"""Neural DSL with declared experiment tracking.

The heavy parts (tracker, dashboard) are imported lazily so that ``neural check``
and ``neural compile`` start fast.
"""

from __future__ import annotations

from neural_dsl_tracking.lazy import lazy_exports

__version__ = "0.1.0"

__getattr__, __all__ = lazy_exports(__name__, {
    "ExperimentTracker": "neural_dsl_tracking.tracking",
    "ExperimentManager": "neural_dsl_tracking.tracking",
    "ArtifactVersion": "neural_dsl_tracking.tracking",
    "MetricVisualizer": "neural_dsl_tracking.tracking",
    "ExperimentComparisonUI": "neural_dsl_tracking.dashboard",
    "launch_comparison_ui": "neural_dsl_tracking.dashboard",
    "parse_file": "neural_dsl_tracking.language",
    "parse_text": "neural_dsl_tracking.language",
})
