"""Emitters of the layers the original Neural DSL's docs use beyond the core ones:
attention and positional encoding, recurrent cells, the Bidirectional and TimeDistributed
wrappers, depthwise and separable convolutions, instance norm, cropping, Permute and
RepeatVector; and the layers no sequential network can build (merges, Lambda), which are
compile errors that say why. Same contract as :mod:`neural_dsl_tracking.compiler.layers`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from neural_dsl_tracking.compiler.codegen import attr, call
from neural_dsl_tracking.compiler.layers import (
    Tensor,
    _concrete,
    _per_axis,
    _require_rank,
    _with_activation,
    attention_masks,
    check_heads,
    conv_window,
    spatial_rank,
)
from neural_dsl_tracking.compiler.shapes import code_of, dim_product, show, value_of
from neural_dsl_tracking.language.layers import RECURRENT_LAYERS

if TYPE_CHECKING:
    from neural_dsl_tracking.compiler.model_emitter import ModelEmitter
    from neural_dsl_tracking.language.spec import LayerSpec

def _sequence(em: "ModelEmitter", layer: "LayerSpec", x: Tensor) -> tuple[Tensor, Any]:
    """``x`` as a channels-last sequence and its (fixed) number of features."""
    _require_rank(em, layer, x, 2, "a sequence (steps, features)")
    x = em.to_layout(x, "last")
    return x, _concrete(em, layer, x.shape[-1], "number of features")


def emit_multi_head_attention(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    """Self-attention over the sequence; ``num_heads * key_dim`` must be its width."""
    x, features = _sequence(em, layer, x)
    heads = em.param(layer, name, "num_heads")
    key_dim = em.param(layer, name, "key_dim")
    check_heads(em, layer, name, value_of(heads), value_of(features), key_dim)
    em.module(name, call("nn.MultiheadAttention", code_of(features), code_of(heads),
                         dropout=em.param(layer, name, "dropout"), bias=em.param(layer, name, "use_bias"),
                         batch_first=True), x.shape, x.shape)
    masks = attention_masks(x, em.param(layer, name, "use_causal_mask"), f"self.{name}.num_heads", mask_keyword="attn_mask",
                            padding_keyword="key_padding_mask")
    em.forward(f"x, _ = self.{name}({', '.join(['x', 'x', 'x', 'need_weights=False', *masks])})")
    return x


def emit_attention(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    """Keras' ``Attention`` on one sequence: unscaled dot-product self-attention, no weights."""
    x, _ = _sequence(em, layer, x)
    rate = em.param(layer, name, "dropout")
    causal = bool(em.param(layer, name, "use_causal_mask"))
    em.shared.init.assign(attr("self", f"{name}_dropout"), rate)
    em.comment(f"{name}: Attention (dot-product self-attention), shape {show(x.shape)}")
    mask = f"is_causal={causal!r}"
    if x.mask is not None:  # the padded steps are not attended to
        mask = f"attn_mask=runtime.masking.attention_mask({x.mask}, causal={causal!r})"
    em.forward(f"x = F.scaled_dot_product_attention(x, x, x, dropout_p=self.{name}_dropout if self.training "
               f"else 0.0, {mask}, scale=1.0)")
    return x


def emit_positional_encoding(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    """Adds a sinusoidal (fixed) or learned position vector to each step."""
    x, features = _sequence(em, layer, x)
    steps = value_of(x.shape[0])
    max_len = em.param(layer, name, "max_len")
    if max_len is None:
        if steps is None:
            raise em.shape_error(layer, "needs max_len for a sequence of dynamic length")
        max_len = steps
    elif steps is not None and steps > max_len:
        raise em.shape_error(layer, f"max_len={max_len} is shorter than its input's {steps} steps")
    if em.param(layer, name, "encoding_type") == "learned":
        em.module(name, call("nn.Embedding", max_len, code_of(features)), x.shape, x.shape)
        em.forward(f"x = x + self.{name}(torch.arange(x.size(1), device=x.device))")
    else:
        em.buffer(name, call("runtime.sinusoidal_encoding", max_len, code_of(features)))
        em.forward(f"x = x + self.{name}[: x.size(1)]")
    return x


def emit_cell(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    """LSTMCell / GRUCell: one step, ``(features,)`` -> ``(units,)``, from a zero state."""
    _require_rank(em, layer, x, 1, "one step (features,)")
    x = em.to_layout(x, "last")
    features = _concrete(em, layer, x.shape[-1], "number of features")
    units = em.param(layer, name, "units")
    module = "nn.LSTMCell" if layer.type == "LSTMCell" else "nn.GRUCell"
    em.module(name, call(module, code_of(features), code_of(units), bias=em.param(layer, name, "use_bias")),
              x.shape, (units,))
    em.forward(f"x, _ = self.{name}(x)" if layer.type == "LSTMCell" else f"x = self.{name}(x)")
    return Tensor((units,), "last")


def _wrapped(em: "ModelEmitter", layer: "LayerSpec") -> "LayerSpec":
    if len(layer.children) != 1:
        raise em.error(layer, f"wraps one layer: {layer.type}(LSTM(64))")
    return layer.children[0]


def emit_bidirectional(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    """``Bidirectional(LSTM(64))``: the recurrent layer run both ways, merged by merge_mode."""
    inner = _wrapped(em, layer)
    if inner.type not in RECURRENT_LAYERS:
        raise em.error(layer, f"wraps a recurrent layer ({', '.join(RECURRENT_LAYERS)}), not {inner.type}")
    inner = inner.model_copy(update={"params": {**inner.params, "bidirectional": True}})
    inner_name = em.next_name(inner.type)
    y = em.emit_layer(inner, x)  # checked, built as a recurrent layer, noted as the wrapper's nested layer
    mode = em.param(layer, name, "merge_mode")
    if mode == "concat":
        return y
    units = em.param(inner, inner_name, "units")
    combine = {"sum": "forward + backward", "ave": "(forward + backward) / 2", "mul": "forward * backward"}[mode]
    em.forward("forward, backward = x.chunk(2, dim=-1)")
    em.forward(f"x = {combine}  # merge_mode={mode!r}")
    return replace(y, shape=y.shape[:-1] + (units,))


def emit_time_distributed(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    """The wrapped layer applied to every step: steps are folded into the batch and back."""
    inner = _wrapped(em, layer)
    if len(x.shape) < 2:
        raise em.error(layer, f"expects steps and at least one more axis, but its input is {show(x.shape)}")
    x = em.to_layout(x, "last")
    if em.shared.final_layer is layer:  # the wrapped layer's softmax/sigmoid is the head
        em.shared.final_layer = inner
    em.comment(f"{name}: TimeDistributed {inner.type} over {show(x.shape[:1])} steps")
    em.forward(f"{name}_steps = x.size(1)")
    em.forward("x = x.flatten(0, 1)")
    y = em.to_layout(em.emit_layer(inner, Tensor(x.shape[1:], "last")), "last")
    em.forward(f"x = x.unflatten(0, (-1, {name}_steps))")
    return replace(x, shape=x.shape[:1] + y.shape)  # the same steps, and their padding mask


def emit_depthwise_conv(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    """DepthwiseConv2D (one filter set per channel) and SeparableConv (that, then a 1x1 conv)."""
    rank = spatial_rank(layer.type)
    _require_rank(em, layer, x, rank + 1, f"{rank} spatial axes and channels")
    x = em.to_layout(x, "first")
    channels = _concrete(em, layer, x.shape[-1], "number of channels")
    depth = dim_product((channels, em.param(layer, name, "depth_multiplier")))
    kwargs, out_sizes = conv_window(em, layer, name, x, rank)
    separable = layer.type.startswith("Separable")
    use_bias = em.param(layer, name, "use_bias")
    depthwise = call(f"nn.Conv{rank}d", code_of(channels), code_of(depth), groups=code_of(channels),
                     **kwargs, bias=not separable and use_bias)
    spatial = tuple(out_sizes)
    if not separable:
        out = spatial + (depth,)
        em.module(name, depthwise, x.shape, out)
        code = f"self.{name}(x)"
    else:
        filters = em.param(layer, name, "filters")
        out = spatial + (filters,)
        em.module(f"{name}_depthwise", depthwise, x.shape, spatial + (depth,))
        em.module(name, call(f"nn.Conv{rank}d", code_of(depth), code_of(filters), 1, bias=use_bias),
                  spatial + (depth,), out)
        code = f"self.{name}(self.{name}_depthwise(x))"
    activation = em.head_activation(layer, em.param(layer, name, "activation"))
    _with_activation(em, layer, code, Tensor(out, "first"), activation)
    return Tensor(out, "first")


def emit_instance_norm(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    rank = len(x.shape) - 1
    if not 1 <= rank <= 3:
        raise em.error(layer, f"expects 1 to 3 spatial axes and channels, got {show(x.shape)}")
    x = em.to_layout(x, "first")
    channels = _concrete(em, layer, x.shape[-1], "number of channels")
    em.module(name, call(f"nn.InstanceNorm{rank}d", code_of(channels), eps=float(em.param(layer, name, "epsilon")),
                         affine=True), x.shape, x.shape)
    em.forward(f"x = self.{name}(x)")
    return x


def emit_cropping(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    """Cropping1D/2D/3D: the same number of cells off both ends of each spatial axis."""
    rank = spatial_rank(layer.type)
    _require_rank(em, layer, x, rank + 1, f"{rank} spatial axes and channels")
    x = em.to_layout(x, "first")
    crops = _per_axis_counts(em, layer, em.param(layer, name, "cropping"), rank)
    spatial = tuple(None if d is None else value_of(d) - 2 * c for d, c in zip(x.shape[:-1], crops))
    if any(d is not None and d < 1 for d in spatial):
        raise em.error(layer, f"cropping {crops} leaves nothing of its input {show(x.shape)}")
    out = spatial + (x.shape[-1],)
    slices = ", ".join(f"{c}:-{c}" if c else ":" for c in crops)
    em.comment(f"{name}: {layer.type} {show(x.shape)} -> {show(out)}")
    em.forward(f"x = x[:, :, {slices}]")
    return Tensor(out, "first")


def _per_axis_counts(em: "ModelEmitter", layer: "LayerSpec", value: Any, rank: int) -> tuple[int, ...]:
    values = [value] * rank if isinstance(value, int) else list(value)
    if len(values) != rank or not all(isinstance(v, int) and v >= 0 for v in values):
        raise em.error(layer, f"cropping must be an integer >= 0 or {rank} of them, got {value!r}")
    return tuple(values)


def emit_permute(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    """``Permute((2, 1))``: reorders the axes of each sample (numbered from 1, as in Keras)."""
    x = em.to_layout(x, "last")
    dims = list(em.param(layer, name, "dims"))
    if sorted(dims) != list(range(1, len(x.shape) + 1)):
        raise em.error(layer, f"dims must order the axes 1 to {len(x.shape)} of its input {show(x.shape)}, "
                       f"got {tuple(dims)}")
    out = tuple(x.shape[d - 1] for d in dims)
    em.comment(f"{name}: Permute {show(x.shape)} -> {show(out)}")
    em.forward(f"x = x.permute(0, {', '.join(str(d) for d in dims)})")
    return Tensor(out, "last")


def emit_repeat_vector(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    """``RepeatVector(n)``: ``(features,)`` -> ``(n, features)``."""
    _require_rank(em, layer, x, 1, "a vector (features,)")
    n = em.param(layer, name, "n")
    em.comment(f"{name}: RepeatVector {n}")
    em.forward(f"x = x.unsqueeze(1).repeat(1, {n}, 1)")
    return Tensor((n,) + x.shape, "last")


def emit_merge(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    raise em.unsupported(layer, "merges several branches, but a network here is one sequence of layers; "
                   "for x + f(x) write ResidualConnection { ... }")


def emit_lambda(em: "ModelEmitter", layer: "LayerSpec", name: str, x: Tensor) -> Tensor:
    raise em.unsupported(layer, "its code string is never run or copied into the generated program; "
                   "write the operation with built-in layers")
