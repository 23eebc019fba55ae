"""The tracking engine: ExperimentTracker writes runs, ExperimentManager reads and manages them.

Names load on first use, so ``neural_dsl_tracking.tracking.cli`` imports no numpy.
"""

from __future__ import annotations

from neural_dsl_tracking.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "ExperimentManager": "neural_dsl_tracking.tracking.manager",
    "ExperimentTracker": "neural_dsl_tracking.tracking.tracker",
    "ArtifactVersion": "neural_dsl_tracking.tracking.records",
    "MetricHistory": "neural_dsl_tracking.tracking.records",
    "MetricVisualizer": "neural_dsl_tracking.tracking.visualizer",
    "RunModel": "neural_dsl_tracking.tracking.records",
    "RunRecord": "neural_dsl_tracking.tracking.records",
    "SweepRecord": "neural_dsl_tracking.tracking.records",
    "TrialRecord": "neural_dsl_tracking.tracking.records",
    "metric_mode": "neural_dsl_tracking.tracking.values",
})
