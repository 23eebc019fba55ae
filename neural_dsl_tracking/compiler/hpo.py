"""HPO expressions at compile time: the default a program runs with, and the search space.

``HPO(choice(a, b))`` defaults to ``a``, ``HPO(range(start, stop, step))`` to ``start``,
``HPO(log_range(low, high))`` to the geometric middle ``sqrt(low * high)``, rounded when both
bounds are whole numbers (the search then draws integers: ``Dense(HPO(log_range(8, 64)))``). The space
goes into the generated config under ``hpo:`` keyed by the setting's config path.
"""

from __future__ import annotations

import math
from typing import Any

from neural_dsl_tracking.language.spec import ChoiceHPO, LogRangeHPO, RangeHPO

HPO_TYPES = (ChoiceHPO, RangeHPO, LogRangeHPO)


def is_hpo(value: object) -> bool:
    return isinstance(value, HPO_TYPES)


def hpo_default(value: ChoiceHPO | RangeHPO | LogRangeHPO) -> Any:
    """The value a compiled program uses until a sweep picks another."""
    if isinstance(value, ChoiceHPO):
        return value.options[0]
    if isinstance(value, RangeHPO):
        return _tidy(value.start)
    middle = math.sqrt(value.low * value.high)
    if all(isinstance(_tidy(bound), int) for bound in (value.low, value.high)):
        return round(middle)
    return _tidy(middle)


def hpo_space(value: ChoiceHPO | RangeHPO | LogRangeHPO) -> dict[str, Any]:
    """The search space as plain config data, plus the matching Hydra sweep expression."""
    if isinstance(value, ChoiceHPO):
        options = [_tidy(option) for option in value.options]
        return {"type": "choice", "values": options,
                "sweep": "choice(" + ",".join(_sweep_value(o) for o in options) + ")"}
    if isinstance(value, RangeHPO):
        space = {"type": "range", "start": _tidy(value.start), "stop": _tidy(value.stop),
                 "step": None if value.step is None else _tidy(value.step)}
        step = value.step if value.step is not None else 1
        space["sweep"] = f"range({_tidy(value.start)!r},{_tidy(value.stop + step / 2)!r},{_tidy(step)!r})"
        return space
    return {"type": "log_range", "low": _tidy(value.low), "high": _tidy(value.high),
            "sweep": f"tag(log,interval({value.low!r},{value.high!r}))"}


def _sweep_value(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _tidy(number: Any) -> Any:
    """Integral floats become ints, others are rounded to 12 significant digits."""
    if isinstance(number, float):
        if number.is_integer():
            return int(number)
        return float(f"{number:.12g}")
    return number
