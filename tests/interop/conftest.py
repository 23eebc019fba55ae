"""Fixtures for the import tests: the ``neural`` command run in this process or as a
subprocess, with only the tracking stage registered."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

import neural_dsl_tracking.cli as cli

NEURAL = ("import sys, neural_dsl_tracking.cli as cli; "
          "cli.STAGE_COMMANDS = ('neural_dsl_tracking.tracking.cli',); sys.exit(cli.main(sys.argv[1:]))")


@pytest.fixture
def neural_argv() -> list[str]:
    """The command line of ``neural`` as a subprocess (append its arguments)."""
    return [sys.executable, "-c", NEURAL]


@pytest.fixture
def neural(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """``neural(*args)`` through the real ``cli.main`` in this process: (code, stdout, stderr)."""
    monkeypatch.setattr(cli, "STAGE_COMMANDS", ("neural_dsl_tracking.tracking.cli",))

    def run(*args: str) -> SimpleNamespace:
        capsys.readouterr()
        code = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return SimpleNamespace(code=code, out=out, err=err)

    return run


@pytest.fixture(scope="session")
def bench_interop():
    """bench/interop.py as a module: the peers' writers and readers and the round trip's
    comparison, shared by the sync tests and the bench."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "interop.py"
    spec = importlib.util.spec_from_file_location("bench_interop", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module
