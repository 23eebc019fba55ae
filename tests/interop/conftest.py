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
