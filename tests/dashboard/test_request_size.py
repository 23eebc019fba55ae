"""Request bodies over the limit are refused with 413 before they are read (real HTTP, served dashboard)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.request

import pytest

from neural_dsl_tracking.dashboard.security import MAX_REQUEST_BYTES

pytestmark = pytest.mark.slow

HUGE = 200 * 1024 * 1024
PIECE = b"x" * (1024 * 1024)
LOGIN = "ada:s3cret"
CALLBACK = "/_dash-update-component"


def peak_rss(pid: int) -> int:
    """The process's highest resident set size so far, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def post_huge(url: str, chunked: bool, login: str | None) -> bytes:
    """POST 200 MB to the callback route, reading the answer while sending; returns its first bytes."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    headers = [f"POST {CALLBACK} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    headers.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {HUGE}")
    if login:
        headers.append("Authorization: Basic " + base64.b64encode(login.encode()).decode())
    connection = socket.create_connection((host, int(port)), timeout=60)
    sent = 0

    def send() -> None:
        nonlocal sent
        try:
            connection.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
            while sent < HUGE:
                connection.sendall(b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE)
                sent += len(PIECE)
            if chunked:
                connection.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed the connection
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    try:
        while len(answer) < 12:
            received = connection.recv(4096)
            if not received:
                break
            answer += received
    except ConnectionResetError:
        pass
    finally:
        connection.close()
        sender.join(60)
    assert sent < HUGE / 4, f"the server read {sent} bytes before answering"
    return answer


def authorised(request: urllib.request.Request, login: str | None) -> urllib.request.Request:
    if login:
        request.add_header("Authorization", "Basic " + base64.b64encode(login.encode()).decode())
    return request


def small_callback(url: str, login: str | None) -> int:
    """The page's run table callback, as the page declares it (``/_dash-dependencies``), answered normally."""
    base = url.rstrip("/")
    with urllib.request.urlopen(authorised(urllib.request.Request(base + "/_dash-dependencies"), login)) as answer:
        dependency = next(d for d in json.load(answer) if "run-count.children" in d["output"])
    outputs = [output.rsplit(".", 1) for output in dependency["output"].strip(".").split("...")]
    body = {"output": dependency["output"],
            "outputs": [{"id": id_, "property": prop} for id_, prop in outputs],
            "inputs": [{**item, "value": None} for item in dependency["inputs"]],
            "state": [{**item, "value": None} for item in dependency["state"]],
            "changedPropIds": []}
    request = urllib.request.Request(base + CALLBACK, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(authorised(request, login), timeout=30) as response:
        return response.status


@pytest.mark.parametrize("auth", [False, True], ids=["open", "auth"])
def test_a_200_mb_body_is_refused_before_it_is_read(store, launch, auth):
    args = ["-m", "neural_dsl_tracking.dashboard", "--base-dir", str(store.path), "--port", "0"]
    login = LOGIN if auth else None
    process, url, _ = launch.start(*args, *(["--auth", LOGIN] if auth else []))
    try:
        assert small_callback(url, login) == 200
        time.sleep(1.0)  # the background warm-up settles
        before = peak_rss(process.pid)
        for chunked in (False, True):
            for who in ((login, None) if auth else (None,)):
                answer = post_huge(url, chunked, who)
                expected = b"401" if chunked and auth and who is None else b"413"  # not read: no login
                assert answer.startswith(b"HTTP/1.1 " + expected), (chunked, who, answer[:80])
        grown = peak_rss(process.pid) - before
        assert small_callback(url, login) == 200
    finally:
        code, _, err = launch.stop(process)
    assert grown < 3 * MAX_REQUEST_BYTES + 16 * 1024 * 1024, f"peak RSS grew by {grown / 2**20:.0f} MiB"
    assert code == 0 and "Traceback" not in err, err
