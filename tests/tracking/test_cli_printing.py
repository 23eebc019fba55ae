"""Text read from the store reaches the terminal escaped: a run, experiment, tag, metric,
parameter or artifact name (or a parameter value, a mirror failure, a source path) with a
terminal escape, a carriage return, NUL or a newline can neither drive the terminal nor forge
rows. Every command runs in a real subprocess through ``neural_dsl_tracking.cli.main``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neural_dsl_tracking.tracking import ExperimentTracker

from .test_cli import NEURAL

# an OSC sequence setting the window title, CR, NUL, LF, a C1 CSI and a right-to-left override
HOSTILE = "a\x1b]0;pwned\x07b\rc\x00d\ne\x9bf\u202eg"
RAW = ("\x1b", "\x07", "\r", "\x00", "\x9b", "\u202e")


def neural(*args: str) -> subprocess.CompletedProcess:
    """The command's output as bytes were written (no newline translation hides a CR), checked
    for raw control characters on both streams, then decoded."""
    result = subprocess.run([sys.executable, "-c", NEURAL, *map(str, args)], capture_output=True,
                            timeout=120)
    for stream in (result.stdout, result.stderr):
        for char in RAW:
            assert char.encode() not in stream, (char, stream)
    result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _run(base: Path, folder: Path, text: str, runs: int = 2) -> list[str]:
    """``runs`` runs with ``text`` in every field a user names; returns their ids."""
    source = folder / f"src{text.replace(chr(0), '')}.neural"
    source.write_text("network N {}")
    (folder / "w.pt").write_bytes(b"w")
    ids = []
    for index in range(runs):
        with ExperimentTracker(f"exp{text}", base_dir=base, run_name=f"run{index}{text}",
                               tags=[f"tag{text}"], auto_visualize=False, source_file=source) as tracker:
            tracker.log_hyperparameters({f"p{text}": f"v{text}{index}", "lr": index})
            tracker.log_metrics({f"m{text}": 1.0 + index, "loss": 0.5})
            tracker.log_artifact(folder / "w.pt", name=f"art{text}", aliases=[f"al{text}"])
            tracker._store.record_mirror_failure(tracker.run_id, f"be{text}", f"msg{text}")
        ids.append(tracker.run_id)
    return ids


@pytest.fixture
def stores(tmp_path):
    """The same runs twice: with hostile text, and with plain text of the same shape."""
    made = {}
    for label, text in (("hostile", HOSTILE), ("plain", "plain")):
        folder = tmp_path / label
        folder.mkdir()
        made[label] = (folder / "store", _run(folder / "store", folder, text))
    return made


def _clean(result) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\n")


def test_ls_escapes_every_name_and_prints_one_row_per_run(stores):
    base, ids = stores["hostile"]
    lines = _clean(neural("experiments", "ls", "--base-dir", base))
    assert len([line for line in lines if line]) == 1 + len(ids)
    assert "\\x1b]0;pwned\\x07b\\rc\\x00d\\ne" in lines[1]


@pytest.mark.parametrize("command", [["show", 0], ["compare", 0, 1], ["rm", 0, 1]])
def test_show_compare_rm_print_as_many_lines_as_for_plain_names(stores, command, tmp_path):
    outputs = {}
    for label, (base, ids) in stores.items():
        args = [ids[arg] if isinstance(arg, int) else arg for arg in command]
        extra = ["-o", tmp_path / f"cmp-{label}"] if command[0] == "compare" else []
        outputs[label] = _clean(neural("experiments", *args, *extra, "--base-dir", base))
    assert len(outputs["hostile"]) == len(outputs["plain"])
    shown = "\n".join(outputs["hostile"])
    if command[0] == "show":
        for field in ("exp", "run0", "tag", "p", "m", "art", "al", "be", "msg", "src"):
            assert f"{field}a\\x1b]0;pwned\\x07b\\rc" in shown, field


def test_export_prints_only_escaped_file_names(stores, tmp_path):
    base, ids = stores["hostile"]
    out = tmp_path / "exported"
    out.mkdir()
    (out / f"mine{HOSTILE.replace(chr(0), '')}.txt").write_text("kept")
    lines = _clean(neural("experiments", "export", *ids, "-o", out, "--force", "--base-dir", base))
    assert any(line.startswith("  mine") for line in lines)


def test_json_output_stays_json(stores):
    base, ids = stores["hostile"]
    result = neural("experiments", "ls", "--json", "--base-dir", base)
    assert {r["experiment"] for r in json.loads(result.stdout)} == {f"exp{HOSTILE}"}


def test_import_escapes_folder_names_and_notes(tmp_path):
    folder = tmp_path / "old" / f"x{HOSTILE.replace(chr(0), '')}_abcdef12"
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text('{"status": "completed"}')
    (folder / "artifacts.json").write_text(json.dumps({f"gone{HOSTILE}": {}}))
    lines = _clean(neural("experiments", "import", tmp_path / "old", "--base-dir", tmp_path / "s"))
    assert len([line for line in lines if line]) == 3  # the run, its note, the summary
    assert "note: artifact 'gone" in lines[1]


def test_import_names_the_links_it_did_not_follow(tmp_path):
    outside = tmp_path / "machine"
    outside.mkdir()
    (outside / "secret.png").write_text("secret")
    legacy = tmp_path / "old"
    for name in ("run_aaaaaaaa", "far_bbbbbbbb"):
        folder = (tmp_path if name.startswith("far") else legacy) / name
        folder.mkdir(parents=True)
        (folder / "metadata.json").write_text('{"status": "completed"}')
    (legacy / "run_aaaaaaaa" / "plots").symlink_to(outside)
    (legacy / "far_bbbbbbbb").symlink_to(tmp_path / "far_bbbbbbbb")
    lines = _clean(neural("experiments", "import", legacy, "--base-dir", tmp_path / "s"))
    assert lines[0].startswith("link") and "far_bbbbbbbb" in lines[0]
    assert f"note: a symbolic link to {tmp_path / 'far_bbbbbbbb'}; links are not followed" in lines[1]
    assert lines[2].startswith("imported") and "run_aaaaaaaa" in lines[2]
    assert f"plots (a symbolic link to {outside})" in lines[3]
    assert lines[4] == "1 imported, 0 already present, 1 symbolic link(s) not followed, 0 failed"


def test_export_into_a_folder_with_hostile_file_names_says_so_escaped(stores, tmp_path):
    base, ids = stores["hostile"]
    out = tmp_path / "taken"
    out.mkdir()
    (out / f"x{HOSTILE.replace(chr(0), '')}").write_text("mine")
    result = neural("experiments", "export", ids[0], "-o", out, "--base-dir", base)
    assert result.returncode == 1 and "the folder is not empty (xa\\x1b]0;pwned" in result.stderr
    assert len(result.stderr.strip().split("\n")) == 1


def test_error_messages_escape_what_they_quote_and_keep_their_lines(tmp_path):
    """An error that quotes a path or a name (here a store folder named with escapes) prints
    it escaped; the message keeps its own lines (a source line and its caret)."""
    missing = tmp_path / HOSTILE.replace("\x00", "").replace("\n", "")
    result = neural("experiments", "show", "deadbeef", "--base-dir", missing)
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "\\x1b]0;pwned\\x07b\\rc" in result.stderr
