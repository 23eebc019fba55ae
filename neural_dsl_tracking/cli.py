"""The ``neural`` command: one parser, sub-commands contributed by each pipeline stage.

Every stage module exposes ``register(subparsers)``; it adds its parsers and sets
``func`` (a callable taking the parsed args and returning an exit code). Stage modules
import nothing heavy at module level, so ``neural --help`` and ``neural check`` stay fast.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from typing import Sequence

from neural_dsl_tracking import __version__
from neural_dsl_tracking.errors import NeuralError
from neural_dsl_tracking.humanize import printable_message

STAGE_COMMANDS = (
    "neural_dsl_tracking.compiler.cli",  # also registers the language's check command
    "neural_dsl_tracking.tracking.cli",
    "neural_dsl_tracking.plugins.sweep.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``neural`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="neural",
        description="Neural DSL with declared experiment tracking.",
    )
    parser.add_argument("--version", action="version", version=f"neural-dsl-tracking {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in STAGE_COMMANDS:
        import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except NeuralError as error:
        print(f"error: {printable_message(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
