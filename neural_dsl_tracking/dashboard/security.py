"""Who may reach the dashboard (loopback by default, HTTP basic auth for anything wider),
and how much a request may send."""

from __future__ import annotations

import hmac
import io
import ipaddress
import sys
from dataclasses import dataclass
from typing import Any

from neural_dsl_tracking.errors import NeuralError

REALM = "neural experiments"
AUTH_ENV = "NEURAL_DASHBOARD_AUTH"  # USER:PASSWORD, when neither --auth nor --auth-file is given
# The largest request body. Dash callbacks send back the state they read; measured in
# Chromium, the largest is the run table's (about 270 bytes a run: 267 KB for 1,000 runs)
# and the charts' live bookkeeping (about 200 bytes per live run, chart and trace: 128 KB
# with 300 runs selected, 150 of them live, 4 metrics). 8 MiB holds ~30,000 runs in the
# table, or ~800 live runs drawn on 24 smoothed charts.
MAX_REQUEST_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Credentials:
    """The one user allowed in when auth is on."""

    user: str
    password: str

    @classmethod
    def parse(cls, text: str, source: str = "--auth") -> "Credentials":
        """``USER:PASSWORD`` (the password may contain ``:``); errors name ``source``."""
        user, sep, password = text.partition(":")
        if not sep or not user or not password:
            raise NeuralError(f"{source}: expected USER:PASSWORD with a non-empty user and password")
        return cls(user, password)

    def accepts(self, user: str | None, password: str | None) -> bool:
        """Constant-time comparison of both parts."""
        user_ok = hmac.compare_digest((user or "").encode(), self.user.encode())
        password_ok = hmac.compare_digest((password or "").encode(), self.password.encode())
        return user_ok and password_ok


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, credentials: Credentials | None, no_auth: bool) -> None:
    """Refuse to serve a non-loopback address without auth, unless told so explicitly."""
    if is_loopback(host):
        return
    if credentials is None and not no_auth:
        raise NeuralError(
            f"--host {host} makes the dashboard reachable from other machines; "
            f"require a login with --auth-file PATH, {AUTH_ENV}=USER:PASSWORD or --auth USER:PASSWORD, "
            "or pass --no-auth to serve it openly"
        )
    if credentials is None:
        print(f"warning: serving on {host} WITHOUT authentication (--no-auth); anyone who can "
              "reach this address can read every run and download every artifact", file=sys.stderr)
    else:
        print(f"warning: serving on {host}, a non-loopback address; traffic is plain HTTP "
              "(use a TLS proxy in front of it on untrusted networks)", file=sys.stderr)


class _CappedInput(io.RawIOBase):
    """A request body without Content-Length (chunked) that answers 413 past ``limit`` bytes."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        from werkzeug.exceptions import RequestEntityTooLarge

        data = self._stream.read(min(len(buffer), self._left + 1))
        self._left -= len(data)
        if self._left < 0:
            raise RequestEntityTooLarge(_too_large(self._limit))
        buffer[:len(data)] = data
        return len(data)


def limit_request_size(server: Any, limit: int = MAX_REQUEST_BYTES) -> None:
    """Answer 413 to a request body over ``limit`` bytes, with or without a login.

    A Content-Length over the limit is refused before the request reaches the app (the
    login check included), without reading the body; a chunked body without one is read
    only up to the limit, then refused.
    """
    from werkzeug.exceptions import RequestEntityTooLarge

    app = server.wsgi_app

    def limited(environ: dict[str, Any], start_response: Any) -> Any:
        declared = str(environ.get("CONTENT_LENGTH") or "").strip()
        if declared.isdigit() and int(declared) > limit:
            return RequestEntityTooLarge(_too_large(limit))(environ, start_response)
        if environ.get("wsgi.input_terminated"):
            environ["wsgi.input"] = _CappedInput(environ["wsgi.input"], limit)
        return app(environ, start_response)

    server.wsgi_app = limited


def _too_large(limit: int) -> str:
    return f"request bodies are limited to {limit / 2**20:g} MiB"


def require_basic_auth(server: Any, credentials: Credentials) -> None:
    """Answer 401 to every request (pages, callbacks, assets, downloads) without the login."""
    from flask import Response, request

    @server.before_request
    def _check_login() -> Any:
        auth = request.authorization
        if auth is not None and auth.type == "basic" and credentials.accepts(auth.username, auth.password):
            return None
        return Response("login required\n", 401, {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
                        mimetype="text/plain")
