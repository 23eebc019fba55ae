"""Dashboard options for ``neural experiments`` (the tracking CLI owns --base-dir/--store).

Imports nothing heavy: Dash is loaded only when the dashboard starts.
"""

from __future__ import annotations

import argparse


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --port, --host, --auth and --no-auth."""
    parser.add_argument("--port", type=int, default=8052, help="port to serve on (default 8052; 0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; any other needs --auth or --no-auth)")
    access = parser.add_mutually_exclusive_group()
    access.add_argument("--auth", metavar="USER:PASSWORD", help="require HTTP basic auth with this login")
    access.add_argument("--no-auth", action="store_true",
                        help="allow a non-loopback --host without a login (not recommended)")


def launch_from_args(args: argparse.Namespace) -> int:
    """Start the dashboard from parsed arguments; returns the exit code."""
    from neural_dsl_tracking.dashboard.launch import launch_comparison_ui

    return launch_comparison_ui(
        base_dir=getattr(args, "base_dir", None) or "neural_experiments",
        store=getattr(args, "store", None),
        port=args.port,
        host=args.host,
        auth=args.auth,
        no_auth=args.no_auth,
    )
