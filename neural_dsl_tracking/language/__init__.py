"""The language front end: `.neural` text -> validated specs (``NeuralFile``).

``parse_text`` and ``parse_file`` are the whole public API; ``spec`` holds the models.
"""

from __future__ import annotations

from neural_dsl_tracking.language.parser import parse_file, parse_text
from neural_dsl_tracking.language.spec import (
    ChoiceHPO,
    LayerSpec,
    LogRangeHPO,
    ModelSpec,
    NeuralFile,
    OptimizerSpec,
    RangeHPO,
    ScheduleSpec,
)

__all__ = [
    "ChoiceHPO",
    "LayerSpec",
    "LogRangeHPO",
    "ModelSpec",
    "NeuralFile",
    "OptimizerSpec",
    "RangeHPO",
    "ScheduleSpec",
    "parse_file",
    "parse_text",
]
