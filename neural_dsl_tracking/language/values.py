"""Syntax values -> spec values (``ParamValue``): scalars, lists, HPO expressions, calls.

Also binds call arguments to parameter names (positional first, then named), which the
layer, optimizer, schedule and HPO readers share.
"""

from __future__ import annotations

import json
from typing import Callable, Iterable, Sequence

from neural_dsl_tracking.language.arithmetic import ArithmeticProblem, evaluate
from neural_dsl_tracking.language.diagnostics import DiagnosticSink, did_you_mean
from neural_dsl_tracking.language.spec import (
    CallValue,
    ChoiceHPO,
    LogRangeHPO,
    ParamValue,
    RangeHPO,
)
from neural_dsl_tracking.language.syntax import Argument, Call, Value

HPO_KINDS = ("choice", "range", "log_range")


def dsl_repr(value: ParamValue) -> str:
    """A value written back the way the DSL spells it (for messages)."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(dsl_repr(v) for v in value) + "]"
    if isinstance(value, ChoiceHPO):
        return "HPO(choice(" + ", ".join(dsl_repr(v) for v in value.options) + "))"
    if isinstance(value, RangeHPO):
        step = "" if value.step is None else f", step={value.step!r}"
        return f"HPO(range({value.start!r}, {value.stop!r}{step}))"
    if isinstance(value, LogRangeHPO):
        return f"HPO(log_range({value.low!r}, {value.high!r}))"
    if isinstance(value, CallValue):
        parts = [dsl_repr(v) for v in value.args]
        parts += [f"{k}={dsl_repr(v)}" for k, v in value.kwargs.items()]
        return f"{value.name}(" + ", ".join(parts) + ")"
    return repr(value)


def bind_arguments(
    arguments: Sequence[Argument],
    positional: Sequence[str],
    what: str,
    sink: DiagnosticSink,
    *,
    known: Iterable[str] | None = None,
    target: Callable[[str, Argument], str] | None = None,
) -> dict[str, Argument]:
    """Map arguments to parameter names. ``known`` limits the named ones (None: any);
    ``target(slot, argument)`` may send a positional argument to another parameter."""
    known_names = None if known is None else set(known) | set(positional)
    bound: dict[str, Argument] = {}
    seen_named = False
    index = 0
    for argument in arguments:
        if argument.name is None:
            if seen_named:
                sink.error(argument.pos, f"{what}: a positional argument cannot follow a named one")
                continue
            if index >= len(positional):
                if positional:
                    limit = f"at most {len(positional)} positional argument" + (
                        "s" if len(positional) > 1 else ""
                    ) + f" ({', '.join(positional)})"
                else:
                    limit = "no positional arguments"
                sink.error(argument.pos, f"{what} takes {limit}")
                continue
            name = positional[index] if target is None else target(positional[index], argument)
            index += 1
        else:
            seen_named = True
            name = argument.name
            if known_names is not None and name not in known_names:
                hint = did_you_mean(name, sorted(known_names))
                sink.error(argument.pos, f"{what} has no parameter '{name}'{hint}")
                continue
        if name in bound:
            sink.error(argument.pos, f"{what}: '{name}' is given twice")
            continue
        bound[name] = argument
    return bound


def _is_search_space(value: Value) -> bool:
    """Whether ``value`` is ``HPO(...)`` or one of its expressions (``range(...)``, ...)."""
    return value.kind == "call" and value.data.name in ("HPO", *HPO_KINDS)


class ValueReader:
    """Converts syntax values to spec values, reporting problems to ``sink``."""

    def __init__(self, sink: DiagnosticSink):
        self.sink = sink

    def number(self, value: Value) -> Value | None:
        """``value`` with its arithmetic done (a number Value), or None after reporting why
        it cannot be computed. Values without arithmetic are returned as they are."""
        if value.kind != "expr":
            return value
        try:
            result = evaluate(value)
        except ArithmeticProblem as problem:
            self.sink.error(problem.value.pos, str(problem))
            return None
        return Value("number", result, value.pos, repr(result))

    def param(self, value: Value) -> ParamValue:
        if value.kind == "expr":
            computed = self.number(value)
            return None if computed is None else computed.data
        kind = value.kind
        if kind in ("tuple", "list"):
            return [self._item(item) for item in value.data]
        if kind == "call":
            call: Call = value.data
            if call.name == "HPO":
                return self.hpo(value)
            return self.call(call)
        return value.data  # number (in range: see parser), string, name, bool, null

    def _item(self, value: Value) -> ParamValue:
        """An item of a tuple or list: any value but a search space (nothing searches it there)."""
        if value.kind == "call" and value.data.name == "HPO":
            self.sink.error(value.pos, "HPO(...) must be a setting's whole value, not an item of a tuple "
                                       "or list; search the whole value instead, "
                                       "e.g. HPO(choice((0.9, 0.999), (0.8, 0.99)))")
            return None
        return self.param(value)

    def call(self, call: Call) -> CallValue:
        args: list[ParamValue] = []
        kwargs: dict[str, ParamValue] = {}
        for argument in call.arguments:
            converted = self.param(argument.value)
            if argument.name is None:
                args.append(converted)
            elif argument.name in kwargs:
                self.sink.error(argument.pos, f"{call.name}: '{argument.name}' is given twice")
            else:
                kwargs[argument.name] = converted
        return CallValue(name=call.name, args=args, kwargs=kwargs)

    # ------------------------------------------------------------ HPO
    def hpo(self, value: Value) -> ParamValue:
        """``HPO(choice(...))``, ``HPO(range(a, b, step=s))``, ``HPO(log_range(a, b))``."""
        call: Call = value.data
        args = call.arguments
        if len(args) != 1 or args[0].name is not None or args[0].value.kind != "call":
            self.sink.error(
                value.pos, "HPO(...) takes one expression: choice(...), range(...) or log_range(...)"
            )
            return None
        return self._hpo_expression(args[0].value)

    def _hpo_expression(self, value: Value) -> ParamValue:
        call: Call = value.data
        if call.name == "choice":
            return self._choice(value)
        if call.name == "range":
            return self._range(value)
        if call.name == "log_range":
            return self._log_range(value)
        hint = did_you_mean(call.name, HPO_KINDS)
        self.sink.error(
            value.pos,
            f"unknown HPO expression '{call.name}'{hint} (known: choice, range, log_range)",
        )
        return None

    def _choice(self, value: Value) -> ParamValue:
        call: Call = value.data
        options: list[ParamValue] = []
        for argument in call.arguments:
            if argument.name is not None:
                self.sink.error(argument.pos, "choice(...) takes only the options, without names")
                continue
            option = argument.value
            if _is_search_space(option):
                self.sink.error(option.pos, "choice(...): an option cannot be a search space itself "
                                            "(nothing would search it); list the values instead, "
                                            "e.g. choice(128, 256, 384, 512)")
                return None
            options.append(self.param(option))
        if not call.arguments:
            self.sink.error(value.pos, "choice(...) needs at least one option")
        return ChoiceHPO(options=options)

    def _bounds(self, value: Value, names: Sequence[str], required: int) -> dict[str, float] | None:
        call: Call = value.data
        bound = bind_arguments(call.arguments, names, f"{call.name}(...)", self.sink, known=names)
        numbers: dict[str, float] = {}
        for name, argument in bound.items():
            item = self.number(argument.value)
            if item is None:
                return None
            if item.kind != "number":
                self.sink.error(item.pos, f"{call.name}(...): '{name}' must be a number")
                return None
            numbers[name] = self.param(item)
        missing = [n for n in names[:required] if n not in numbers]
        if missing:
            self.sink.error(value.pos, f"{call.name}(...) needs {' and '.join(missing)}")
            return None
        return numbers

    def _range(self, value: Value) -> ParamValue:
        numbers = self._bounds(value, ("start", "stop", "step"), 2)
        if numbers is None:
            return None
        if numbers["start"] >= numbers["stop"]:
            self.sink.error(value.pos, "range(...): start must be less than stop")
            return None
        step = numbers.get("step")
        if step is not None and step <= 0:
            self.sink.error(value.pos, "range(...): step must be positive")
            return None
        return RangeHPO(start=numbers["start"], stop=numbers["stop"], step=step)

    def _log_range(self, value: Value) -> ParamValue:
        numbers = self._bounds(value, ("low", "high"), 2)
        if numbers is None:
            return None
        if not 0 < numbers["low"] < numbers["high"]:
            self.sink.error(value.pos, "log_range(...): needs 0 < low < high")
            return None
        return LogRangeHPO(low=numbers["low"], high=numbers["high"])
