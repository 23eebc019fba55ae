"""A Ray cluster's address is checked with the file: ``HOST:PORT`` (an IPv6 host in
brackets), ``ray://HOST:PORT`` or ``auto``, the forms ``ray.init(address=...)`` connects to;
anything else is one ``file:line:col`` error with a caret, or one error line as an override,
before any sweep is recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from neural_dsl_tracking.errors import NeuralValidationError
from neural_dsl_tracking.language import parse_text

from .conftest import write_network

NET = """network N {{
  input: (8, 8, 1)
  layers: Flatten() Dense(HPO(choice(16, 32)), "relu") Output(10, "softmax")
  loss: "sparse_categorical_crossentropy"
  sweep < launcher: ray; address: "{address}" >
}}
"""
COLUMN = len('  sweep < launcher: ray; address: ') + 1


def address_error(address: str) -> str:
    """The first line of the file's error, or '' when the file is accepted."""
    try:
        parse_text(NET.format(address=address), "m.neural")
    except NeuralValidationError as error:
        message = str(error)
        assert message.splitlines()[2].endswith(" " * (COLUMN - 1) + "^" + "~" * (len(address) + 1))
        return message.splitlines()[0]
    return ""


@pytest.mark.parametrize("address", ["auto", "head.example:6379", "10.0.0.5:6379", "[::1]:6379",
                                     "ray://head.example:10001", "ray://[fd00::5]:10001", "node_1:1"])
def test_the_forms_ray_connects_to_pass(address: str) -> None:
    assert address_error(address) == ""


@pytest.mark.parametrize(("address", "why"), [
    ("nohost", "has no port"),
    ("head:", "has no port"),
    (":6379", "has no host"),
    ("head:port", "has no port"),
    ("head:70000", "port 70000 is not from 1 to 65535"),
    ("head:0", "port 0 is not from 1 to 65535"),
    ("fd00::5:6379", "an IPv6 host goes in brackets ([fd00::5]:6379)"),
    ("[fd00::zz]:6379", "[fd00::zz] is not an IPv6 address"),
    ("ray://head", "has no port"),
    ("http://head:8265", "http:// is not a Ray address (ray:// is the Ray client's)"),
    ("head one:6379", "'head one' is not a host name or IP address"),
    ("local", "local starts a new Ray: leave the address out to run Ray on this machine"),
])
def test_an_address_ray_cannot_connect_to_is_one_error_with_a_caret(address: str, why: str) -> None:
    assert address_error(address) == (
        f"m.neural:5:{COLUMN}: 'address' {why}: a Ray cluster's address is HOST:PORT (head:6379, an IPv6 "
        f"host in brackets: [fd00::5]:6379), ray://HOST:PORT or auto, got \"{address}\"")


def test_neural_check_refuses_an_address_without_a_port(tmp_path: Path) -> None:
    source = tmp_path / "m.neural"
    source.write_text(NET.format(address="nohost"), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "check", str(source)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {source}:5:{COLUMN}: 'address' has no port: ")


def test_an_overridden_address_is_refused_before_the_sweep_is_recorded(tmp_path: Path) -> None:
    write_network(tmp_path, "runs")
    done = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "sweep", "model.neural",
                           "--launcher", "ray", "--address", "nohost"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: invalid setting in the run configuration:\n"
                                  "  sweep.address='nohost': has no port: a Ray cluster's address is HOST:PORT")
    assert not (tmp_path / "runs").exists()


def test_a_ray_address_from_the_environment_is_checked_the_same_way(tmp_path: Path) -> None:
    write_network(tmp_path, "runs")
    env = {**os.environ, "RAY_ADDRESS": "nohost"}
    done = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "sweep", "model.neural", "--launcher", "ray"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "error: RAY_ADDRESS='nohost': has no port: a Ray cluster's address is HOST:PORT" in done.stderr
