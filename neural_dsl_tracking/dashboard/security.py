"""Who may reach the dashboard: loopback by default, HTTP basic auth for anything wider."""

from __future__ import annotations

import hmac
import ipaddress
import sys
from dataclasses import dataclass
from typing import Any

from neural_dsl_tracking.errors import NeuralError

REALM = "neural experiments"


@dataclass(frozen=True)
class Credentials:
    """The one user allowed in when auth is on."""

    user: str
    password: str

    @classmethod
    def parse(cls, text: str) -> "Credentials":
        """``USER:PASSWORD`` (the password may contain ``:``)."""
        user, sep, password = text.partition(":")
        if not sep or not user or not password:
            raise NeuralError("--auth expects USER:PASSWORD with a non-empty user and password")
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
            "pass --auth USER:PASSWORD to require a login, or --no-auth to serve it openly"
        )
    if credentials is None:
        print(f"warning: serving on {host} WITHOUT authentication (--no-auth); anyone who can "
              "reach this address can read every run and download every artifact", file=sys.stderr)
    else:
        print(f"warning: serving on {host}, a non-loopback address; traffic is plain HTTP "
              "(use a TLS proxy in front of it on untrusted networks)", file=sys.stderr)


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
