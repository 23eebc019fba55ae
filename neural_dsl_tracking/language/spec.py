"""The validated specification a `.neural` file parses into.

These pydantic models are the contract between the language front end and everything
downstream (compiler, config generation). Layer parameters keep their DSL names
(Keras-style: ``units``, ``filters``, ``kernel_size``...); positional arguments are
mapped to those names by the layer catalogue, so downstream code never sees positions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from typing_extensions import TypeAliasType


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)

    @model_serializer(mode="wrap")
    def _drop_positions(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        """With ``context={"positions": False}`` the ``pos`` and ``*_pos`` fields are left out."""
        data = handler(self)
        if isinstance(data, dict) and (info.context or {}).get("positions") is False:
            for key in [key for key in data if key == "pos" or key.endswith("_pos")]:
                del data[key]
        return data


class SourcePos(_Strict):
    """Where a construct starts in the source text (1-based)."""

    line: int
    column: int

    def at(self, filename: str) -> str:
        """``file:line:column``, the way messages locate things."""
        return f"{filename}:{self.line}:{self.column}"


# ---------------------------------------------------------------- HPO values


class ChoiceHPO(_Strict):
    """``HPO(choice(a, b, ...))``: one of the listed values."""

    kind: Literal["choice"] = "choice"
    options: list["ParamValue"]


class RangeHPO(_Strict):
    """``HPO(range(start, stop, step=s))``: a linear range, ``stop`` included when on the grid."""

    kind: Literal["range"] = "range"
    start: int | float
    stop: int | float
    step: int | float | None = None


class LogRangeHPO(_Strict):
    """``HPO(log_range(low, high))``: sampled log-uniformly between ``low`` and ``high``."""

    kind: Literal["log_range"] = "log_range"
    low: int | float
    high: int | float


HPOValue = Annotated[Union[ChoiceHPO, RangeHPO, LogRangeHPO], Field(discriminator="kind")]


class CallValue(_Strict):
    """A call written as a value, e.g. ``ExponentialDecay(0.1, 1000, 0.96)``."""

    kind: Literal["call"] = "call"
    name: str
    args: list["ParamValue"] = Field(default_factory=list)
    kwargs: dict[str, "ParamValue"] = Field(default_factory=dict)


ParamValue = TypeAliasType(
    "ParamValue",
    Union[
        None,
        bool,
        int,
        float,
        str,
        list["ParamValue"],
        ChoiceHPO,
        RangeHPO,
        LogRangeHPO,
        CallValue,
    ],
)
"""A parameter value: scalars, tuples (stored as lists), HPO expressions, calls.
(A named recursive alias, so pydantic can build a schema for it.)"""


# ---------------------------------------------------------------- network parts


class LayerSpec(_Strict):
    """One layer after macro and repeat expansion.

    ``children`` holds the layers of a nested ``{ }`` block (``ResidualConnection``,
    ``TransformerEncoder { ... }``). ``device`` is the ``@ "cuda:0"`` placement.
    """

    type: str
    params: dict[str, ParamValue] = Field(default_factory=dict)
    children: list["LayerSpec"] = Field(default_factory=list)
    device: str | None = None
    repeat: HPOValue | None = None
    """On the first layer of ``X * HPO(choice(6, 12))``: the repeat count's search space
    (the layers are expanded to its default count, the first choice or the range start)."""
    pos: SourcePos | None = None


class InputSpec(_Strict):
    """The declared input shape; ``None`` marks a dynamic dimension (batch or length).

    Named inputs (``input: { image: (64, 64, 3), text: (100,) }``) are in ``named``, in
    the order written, and ``shape`` is then the first one's."""

    shape: list[int | None]
    named: dict[str, list[int | None]] = Field(default_factory=dict)
    pos: SourcePos | None = None


class ScheduleSpec(_Strict):
    """A learning-rate schedule given as the optimizer's ``learning_rate``."""

    type: Literal["ExponentialDecay"] = "ExponentialDecay"
    initial_learning_rate: ParamValue
    decay_steps: ParamValue
    decay_rate: ParamValue
    staircase: bool = False


class OptimizerSpec(_Strict):
    """Optimizer name (as written, e.g. ``Adam``/``adam``) and its parameters.

    When ``learning_rate`` was a schedule, ``params["learning_rate"]`` holds the
    schedule's initial rate and ``schedule`` the schedule itself.
    """

    type: str
    params: dict[str, ParamValue] = Field(default_factory=dict)
    schedule: ScheduleSpec | None = None
    pos: SourcePos | None = None
    """Where the optimizer is written (its name, after ``optimizer:``)."""


class TrainSpec(_Strict):
    """The ``train { }`` section."""

    epochs: ParamValue = 10
    batch_size: ParamValue = 32
    validation_split: ParamValue = 0.2
    search_method: str | None = None
    extra: dict[str, ParamValue] = Field(default_factory=dict)


class ExecutionSpec(_Strict):
    """The ``execute { }`` / ``execution { }`` section."""

    device: str = "auto"
    extra: dict[str, ParamValue] = Field(default_factory=dict)


class ModelSpec(_Strict):
    """One ``network Name { ... }`` block, fully expanded and validated."""

    name: str
    input: InputSpec
    layers: list[LayerSpec]
    loss: str | None = None
    loss_pos: SourcePos | None = None
    """Where the loss is written (its name, after ``loss:``)."""
    optimizer: OptimizerSpec | None = None
    metrics: list[str] = Field(default_factory=list)
    train: TrainSpec = Field(default_factory=TrainSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    plugins: dict[str, SerializeAsAny[BaseModel]] = Field(default_factory=dict)
    """Validated plugin blocks by keyword, e.g. ``plugins.get("tracking")``."""
    plugin_pos: dict[str, dict[str, SourcePos]] = Field(default_factory=dict)
    """Where each plugin block's settings are written: keyword -> dotted key -> the value's
    position, ``""`` -> the block's (the network's own block, else the top-level one)."""
    pos: SourcePos | None = None


class NeuralFile(_Strict):
    """Everything a `.neural` file declares: one or more networks."""

    path: str
    networks: list[ModelSpec]
    warnings: list[str] = Field(default_factory=list, exclude=True)
    """Rendered warnings (``file:line:col: ...`` with the line and a caret), e.g. a layer
    name written in another letter case; not part of the spec's JSON."""

    def network(self, name: str | None = None) -> ModelSpec:
        """The network called ``name``, or the only/first one when ``name`` is None."""
        if name is None:
            return self.networks[0]
        for net in self.networks:
            if net.name == name:
                return net
        raise KeyError(name)


def to_jsonable(model: BaseModel) -> dict[str, Any]:
    """The spec as plain JSON data, defaults filled, source positions dropped."""
    return model.model_dump(mode="json", context={"positions": False})


for _model in (ChoiceHPO, CallValue, LayerSpec):
    _model.model_rebuild()
