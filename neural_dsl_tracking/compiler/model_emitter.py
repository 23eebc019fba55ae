"""Shape inference and the PyTorch ``nn.Module`` emitter.

Walks a network's layers with their per-sample shapes (channels-last, as the DSL writes
them), checks that every layer fits its input, and writes a readable module class with
one named attribute per layer. Sizes and rates are model hyperparameters read from the
run configuration (``hp.dense_1.units``) so Hydra overrides and sweeps reach the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from neural_dsl_tracking.compiler import catalogue
from neural_dsl_tracking.compiler import layers as core
from neural_dsl_tracking.compiler.codegen import CodeWriter, Expr, attr, call, dotted, ident, is_identifier, lit
from neural_dsl_tracking.compiler.hpo import hpo_default, hpo_space, is_hpo
from neural_dsl_tracking.compiler.layers import REQUIRED, TUNABLE_KINDS, Tensor
from neural_dsl_tracking.compiler.locate import Locator, UnsupportedError
from neural_dsl_tracking.compiler.losses import LossPlan
from neural_dsl_tracking.compiler.shapes import Dim, Sym, code_of, same_dim, show, value_of
from neural_dsl_tracking.compiler.summary import LayerEntry
from neural_dsl_tracking.errors import CompileError
from neural_dsl_tracking.language.diagnostics import did_you_mean
from neural_dsl_tracking.language.layers import ENCODINGS, LAYERS as LANGUAGE_LAYERS, MERGE_MODES
from neural_dsl_tracking.language.spec import LayerSpec, ModelSpec

CHOICES = {"encoding": ENCODINGS, "merge_mode": MERGE_MODES}
MAX_CHECKED = 10_000
"""The most values of a searched integer setting checked against its layer's input, one by one."""
"""Parameter kinds that take one of a few strings."""

SEQUENCE_LAYERS = ("LSTM", "GRU", "SimpleRNN", "TransformerEncoder", "TransformerDecoder", "MultiHeadAttention",
                   "Attention", "PositionalEncoding", "Bidirectional")
CONTAINERS = ("ResidualConnection", "TransformerEncoder", "Bidirectional", "TimeDistributed")
"""Layers whose spec has children: nested blocks, and the layer a wrapper wraps."""


@dataclass
class ModelCode:
    """What the emitter produced for one network."""

    class_name: str
    source: str
    """The module class, ready to paste into train.py."""
    hyperparameters: dict[str, dict[str, Any]]
    """Defaults of the ``model:`` config section: layer name -> parameter -> value."""
    kinds: dict[str, dict[str, str]]
    """Layer name -> parameter -> ``width`` or ``rate`` (how the runtime validates it)."""
    hpo: dict[str, dict[str, Any]]
    """Search spaces of HPO layer parameters, keyed ``model.<layer>.<param>``."""
    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]
    input_is_tokens: bool
    """True when the first layer is an Embedding: the program feeds integer token ids."""
    head_activation: str | None
    """``softmax``/``sigmoid`` kept out of ``forward`` because the loss works on logits."""
    summary: list[tuple[str, str, str, str]]
    """(attribute, layer type, input shape, output shape) for every emitted module."""
    warnings: list[str]
    layers: list[LayerEntry]
    """Every layer built, nested ones after their container, for the run's model spec."""


@dataclass
class _Shared:
    """State shared by an emitter and the sub-emitters of nested blocks."""

    locator: Locator
    final_layer: LayerSpec | None
    loss: LossPlan
    init: CodeWriter = field(default_factory=CodeWriter)
    imported: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=dict)
    hp: dict[str, dict[str, Any]] = field(default_factory=dict)
    kinds: dict[str, dict[str, str]] = field(default_factory=dict)
    hpo: dict[str, dict[str, Any]] = field(default_factory=dict)
    resolved: dict[tuple[str, str], Any] = field(default_factory=dict)
    summary: list[tuple[str, str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    head: str | None = None
    layers: list[LayerEntry] = field(default_factory=list)
    open_layers: list[LayerEntry] = field(default_factory=list)
    """The layers being built: the one a declared module belongs to is the last."""


class ModelEmitter:
    """Emits the layers of one network; nested blocks use sub-emitters."""

    def __init__(self, shared: _Shared) -> None:
        self.shared = shared
        self._forward = CodeWriter()

    # ------------------------------------------------------------ walking layers

    def emit_layers(self, layer_specs: list[LayerSpec], x: Tensor) -> Tensor:
        for layer in layer_specs:
            x = self.emit_layer(layer, x)
        return x

    def emit_layer(self, layer: LayerSpec, x: Tensor) -> Tensor:
        """Build one layer, noting it (parameters, shapes, modules) for the run's model spec."""
        entry = LayerEntry(self.next_name(layer.type), layer.type, len(self.shared.open_layers), x.shape)
        self.shared.layers.append(entry)
        self.shared.open_layers.append(entry)
        try:
            out = self._build_layer(layer, x)
        finally:
            self.shared.open_layers.pop()
        entry.output, entry.params = out.shape, self.resolved_params(layer, entry.name)
        return out

    def resolved_params(self, layer: LayerSpec, name: str) -> dict[str, Any]:
        """Every parameter of a built layer: the checked value (an ``hp`` reference for sizes
        and rates) where the layer used it, else as written or its default."""
        params: dict[str, Any] = {}
        for pname, spec in self.buildable(layer).params.items():
            if (name, pname) in self.shared.resolved:
                params[pname] = self.shared.resolved[(name, pname)]
            else:
                raw = layer.params.get(pname, spec.default)
                if raw is not REQUIRED:
                    params[pname] = hpo_default(raw) if is_hpo(raw) else raw
        return params

    def _build_layer(self, layer: LayerSpec, x: Tensor) -> Tensor:
        self.check_layer(layer)
        if layer.device is not None:
            self.shared.warnings.append(
                f"{self.where(layer)}: the placement of {layer.type} on a device is ignored; "
                "the whole model runs on execution.device")
        return self.buildable(layer).emit(self, layer, self.new_name(layer.type), x)

    def check_layer(self, layer: LayerSpec) -> None:
        """The layer is one the emitter builds, with parameters it knows."""
        buildable = catalogue.buildable(layer.type)
        if buildable is None:
            if layer.type not in LANGUAGE_LAYERS:
                raise self.unsupported(layer, "is a custom layer (not a built-in one): no installed plugin "
                                       "provides it, and the PyTorch backend cannot build it; write it with "
                                       "built-in layers" + did_you_mean(layer.type, catalogue.SUPPORTED),
                                       custom_layer=True)
            raise self.unsupported(layer, "is not supported by the PyTorch backend; supported layers: "
                             + ", ".join(catalogue.SUPPORTED) + did_you_mean(layer.type, catalogue.SUPPORTED))
        params = buildable.params
        unknown = sorted(set(layer.params) - set(params))
        if unknown:
            allowed = ", ".join(params) or "no parameters"
            raise self.error(layer, f"has no parameter {unknown[0]!r}; it takes {allowed}"
                             + did_you_mean(unknown[0], list(params)))
        if layer.children and layer.type not in CONTAINERS:
            raise self.error(layer, "has a nested { } block; only ResidualConnection and TransformerEncoder "
                             "take nested layers (write the layers after it instead)")

    def buildable(self, layer: LayerSpec) -> catalogue.Buildable:
        """How to build ``layer`` (checked by :meth:`check_layer`)."""
        found = catalogue.buildable(layer.type)
        assert found is not None, layer.type
        return found

    def new_name(self, layer_type: str) -> str:
        name = self.next_name(layer_type)
        prefix = catalogue.snake_name(layer_type)
        self.shared.counters[prefix] = self.shared.counters.get(prefix, 0) + 1
        return name

    def next_name(self, layer_type: str) -> str:
        """The attribute name :meth:`new_name` gives next to a layer of this type."""
        prefix = catalogue.snake_name(layer_type)
        return ident(f"{prefix}_{self.shared.counters.get(prefix, 0) + 1}").code

    def sub_emitter(self) -> "ModelEmitter":
        return ModelEmitter(self.shared)

    def absorb(self, other: "ModelEmitter") -> None:
        self._forward.extend(other._forward.lines)

    # ------------------------------------------------------------ parameters

    def param(self, layer: LayerSpec, name: str, pname: str) -> Any:
        """A checked parameter value: concrete, or an ``hp`` reference for sizes and rates."""
        key = (name, pname)
        if key in self.shared.resolved:
            return self.shared.resolved[key]
        spec = self.buildable(layer).params[pname]
        raw = layer.params.get(pname, spec.default)
        if raw is REQUIRED:
            raise self.error(layer, f"needs the parameter {pname!r}")
        if raw is None and spec.default is None:
            return None
        space = None
        if is_hpo(raw):
            if spec.kind not in TUNABLE_KINDS:
                raise self.error(layer, f"{pname} cannot be an HPO(...) expression; HPO works on sizes "
                                 "(units, filters, output_dim, num_heads, ff_dim) and rates")
            space = hpo_space(raw)
            raw = hpo_default(raw)
        value = self._check(layer, pname, spec.kind, raw)
        result: Any = value
        if spec.kind in TUNABLE_KINDS:
            self.shared.hp.setdefault(name, {})[pname] = value
            self.shared.kinds.setdefault(name, {})[pname] = spec.kind
            if space is not None:
                self.shared.hpo[f"model.{name}.{pname}"] = space
            reference = attr("hp", name, pname)
            result = Sym(reference, value) if spec.kind == "width" else reference
        self.shared.resolved[key] = result
        return result

    def searched(self, name: str, pname: str, default: Any) -> list[Any]:
        """Every value a search may give ``pname`` of layer ``name`` (read by ``param`` first):
        a choice's options, an integer range's integers (up to ``MAX_CHECKED``); ``[default]``
        when it is not searched or its space is continuous or larger."""
        space = self.shared.hpo.get(f"model.{name}.{pname}")
        if space is None:
            return [default]
        if space["type"] == "choice":
            return list(space["values"])
        low, high = (space["start"], space["stop"]) if space["type"] == "range" else (space["low"], space["high"])
        step = space.get("step") or 1
        if not all(isinstance(v, int) for v in (low, high, step)) or (high - low) // step >= MAX_CHECKED:
            return [default]
        return list(range(low, high + 1, step))

    def _check(self, layer: LayerSpec, pname: str, kind: str, value: Any) -> Any:
        def bad(expected: str) -> CompileError:
            return self.error(layer, f"{pname} must be {expected}, got {value!r}")

        if kind in ("width", "int"):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad("a positive integer")
        elif kind == "rate":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise bad("a number from 0 to below 1")
            value = float(value)
        elif kind == "ints":
            if value is not None and not (
                (isinstance(value, int) and not isinstance(value, bool))
                or (isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
            ):
                raise bad("an integer or a tuple of integers")
        elif kind == "activation":
            if value is not None:
                if not isinstance(value, str) or value.lower() not in core.ACTIVATIONS:
                    raise bad("one of " + ", ".join(core.ACTIVATIONS))
                value = value.lower()
        elif kind == "padding":
            if not isinstance(value, str) or value.lower() not in ("valid", "same"):
                raise bad("'valid' or 'same'")
            value = value.lower()
        elif kind == "bool":
            if not isinstance(value, bool):
                raise bad("true or false")
        elif kind in CHOICES:
            if value not in CHOICES[kind]:
                raise bad("one of " + ", ".join(repr(c) for c in CHOICES[kind]))
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise bad("a positive number")
        elif kind == "unit":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise bad("a number from 0 to 1")
        return value

    # ------------------------------------------------------------ writing code

    def module(self, name: str, constructor: Expr, in_shape: tuple[Dim, ...], out_shape: tuple[Dim, ...]) -> None:
        """Declare ``self.<name> = <constructor>`` in ``__init__`` with a shape comment."""
        layer_type = constructor.code.split("(", 1)[0]
        self.shared.summary.append((name, layer_type, show(in_shape), show(out_shape)))
        if self.shared.open_layers:
            self.shared.open_layers[-1].modules.append(name)
        self.shared.init.comment(f"{name}: {show(in_shape)} -> {show(out_shape)}")
        self.shared.init.assign(attr("self", name), constructor)

    def import_module(self, path: str) -> None:
        """``import <path>`` in ``__init__``, before the first module built from it (once):
        for a plugin layer's own modules, ``em.module(name, call(f"{path}.Scale", 0.5), ...)``."""
        if path not in self.shared.imported:
            self.shared.imported.add(path)
            self.shared.init.line(f"import {dotted(path).code}")

    def buffer(self, name: str, value: Expr) -> None:
        """``self.<name>``: a constant tensor of the module (moves with it, is not trained)."""
        self.shared.init.line(f"self.register_buffer({lit(name).code}, {value.code}, persistent=False)")

    def forward(self, code: str) -> None:
        self._forward.line(code)

    def comment(self, text: str) -> None:
        self._forward.comment(text)

    def to_layout(self, x: Tensor, layout: str) -> Tensor:
        """Move the channel axis if the next layer wants the other layout."""
        if x.layout == layout:
            return x
        if len(x.shape) > 1:
            if layout == "first":
                self.forward("x = x.movedim(-1, 1)  # channels-last -> channels-first")
            else:
                self.forward("x = x.movedim(1, -1)  # channels-first -> channels-last")
        return replace(x, layout=layout)

    def padding(self, name: str, layer: LayerSpec, x: Tensor, pairs: list[tuple[int, int]], rank: int,
                value: float) -> tuple[int, ...] | None:
        """Symmetric padding as a tuple for the layer itself; asymmetric as a pad module."""
        if all(before == after for before, after in pairs):
            return tuple(before for before, _ in pairs) if any(b for b, _ in pairs) else None
        flat: list[int] = []
        for before, after in reversed(pairs):  # F.pad order: last axis first
            flat += [before, after]
        fill = Expr("float('-inf')") if math.isinf(value) else lit(value)
        pad_name = f"{name}_pad"
        self.module(pad_name, call(f"nn.ConstantPad{rank}d", tuple(flat), fill), x.shape, x.shape)
        self.forward(f"x = self.{pad_name}(x)  # padding='same' needs uneven padding here")
        return None

    def activation_code(self, activation: str | None, inner: Expr, x: Tensor, layer: LayerSpec,
                        alpha: float | None = None) -> Expr:
        """``inner`` through ``activation``; ``alpha`` is leaky_relu's slope or elu's scale."""
        function = core.ACTIVATIONS.get(activation) if activation else None
        if function is None:
            return inner
        if activation in ("softmax", "log_softmax"):
            axis = 1 if x.layout == "first" and len(x.shape) > 1 else -1
            return call(function, inner, dim=axis)
        if activation == "leaky_relu":
            return call(function, inner, 0.2 if alpha is None else alpha)
        return call(function, inner) if alpha is None else call(function, inner, alpha)

    def head_activation(self, layer: LayerSpec, activation: str | None) -> str | None:
        """The final layer's softmax/sigmoid is left to the loss (which takes logits)."""
        if layer is self.shared.final_layer and activation is not None and self.shared.loss.strips(activation):
            self.shared.head = activation
            return None
        return activation

    def projection(self, layer: LayerSpec, name: str, skip: str, x: Tensor, y: Tensor) -> None:
        """``skip = self.<name>(x)``: a learned shortcut from shape ``x`` to ``y``."""
        in_channels, out_channels = x.shape[-1], y.shape[-1]
        if in_channels is None or out_channels is None:
            raise self.error(layer, "cannot project a dynamic channel axis for its shortcut")
        spatial_in, spatial_out = x.shape[:-1], y.shape[:-1]
        if all(same_dim(a, b) for a, b in zip(spatial_in, spatial_out)):
            self.module(name, call("nn.Linear", code_of(in_channels), code_of(out_channels)), x.shape, y.shape)
            if x.layout == "first" and len(x.shape) > 1:
                self.forward(f"{skip} = self.{name}(x.movedim(1, -1)).movedim(-1, 1)  # projection")
            else:
                self.forward(f"{skip} = self.{name}(x)  # projection to the block's output shape")
            return
        strides = []
        for a, b in zip(spatial_in, spatial_out):
            a_value, b_value = value_of(a), value_of(b)
            stride = None if a_value is None or b_value is None else -(-a_value // b_value)
            if stride is None or stride < 1 or -(-a_value // stride) != b_value:  # type: ignore[operator]
                raise self.error(layer, f"its block turns {show(x.shape)} into {show(y.shape)}; "
                                 "a shortcut projection can only subsample by a whole stride")
            strides.append(stride)
        rank = len(spatial_in)
        if rank > 3:
            raise self.error(layer, f"cannot project a shortcut over {rank} spatial axes")
        module = call(f"nn.Conv{rank}d", code_of(in_channels), code_of(out_channels), kernel_size=1, stride=tuple(strides))
        self.module(name, module, x.shape, y.shape)
        if x.layout == "first":
            self.forward(f"{skip} = self.{name}(x)  # 1x1 projection to the block's output shape")
        else:
            self.forward(f"{skip} = self.{name}(x.movedim(-1, 1)).movedim(1, -1)  # 1x1 projection")

    # ------------------------------------------------------------ errors

    def where(self, layer: LayerSpec) -> str:
        """``file:line:col`` of a layer, for warnings."""
        return self.shared.locator.at(layer.pos)

    def error(self, layer: LayerSpec, message: str) -> CompileError:
        """``file:line:col: layer T: message``, the layer's line and a caret under its name."""
        return self.shared.locator.error(layer.pos, f"layer {layer.type}: {message}")

    def shape_error(self, layer: LayerSpec, message: str) -> CompileError:
        """:meth:`error` for a shape that does not fit, giving the incoming shape of the
        layer being built."""
        incoming = self.shared.open_layers[-1].input if self.shared.open_layers else None
        return self.error(layer, message if incoming is None else f"{message} (its input is {show(incoming)})")

    def unsupported(self, layer: LayerSpec, message: str, *, custom_layer: bool = False) -> UnsupportedError:
        """:meth:`error` for valid Neural DSL this backend cannot build (``neural check`` notes it)."""
        return self.shared.locator.unsupported(layer.pos, f"layer {layer.type}: {message}", custom_layer=custom_layer)


def _needed_rank(layer: LayerSpec) -> int | None:
    if layer.type == "ResidualConnection" and layer.children:
        return _needed_rank(layer.children[0])
    if layer.type in SEQUENCE_LAYERS:
        return 2
    if layer.type in catalogue.TABLE and ("Conv" in layer.type or "Pooling" in layer.type):
        return core.spatial_rank(layer.type) + 1
    return None


def input_tensor(spec: ModelSpec, locator: Locator) -> tuple[Tensor, bool]:
    """The per-sample input shape, read the way Neural DSL files write it.

    A leading ``None`` is Keras' batch axis and is dropped, unless the first layer needs
    that axis (``(None, 512)`` before a TransformerEncoder is a dynamic-length sequence).
    Before an Embedding, a last axis equal to its ``output_dim`` describes the embedded
    sequence (``(100, 300)`` then ``Embedding(10000, 300)``): the program takes ids ``(100,)``.
    """
    shape = list(spec.input.shape)
    if len(spec.input.named) > 1:
        raise locator.unsupported(spec.input.pos, f"network {spec.name} has {len(spec.input.named)} named inputs "
                                  f"(input: {{ {', '.join(spec.input.named)} }}); the compiler builds networks "
                                  "with one input (write input: (...))")
    if not shape:
        raise locator.error(spec.input.pos, f"the input shape of {spec.name} is empty")
    first = spec.layers[0] if spec.layers else None
    if shape[0] is None and len(shape) >= 2:
        needed = _needed_rank(first) if first else None
        if needed is None or len(shape) - 1 >= needed:
            shape = shape[1:]
    tokens = first is not None and first.type == "Embedding"
    if tokens and len(shape) >= 2 and shape[-1] == first.params.get("output_dim"):  # type: ignore[union-attr]
        shape = shape[:-1]
    for dim in shape:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise locator.error(spec.input.pos, f"input dimensions must be positive integers or None, "
                                f"got {spec.input.shape}")
    return Tensor(tuple(shape), "last"), tokens


def emit_model(spec: ModelSpec, locator: Locator, loss: LossPlan) -> ModelCode:
    """Infer shapes and write the ``nn.Module`` class for ``spec``; messages point into ``locator``'s source."""
    class_name = ident(spec.name).code if _is_class_name(spec.name) else None
    if class_name is None:
        raise locator.error(spec.pos, f"network name {spec.name!r} is not a valid Python class name")
    if not spec.layers:
        raise locator.error(spec.pos, f"network {spec.name} has no layers")
    x, tokens = input_tensor(spec, locator)
    shared = _Shared(locator=locator, final_layer=spec.layers[-1], loss=loss)
    root = ModelEmitter(shared)
    if tokens:
        root.comment("the input holds integer token ids")
    out = root.emit_layers(spec.layers, x)
    out = root.to_layout(out, "last")
    output_shape = tuple(value_of(d) for d in out.shape)
    input_shape = tuple(value_of(d) for d in x.shape)
    loss.check_output(output_shape, shared.head)

    writer = CodeWriter()
    with writer.block(f"class {class_name}(nn.Module)"):
        writer.line(lit(f"The {class_name} network: input {show(x.shape)} (channels-last), "
                        f"output {show(out.shape)}.").code)
        writer.line()
        writer.assign("input_shape", tuple(input_shape))
        writer.assign("output_shape", tuple(output_shape))
        writer.assign("head_activation", shared.head)
        writer.line()
        with writer.block("def __init__(self, hp: SimpleNamespace) -> None"):
            writer.line("super().__init__()")
            writer.extend(shared.init.lines)
        writer.line()
        with writer.block("def forward(self, x: torch.Tensor) -> torch.Tensor"):
            if shared.head:
                writer.comment(f"returns logits: the loss applies the final {shared.head}, predict() too")
            writer.extend(root._forward.lines)
            writer.line("return x")
        writer.line()
        with writer.block("def predict(self, x: torch.Tensor) -> torch.Tensor"):
            writer.line(lit("Model outputs as the network declares them (probabilities for a softmax head).").code)
            if shared.head == "softmax":
                writer.line("return torch.softmax(self(x), dim=-1)")
            elif shared.head == "sigmoid":
                writer.line("return torch.sigmoid(self(x))")
            else:
                writer.line("return self(x)")
    return ModelCode(
        class_name=class_name,
        source=writer.text(),
        hyperparameters=shared.hp,
        kinds=shared.kinds,
        hpo=shared.hpo,
        input_shape=input_shape,
        output_shape=output_shape,
        input_is_tokens=tokens,
        head_activation=shared.head,
        summary=shared.summary,
        layers=shared.layers,
        warnings=shared.warnings,
    )


def _is_class_name(name: str) -> bool:
    return is_identifier(name) and name not in {"nn", "torch", "F", "SimpleNamespace", "Path", "hydra"}
