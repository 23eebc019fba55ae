"""The layer catalogue: known layer types, their positional parameters, known named
parameters, and the kind of value each parameter takes.

``Dense(64, "relu")`` means ``Dense(units=64, activation="relu")`` because Dense's
positional parameters are ``("units", "activation")``. The compiler keeps its own
table of what it can emit; this one is about what the language accepts.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

from neural_dsl_tracking.errors import NeuralError
from neural_dsl_tracking.language.spec import (
    ChoiceHPO,
    LogRangeHPO,
    ParamValue,
    RangeHPO,
)
from neural_dsl_tracking.plugins.base import Plugin
from neural_dsl_tracking.plugins.layers import PluginLayer, plugin_layers

ACTIVATIONS = frozenset(
    {
        "relu", "sigmoid", "softmax", "tanh", "linear", "elu", "selu", "softplus",
        "softsign", "swish", "silu", "gelu", "exponential", "hard_sigmoid", "hard_swish",
        "leaky_relu", "relu6", "mish", "log_softmax", "hard_tanh",
    }
)
PADDINGS = ("same", "valid", "causal")
ENCODINGS = ("sinusoidal", "learned")
MERGE_MODES = ("concat", "sum", "ave", "mul")

COMMON = ("name", "trainable", "dtype")
WEIGHTS = (
    "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
    "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint",
)
CONV_EXTRA = ("dilation_rate", "groups", "data_format")
RECURRENT = (
    "activation", "recurrent_activation", "return_sequences", "return_state", "dropout",
    "recurrent_dropout", "go_backwards", "stateful", "unroll", "bidirectional",
    "recurrent_initializer", "recurrent_regularizer", "recurrent_constraint",
)


@dataclass(frozen=True)
class LayerInfo:
    """What the language knows about one layer type."""

    positional: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    named: tuple[str, ...] = ()
    container: bool = False
    """Takes a nested ``{ }`` block of child layers."""
    wraps: bool = False
    """Its ``layer`` argument is a layer, checked like any other and kept as its one child."""
    wrappable: tuple[str, ...] = ()
    """The layer types it can wrap (empty: any)."""
    kinds: Mapping[str, str] = field(default_factory=dict)
    """Kinds that differ from :data:`PARAM_KINDS` for this layer."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Other names the docs use for a parameter -> its one name in the spec."""

    def known_params(self) -> tuple[str, ...]:
        names = self.positional + tuple(n for n in self.named + COMMON if n not in self.positional)
        return names + tuple(self.aliases)

    def canonical(self, param: str) -> str:
        """The spec's name of ``param`` (an alias becomes the name it stands for)."""
        return self.aliases.get(param, param)

    def kind_of(self, param: str) -> str | None:
        return self.kinds.get(param, PARAM_KINDS.get(param))


def _conv(transpose: bool = False, separable: bool = False) -> LayerInfo:
    extra = CONV_EXTRA + WEIGHTS + (("output_padding",) if transpose else ()) + (
        ("depth_multiplier",) if separable else ())
    return LayerInfo(
        ("filters", "kernel_size", "strides", "padding", "activation"),
        ("filters", "kernel_size"),
        extra,
    )


def _pool() -> LayerInfo:
    return LayerInfo(("pool_size", "strides", "padding"), (), ("data_format",))


def _global_pool() -> LayerInfo:
    return LayerInfo((), (), ("data_format", "keepdims"))


def _rnn() -> LayerInfo:
    return LayerInfo(("units",), ("units",), RECURRENT + WEIGHTS)


def _cell() -> LayerInfo:
    return LayerInfo(("units",), ("units",), RECURRENT[:2] + ("dropout", "recurrent_dropout") + WEIGHTS)


_DROPOUT_RATE = {"dropout_rate": "dropout"}


def _transformer(decoder: bool = False) -> LayerInfo:
    return LayerInfo(
        ("num_heads", "ff_dim", "dropout"),
        (),
        ("activation", "key_dim", "epsilon", "norm_first", "d_model", "num_layers", "use_bias")
        + (("use_causal_mask",) if decoder else ()),
        container=not decoder,
        aliases={"dff": "ff_dim", **_DROPOUT_RATE},
    )


RECURRENT_LAYERS = ("LSTM", "GRU", "SimpleRNN")


def _wrapper(*named: str, wrappable: tuple[str, ...] = ()) -> LayerInfo:
    """Bidirectional(LSTM(64)): the wrapped layer is read like any layer, as the child."""
    return LayerInfo(("layer",), ("layer",), named, wraps=True, wrappable=wrappable)


def _dims(prefix: str, make: Callable[[], LayerInfo]) -> dict[str, LayerInfo]:
    return {f"{prefix}{d}D": make() for d in (1, 2, 3)}


LAYERS: dict[str, LayerInfo] = {
    "Dense": LayerInfo(("units", "activation"), ("units",), WEIGHTS),
    "Output": LayerInfo(("units", "activation"), ("units",), WEIGHTS),
    **_dims("Conv", _conv),
    **{f"Conv{d}DTranspose": _conv(transpose=True) for d in (1, 2, 3)},
    "SeparableConv1D": _conv(separable=True),
    "SeparableConv2D": _conv(separable=True),
    "DepthwiseConv2D": LayerInfo(
        ("kernel_size", "strides", "padding", "activation"),
        ("kernel_size",),
        ("depth_multiplier",) + CONV_EXTRA + WEIGHTS,
    ),
    **_dims("MaxPooling", _pool),
    **_dims("AveragePooling", _pool),
    **_dims("GlobalMaxPooling", _global_pool),
    **_dims("GlobalAveragePooling", _global_pool),
    "Flatten": LayerInfo((), (), ("data_format",)),
    "Dropout": LayerInfo(("rate",), ("rate",), ("noise_shape", "seed")),
    **_dims("SpatialDropout", lambda: LayerInfo(("rate",), ("rate",), ("seed",))),
    "AlphaDropout": LayerInfo(("rate",), ("rate",), ("seed",)),
    "GaussianDropout": LayerInfo(("rate",), ("rate",), ("seed",)),
    "GaussianNoise": LayerInfo(("stddev",), ("stddev",), ("seed",)),
    "InstanceNormalization": LayerInfo((), (), ("axis", "epsilon", "center", "scale")),
    "BatchNormalization": LayerInfo(
        (), (), ("axis", "momentum", "epsilon", "center", "scale")
    ),
    "LayerNormalization": LayerInfo((), (), ("axis", "epsilon", "center", "scale")),
    "GroupNormalization": LayerInfo(("groups",), (), ("axis", "epsilon", "center", "scale")),
    "Activation": LayerInfo(("activation",), ("activation",), ("alpha",)),
    "ReLU": LayerInfo((), (), ("max_value", "negative_slope", "threshold")),
    "LeakyReLU": LayerInfo(("negative_slope",), (), ("alpha",)),
    "ELU": LayerInfo(("alpha",)),
    "PReLU": LayerInfo(),
    "Softmax": LayerInfo(("axis",)),
    "Embedding": LayerInfo(
        ("input_dim", "output_dim"),
        ("input_dim", "output_dim"),
        ("mask_zero", "input_length", "embeddings_initializer", "embeddings_regularizer"),
        aliases={"vocab_size": "input_dim", "embedding_dim": "output_dim"},
    ),
    "LSTM": _rnn(),
    "GRU": _rnn(),
    "SimpleRNN": _rnn(),
    "LSTMCell": _cell(),
    "GRUCell": _cell(),
    "Bidirectional": _wrapper("merge_mode", wrappable=RECURRENT_LAYERS),
    "TimeDistributed": _wrapper(),
    "TransformerEncoder": _transformer(),
    "TransformerDecoder": _transformer(decoder=True),
    "MultiHeadAttention": LayerInfo(
        ("num_heads", "key_dim"),
        ("num_heads",),
        ("value_dim", "dropout", "use_causal_mask") + WEIGHTS,
        aliases=_DROPOUT_RATE,
    ),
    "Attention": LayerInfo((), (), ("use_scale", "dropout", "use_causal_mask")),
    "PositionalEncoding": LayerInfo(("max_len", "encoding_type")),
    "Lambda": LayerInfo(("function",), ("function",)),
    "ResidualConnection": LayerInfo(container=True),
    "Reshape": LayerInfo(("target_shape",), ("target_shape",)),
    "Permute": LayerInfo(("dims",), ("dims",)),
    "RepeatVector": LayerInfo(("n",), ("n",)),
    **_dims(
        "UpSampling", lambda: LayerInfo(("size",), (), ("interpolation", "data_format"))
    ),
    **_dims(
        "ZeroPadding",
        lambda: LayerInfo(("padding",), (), ("data_format",), kinds={"padding": "size"}),
    ),
    **_dims("Cropping", lambda: LayerInfo(("cropping",), (), ("data_format",))),
    "Add": LayerInfo(),
    "Multiply": LayerInfo(),
    "Average": LayerInfo(),
    "Concatenate": LayerInfo(("axis",)),
}

PARAM_KINDS: dict[str, str] = {
    "units": "positive_int",
    "filters": "positive_int",
    "num_heads": "positive_int",
    "ff_dim": "positive_int",
    "key_dim": "positive_int",
    "value_dim": "positive_int",
    "input_dim": "positive_int",
    "output_dim": "positive_int",
    "groups": "positive_int",
    "n": "positive_int",
    "d_model": "positive_int",
    "num_layers": "positive_int",
    "max_len": "positive_int",
    "encoding_type": "encoding",
    "merge_mode": "merge_mode",
    "function": "code",
    "use_causal_mask": "bool",
    "depth_multiplier": "positive_int",
    "kernel_size": "size",
    "pool_size": "size",
    "strides": "size",
    "dilation_rate": "size",
    "size": "size",
    "cropping": "size",
    "rate": "fraction",
    "dropout": "fraction",
    "recurrent_dropout": "fraction",
    "stddev": "non_negative_number",
    "momentum": "unit_interval",
    "epsilon": "positive_number",
    "alpha": "number",
    "negative_slope": "number",
    "activation": "activation",
    "recurrent_activation": "activation",
    "padding": "padding",
    "use_bias": "bool",
    "return_sequences": "bool",
    "return_state": "bool",
    "go_backwards": "bool",
    "stateful": "bool",
    "mask_zero": "bool",
    "center": "bool",
    "scale": "bool",
    "keepdims": "bool",
    "target_shape": "shape",
    "dims": "shape",
}


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: float) -> bool:
    return float(v).is_integer()


_SCALAR_CHECKS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "positive_int": ("a positive integer", lambda v: _is_int(v) and v >= 1),
    "size": (
        "a positive integer or a tuple of them",
        lambda v: (_is_int(v) and v >= 1)
        or (isinstance(v, list) and bool(v) and all(_is_int(x) and x >= 1 for x in v)),
    ),
    "fraction": ("a number from 0 up to (not including) 1", lambda v: _is_number(v) and 0 <= v < 1),
    "number": ("a number", _is_number),
    "unit_interval": ("a number from 0 to 1", lambda v: _is_number(v) and 0 <= v <= 1),
    "positive_number": ("a positive number", lambda v: _is_number(v) and v > 0),
    "non_negative_number": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "activation": (
        "an activation name (" + ", ".join(sorted(ACTIVATIONS)) + ")",
        lambda v: v is None or (isinstance(v, str) and v.lower() in ACTIVATIONS),
    ),
    "padding": ("one of " + ", ".join(f'"{p}"' for p in PADDINGS), lambda v: v in PADDINGS),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "shape": (
        "a tuple of integers",
        lambda v: isinstance(v, list) and all(_is_int(x) or x is None for x in v),
    ),
    "encoding": ('"sinusoidal" or "learned"', lambda v: v in ENCODINGS),
    "merge_mode": ("one of " + ", ".join(f'"{m}"' for m in MERGE_MODES), lambda v: v in MERGE_MODES),
    "code": ("a quoted string", lambda v: isinstance(v, str)),
}

_NUMERIC_KINDS = {"positive_int", "size", "fraction", "number", "unit_interval", "positive_number",
                  "non_negative_number"}
_INTEGER_KINDS = {"positive_int", "size"}


def check_param(kind: str | None, value: ParamValue) -> str | None:
    """``None`` when ``value`` fits ``kind``; otherwise what was expected."""
    if kind is None:
        return None
    description, accepts = _SCALAR_CHECKS[kind]
    if isinstance(value, ChoiceHPO):
        for option in value.options:
            problem = check_param(kind, option)
            if problem is not None:
                return problem
        return None
    if isinstance(value, (RangeHPO, LogRangeHPO)):
        if kind not in _NUMERIC_KINDS:
            return f"{description}; a range of numbers does not fit"
        bounds = (value.start, value.stop) if isinstance(value, RangeHPO) else (value.low, value.high)
        if kind in _INTEGER_KINDS:
            step = value.step if isinstance(value, RangeHPO) else None
            if step is not None and not _whole(step):
                return f"{description}; a range with a fractional step does not fit"
            bounds = tuple(int(b) if _whole(b) else b for b in bounds)
            check = _SCALAR_CHECKS["positive_int"][1]
        else:
            check = accepts
        return None if all(check(b) for b in bounds) else description
    return None if accepts(value) else description


_STRING_SLOTS = ("padding", "activation")
"""Where a string written in a numeric positional slot goes (``Conv2D(32, (3, 3), "relu")``)."""


def positional_target(info: LayerInfo, slot: str, value: object) -> str:
    """The parameter a positional ``value`` written in ``slot`` stands for.

    The docs write ``Conv2D(32, (3, 3), "relu")``: a string that does not fit its slot
    is the padding or activation it names, else it stays in ``slot``."""
    kind = info.kind_of(slot)
    if not isinstance(value, str) or kind is None or slot in info.required or check_param(kind, value) is None:
        return slot
    for target in _STRING_SLOTS:
        if target in info.known_params() and check_param(info.kind_of(target), value) is None:
            return target
    return slot


def misplaced(info: LayerInfo, layer: str, slot: str, value: object) -> str | None:
    """What to say about a string in positional ``slot`` that names nothing it could be."""
    kind = info.kind_of(slot)
    if not isinstance(value, str) or kind is None or slot in info.required or _takes_strings(kind):
        return None
    meant = next((t for t in reversed(_STRING_SLOTS) if t in info.known_params()), None)
    if meant is None:
        return None
    names = ACTIVATIONS if meant == "activation" else PADDINGS
    close = difflib.get_close_matches(value.lower(), sorted(names), n=1)
    suggestion = f"; did you mean {json.dumps(close[0])}?" if close else ""
    return (f"{layer}: {json.dumps(value)} cannot be '{slot}' ({_SCALAR_CHECKS[kind][0]}); a string "
            f"in this position is read as the {meant}, and {json.dumps(value)} is not one{suggestion} "
            f"Write it by name: {meant}={json.dumps(close[0] if close else value)}")


def _takes_strings(kind: str) -> bool:
    return kind in ("activation", "padding", "encoding", "merge_mode", "code")


def typed(kind: str | None, value: ParamValue) -> ParamValue:
    """HPO bounds typed as the parameter: ints for an integer parameter, floats otherwise."""
    if kind not in _NUMERIC_KINDS:
        return value
    def cast(number: float) -> int | float:
        return int(number) if kind in _INTEGER_KINDS and _whole(number) else float(number)

    if isinstance(value, RangeHPO):
        step = None if value.step is None else cast(value.step)
        return RangeHPO(start=cast(value.start), stop=cast(value.stop), step=step)
    if isinstance(value, LogRangeHPO):
        return LogRangeHPO(low=cast(value.low), high=cast(value.high))
    return value


def canonical_layer_name(name: str) -> str | None:
    """The catalogue's spelling of a layer name written in another letter case
    (``dense`` -> ``Dense``, ``CONV2D`` -> ``Conv2D``), or None when there is none."""
    lowered = name.lower()
    return next((known for known in LAYERS if known.lower() == lowered), None)


_PLUGIN_KINDS = {"width": "positive_int", "int": "positive_int", "rate": "fraction", "float": "positive_number",
                 "ints": "size", "bool": "bool", "activation": "activation", "padding": "padding"}
"""The language's kind of each kind a plugin layer's parameter may take
(:data:`neural_dsl_tracking.plugins.layers.PARAM_KINDS`)."""


def plugin_layer_info(layer: PluginLayer) -> LayerInfo:
    """What the language checks of a layer a plugin provides: the same as for a built-in one."""
    positional = layer.positional_names()
    return LayerInfo(
        positional,
        layer.required(),
        tuple(name for name in layer.params if name not in positional),
        kinds={name: _PLUGIN_KINDS[param.kind] for name, param in layer.params.items()},
    )


def plugin_layer_infos(plugins: Mapping[str, Plugin]) -> dict[str, LayerInfo]:
    """The layers ``plugins`` provide, by type; NeuralError for one that has a built-in name."""
    infos = {name: plugin_layer_info(layer) for name, layer in plugin_layers(plugins).items()}
    clash = next((name for name in infos if canonical_layer_name(name) is not None), None)
    if clash is not None:
        raise NeuralError(f"a plugin provides the layer {clash!r}, which is the name of the built-in "
                          f"layer {canonical_layer_name(clash)!r}")
    return infos
