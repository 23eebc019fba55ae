"""The generated config's ``hpo.space`` as Optuna distributions, and a trial's values as
Hydra overrides.

The compiler writes each ``HPO(...)`` expression under ``hpo.space`` keyed by the config
path of the setting it drives (``model.dense_1.units``, ``optimizer.lr``,
``train.batch_size``, ``schedule.decay_rate``...), macros already expanded. Each becomes
one Optuna distribution named by that path:

- ``choice(a, b, ...)``: categorical; an option Optuna cannot hold (a list, such as a
  kernel size ``(3, 3)``) is kept as its JSON text and decoded for the config;
- ``range(start, stop, step=s)``: integers (all three integers) or floats with that step,
  ``stop`` included when on the step grid; without a step, every integer (both bounds
  integers) or any float in between;
- ``log_range(low, high)``: log-uniform, integers when both bounds are integers.

Repeat counts (``Dense(64) * HPO(choice(2, 4))``, keyed ``repeat.<file:line:col>``) change
the network itself, so they are not searched (the program keeps its default count).
"""

from __future__ import annotations

import json
from typing import Any

from neural_dsl_tracking.errors import ConfigError

REPEAT_PREFIX = "repeat."
_PLAIN = (bool, int, float, str, type(None))


def searched(space: dict[str, dict[str, Any]], fixed: set[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """The entries a sweep searches: not repeat counts, not settings the user fixed by an override."""
    return {path: entry for path, entry in space.items()
            if not path.startswith(REPEAT_PREFIX) and path not in fixed}


def distributions(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{config path: optuna distribution}`` for every entry of ``space``."""
    return {path: distribution(path, entry) for path, entry in space.items()}


def distribution(path: str, entry: dict[str, Any]) -> Any:
    """One ``hpo.space`` entry as an Optuna distribution; a ConfigError for one it cannot be."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind = entry.get("type")
    try:
        if kind == "choice":
            return CategoricalDistribution([_encode(option) for option in entry["values"]])
        if kind == "range":
            start, stop, step = entry["start"], entry["stop"], entry.get("step")
            if _all_ints(start, stop, 1 if step is None else step):
                return IntDistribution(start, _on_grid(start, stop, step or 1), step=step or 1)
            if step is None:
                return FloatDistribution(float(start), float(stop))
            return FloatDistribution(float(start), float(_on_grid(start, stop, step)), step=float(step))
        if kind == "log_range":
            low, high = entry["low"], entry["high"]
            if _all_ints(low, high):
                return IntDistribution(low, high, log=True)
            return FloatDistribution(float(low), float(high), log=True)
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"hpo.space.{path}: cannot be searched: {error}") from None
    raise ConfigError(f"hpo.space.{path}: unknown kind of search space {kind!r} "
                      "(choice, range or log_range)")


def grid(space: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    """Every value of each entry, for the grid sampler; a ConfigError names a continuous one."""
    values: dict[str, list[Any]] = {}
    for path, dist in distributions(space).items():
        if hasattr(dist, "choices"):
            values[path] = list(dist.choices)
        elif dist.step is not None and not getattr(dist, "log", False):
            count = int(round((dist.high - dist.low) / dist.step)) + 1
            values[path] = [_tidy(dist.low + index * dist.step) for index in range(count)]
        else:
            raise ConfigError(f"hpo.space.{path}: the grid sampler needs a finite set of values; "
                              "give the range a step (range(a, b, step=s)) or use choice(...)")
    return values


def grid_size(values: dict[str, list[Any]]) -> int:
    """How many points the grid has."""
    size = 1
    for options in values.values():
        size *= len(options)
    return size


def config_values(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's Optuna params as config values: JSON-encoded choices decoded, floats tidied
    (Optuna's ``low + k * step`` gives 0.30000000000000004 for 0.3 on a 0.1 grid)."""
    return {path: _tidy(_decode(value)) for path, value in params.items()}


def overrides(values: dict[str, Any]) -> list[str]:
    """``key=value`` Hydra overrides setting each config path to its value."""
    return [f"{path}={override_value(value)}" for path, value in values.items()]


def override_value(value: Any) -> str:
    """A value in Hydra's override grammar (strings quoted, lists bracketed)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    raise ConfigError(f"a searched value {value!r} cannot be given to the program")


_JSON_MARK = "json:"


def _encode(option: Any) -> Any:
    """A choice option Optuna can hold: plain values as they are, others as marked JSON."""
    if isinstance(option, _PLAIN) and not (isinstance(option, str) and option.startswith(_JSON_MARK)):
        return option
    return _JSON_MARK + json.dumps(option)


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_JSON_MARK):
        return json.loads(value[len(_JSON_MARK):])
    return value


def _all_ints(*numbers: Any) -> bool:
    return all(isinstance(n, int) and not isinstance(n, bool) for n in numbers)


def _on_grid(start: float, stop: float, step: float) -> float:
    """The last value ``start + k * step`` not beyond ``stop`` (Optuna wants the range on its grid)."""
    count = int((stop - start) / step + 1e-9)
    return _tidy(start + count * step)


def _tidy(number: Any) -> Any:
    """Floats rounded to 12 significant digits (``0.1 + 2 * 0.1`` is 0.3), ints as they are."""
    return float(f"{number:.12g}") if isinstance(number, float) else number
