"""``neural check`` as a user runs it: exit codes, summaries, JSON, and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

HEAVY = ("torch", "dash", "mlflow", "wandb", "matplotlib", "sqlalchemy")


def neural(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "neural_dsl_tracking", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.stderr.startswith("error: ")


def test_check_corpus_files_with_summaries(corpus: Path) -> None:
    """18 of the 19 files are valid; the original's ViT (nested_layers.neural) feeds its
    Conv2D's (109, 109, 64) output to a TransformerEncoder, which takes a sequence: check
    says so at that layer, as compile does."""
    files = sorted(str(p) for p in corpus.iterdir() if p.suffix in (".neural", ".nr"))
    result = neural("check", *files)
    assert result.returncode == 1, result.stderr
    assert "18 of 19 files valid" in result.stdout
    assert result.stderr.count("error: ") == 1, result.stderr
    assert (f"error: {corpus / 'nested_layers.neural'}:5:5: layer TransformerEncoder: expects a sequence "
            "(steps, features) (rank 2 per sample), but its input is (109, 109, 64); Reshape((-1, 64)) before it "
            "reads each position as a step\n"
            "  5 |     TransformerEncoder(num_heads=8, ff_dim=512) {\n"
            "    |     ^~~~~~~~~~~~~~~~~~\n") in result.stderr
    assert "network ResNet18: input (224, 224, 3), 12 layers (21 with nested)" in result.stdout
    assert "TransformerEncoder x3" in result.stdout
    assert "three_inputs_neuron.neural: ok, 2 networks" in result.stdout
    assert "network Tiny: input (28, 28, 1), 1 layer\n" in result.stdout


def test_check_examples_show_tracking_with_defaults() -> None:
    examples = sorted(str(p) for p in (REPO / "examples").glob("*.neural"))
    result = neural("check", *examples)
    assert result.returncode == 0, result.stderr
    assert "tracking: backend=[local, mlflow, tensorboard], experiment=digits-mlp" in result.stdout
    assert "log_every=1" in result.stdout  # a default, filled


def test_invalid_file_exit_one_with_position(tmp_path: Path) -> None:
    bad = tmp_path / "bad.neural"
    bad.write_text("network N {\n  input: (4)\n  layers: Dense(2)\n  tracking < visualise_every: 3 >\n}\n")
    result = neural("check", str(bad))
    assert_clean_failure(result)
    assert f"error: {bad}:4:14: unknown tracking key 'visualise_every'; did you mean 'visualize_every'?" in result.stderr
    assert "  4 |   tracking < visualise_every: 3 >" in result.stderr


def test_one_bad_file_among_good_ones(corpus: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.neural"
    bad.write_text("network N { input: (4) layers: Dense(2")
    result = neural("check", str(corpus / "tiny.neural"), str(bad))
    assert_clean_failure(result)
    assert "tiny.neural: ok" in result.stdout and "1 of 2 files valid" in result.stdout
    assert "unexpected end of file" in result.stderr


def test_missing_file_directory_and_binary(tmp_path: Path) -> None:
    assert "no such file" in neural("check", str(tmp_path / "nope.neural")).stderr
    for args in (["check", str(tmp_path / "nope.neural")], ["check", str(tmp_path)]):
        assert_clean_failure(neural(*args))
    binary = tmp_path / "b.neural"
    binary.write_bytes(bytes(range(256)))
    result = neural("check", str(binary))
    assert_clean_failure(result)
    assert "not UTF-8 text" in result.stderr


def test_json_prints_the_full_spec_with_defaults() -> None:
    result = neural("check", "--json", str(REPO / "examples" / "mlp_tracking.neural"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    net = data["networks"][0]
    assert net["name"] == "DigitsMLP"
    assert [layer["type"] for layer in net["layers"]] == ["Dense", "Dropout", "Dense", "Dense", "Output"]
    assert net["layers"][0]["params"] == {"units": 128, "activation": "relu"}
    assert "pos" not in net and "pos" not in net["layers"][0]
    tracking = net["plugins"]["tracking"]
    assert tracking["mlflow"] == {"tracking_uri": "sqlite:///mlflow.db", "experiment": "digits"}
    assert tracking["wandb"] == {"project": None, "entity": None, "mode": None}
    assert tracking["log_every"] == 1 and tracking["checkpoint_every"] == 2


def test_json_for_several_files_is_a_list(corpus: Path) -> None:
    result = neural("check", "--json", str(corpus / "tiny.neural"), str(corpus / "mnist.neural"))
    assert result.returncode == 0
    assert [d["networks"][0]["name"] for d in json.loads(result.stdout)] == ["Tiny", "MNISTClassifier"]


def test_version() -> None:
    result = neural("--version")
    assert result.returncode == 0 and result.stdout.startswith("neural-dsl-tracking ")


def test_check_imports_no_heavy_library(corpus: Path) -> None:
    """`neural check` starts fast: none of the heavy libraries is imported."""
    code = (
        "import sys\n"
        "from neural_dsl_tracking.cli import main\n"
        f"code = main(['check', {str(corpus / 'resnet.neural')!r}])\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
