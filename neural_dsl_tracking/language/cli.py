"""``neural check FILE...``: parse and validate `.neural` files.

Per file it prints a short summary (networks, layer count after expansion, plugin
settings with defaults filled) or the errors; the exit code is 0 when every file is
valid, 1 otherwise. ``--json`` prints the full spec instead. The parser is imported
only when the command runs, so ``neural --help`` stays instant.

The language stage cannot see the compiler (the pipeline runs one way), so the command is
registered by the compiler stage (``compiler.cli``), which passes its own checks as
``verify``: run on each parsed file, they return lines to print or raise ``NeuralError``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from neural_dsl_tracking.dotted import flatten
from neural_dsl_tracking.errors import NeuralError


Verify = Callable[[Any], list[str]]
"""Further checks of a parsed file (a ``NeuralFile``): lines to print, or ``NeuralError``."""


def register(subparsers: argparse._SubParsersAction, verify: Verify | None = None) -> None:
    """Add the ``check`` command; ``verify`` runs on each file that parses."""
    parser = subparsers.add_parser(
        "check",
        help="parse and validate .neural files",
        description="Parse and validate .neural files: a summary per file, or the errors "
        "with file:line:col. Exit code 0 when every file is valid, 1 otherwise.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help=".neural file(s) to check")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the full spec as JSON, defaults filled (one object per file; an array "
        "when several files are given)",
    )
    parser.set_defaults(func=run_check, verify=verify)


def run_check(args: argparse.Namespace) -> int:
    from neural_dsl_tracking.language import parse_file
    from neural_dsl_tracking.language.spec import to_jsonable

    for stream in (sys.stdout, sys.stderr):  # names from the file must print on any locale
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    failed = 0
    specs: list[dict[str, Any]] = []
    for path in args.files:
        try:
            parsed = parse_file(path)
        except NeuralError as error:
            failed += 1
            print(f"error: {error}", file=sys.stderr)
            continue
        for note in custom_layer_notes(parsed):
            print(note, file=sys.stderr)
        for warning in parsed.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        try:
            verified = args.verify(parsed) if args.verify else []
        except NeuralError as error:
            failed += 1
            print(f"error: {error}", file=sys.stderr)
            continue
        for line in verified:
            print(line, file=sys.stderr)
        if args.json:
            specs.append(to_jsonable(parsed))
        else:
            print(summarize(parsed))
    if args.json and specs:
        print(json.dumps(specs[0] if len(args.files) == 1 else specs, indent=2))
    if len(args.files) > 1 and not args.json:
        print(f"{len(args.files) - failed} of {len(args.files)} files valid")
    return 1 if failed else 0


def _dims(shape: list[int | None]) -> str:
    return ", ".join("None" if d is None else str(d) for d in shape)


def custom_layer_notes(parsed: Any) -> list[str]:
    """A note for each layer that is neither built in nor provided by a plugin: taken as a
    custom layer."""
    from neural_dsl_tracking.language.diagnostics import did_you_mean
    from neural_dsl_tracking.language.layers import LAYERS, plugin_layer_infos
    from neural_dsl_tracking.plugins import discover_plugins

    notes: list[str] = []
    pending = [layer for net in parsed.networks for layer in net.layers]
    while pending:
        layer = pending.pop(0)
        pending.extend(layer.children)
        if layer.type not in LAYERS and layer.type not in plugin_layer_infos(discover_plugins()):
            where = layer.pos.at(str(parsed.path)) if layer.pos else str(parsed.path)
            notes.append(f"note: {where}: '{layer.type}' is not a built-in layer: taken as a custom "
                         f"layer, which neural compile cannot build{did_you_mean(layer.type, LAYERS)}")
    return notes


def summarize(parsed: Any) -> str:
    """A few lines per file: each network, its layers, training and plugin settings."""
    from neural_dsl_tracking.language.layer_expansion import layer_count

    count = len(parsed.networks)
    lines = [f"{parsed.path}: ok, {count} network{'s' if count != 1 else ''}"]
    for net in parsed.networks:
        shapes = net.input.named or {"": net.input.shape}
        shape = ", ".join(f"{name}{' ' if name else ''}({_dims(dims)})" for name, dims in shapes.items())
        total = layer_count(net.layers)
        nested = f" ({total} with nested)" if total != len(net.layers) else ""
        layers = f"{len(net.layers)} layer{'s' if len(net.layers) != 1 else ''}"
        lines.append(f"  network {net.name}: input{'s' if net.input.named else ''} {shape}, {layers}{nested}")
        lines.append(f"    layers: {_layer_types(net.layers)}")
        training = [f"loss {net.loss}" if net.loss else "", _optimizer(net.optimizer),
                    f"epochs {_short(net.train.epochs)}", f"batch_size {_short(net.train.batch_size)}",
                    f"device {net.execution.device}"]
        lines.append("    " + ", ".join(t for t in training if t))
        for keyword, spec in net.plugins.items():
            settings = ", ".join(f"{k}={_short(v)}" for k, v in flatten(spec.model_dump(mode="json")).items()
                                 if v is not None and v != {})
            lines.append(f"    {keyword}: {settings}")
    return "\n".join(lines)


def _layer_types(layers: list[Any]) -> str:
    """``Conv2D, MaxPooling2D, TransformerEncoder x12, Dense``: consecutive runs counted."""
    runs: list[list[Any]] = []
    for layer in layers:
        if runs and runs[-1][0] == layer.type:
            runs[-1][1] += 1
        else:
            runs.append([layer.type, 1])
    return ", ".join(name if n == 1 else f"{name} x{n}" for name, n in runs)


def _optimizer(optimizer: Any) -> str:
    if optimizer is None:
        return ""
    params = ", ".join(f"{k}={_short(v)}" for k, v in optimizer.params.items())
    schedule = f" with {optimizer.schedule.type}" if optimizer.schedule else ""
    return f"optimizer {optimizer.type}({params}){schedule}"


def _short(value: Any) -> str:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, dict) and "kind" in value:
        rest = ", ".join(f"{v}" if k == "options" else f"{k}={v}" for k, v in value.items()
                         if k != "kind" and v is not None)
        return f"{value['kind']}({rest})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)
