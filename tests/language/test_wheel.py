"""The wheel ships the grammar: build it, install it into a fresh venv (no access to this
checkout), and parse and `neural check` from a folder outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow

HEAVY = ("torch", "dash", "mlflow", "wandb", "matplotlib", "sqlalchemy")


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=cwd,
                            env=env, timeout=900)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(venv bin folder, the built wheel); the venv holds the wheel, lark and pydantic."""
    root = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", root / "dist", REPO, cwd=root)
    (wheel,) = (root / "dist").glob("neural_dsl_tracking-*.whl")
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(root / "venv")
    bin_dir = root / "venv" / "bin"
    run(bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps", wheel, cwd=root)
    run(bin_dir / "python", "-m", "pip", "install", "-q", "lark>=1.1.9", "pydantic>=2.6", cwd=root)
    return bin_dir, wheel


def test_installed_package_parses_with_only_lark_and_pydantic(
    fresh_venv: tuple[Path, Path], corpus: Path, tmp_path: Path
) -> None:
    bin_dir, _ = fresh_venv
    code = (
        "import sys, neural_dsl_tracking\n"
        "from neural_dsl_tracking.language import parse_file\n"
        "from neural_dsl_tracking.resources import grammar_path\n"
        f"net = parse_file({str(corpus / 'nested_layers.neural')!r}).networks[0]\n"
        "print(len(net.layers), grammar_path('neural.lark'))\n"
        "print(neural_dsl_tracking.__file__)\n"
    )
    out = run(bin_dir / "python", "-c", code, cwd=tmp_path).stdout.split()
    assert out[0] == "15"
    assert "site-packages/neural_dsl_tracking/_data/grammar/neural.lark" in out[1]
    assert str(REPO) not in out[2]


def test_neural_check_from_the_installed_wheel(
    fresh_venv: tuple[Path, Path], corpus: Path, tmp_path: Path
) -> None:
    """With the wheel's own dependencies (no extras), the `neural` command checks files and
    imports none of the heavy libraries while doing so."""
    bin_dir, wheel = fresh_venv
    run(bin_dir / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    bad = tmp_path / "bad.neural"
    bad.write_text("tracking < backend: mlfow >\nnetwork N { input: (4) layers: Dense(2) }\n")
    good = run(bin_dir / "neural", "check", corpus / "resnet.neural", cwd=tmp_path)
    assert "network ResNet18" in good.stdout
    failed = subprocess.run([str(bin_dir / "neural"), "check", str(bad)], capture_output=True,
                            text=True, cwd=tmp_path, timeout=300)
    assert failed.returncode == 1 and "did you mean 'mlflow'?" in failed.stderr
    assert "Traceback" not in failed.stderr
    code = (
        "import sys\nfrom neural_dsl_tracking.cli import main\n"
        f"main(['check', {str(corpus / 'resnet.neural')!r}])\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    assert "HEAVY []" in run(bin_dir / "python", "-c", code, cwd=tmp_path).stdout
