"""Dashboard options for ``neural experiments`` (the tracking CLI owns --base-dir/--store).

Imports nothing heavy: Dash is loaded only when the dashboard starts.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from neural_dsl_tracking.dashboard.security import AUTH_ENV, Credentials
from neural_dsl_tracking.errors import NeuralError


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --port, --host, --auth, --auth-file and --no-auth."""
    parser.add_argument("--port", type=int, default=8052, help="port to serve on (default 8052; 0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; any other needs a login or --no-auth)")
    access = parser.add_mutually_exclusive_group()
    access.add_argument("--auth", metavar="USER:PASSWORD",
                        help="require HTTP basic auth with this login; a command line is visible to other "
                             f"users of this machine (ps), so prefer --auth-file or {AUTH_ENV}")
    access.add_argument("--auth-file", metavar="PATH",
                        help="require HTTP basic auth with the USER:PASSWORD on the first line of this file "
                             f"(chmod 600 it); without --auth or --auth-file, {AUTH_ENV}=USER:PASSWORD "
                             "in the environment requires it too")
    access.add_argument("--no-auth", action="store_true",
                        help=f"allow a non-loopback --host without a login (not recommended; ignores {AUTH_ENV})")


def launch_from_args(args: argparse.Namespace) -> int:
    """Start the dashboard from parsed arguments; returns the exit code."""
    from neural_dsl_tracking.dashboard.launch import launch_comparison_ui

    return launch_comparison_ui(
        base_dir=getattr(args, "base_dir", None) or "neural_experiments",
        store=getattr(args, "store", None),
        port=args.port,
        host=args.host,
        auth=login(args),
        no_auth=args.no_auth,
    )


def login(args: argparse.Namespace) -> Credentials | None:
    """The login required: from --auth, --auth-file or the environment (in that order), or none."""
    if args.auth:
        return Credentials.parse(args.auth, "--auth")
    if args.auth_file:
        source = f"--auth-file {args.auth_file}"
        return Credentials.parse(read_auth_file(Path(args.auth_file), source), source)
    if not args.no_auth and os.environ.get(AUTH_ENV):
        return Credentials.parse(os.environ[AUTH_ENV], AUTH_ENV)
    return None


def read_auth_file(path: Path, source: str) -> str:
    """The first line of a login file; warns when other users can read the file."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as error:
        raise NeuralError(f"{source}: cannot read it: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise NeuralError(f"{source}: expected a line of UTF-8 text, USER:PASSWORD") from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        print(f"warning: {source} can be read by other users (chmod 600 it)", file=sys.stderr)
    lines = text.splitlines()
    return lines[0] if lines else ""
