"""The tracking engine: ExperimentTracker writes runs, ExperimentManager reads and manages them."""

from neural_dsl_tracking.tracking.manager import ExperimentManager
from neural_dsl_tracking.tracking.records import ArtifactVersion, MetricHistory, RunRecord
from neural_dsl_tracking.tracking.tracker import ExperimentTracker

__all__ = ["ArtifactVersion", "ExperimentManager", "ExperimentTracker", "MetricHistory", "RunRecord"]
