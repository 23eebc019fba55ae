"""The language front end: `.neural` text -> validated specs (``NeuralFile``).

``parse_text`` and ``parse_file`` are the public API; ``spec`` holds the models. The
names are loaded on first use, so importing ``neural_dsl_tracking.language.cli`` (for
``neural --help``) does not build the parser or import pydantic.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "parse_text": "neural_dsl_tracking.language.parser",
    "parse_file": "neural_dsl_tracking.language.parser",
    "NeuralFile": "neural_dsl_tracking.language.spec",
    "ModelSpec": "neural_dsl_tracking.language.spec",
    "LayerSpec": "neural_dsl_tracking.language.spec",
    "OptimizerSpec": "neural_dsl_tracking.language.spec",
    "ScheduleSpec": "neural_dsl_tracking.language.spec",
    "ChoiceHPO": "neural_dsl_tracking.language.spec",
    "RangeHPO": "neural_dsl_tracking.language.spec",
    "LogRangeHPO": "neural_dsl_tracking.language.spec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'neural_dsl_tracking.language' has no attribute {name!r}")
    return getattr(import_module(module), name)
