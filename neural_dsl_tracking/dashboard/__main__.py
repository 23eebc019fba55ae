"""``python -m neural_dsl_tracking.dashboard [--base-dir DIR | --store URL] [--port N] [--host H]``."""

from __future__ import annotations

import argparse
import sys

from neural_dsl_tracking.dashboard.cli import add_launch_arguments, launch_from_args
from neural_dsl_tracking.errors import NeuralError


def main(argv: list[str] | None = None, prog: str = "python -m neural_dsl_tracking.dashboard") -> int:
    """Parse the options and serve the dashboard until Ctrl-C."""
    parser = argparse.ArgumentParser(prog=prog, description="Compare tracked runs in the browser.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--base-dir", default="neural_experiments", help="store directory (default neural_experiments)")
    where.add_argument("--store", help="store location: a directory or a postgresql:// URL")
    add_launch_arguments(parser)
    parser.add_argument("--debug", action="store_true",
                        help="accepted for the original API's scripts; changes nothing (the "
                             "interactive debugger, which runs code sent by the browser, stays off)")
    args = parser.parse_args(argv)
    try:
        return launch_from_args(args)
    except NeuralError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
