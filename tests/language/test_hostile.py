"""Files built to hit the language's limits (see ``hostile.py``): a spec or one located
message, fast, never a traceback: in the parser and through ``neural check``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from neural_dsl_tracking.errors import NeuralSyntaxError
from neural_dsl_tracking.language import parse_file, parse_text

from .hostile import COMMENTED, FILENAME, cases, check, with_line_endings

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_file_gives_a_spec_or_one_message_fast(case) -> None:
    check(case)


def test_neural_check_reports_each_hostile_file_once_without_traceback(tmp_path: Path) -> None:
    """Every hostile file through ``neural check`` in one real process: one ``error:``
    per bad file, at the expected line, ``ok`` for the others, exit 1, no traceback."""
    paths = []
    for index, case in enumerate(CASES):
        path = f"{index:02d}.neural"
        (tmp_path / path).write_bytes(case.text.encode("utf-8"))
        paths.append(path)
    result = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "check", *paths],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    for path, case in zip(paths, CASES):
        errors = re.findall(rf"^error: {re.escape(path)}:(\d+):\d+: (.*)$", result.stderr, re.MULTILINE)
        if case.message is None:
            assert f"{path}: ok" in result.stdout and not errors, case.name
            continue
        assert len(errors) == 1 or not case.single, (case.name, errors)
        line, message = errors[0]
        assert case.message in message, (case.name, message)
        assert case.line is None or int(line) == case.line, (case.name, line)
    assert max(len(line) for line in result.stderr.splitlines()) < 400


def test_cr_and_crlf_files_parse_like_lf(tmp_path: Path) -> None:
    """Same spec, positions included, whatever the line endings; a comment ends at a
    lone ``\\r`` (it used to swallow the rest of the file)."""
    text = COMMENTED.replace("epochs: 0", "epochs: 3")
    specs = []
    for ending in ("\n", "\r\n", "\r"):
        path = tmp_path / f"{len(ending)}{ending == chr(13)}.neural"
        path.write_bytes(with_line_endings(text, ending).encode("utf-8"))
        specs.append(parse_file(path).networks[0].model_dump())
    assert specs[0] == specs[1] == specs[2]
    assert specs[0]["layers"][1]["pos"] == {"line": 6, "column": 5}
    assert specs[0]["train"]["epochs"] == 3


def test_cr_file_errors_show_the_right_line_and_text() -> None:
    text = with_line_endings("network N {\n  input: (4,)\n  layers:\n    dens(2)\n}\n", "\r")
    with pytest.raises(Exception) as info:
        parse_text(text, "m.neural")
    message = str(info.value)
    assert message.startswith("m.neural:4:5: unknown layer 'dens'; did you mean 'Dense'?"), message
    assert "\r" not in message and "  4 |     dens(2)" in message


def test_not_utf8_in_a_cr_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.neural"
    path.write_bytes(b"network N {\r  input: (4,)\r  layers: Dense(\xff)\r}\r")
    with pytest.raises(NeuralSyntaxError, match=r"bad.neural:3: the file is not UTF-8 text"):
        parse_file(path)


def test_a_long_line_is_shown_around_the_error() -> None:
    padding = " " * 3000
    with pytest.raises(Exception) as info:
        parse_text(f"network N {{ input: (4,) layers: {padding}dens(2) }}", "m.neural")
    first, source, caret = str(info.value).splitlines()
    assert first.startswith("m.neural:1:3033: unknown layer 'dens'")
    assert source.startswith("  1 | ...") and "dens(2) }" in source and len(source) < 140
    assert caret.index("^") == source.index("dens") and caret.endswith("^~~~")
