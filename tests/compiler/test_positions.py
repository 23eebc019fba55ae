"""Compile errors about the loss and the optimizer point at their own entries
(``file:line:col`` of ``loss:`` / ``optimizer:``), not at the network's first line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from neural_dsl_tracking.compiler import compile_program
from neural_dsl_tracking.errors import CompileError
from neural_dsl_tracking.language import parse_text

REPO = Path(__file__).resolve().parents[2]
HEAD = "network Net {\n  input: (8,)\n  layers:\n    Dense(16)\n    Output(3, \"softmax\")\n"


def compile_error(sections: str) -> str:
    spec = parse_text(HEAD + sections + "}\n", "m.neural").networks[0]
    with pytest.raises(CompileError) as caught:
        compile_program(spec, "m.neural")
    return str(caught.value)


@pytest.mark.parametrize("sections, expected", [
    ('  loss: "hinge"\n', "m.neural:6:9: loss 'hinge' is not supported"),
    ("  metrics: [accuracy]\n  loss: binary_crossentropy\n",
     "m.neural:7:9: binary_crossentropy with a 3-unit softmax output is ambiguous"),
    ("  optimizer: Adam(learning_rate=0.01, momentum=0.9)\n",
     "m.neural:6:14: optimizer Adam has no parameter 'momentum'"),
    ('  optimizer: "Ftrl(learning_rate=0.1)"\n', "m.neural:6:15: optimizer 'Ftrl' is not supported"),
    ("  optimizer: Adam(beta_1=HPO(choice(0.8, 0.9)))\n",
     "m.neural:6:14: beta_1 cannot be an HPO(...) expression"),
])
def test_loss_and_optimizer_errors_point_at_their_entry(sections: str, expected: str) -> None:
    assert compile_error(sections).startswith(expected)


def test_a_loss_that_is_not_written_is_reported_against_the_final_layer() -> None:
    text = "network Net {\n  input: (8,)\n  layers:\n    Output(1, \"softmax\")\n}\n"
    spec = parse_text(text, "m.neural").networks[0]
    with pytest.raises(CompileError, match=r"^m\.neural:4:5: sparse_categorical_crossentropy needs an output"):
        compile_program(spec, "m.neural")


def test_neural_compile_of_a_cr_only_file_names_the_loss_line(tmp_path: Path) -> None:
    """Through the CLI, with old-Mac line endings: the loss's own line and column."""
    source = tmp_path / "cr.neural"
    source.write_bytes((HEAD + "  # the loss\n  loss: hinge\n}\n").replace("\n", "\r").encode())
    result = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "compile", str(source),
                             "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                            cwd=REPO)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"error: {source.name}:7:9: loss 'hinge' is not supported"), result.stderr
