"""The language front end: `.neural` text -> validated specs (``NeuralFile``).

``parse_text`` and ``parse_file`` are the public API; ``spec`` holds the models. The
names are loaded on first use, so importing ``neural_dsl_tracking.language.cli`` (for
``neural --help``) does not build the parser or import pydantic.
"""

from __future__ import annotations

from neural_dsl_tracking.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
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
})
