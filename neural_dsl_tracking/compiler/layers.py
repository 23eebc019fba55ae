"""The layers the PyTorch emitter can express: their parameters and what each becomes.

Each emit function gets the :class:`~neural_dsl_tracking.compiler.model_emitter.ModelEmitter`,
the layer, its generated attribute name and the incoming :class:`Tensor`; it adds the
module to ``__init__``, the call to ``forward`` and returns the outgoing tensor. Shapes
are per sample and channels-last (as the DSL writes them); ``Tensor.layout`` says whether
the generated tensor currently holds the channel axis last (``"last"``) or at dim 1
(``"first"``, PyTorch's convention for convolutions, pooling and batch norm).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from neural_dsl_tracking.compiler.codegen import Expr, call
from neural_dsl_tracking.compiler.shapes import (
    Dim,
    code_of,
    dim_product,
    same_padding,
    show,
    value_of,
    window_out,
)
from neural_dsl_tracking.plugins.layers import REQUIRED, Param

if TYPE_CHECKING:
    from neural_dsl_tracking.language.spec import LayerSpec
    from neural_dsl_tracking.compiler.model_emitter import ModelEmitter


@dataclass(frozen=True)
class Tensor:
    """The tensor flowing between layers: per-sample shape (channels-last) and layout."""

    shape: tuple[Dim, ...]
    layout: str = "last"
    mask: str | None = None
    """The generated variable holding the padding mask of the steps (the first axis), set
    by ``Embedding(mask_zero=true)``; a layer that keeps the steps returns it with them."""


# Kinds: "width" (positive int, a tunable model hyperparameter), "rate" (0 <= x < 1, tunable),
# "ints" (int or list of ints, one per spatial axis), "int" (positive int), "activation",
# "padding" ("valid"/"same"), "bool", "float" (positive number), "unit" (0 <= x <= 1).
TUNABLE_KINDS = ("width", "rate")

ACTIVATIONS: dict[str, str | None] = {
    "linear": None,
    "relu": "torch.relu",
    "sigmoid": "torch.sigmoid",
    "tanh": "torch.tanh",
    "softmax": "torch.softmax",
    "log_softmax": "torch.log_softmax",
    "elu": "F.elu",
    "selu": "F.selu",
    "gelu": "F.gelu",
    "leaky_relu": "F.leaky_relu",
    "softplus": "F.softplus",
    "softsign": "F.softsign",
    "swish": "F.silu",
    "silu": "F.silu",
    "hard_sigmoid": "F.hardsigmoid",
    "exponential": "torch.exp",
    "mish": "F.mish",
    "relu6": "F.relu6",
    "hard_swish": "F.hardswish",
    "hard_tanh": "F.hardtanh",
}
"""Keras activation names and the PyTorch function each becomes (None: identity)."""


def conv_params() -> dict[str, Param]:
    return {
        "filters": Param("width"),
        "kernel_size": Param("ints"),
        "strides": Param("ints", 1),
        "padding": Param("padding", "valid"),
        "dilation_rate": Param("ints", 1),
        "activation": Param("activation", None),
        "use_bias": Param("bool", True),
    }


def pool_params() -> dict[str, Param]:
    return {"pool_size": Param("ints", 2), "strides": Param("ints", None), "padding": Param("padding", "valid")}


DENSE = {"units": Param("width"), "activation": Param("activation", None), "use_bias": Param("bool", True)}
TRANSFORMER = {
    "num_heads": Param("width", 8),
    "ff_dim": Param("width", 2048),
    "dropout": Param("rate", 0.1),
    "activation": Param("activation", "relu"),
    "epsilon": Param("float", 1e-5),
    "norm_first": Param("bool", False),
    "d_model": Param("int", None),
    "num_layers": Param("int", 1),
    "use_bias": Param("bool", True),
}
RNN = {
    "units": Param("width"),
    "return_sequences": Param("bool", False),
    "bidirectional": Param("bool", False),
}

def spatial_rank(layer_type: str) -> int:
    """1, 2 or 3 for the ``...1D/2D/3D`` layer families."""
    match = re.search(r"([123])D", layer_type)
    assert match is not None, layer_type
    return int(match.group(1))


def _per_axis(em: "ModelEmitter", layer: "LayerSpec", name: str, value: Any, rank: int) -> tuple[int, ...]:
    values = [value] * rank if isinstance(value, int) else list(value)
    if len(values) == 1:
        values = values * rank
    if len(values) != rank or not all(isinstance(v, int) and v >= 1 for v in values):
        raise em.error(layer, f"{name} must be a positive integer or {rank} of them, got {value!r}")
    return tuple(values)


def _require_rank(em: "ModelEmitter", layer: "LayerSpec", x: Tensor, rank: int, what: str) -> None:
    if len(x.shape) != rank:
        hint = ""
        if rank == 2 and len(x.shape) > 2 and value_of(x.shape[-1]) is not None:  # positions as the steps
            hint = f"; Reshape((-1, {value_of(x.shape[-1])})) before it reads each position as a step"
        raise em.error(layer, f"expects {what} (rank {rank} per sample), but its input is {show(x.shape)}{hint}")


def _concrete(em: "ModelEmitter", layer: "LayerSpec", dim: Dim, what: str) -> Dim:
    if dim is None:
        raise em.shape_error(layer, f"needs a fixed {what}, but it is dynamic (None) here")
    return dim


def _with_activation(em: "ModelEmitter", layer: "LayerSpec", call_expr: str, x: Tensor, activation: str | None) -> None:
    em.forward(f"x = {em.activation_code(activation, Expr(call_expr), x, layer)}")


def emit_dense(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    if not x.shape:
        raise em.shape_error(layer, "needs at least one input dimension")
    x = em.to_layout(x, "last")
    features = _concrete(em, layer, x.shape[-1], "number of input features")
    units = em.param(layer, name, "units")
    em.module(name, call("nn.Linear", code_of(features), code_of(units), bias=em.param(layer, name, "use_bias")), x.shape, x.shape[:-1] + (units,))
    activation = em.head_activation(layer, em.param(layer, name, "activation"))
    _with_activation(em, layer, f"self.{name}(x)", x, activation)
    return replace(x, shape=x.shape[:-1] + (units,))


def emit_dropout(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    em.module(name, call("nn.Dropout", p=em.param(layer, name, "rate")), x.shape, x.shape)
    em.forward(f"x = self.{name}(x)")
    return x


def emit_flatten(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    for dim in x.shape:
        _concrete(em, layer, dim, "input size (Flatten cannot flatten a dynamic axis)")
    out = (dim_product(x.shape),)
    em.module(name, call("nn.Flatten"), x.shape, out)
    em.forward(f"x = self.{name}(x)")
    return Tensor(out, "last")


def emit_activation(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    activation = em.head_activation(layer, em.param(layer, name, "activation"))
    alpha = em.param(layer, name, "alpha")
    if alpha is not None and activation not in ("leaky_relu", "elu"):
        raise em.error(layer, f"alpha applies to leaky_relu and elu, not {activation!r}")
    em.comment(f"{name}: Activation, shape {show(x.shape)}")
    em.forward(f"x = {em.activation_code(activation, Expr('x'), x, layer, alpha)}")
    return x


def emit_conv(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    rank = spatial_rank(layer.type)
    transpose = layer.type.endswith("Transpose")
    _require_rank(em, layer, x, rank + 1, f"{rank} spatial axes and channels")
    x = em.to_layout(x, "first")
    channels = _concrete(em, layer, x.shape[-1], "number of channels")
    filters = em.param(layer, name, "filters")
    if transpose:
        kwargs, out_sizes = _transposed_window(em, layer, name, x, rank)
    else:
        kwargs, out_sizes = conv_window(em, layer, name, x, rank)
    kwargs["bias"] = em.param(layer, name, "use_bias")
    module = f"nn.ConvTranspose{rank}d" if transpose else f"nn.Conv{rank}d"
    out = tuple(out_sizes) + (filters,)
    em.module(name, call(module, code_of(channels), code_of(filters), **kwargs), x.shape, out)
    activation = em.head_activation(layer, em.param(layer, name, "activation"))
    _with_activation(em, layer, f"self.{name}(x)", Tensor(out, "first"), activation)
    return Tensor(out, "first")


def _window_params(em: "ModelEmitter", layer: "LayerSpec", name: str,
                   rank: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Kernel, strides and dilation of a convolution, one value per spatial axis."""
    return tuple(_per_axis(em, layer, pname, em.param(layer, name, pname), rank)  # type: ignore[return-value]
                 for pname in ("kernel_size", "strides", "dilation_rate"))


def _transposed_window(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor,
                       rank: int) -> tuple[dict[str, Any], list[int | None]]:
    kernel, strides, dilation = _window_params(em, layer, name, rank)
    padding = em.param(layer, name, "padding")
    kwargs: dict[str, Any] = {"kernel_size": kernel, "stride": strides}
    out_sizes: list[int | None] = []
    pads, extra = [], []
    for size, k, s, d in zip(x.shape[:-1], kernel, strides, dilation):
        span = (k - 1) * d + 1
        if padding == "same":
            pad = max(-(-(span - s) // 2), 0)
            extra.append(s - span + 2 * pad)
        else:
            pad = 0
            extra.append(0)
        pads.append(pad)
        out_sizes.append(None if size is None else (value_of(size) - 1) * s - 2 * pad + span + extra[-1])
    kwargs["padding"] = tuple(pads)
    if any(extra):
        kwargs["output_padding"] = tuple(extra)
    if any(d != 1 for d in dilation):
        kwargs["dilation"] = dilation
    _check_window(em, layer, x, out_sizes)
    return kwargs, out_sizes


def conv_window(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor,
                rank: int) -> tuple[dict[str, Any], list[int | None]]:
    """A (non-transposed) convolution's window over channels-first ``x``: the keyword
    arguments of its ``nn.ConvNd`` (kernel, stride, padding, dilation) and its output sizes."""
    kernel, strides, dilation = _window_params(em, layer, name, rank)
    spans = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    label = f"kernel_size {_axes(kernel)}"
    if spans != kernel:
        label += f" with dilation_rate {_axes(dilation)} (a window of {_axes(spans)})"
    check_fits(em, layer, x, label, spans)
    check_fits(em, layer, x, f"strides {_axes(strides)}", strides)
    same = em.param(layer, name, "padding") == "same"
    pairs = [same_padding(value_of(size), k, s, d) if same else (0, 0)
             for size, k, s, d in zip(x.shape[:-1], kernel, strides, dilation)]
    kwargs: dict[str, Any] = {"kernel_size": kernel, "stride": strides}
    pads = em.padding(name, layer, x, pairs, rank, 0.0)
    if pads:
        kwargs["padding"] = pads
    if any(d != 1 for d in dilation):
        kwargs["dilation"] = dilation
    out_sizes = [window_out(value_of(size), k, s, pair, d)
                 for size, k, s, d, pair in zip(x.shape[:-1], kernel, strides, dilation, pairs)]
    return kwargs, out_sizes


def _axes(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else str(values)


def check_fits(em: "ModelEmitter", layer: "LayerSpec", x: Tensor, label: str, sizes: tuple[int, ...]) -> None:
    """A window (kernel, pool, strides) of ``sizes`` is no larger than the spatial axes of
    ``x``, whatever the padding: one message at the layer, giving the incoming shape."""
    spatial = tuple(value_of(d) for d in x.shape[:-1])
    if any(size is not None and value > size for value, size in zip(sizes, spatial)):
        raise em.error(layer, f"{label} is larger than its input {show(x.shape)} (spatial size {show(spatial)})")


def _check_window(em: "ModelEmitter", layer: "LayerSpec", x: Tensor, out_sizes: list[int | None]) -> None:
    if any(size is not None and size < 1 for size in out_sizes):
        raise em.error(layer, f"its window does not fit the input {show(x.shape)} (output would be empty)")


def emit_pool(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    rank = spatial_rank(layer.type)
    is_max = layer.type.startswith("Max")
    _require_rank(em, layer, x, rank + 1, f"{rank} spatial axes and channels")
    x = em.to_layout(x, "first")
    kernel = _per_axis(em, layer, "pool_size", em.param(layer, name, "pool_size"), rank)
    strides_value = em.param(layer, name, "strides")
    strides = kernel if strides_value is None else _per_axis(em, layer, "strides", strides_value, rank)
    check_fits(em, layer, x, f"pool_size {_axes(kernel)}", kernel)
    check_fits(em, layer, x, f"strides {_axes(strides)}", strides)
    spatial = x.shape[:-1]
    pairs = [same_padding(value_of(size), k, s) if em.param(layer, name, "padding") == "same" else (0, 0)
             for size, k, s in zip(spatial, kernel, strides)]
    pads = em.padding(name, layer, x, pairs, rank, float("-inf") if is_max else 0.0)
    kwargs: dict[str, Any] = {"kernel_size": kernel, "stride": strides}
    if pads:
        kwargs["padding"] = pads
        if not is_max:
            kwargs["count_include_pad"] = False
    out_sizes = [window_out(value_of(size), k, s, pair) for size, k, s, pair in zip(spatial, kernel, strides, pairs)]
    module = f"nn.MaxPool{rank}d" if is_max else f"nn.AvgPool{rank}d"
    out = tuple(out_sizes) + (x.shape[-1],)
    em.module(name, call(module, **kwargs), x.shape, out)
    em.forward(f"x = self.{name}(x)")
    return Tensor(out, "first")


def emit_global_pool(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    rank = spatial_rank(layer.type)
    _require_rank(em, layer, x, rank + 1, f"{rank} spatial axes and channels")
    out = (x.shape[-1],)
    if x.mask is not None:  # pools the real steps only
        x = em.to_layout(x, "last")
        function = "runtime.masking.masked_max" if "Max" in layer.type else "runtime.masking.masked_mean"
        em.comment(f"{name}: {layer.type} over the steps that are not padding, {show(x.shape)} -> {show(out)}")
        em.forward(f"x = {call(function, Expr('x'), Expr(x.mask))}")
        return Tensor(out, "last")
    x = em.to_layout(x, "first")
    module = f"nn.AdaptiveMaxPool{rank}d" if "Max" in layer.type else f"nn.AdaptiveAvgPool{rank}d"
    em.module(name, call(module, 1), x.shape, out)
    em.forward(f"x = self.{name}(x).flatten(1)")
    return Tensor(out, "last")


def emit_batch_norm(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    rank = len(x.shape)
    if not 1 <= rank <= 4:
        raise em.error(layer, f"expects 1 to 4 axes per sample, got {show(x.shape)}")
    x = em.to_layout(x, "first")
    channels = _concrete(em, layer, x.shape[-1], "number of channels")
    module = f"nn.BatchNorm{max(rank - 1, 1)}d"
    momentum = 1.0 - float(em.param(layer, name, "momentum"))
    em.module(name, call(module, code_of(channels), eps=float(em.param(layer, name, "epsilon")), momentum=round(momentum, 10)), x.shape, x.shape)
    em.forward(f"x = self.{name}(x)")
    return x


def emit_layer_norm(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    if not x.shape:
        raise em.shape_error(layer, "needs at least one input dimension")
    x = em.to_layout(x, "last")
    features = _concrete(em, layer, x.shape[-1], "number of features")
    em.module(name, call("nn.LayerNorm", code_of(features), eps=float(em.param(layer, name, "epsilon"))), x.shape, x.shape)
    em.forward(f"x = self.{name}(x)")
    return x


def emit_group_norm(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    if not x.shape:
        raise em.shape_error(layer, "needs at least one input dimension")
    x = em.to_layout(x, "first")
    channels = _concrete(em, layer, x.shape[-1], "number of channels")
    groups = em.param(layer, name, "groups")
    if value_of(channels) % groups:
        raise em.shape_error(layer, f"groups={groups} must divide the {value_of(channels)} channels of its input")
    em.module(name, call("nn.GroupNorm", groups, code_of(channels), eps=float(em.param(layer, name, "epsilon"))), x.shape, x.shape)
    em.forward(f"x = self.{name}(x)")
    return x


def emit_embedding(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    if x.layout != "last" and len(x.shape) > 1:
        raise em.shape_error(layer, "expects integer token ids, but follows a layer producing features")
    dim = em.param(layer, name, "output_dim")
    out = x.shape + (dim,)
    mask_zero = em.param(layer, name, "mask_zero")
    padding = {"padding_idx": 0} if mask_zero else {}  # mask_zero: id 0 is padding
    em.module(name, call("nn.Embedding", em.param(layer, name, "input_dim"), code_of(dim), **padding), x.shape, out)
    mask = None
    if mask_zero and len(x.shape) == 1:  # a sequence of ids: the layers after it skip the padding
        mask = PADDING_MASK
        em.forward(f"{mask} = runtime.masking.padding_mask(x)  # mask_zero: True where the id is 0")
    em.forward(f"x = self.{name}(x.long())")
    return Tensor(out, "last", mask)


PADDING_MASK = "padding"
"""The generated variable of the padding mask ``Embedding(mask_zero=true)`` makes."""


def emit_rnn(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    _require_rank(em, layer, x, 2, "a sequence (steps, features)")
    x = em.to_layout(x, "last")
    features = _concrete(em, layer, x.shape[-1], "number of features")
    units = em.param(layer, name, "units")
    module = {"LSTM": "nn.LSTM", "GRU": "nn.GRU", "SimpleRNN": "nn.RNN"}[layer.type]
    kwargs: dict[str, Any] = {"batch_first": True}
    if layer.type == "SimpleRNN":
        activation = em.param(layer, name, "activation")
        if activation not in ("tanh", "relu"):
            raise em.error(layer, f"activation must be 'tanh' or 'relu' for PyTorch's RNN, got {activation!r}")
        kwargs["nonlinearity"] = activation
    sequences = bool(em.param(layer, name, "return_sequences"))
    width: Dim = units
    if em.param(layer, name, "bidirectional"):
        kwargs["bidirectional"] = True
        width = dim_product((units, 2))
    out = (x.shape[0], width) if sequences else (width,)
    em.module(name, call(module, code_of(features), code_of(units), **kwargs), x.shape, out)
    if x.mask is not None:
        em.forward(f"x = runtime.masking.masked_rnn(self.{name}, x, {x.mask})  # the padded steps skipped")
        if not sequences:
            em.forward(f"x = runtime.masking.last_real_step(x, {x.mask})  # return_sequences=False")
        return Tensor(out, "last", x.mask if sequences else None)
    em.forward(f"x, _ = self.{name}(x)")
    if not sequences:
        em.forward("x = x[:, -1]  # return_sequences=False: the last step only")
    return Tensor(out, "last")


def check_heads(em: "ModelEmitter", layer: "LayerSpec", name: str, heads: int, width: int,
                key_dim: int | None = None) -> None:
    """Every ``num_heads`` the layer may get (its value, or each of its search space) fits
    ``width`` features: divides it, or times ``key_dim`` makes it."""
    options = em.searched(name, "num_heads", heads)
    searched = " (a value of its search space)" if len(options) > 1 else ""
    for option in options:
        if key_dim is None and width % option:
            raise em.shape_error(layer, f"num_heads={option}{searched} must divide its {width} input features")
        if key_dim is not None and option * key_dim != width:
            raise em.shape_error(layer, f"num_heads * key_dim = {option} * {key_dim}{searched} must equal its "
                                        f"{width} input features (PyTorch's attention keeps the width)")


def emit_transformer(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    """TransformerEncoder, and TransformerDecoder as a decoder-only (causal) block: there is
    no encoder output to attend to in one sequence of layers. ``num_layers`` stacks them."""
    _require_rank(em, layer, x, 2, "a sequence (steps, features)")
    x = em.to_layout(x, "last")
    features = _concrete(em, layer, x.shape[-1], "number of features")
    d_model = em.param(layer, name, "d_model")
    if d_model is not None and d_model != value_of(features):
        raise em.shape_error(layer, f"d_model={d_model}, but its input has {value_of(features)} features "
                       f"(put Dense({d_model}) before it, or make d_model match)")
    heads = em.param(layer, name, "num_heads")
    check_heads(em, layer, name, value_of(heads), value_of(features))
    count = em.param(layer, name, "num_layers")
    if layer.children:
        if count != 1:
            raise em.error(layer, "num_layers does not apply to a block with nested layers; repeat it with * N")
        return _emit_transformer_block(em, layer, name, x, features, heads)
    block = call(
        "nn.TransformerEncoderLayer",
        d_model=code_of(features),
        nhead=code_of(heads),
        dim_feedforward=code_of(em.param(layer, name, "ff_dim")),
        dropout=em.param(layer, name, "dropout"),
        activation=_transformer_activation(em, layer, em.param(layer, name, "activation")),
        layer_norm_eps=float(em.param(layer, name, "epsilon")),
        norm_first=em.param(layer, name, "norm_first"),
        bias=em.param(layer, name, "use_bias"),
        batch_first=True,
    )
    stack = block if count == 1 else call("nn.TransformerEncoder", block, count, enable_nested_tensor=False)
    em.module(name, stack, x.shape, x.shape)
    causal = layer.type == "TransformerDecoder" and em.param(layer, name, "use_causal_mask")
    heads_code = f"self.{name}.self_attn.num_heads" if count == 1 else f"self.{name}.layers[0].self_attn.num_heads"
    masks = attention_masks(x, causal, heads_code, mask_keyword=None, padding_keyword="src_key_padding_mask")
    em.forward(f"x = self.{name}({', '.join(['x', *masks])})")
    return x


def attention_masks(x: Tensor, causal: bool, heads: str, *, mask_keyword: str | None,
                    padding_keyword: str) -> list[str]:
    """The generated mask arguments of an attention module called on ``x``: the causal mask
    (as ``mask_keyword=``, or positional), the padding mask (as ``padding_keyword=``), or
    both in one causal mask (``heads``: the generated expression of the module's heads)."""
    def mask(code: object) -> str:
        return f"{code}" if mask_keyword is None else f"{mask_keyword}={code}"

    if x.mask is None:
        return [mask(CAUSAL_MASK), "is_causal=True"] if causal else []
    if causal:
        return [mask(call("runtime.masking.causal_mask", Expr(x.mask), Expr(heads), Expr("x"))), "is_causal=False"]
    return [f"{padding_keyword}={x.mask}"]


CAUSAL_MASK = "nn.Transformer.generate_square_subsequent_mask(x.size(1), device=x.device)"
"""Generated code: the mask that keeps each step from attending to later steps."""


def _emit_transformer_block(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor, features: Dim,
                            heads: Dim) -> Tensor:
    """``TransformerEncoder(...) { layers }``: the nested layers are the feed-forward sub-layer.

    Self-attention and the two residual + LayerNorm steps are PyTorch's encoder layer's
    (post-norm, or pre-norm with ``norm_first``); the block's layers replace its
    Linear-activation-Linear and must keep the ``(steps, features)`` shape.
    """
    if "ff_dim" in layer.params:
        em.shared.warnings.append(f"{em.where(layer)}: ff_dim of TransformerEncoder is unused: its nested "
                                  "layers are the feed-forward sub-layer")
    dropout = em.param(layer, name, "dropout")
    eps = float(em.param(layer, name, "epsilon"))
    size = code_of(features)
    em.module(f"{name}_attention", call("nn.MultiheadAttention", size, code_of(heads), dropout=dropout,
                                        batch_first=True), x.shape, x.shape)
    em.module(f"{name}_norm1", call("nn.LayerNorm", size, eps=eps), x.shape, x.shape)
    em.module(f"{name}_norm2", call("nn.LayerNorm", size, eps=eps), x.shape, x.shape)
    em.module(f"{name}_dropout", call("nn.Dropout", p=dropout), x.shape, x.shape)
    body = em.sub_emitter()
    y = body.to_layout(body.emit_layers(layer.children, x), "last")
    if tuple(value_of(d) for d in y.shape) != tuple(value_of(d) for d in x.shape):
        raise em.error(layer, f"its nested layers (the feed-forward sub-layer) turn {show(x.shape)} into "
                       f"{show(y.shape)}; they must keep the shape")
    norm_first = em.param(layer, name, "norm_first")
    skip = f"{name}_skip"
    masks = attention_masks(x, False, f"self.{name}_attention.num_heads", mask_keyword="attn_mask",
                            padding_keyword="key_padding_mask")
    padding = "".join(f", {mask}" for mask in masks)
    em.comment(f"{name}: TransformerEncoder, its nested layers as the feed-forward sub-layer")
    if norm_first:
        em.forward(f"attended = self.{name}_norm1(x)")
        em.forward(f"attended, _ = self.{name}_attention(attended, attended, attended, need_weights=False{padding})")
        em.forward(f"x = x + self.{name}_dropout(attended)")
        em.forward(f"{skip} = x")
        em.forward(f"x = self.{name}_norm2(x)")
        em.absorb(body)
        em.forward(f"x = {skip} + self.{name}_dropout(x)")
    else:
        em.forward(f"attended, _ = self.{name}_attention(x, x, x, need_weights=False{padding})")
        em.forward(f"x = self.{name}_norm1(x + self.{name}_dropout(attended))")
        em.forward(f"{skip} = x")
        em.absorb(body)
        em.forward(f"x = self.{name}_norm2({skip} + self.{name}_dropout(x))")
    return x


def _transformer_activation(em: "ModelEmitter", layer: "LayerSpec", activation: str | None) -> str:
    if activation not in ("relu", "gelu"):
        raise em.error(layer, f"activation must be 'relu' or 'gelu' for PyTorch's encoder layer, got {activation!r}")
    return activation


def emit_reshape(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    x = em.to_layout(x, "last")
    target = em.param(layer, name, "target_shape")
    target = [target] if isinstance(target, int) else list(target or [])
    sizes = [value_of(d) for d in x.shape]
    if None in sizes or not target or any(t == 0 or t < -1 for t in target) or target.count(-1) > 1:
        raise em.error(layer, f"cannot reshape {show(x.shape)} to {tuple(target)} (fixed sizes, at most one -1)")
    total = math.prod(sizes)  # type: ignore[arg-type]
    known = math.prod(t for t in target if t != -1)
    if -1 in target:
        if total % known:
            raise em.shape_error(layer, f"cannot reshape {total} values to {tuple(target)}")
        target[target.index(-1)] = total // known
    if math.prod(target) != total:
        raise em.error(layer, f"cannot reshape {show(x.shape)} ({total} values) to {tuple(target)}")
    em.comment(f"{name}: Reshape {show(x.shape)} -> {show(tuple(target))}")
    em.forward(f"x = x.reshape(len(x), {', '.join(str(int(t)) for t in target)})")
    return Tensor(tuple(target), "last")


def emit_activation_layer(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    activation = {"ReLU": "relu", "ELU": "elu", "LeakyReLU": "leaky_relu", "Softmax": "softmax"}[layer.type]
    activation = em.head_activation(layer, activation)
    em.comment(f"{name}: {layer.type}, shape {show(x.shape)}")
    _with_activation(em, layer, "x", x, activation)
    return x


def emit_upsampling(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    rank = spatial_rank(layer.type)
    _require_rank(em, layer, x, rank + 1, f"{rank} spatial axes and channels")
    x = em.to_layout(x, "first")
    size = _per_axis(em, layer, "size", em.param(layer, name, "size"), rank)
    out = tuple(None if d is None else value_of(d) * s for d, s in zip(x.shape[:-1], size)) + (x.shape[-1],)
    em.module(name, call("nn.Upsample", scale_factor=tuple(float(s) for s in size), mode="nearest"), x.shape, out)
    em.forward(f"x = self.{name}(x)")
    return Tensor(out, "first")


def emit_zero_padding(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    rank = spatial_rank(layer.type)
    _require_rank(em, layer, x, rank + 1, f"{rank} spatial axes and channels")
    x = em.to_layout(x, "first")
    raw = em.param(layer, name, "padding")
    pairs = [(p, p) for p in _per_axis(em, layer, "padding", raw, rank)]
    flat: list[int] = []
    for before, after in reversed(pairs):
        flat += [before, after]
    out = tuple(None if d is None else value_of(d) + a + b for d, (a, b) in zip(x.shape[:-1], pairs)) + (x.shape[-1],)
    em.module(name, call(f"nn.ConstantPad{rank}d", tuple(flat), 0.0), x.shape, out)
    em.forward(f"x = self.{name}(x)")
    return Tensor(out, "first")


def emit_residual(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    if not layer.children:
        raise em.error(layer, "needs a block of layers: ResidualConnection { ... }")
    body = em.sub_emitter()
    y = body.emit_layers(layer.children, x)
    y = body.to_layout(y, x.layout)
    if len(y.shape) != len(x.shape):
        raise em.error(layer, f"its block turns {show(x.shape)} into {show(y.shape)}; a residual sum needs the same rank")
    em.comment(f"{name}: ResidualConnection, {show(x.shape)} -> {show(y.shape)}")
    skip = f"{name}_skip"  # one variable per block, so nested blocks keep their own
    if all(value_of(a) == value_of(b) for a, b in zip(x.shape, y.shape)):
        em.forward(f"{skip} = x  # identity: the block keeps the shape")
    else:
        em.projection(layer, f"{name}_shortcut", skip, x, y)
    em.absorb(body)
    em.forward(f"x = x + {skip}")
    return y
