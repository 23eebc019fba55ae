"""Serving the dashboard from a terminal: startup report, background warm-up, clean Ctrl-C."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TextIO

from neural_dsl_tracking.dashboard.data import DashboardData, StoreUnavailable
from neural_dsl_tracking.dashboard.security import Credentials, check_exposure
from neural_dsl_tracking.dashboard.tables import TEXT_CHARS, counted, format_time, shortened
from neural_dsl_tracking.errors import NeuralError
from neural_dsl_tracking.humanize import printable, status_text

RECENT_RUNS_SHOWN = 5
WARM_STOP_TIMEOUT = 10.0


def launch_comparison_ui(
    base_dir: str | Path = "neural_experiments",
    store: str | None = None,
    port: int = 8052,
    host: str = "127.0.0.1",
    *,
    auth: str | Credentials | None = None,
    no_auth: bool = False,
    warm: bool = True,
    out: TextIO | None = None,
) -> int:
    """Serve the comparison dashboard until Ctrl-C; returns 0.

    ``host`` other than loopback needs ``auth`` (``"USER:PASSWORD"`` or ``Credentials``,
    HTTP basic) or ``no_auth=True``. ``warm`` reads and downsamples every series in the background so
    the first charts draw from the cache.
    """
    out = out or sys.stdout
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    check_port(port)
    credentials = Credentials.parse(auth) if isinstance(auth, str) else auth
    check_exposure(host, credentials, no_auth)
    if store is not None:
        from neural_dsl_tracking.tracking.db import check_store_location

        check_store_location(store)  # a sqlite:// URL is a mistake, not a store still to create
    try:
        return _serve(DashboardData(base_dir, store), credentials, host, port, warm, out)
    except KeyboardInterrupt:  # Ctrl-C while starting, before serving began
        print("\nstopped", file=out, flush=True)
        return 0


def _serve(data: DashboardData, credentials: Credentials | None, host: str, port: int, warm: bool,
           out: TextIO) -> int:
    """Create the app, print the startup report and serve until Ctrl-C or SIGTERM."""
    from werkzeug.serving import make_server

    from neural_dsl_tracking.dashboard.app import create_app

    app = create_app(credentials=credentials, data=data)
    report = runs_report(data, out)  # an unreachable database stops here, before a URL is announced
    listener = _listen(host, port)
    server = make_server(host, port, app.server, threaded=True, fd=listener.fileno())
    stop = threading.Event()
    warmer = threading.Thread(target=_warm, args=(data, stop), name="dashboard-warm", daemon=True)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
    try:
        shown_host = f"[{host}]" if ":" in host else host
        print(f"Neural experiments dashboard: http://{shown_host}:{listener.getsockname()[1]}/", file=out)
        print(*report, sep="\n", file=out)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        if warm:
            warmer.start()
        server.serve_forever()  # werkzeug's returns quietly on Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        stop.set()
        server.server_close()
        listener.close()
        if warmer.is_alive():
            warmer.join(WARM_STOP_TIMEOUT)  # never exit while it is inside numpy
    print("\nstopped", file=out, flush=True)
    return 0


def check_port(port: int) -> None:
    """Refuse a port number no socket can bind (the OS would raise OverflowError)."""
    if not 0 <= port <= 65535:
        raise NeuralError(f"--port must be between 0 and 65535 (0 picks a free port), not {port}")


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, or a NeuralError saying why not (werkzeug would ``sys.exit``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError as error:
        listener.close()
        raise NeuralError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return listener


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def runs_report(data: DashboardData, out: TextIO | None = None) -> list[str]:
    """How many runs the store holds and the most recent ones (or why there are none), their
    statuses coloured when ``out`` is a terminal.

    A store that exists but cannot be read (a database that refuses the connection)
    raises its ``NeuralError``.
    """
    try:
        runs = data.runs()
    except StoreUnavailable as error:
        return [f"{error}; the page explains how to create one."]
    return [f"store {data.location}: {counted(len(runs), 'run')}"] + [
        f"  {format_time(run.start_time)}  {status_text(run.status, 11, out)} "
        f"{shortened(printable(run.experiment), TEXT_CHARS)} / "
        f"{shortened(printable(run.run_name), TEXT_CHARS)}  ({printable(run.run_id)})"
        for run in runs[:RECENT_RUNS_SHOWN]
    ]


def _warm(data: DashboardData, stop: threading.Event) -> None:
    try:
        data.warm(stop)
    except (StoreUnavailable, NeuralError):
        pass
