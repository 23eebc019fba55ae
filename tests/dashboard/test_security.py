"""Loopback by default; a wider --host needs HTTP basic auth (on every route) or --no-auth."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from neural_dsl_tracking.dashboard.app import create_app
from neural_dsl_tracking.dashboard.security import Credentials, check_exposure, is_loopback
from neural_dsl_tracking.errors import NeuralError

LOGIN = Credentials("ada", "s3cret:with:colons")


def status_of(url: str, login: tuple[str, str] | None = None, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if login:
        token = base64.b64encode(":".join(login).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as error:
        assert error.code != 401 or "Basic" in error.headers.get("WWW-Authenticate", "")
        return error.code


def test_credentials_parse_and_reject_bad_text():
    assert Credentials.parse("ada:s3cret:with:colons") == LOGIN
    for bad in ("ada", ":pw", "ada:", ""):
        with pytest.raises(NeuralError, match="USER:PASSWORD"):
            Credentials.parse(bad)


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                           ("localhost", True), ("0.0.0.0", False), ("::", False),
                                           ("192.168.1.10", False), ("example.org", False)])
def test_loopback_detection(host, loopback):
    assert is_loopback(host) is loopback


def test_non_loopback_host_needs_auth_or_explicit_no_auth(capsys):
    check_exposure("127.0.0.1", None, False)
    with pytest.raises(NeuralError, match="login with --auth-file PATH, NEURAL_DASHBOARD_AUTH=USER:PASSWORD "
                                          "or --auth USER:PASSWORD, or pass --no-auth"):
        check_exposure("0.0.0.0", None, False)
    check_exposure("0.0.0.0", None, True)
    assert "WITHOUT authentication" in capsys.readouterr().err
    check_exposure("0.0.0.0", LOGIN, False)
    assert "non-loopback" in capsys.readouterr().err


def test_every_route_requires_the_login(serve, store):
    app = create_app(base_dir=store.path, credentials=LOGIN)
    callback = json.dumps({"output": "run-count.children", "outputs": {"id": "run-count", "property": "children"},
                           "inputs": [], "changedPropIds": []}).encode()
    alpha = store.ids["alpha"]
    with serve(app) as url:
        routes = [f"{url}/", f"{url}/_dash-layout", f"{url}/_dash-dependencies",
                  f"{url}/assets/dashboard.css", f"{url}/artifacts/{alpha}/1/checkpoint"]
        for route in routes:
            assert status_of(route) == 401, route
            assert status_of(route, ("ada", "wrong")) == 401, route
            assert status_of(route, ("eve", "s3cret:with:colons")) == 401, route
            assert status_of(route, ("ada", "s3cret:with:colons")) == 200, route
        assert status_of(f"{url}/_dash-update-component", data=callback) == 401


@pytest.mark.browser
@pytest.mark.slow
def test_browser_with_the_login_sees_the_dashboard(browser, serve, store):
    app = create_app(base_dir=store.path, credentials=LOGIN)
    with serve(app) as url:
        anonymous = browser.new_context()
        assert anonymous.request.get(url).status == 401
        anonymous.close()
        context = browser.new_context(http_credentials={"username": "ada", "password": "s3cret:with:colons"})
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector(".metric-graph .js-plotly-plot", timeout=20_000)
        context.close()
