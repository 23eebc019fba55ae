"""The one table of what the PyTorch emitter can build: for each layer type (named as in
the language's catalogue, :data:`neural_dsl_tracking.language.layers.LAYERS`), its emit
function and its parameters with their defaults. The generated attribute prefix
(``dense`` in ``dense_1``) is derived from the type's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from neural_dsl_tracking.compiler import layers as core
from neural_dsl_tracking.compiler import more_layers as more
from neural_dsl_tracking.compiler.layers import Param, Tensor
from neural_dsl_tracking.language.layers import LAYERS as LANGUAGE_LAYERS
from neural_dsl_tracking.plugins.layers import plugin_layers

if TYPE_CHECKING:
    from neural_dsl_tracking.compiler.model_emitter import ModelEmitter
    from neural_dsl_tracking.language.spec import LayerSpec

Emit = Callable[["ModelEmitter", "LayerSpec", str, Tensor], Tensor]


@dataclass(frozen=True)
class Buildable:
    """A layer type the emitter builds: how, and from which parameters."""

    emit: Emit
    params: dict[str, Param]


_SNAKE_EXCEPTIONS = {"ResidualConnection": "residual", "ReLU": "relu", "LeakyReLU": "leaky_relu"}


def snake_name(layer_type: str) -> str:
    """``Conv2DTranspose`` -> ``conv2d_transpose``: the prefix of generated attribute names."""
    if layer_type in _SNAKE_EXCEPTIONS:
        return _SNAKE_EXCEPTIONS[layer_type]
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z0-9])(?=[A-Z][a-z])", "_", layer_type).lower()


def _dims(prefix: str, suffix: str, emit: Emit, params: Callable[[], dict[str, Param]]) -> dict[str, Buildable]:
    return {f"{prefix}{d}D{suffix}": Buildable(emit, params()) for d in (1, 2, 3)}


def _depthwise(separable: bool) -> dict[str, Param]:
    params = {k: v for k, v in core.conv_params().items() if separable or k != "filters"}
    return {**params, "depth_multiplier": Param("int", 1)}


_CELL = {"units": Param("width"), "use_bias": Param("bool", True)}
_MERGE = Buildable(more.emit_merge, {})

TABLE: dict[str, Buildable] = {
    "Dense": Buildable(core.emit_dense, core.DENSE),
    "Output": Buildable(core.emit_dense, core.DENSE),
    "Dropout": Buildable(core.emit_dropout, {"rate": Param("rate")}),
    "Flatten": Buildable(core.emit_flatten, {}),
    "Activation": Buildable(core.emit_activation, {"activation": Param("activation"), "alpha": Param("float", None)}),
    **_dims("Conv", "", core.emit_conv, core.conv_params),
    **_dims("Conv", "Transpose", core.emit_conv, core.conv_params),
    "SeparableConv1D": Buildable(more.emit_depthwise_conv, _depthwise(True)),
    "SeparableConv2D": Buildable(more.emit_depthwise_conv, _depthwise(True)),
    "DepthwiseConv2D": Buildable(more.emit_depthwise_conv, _depthwise(False)),
    **_dims("MaxPooling", "", core.emit_pool, core.pool_params),
    **_dims("AveragePooling", "", core.emit_pool, core.pool_params),
    **_dims("GlobalAveragePooling", "", core.emit_global_pool, dict),
    **_dims("GlobalMaxPooling", "", core.emit_global_pool, dict),
    "BatchNormalization": Buildable(core.emit_batch_norm, {"momentum": Param("unit", 0.99),
                                                           "epsilon": Param("float", 1e-3)}),
    "LayerNormalization": Buildable(core.emit_layer_norm, {"epsilon": Param("float", 1e-3)}),
    "GroupNormalization": Buildable(core.emit_group_norm, {"groups": Param("int", 32), "epsilon": Param("float", 1e-3)}),
    "InstanceNormalization": Buildable(more.emit_instance_norm, {"epsilon": Param("float", 1e-3)}),
    "Embedding": Buildable(core.emit_embedding, {"input_dim": Param("int"), "output_dim": Param("width"),
                                                 "mask_zero": Param("bool", False)}),
    "LSTM": Buildable(core.emit_rnn, core.RNN),
    "GRU": Buildable(core.emit_rnn, core.RNN),
    "SimpleRNN": Buildable(core.emit_rnn, {**core.RNN, "activation": Param("activation", "tanh")}),
    "LSTMCell": Buildable(more.emit_cell, _CELL),
    "GRUCell": Buildable(more.emit_cell, _CELL),
    "Bidirectional": Buildable(more.emit_bidirectional, {"merge_mode": Param("merge_mode", "concat")}),
    "TimeDistributed": Buildable(more.emit_time_distributed, {}),
    "TransformerEncoder": Buildable(core.emit_transformer, core.TRANSFORMER),
    "TransformerDecoder": Buildable(core.emit_transformer, {**core.TRANSFORMER,
                                                           "use_causal_mask": Param("bool", True)}),
    "MultiHeadAttention": Buildable(more.emit_multi_head_attention, {
        "num_heads": Param("width"), "key_dim": Param("int", None), "dropout": Param("rate", 0.0),
        "use_bias": Param("bool", True), "use_causal_mask": Param("bool", False)}),
    "Attention": Buildable(more.emit_attention, {"dropout": Param("rate", 0.0), "use_causal_mask": Param("bool", False)}),
    "PositionalEncoding": Buildable(more.emit_positional_encoding, {
        "max_len": Param("int", None), "encoding_type": Param("encoding", "sinusoidal")}),
    "ResidualConnection": Buildable(core.emit_residual, {}),
    "Reshape": Buildable(core.emit_reshape, {"target_shape": Param("ints")}),
    "Permute": Buildable(more.emit_permute, {"dims": Param("ints")}),
    "RepeatVector": Buildable(more.emit_repeat_vector, {"n": Param("int")}),
    "ReLU": Buildable(core.emit_activation_layer, {}),
    "ELU": Buildable(core.emit_activation_layer, {}),
    "LeakyReLU": Buildable(core.emit_activation_layer, {}),
    "Softmax": Buildable(core.emit_activation_layer, {}),
    **_dims("UpSampling", "", core.emit_upsampling, lambda: {"size": Param("ints", 2)}),
    **_dims("ZeroPadding", "", core.emit_zero_padding, lambda: {"padding": Param("ints", 1)}),
    **_dims("Cropping", "", more.emit_cropping, lambda: {"cropping": Param("ints", 1)}),
    "Add": _MERGE,
    "Multiply": _MERGE,
    "Average": _MERGE,
    "Concatenate": Buildable(more.emit_merge, {"axis": Param("int", -1)}),
    "Lambda": Buildable(more.emit_lambda, {"function": Param("code", "")}),
}

SUPPORTED = sorted(TABLE)


def buildable(layer_type: str) -> Buildable | None:
    """How to build ``layer_type``: a built-in layer, or one an installed plugin provides
    (:attr:`neural_dsl_tracking.plugins.base.Plugin.layers`); None when neither."""
    found = TABLE.get(layer_type)
    if found is not None or layer_type in LANGUAGE_LAYERS:
        return found
    from neural_dsl_tracking.plugins import discover_plugins

    layer = plugin_layers(discover_plugins()).get(layer_type)
    return None if layer is None else Buildable(layer.emit, dict(layer.params))
