"""The Dash application: layout, callbacks, the artifact download route, optional auth."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dash import Dash

from neural_dsl_tracking.dashboard import callbacks, layout, model_tab, sweeps
from neural_dsl_tracking.dashboard.data import DashboardData, StoreUnavailable
from neural_dsl_tracking.tracking.downsample import DEFAULT_MAX_POINTS
from neural_dsl_tracking.dashboard.security import Credentials, limit_request_size, require_basic_auth
from neural_dsl_tracking.errors import ArtifactCorruptedError, TrackingError
from neural_dsl_tracking.humanize import printable

ASSETS = Path(__file__).with_name("assets")
LOG = logging.getLogger("neural_dsl_tracking.dashboard")


def create_app(
    base_dir: str | Path = "neural_experiments",
    store: str | None = None,
    *,
    credentials: Credentials | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    data: DashboardData | None = None,
) -> Dash:
    """The dashboard as a Dash app (serve ``app.server`` with any WSGI server)."""
    data = data or DashboardData(base_dir, store, max_points=max_points)
    app = Dash(
        __name__,
        title="Neural experiments",
        update_title=None,
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,
        serve_locally=True,
    )
    limit_request_size(app.server)
    app.layout = lambda: layout.page(data)
    callbacks.register(app, data)
    sweeps.register(app, data)
    model_tab.register(app, data)
    add_download_route(app.server, data)
    if credentials is not None:
        require_basic_auth(app.server, credentials)
    app.server.config["NEURAL_DASHBOARD_DATA"] = data
    return app


def add_download_route(server: Any, data: DashboardData) -> None:
    """``/artifacts/<run_id>/<version>/<name>``: one stored version, its checksum verified.

    The path on disk always comes from the store's own record of the version; nothing
    in the URL is ever used as a file path. The object is opened once, checked and sent
    from that open file (``download.open_object``). A corrupted object answers 500 with
    no path in the page; the detail goes to the server's log.
    """
    from flask import abort, send_file
    from werkzeug.routing import PathConverter

    class ArtifactName(PathConverter):
        """Any artifact name, also one with a newline (``<path:>`` stops at a newline)."""

        regex = r"[^/][\s\S]*?"

    server.url_map.converters["artifact_name"] = ArtifactName

    @server.route("/artifacts/<run_id>/<int:version>/<artifact_name:name>")
    def download_artifact(run_id: str, version: int, name: str) -> Any:
        try:
            found, handle = data.open_artifact(run_id, name, version)
        except StoreUnavailable:
            abort(404)
        except ArtifactCorruptedError as error:
            LOG.error("download refused: %s", printable(str(error)))  # names from the store, escaped
            abort(500, description=f"artifact {name} v{version} is corrupted in the store; "
                                   "the download was refused (the server's log says why)")
        except TrackingError:
            abort(404, description=f"run {run_id} has no artifact {name!r} version {version}")
        filename = Path(str(found.metadata.get("filename") or "")).name or f"{found.name}-v{found.version}"
        response = send_file(handle, as_attachment=True, download_name=filename,
                             mimetype="application/octet-stream", etag=found.sha256, max_age=0)
        response.content_length = found.size
        return response

    @server.route("/artifacts/", defaults={"rest": ""})
    @server.route("/artifacts/<path:rest>")
    def no_such_artifact(rest: str) -> Any:
        abort(404)
