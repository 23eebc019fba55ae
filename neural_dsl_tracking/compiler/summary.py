"""The model as part of the run: a normalised spec of the network and its fingerprint.

At compile time the emitter notes every layer it builds (:class:`LayerEntry`: type, nesting
depth, resolved parameters, per-sample shapes, the modules it declared) and
:func:`layers_function` writes them into ``train.py`` as ``model_layers(hp)``, whose sizes
and rates read the run's ``model`` section. At run start :func:`describe_model` completes
that list from the instantiated network (exact parameter counts per layer, an estimate of
multiply-accumulates per sample) and :func:`fingerprint` hashes what decides the run's
results. ``torch`` is imported only by the run-time functions.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from neural_dsl_tracking.compiler.codegen import CodeWriter, Expr, lit, mapping
from neural_dsl_tracking.compiler.shapes import Dim, Sym

LAYER_FACTS = ("type", "depth", "params", "input", "output")
"""What makes two layers the same computation: what the fingerprint hashes of each layer."""
CORE_NEUTRAL_SECTIONS = ("hpo",)
"""The core's config sections that cannot change a run's results (the search spaces); plugins
say the same of theirs with ``Plugin.changes_results``."""
STACK = ("torch", "numpy", "neural-dsl-tracking")
"""Distributions whose versions are part of a fingerprint."""
SKIP_IF_DONE_ENV = "NEURAL_SKIP_IF_DONE"
"""Set (by ``neural run --skip-if-done``): a run whose fingerprint a completed run has is not trained."""
_HASH_CHUNK = 1 << 20


# ---------------------------------------------------------------- compile time


@dataclass
class LayerEntry:
    """One layer as the emitter built it; shapes are channels-last, as the DSL writes them."""

    name: str
    type: str
    depth: int
    input: tuple[Dim, ...]
    output: tuple[Dim, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    """Parameter -> literal value, or the ``hp.<layer>.<param>`` expression of a tunable one."""
    modules: list[str] = field(default_factory=list)
    """The module attributes this layer declared (not those of its nested layers)."""


def _dim_code(dim: Dim) -> str:
    return dim.expr.code if isinstance(dim, Sym) else repr(dim)


def _shape_code(shape: tuple[Dim, ...]) -> Expr:
    inner = ", ".join(_dim_code(d) for d in shape)
    return Expr(f"({inner},)" if len(shape) == 1 else f"({inner})")


def _param_code(value: Any) -> Expr:
    if isinstance(value, Sym):
        return value.expr
    return value if isinstance(value, Expr) else lit(value)


def layers_function(layers: list[LayerEntry]) -> list[str]:
    """Lines of ``def model_layers(hp)``: each layer with the run's parameters and shapes."""
    out = CodeWriter()
    with out.block("def model_layers(hp: SimpleNamespace) -> list[dict]"):
        out.line(lit("The network's layers with this run's parameters and per-sample shapes "
                     "(channels-last), for the run's model spec.").code)
        out.line("return [")
        for entry in layers:
            out.line("    {")
            for part in ({"name": entry.name, "type": entry.type, "depth": entry.depth, "modules": entry.modules},
                         {"params": mapping({k: _param_code(v) for k, v in entry.params.items()})},
                         {"input": _shape_code(entry.input), "output": _shape_code(entry.output)}):
                out.line(f"        {mapping(part).code[1:-1]},")
            out.line("    },")
        out.line("]")
    return out.lines


# ---------------------------------------------------------------- run time


def describe_model(model: Any, layers: list[dict[str, Any]], length: int, tokens: int | None) -> dict[str, Any]:
    """The normalised spec of a built network (``layers`` from its program's ``model_layers``):
    each layer's parameter count (exact, from its modules) and multiply-accumulates per sample
    (estimated from one sample run through the network; ``length`` stands for dynamic sizes)."""
    macs = _macs_per_module(model, length, tokens)
    rows, total_macs = [], 0
    for layer in layers:
        modules = [getattr(model, name) for name in layer["modules"]]
        row = {key: value for key, value in layer.items() if key != "modules"}
        row["input"], row["output"] = list(layer["input"]), list(layer["output"])
        row["param_count"] = sum(p.numel() for m in modules for p in m.parameters())
        row["macs"] = sum(macs.get(id(sub), 0) for m in modules for sub in m.modules())
        total_macs += row["macs"]
        rows.append(row)
    return {"network": type(model).__name__, "input": list(model.input_shape), "output": list(model.output_shape),
            "params": sum(p.numel() for p in model.parameters()), "macs": total_macs, "layers": rows}


def _macs_per_module(model: Any, length: int, tokens: int | None) -> dict[int, int]:
    """``{id(module): multiply-accumulates}`` of the modules one sample went through."""
    import torch

    found: dict[int, int] = {}
    inside_attention = {id(sub) for m in model.modules() if isinstance(m, torch.nn.MultiheadAttention)
                        for sub in m.modules() if sub is not m}

    def hook(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        found[id(module)] = found.get(id(module), 0) + module_macs(module, [*args, *kwargs.values()], output)

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in model.modules()
               if id(m) not in inside_attention]
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    shape = (1, *(length if d is None else d for d in model.input_shape))
    # token id 1: a real token (0 may be padding, which masked layers skip)
    sample = torch.ones(shape, dtype=torch.long, device=device) if tokens is not None else torch.zeros(shape, device=device)
    training, fastpath = model.training, torch.backends.mha.get_fastpath_enabled()
    try:
        torch.backends.mha.set_fastpath_enabled(False)  # the fused path skips the sub-modules' hooks
        model.eval()
        with torch.no_grad():
            model(sample)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model.train(training)
        for handle in handles:
            handle.remove()
    return found


def module_macs(module: Any, inputs: list[Any], output: Any) -> int:
    """Multiply-accumulates of one call of a PyTorch module on one sample: dense and
    convolution weights, recurrent gates, attention projections and products; 0 for the
    rest (normalisation, activations, pooling, lookups)."""
    from torch import nn

    first = inputs[0] if inputs else None
    result = output[0] if isinstance(output, tuple) else output
    if isinstance(module, nn.Linear):
        return result.numel() * module.in_features
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return first.numel() * module.out_channels // module.groups * math.prod(module.kernel_size)
    if isinstance(module, nn.modules.conv._ConvNd):
        return result.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)
    if isinstance(module, nn.RNNBase):
        return _recurrent_macs(module, first)
    if isinstance(module, nn.RNNCellBase):
        gates = {nn.LSTMCell: 4, nn.GRUCell: 3}.get(type(module), 1)
        return gates * module.hidden_size * (module.input_size + module.hidden_size) * max(1, first.numel() // module.input_size)
    if isinstance(module, nn.MultiheadAttention):
        return _attention_macs(module, inputs)
    return 0


def _recurrent_macs(module: Any, first: Any) -> int:
    from torch import nn

    gates = {nn.LSTM: 4, nn.GRU: 3}.get(type(module), 1)
    if isinstance(first, nn.utils.rnn.PackedSequence):  # the real steps of a masked sequence
        steps = first.data.shape[0]
    else:
        steps = first.shape[1] if module.batch_first and first.dim() == 3 else first.shape[0]
    directions = 2 if module.bidirectional else 1
    total, size = 0, module.input_size
    for _ in range(module.num_layers):
        total += directions * gates * module.hidden_size * (size + module.hidden_size)
        size = module.hidden_size * directions
    return total * steps


def _attention_macs(module: Any, inputs: list[Any]) -> int:
    """Query, key, value and output projections plus the two attention products."""
    query, key = inputs[0], inputs[1] if len(inputs) > 1 else inputs[0]
    axis = 1 if module.batch_first else 0
    targets, sources, width = query.shape[axis], key.shape[axis], module.embed_dim
    kdim, vdim = module.kdim, module.vdim
    projections = targets * width * width * 2 + sources * width * (kdim + vdim)
    return projections + 2 * targets * sources * width


def fingerprint(spec: dict[str, Any], composed: dict[str, Any], launch_dir: Path) -> str:
    """SHA-256 of what decides a run's results: the model (types, parameters, shapes), the
    config without the settings that cannot change results, the data source's identity (its
    file's content for ``npz``) and the versions of the training stack."""
    model = {"input": spec["input"], "output": spec["output"],
             "layers": [{k: layer[k] for k in LAYER_FACTS}
                        for layer in spec["layers"]]}
    neutral = {*CORE_NEUTRAL_SECTIONS, "data", *neutral_plugin_sections()}
    config = {key: value for key, value in composed.items() if key not in neutral}
    facts = {"model": model, "config": config, "data": data_identity(composed.get("data") or {}, launch_dir),
             "versions": {name: _version(name) for name in STACK}}
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def neutral_plugin_sections() -> list[str]:
    """The config sections of installed plugins whose settings cannot change results."""
    from neural_dsl_tracking.plugins import discover_plugins

    return [keyword for keyword, plugin in discover_plugins().items() if not plugin.changes_results]


def data_identity(section: dict[str, Any], launch_dir: Path) -> dict[str, Any]:
    """The data source's name and settings; for ``npz``, the SHA-256 of the file instead of its path."""
    identity = dict(section)
    if section.get("name") == "npz" and section.get("path"):
        path = Path(str(section["path"])).expanduser()
        identity.pop("path")
        identity["sha256"] = _file_sha256(path if path.is_absolute() else launch_dir / path)
    return identity


def _file_sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError:
        return None  # the data source reports a missing file itself
    return digest.hexdigest()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
