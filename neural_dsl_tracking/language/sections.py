"""Readers for the non-layer sections of a network: input, loss, optimizer (with its
learning-rate schedule), metrics, ``train { }`` and ``execute``/``execution { }``."""

from __future__ import annotations

import re
from typing import Callable

from neural_dsl_tracking import limits
from neural_dsl_tracking.language.diagnostics import DiagnosticSink, Pos, did_you_mean
from neural_dsl_tracking.language.layers import check_param
from neural_dsl_tracking.language.spec import (
    ChoiceHPO,
    ExecutionSpec,
    InputSpec,
    LogRangeHPO,
    OptimizerSpec,
    ParamValue,
    RangeHPO,
    ScheduleSpec,
    SourcePos,
    TrainSpec,
)
from neural_dsl_tracking.language.syntax import MAX_INT, Block, Call, NamedShape, Value
from neural_dsl_tracking.language.values import ValueReader, bind_arguments, dsl_repr

OPTIMIZERS = (
    "Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "NAdam",
    "RAdam", "Ftrl", "Lion",
)
SCHEDULES = ("ExponentialDecay",)
TRAIN_KEYS = ("epochs", "batch_size", "validation_split", "search_method")
OPTIMIZER_ARGUMENT_KINDS = {
    "learning_rate": "positive_number", "lr": "positive_number",
    "momentum": "non_negative_number", "weight_decay": "non_negative_number",
    "epsilon": "non_negative_number", "eps": "non_negative_number",
    "initial_accumulator_value": "non_negative_number", "alpha": "non_negative_number",
    "rho": "unit_interval", "beta_1": "fraction", "beta_2": "fraction",
    "nesterov": "bool", "amsgrad": "bool", "centered": "bool",
}
"""What each optimizer argument takes (PyTorch's own limits), checked for a value and for
every point of an HPO space alike; other arguments are left to the compiler."""
DEVICE_RE = re.compile(r"(auto|cpu|gpu|mps|tpu(:\d+)?|cuda(:\d+)?)\Z")
DEVICES = ("auto", "cpu", "gpu", "cuda", "cuda:0", "mps", "tpu", "tpu:0")
INTEGER_KINDS = ("positive_int", "size", "shape")
"""Kinds whose integral floats (``64.0``, ``1e3``) are read as integers."""

OptimizerParser = Callable[[Value], Value]
"""Parses the content of a quoted optimizer (``"Adam(learning_rate=1e-4)"``)."""


def source_pos(pos: Pos) -> SourcePos:
    return SourcePos(line=pos.line, column=pos.column)


class SectionReader:
    """Turns network sections into spec parts, reporting problems to ``sink``."""

    def __init__(self, sink: DiagnosticSink, parse_optimizer: OptimizerParser):
        self.sink = sink
        self.values = ValueReader(sink)
        self._parse_optimizer = parse_optimizer

    def checked_value(self, item: Value, kind: str | None, what: str,
                      bound: limits.IntBound | None = None) -> ParamValue:
        """Convert ``item`` and check it against ``kind`` and ``bound`` (unless converting failed)."""
        before = self.sink.count
        value = self.values.param(item)
        if kind in INTEGER_KINDS:
            value = integral(value)
        problem = check_param(kind, value) if self.sink.count == before else None
        if problem is None and bound is not None and self.sink.count == before:
            problem = next(filter(None, map(bound.problem, _numbers(value))), None)
        if problem is not None:
            self.sink.error(item.pos, f"{what} must be {problem}, got {dsl_repr(value)}")
        return value

    # ------------------------------------------------------------ input
    def input(self, payload: list[Value] | list[NamedShape], pos: Pos) -> InputSpec:
        """``(28, 28, 1)``, or named inputs ``{ image: (64, 64, 3), text: (100,) }``."""
        if payload and isinstance(payload[0], NamedShape):
            named: dict[str, list[int | None]] = {}
            for item in payload:
                if item.name in named:
                    self.sink.error(item.pos, f"input '{item.name}' is given twice")
                named.setdefault(item.name, self._shape(item.dims))
            first = next(iter(named.values()))
            return InputSpec(shape=first, named=named, pos=source_pos(pos))
        return InputSpec(shape=self._shape(payload), pos=source_pos(pos))

    def _shape(self, dims: list[Value]) -> list[int | None]:
        shape: list[int | None] = []
        for dim in dims:
            if dim.kind == "null":
                shape.append(None)
            elif dim.kind == "number" and isinstance(dim.data, int) and dim.data >= 1:
                shape.append(dim.data)
            else:
                self.sink.error(
                    dim.pos, f"an input dimension must be a positive integer or None, got {dim.text}"
                )
        return shape

    # ------------------------------------------------------------ loss, metrics
    def word(self, value: Value, what: str) -> str:
        if value.kind in ("string", "name"):
            return value.data
        self.sink.error(value.pos, f"{what} must be a name or a quoted string")
        return ""

    def metrics(self, values: list[Value]) -> list[str]:
        return [self.word(v, "a metric") for v in values]

    # ------------------------------------------------------------ optimizer
    def optimizer(self, value: Value) -> OptimizerSpec | None:
        """``Adam``, ``"adam"``, ``"Adam(learning_rate=1e-4)"``, ``SGD(learning_rate=...)``."""
        if value.kind == "string" and "(" in value.data:
            value = self._parse_optimizer(value)
        if value.kind in ("string", "name"):
            self._check_optimizer_name(value.data, value.pos)
            return OptimizerSpec(type=value.data, pos=source_pos(value.pos))
        call: Call = value.data
        self._check_optimizer_name(call.name, value.pos)
        bound = bind_arguments(call.arguments, ("learning_rate",), call.name, self.sink)
        params: dict[str, ParamValue] = {}
        schedule = None
        for name, argument in bound.items():
            item = argument.value
            if name == "learning_rate" and item.kind == "call" and item.data.name != "HPO":
                schedule = self._schedule(item)
                params[name] = schedule.initial_learning_rate if schedule else None
                continue
            params[name] = self.checked_value(item, OPTIMIZER_ARGUMENT_KINDS.get(name), name)
        return OptimizerSpec(type=call.name, params=params, schedule=schedule, pos=source_pos(value.pos))

    def _check_optimizer_name(self, name: str, pos: Pos) -> None:
        if name.lower() not in {o.lower() for o in OPTIMIZERS}:
            hint = did_you_mean(name, OPTIMIZERS)
            self.sink.error(pos, f"unknown optimizer '{name}'{hint} (known: {', '.join(OPTIMIZERS)})")

    def _schedule(self, value: Value) -> ScheduleSpec | None:
        call: Call = value.data
        if call.name not in SCHEDULES:
            hint = did_you_mean(call.name, SCHEDULES)
            self.sink.error(
                value.pos,
                f"unknown learning-rate schedule '{call.name}'{hint} "
                f"(known: {', '.join(SCHEDULES)})",
            )
            return None
        before = self.sink.count
        names = ("initial_learning_rate", "decay_steps", "decay_rate", "staircase")
        bound = bind_arguments(call.arguments, names, call.name, self.sink, known=names)
        kinds = ("positive_number", "positive_int", "positive_number", "bool")
        params: dict[str, ParamValue] = {}
        for name, kind in zip(names, kinds):
            if name not in bound:
                if name != "staircase":
                    self.sink.error(value.pos, f"{call.name} needs '{name}'")
                continue
            item = bound[name].value
            params[name] = self.checked_value(item, kind, f"{call.name}: '{name}'")
        if self.sink.count > before:
            return None
        return ScheduleSpec(type=call.name, **params)

    # ------------------------------------------------------------ train, execution
    def train(self, block: Block) -> TrainSpec:
        kinds = {"epochs": "positive_int", "batch_size": "positive_int",
                 "validation_split": "fraction"}
        known: dict[str, ParamValue] = {}
        extra: dict[str, ParamValue] = {}
        for name, item in self._settings(block, "train setting").items():
            if name in kinds:
                known[name] = self.checked_value(item, kinds[name], name, limits.TRAIN.get(name))
            elif name == "search_method":
                known[name] = self.word(item, "search_method") or None
            else:
                self._check_close_to(name, TRAIN_KEYS, item.pos, "train setting")
                extra[name] = self.values.param(item)
        return TrainSpec(**known, extra=extra)

    def execution(self, block: Block) -> ExecutionSpec:
        device = "auto"
        extra: dict[str, ParamValue] = {}
        for name, item in self._settings(block, f"{block.keyword} setting").items():
            if name == "device":
                device = self.device(item.data if item.kind in ("string", "name") else item.text,
                                     item.pos) or device
            elif name in limits.EXECUTION:
                extra[name] = self.checked_value(item, "positive_int", name, limits.EXECUTION[name])
            else:
                self._check_close_to(name, ("device", *limits.EXECUTION), item.pos, f"{block.keyword} setting")
                extra[name] = self.values.param(item)
        return ExecutionSpec(device=device, extra=extra)

    def device(self, value: str, pos: Pos) -> str | None:
        """A device name: auto, cpu, gpu, cuda, cuda:N, mps, tpu or tpu:N."""
        if DEVICE_RE.match(value):
            return value
        hint = did_you_mean(value, DEVICES)
        self.sink.error(
            pos, f"unknown device '{value}'{hint} (known: auto, cpu, gpu, cuda, cuda:N, mps, tpu, tpu:N)"
        )
        return None

    def _settings(self, block: Block, what: str) -> dict[str, Value]:
        settings: dict[str, Value] = {}
        for entry in block.entries:
            name = ".".join(entry.key)
            if len(entry.key) > 1:
                self.sink.error(entry.key_pos, f"a {what} has no dotted name: '{name}'")
            elif name in settings:
                self.sink.error(entry.key_pos, f"{what} '{name}' is given twice")
            else:
                settings[name] = entry.value
        return settings

    def _check_close_to(self, name: str, known: tuple[str, ...], pos: Pos, what: str) -> None:
        """Free-form extra settings are kept, but a near-miss of a known one is a typo."""
        hint = did_you_mean(name, known, cutoff=0.8)
        if hint:
            self.sink.error(pos, f"unknown {what} '{name}'{hint}")


def _numbers(value: ParamValue) -> list[int | float]:
    """The numbers a setting can take at its extremes: itself, an HPO choice's options, a range's ends."""
    if isinstance(value, ChoiceHPO):
        candidates = list(value.options)
    elif isinstance(value, RangeHPO):
        candidates = [value.start, value.stop]
    elif isinstance(value, LogRangeHPO):
        candidates = [value.low, value.high]
    else:
        candidates = [value]
    return [v for v in candidates if isinstance(v, (int, float)) and not isinstance(v, bool)]


def integral(value: ParamValue) -> ParamValue:
    """``value`` with integral floats within 64 bits as integers (``64.0`` and ``1e3`` are
    64 and 1000), also inside tuples and HPO choices; anything else as it is."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_INT:
        return int(value)
    if isinstance(value, list):
        return [integral(item) for item in value]
    if isinstance(value, ChoiceHPO):
        return ChoiceHPO(options=[integral(option) for option in value.options])
    return value
