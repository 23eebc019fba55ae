"""Hostile names (terminal escapes, OSC title sequences, CR, NUL, newlines, bidi controls,
10,000 characters, spreadsheet formulas, HTML, SQL quotes, ../) through every printer of
``neural experiments``: ls, ls --json, show, compare, export. Nothing reaches the terminal
that it would act on, no row is forged, every file stays in its folder, and CSV cells that
a spreadsheet would run as a formula are written as text."""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .conftest import HOSTILE, assert_terminal_safe, neural

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def experiments(store, *args: str):
    done = neural("experiments", *args, "--base-dir", str(store.path))
    assert done.returncode == 0, done.stderr
    assert_terminal_safe(done.stdout)
    assert_terminal_safe(done.stderr)
    return done


def test_ls_prints_one_safe_row_per_run(hostile_store):
    lines = experiments(hostile_store, "ls").stdout.splitlines()
    assert len(lines) == 1 + len(hostile_store.runs), "\n".join(lines)
    listed = json.loads(experiments(hostile_store, "ls", "--json").stdout)
    assert {r["run_id"]: r["run_name"] for r in listed} == hostile_store.runs


def test_show_prints_every_name_safely(hostile_store):
    with ThreadPoolExecutor(4) as pool:
        shown = list(pool.map(lambda run_id: experiments(hostile_store, "show", run_id).stdout,
                              hostile_store.runs))
    assert all(run_id[:8] in out for run_id, out in zip(hostile_store.runs, shown))


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_compare_and_export_keep_files_in_their_folder_and_formulas_as_text(hostile_store, tmp_path):
    ids = list(hostile_store.runs)
    before = files_under(tmp_path)
    experiments(hostile_store, "compare", *ids, "-o", str(tmp_path / "compared"))
    experiments(hostile_store, "export", *ids, "-o", str(tmp_path / "exported"))
    written = files_under(tmp_path) - before
    outside = [p for p in written if not p.is_relative_to(tmp_path / "compared")
               and not p.is_relative_to(tmp_path / "exported")]
    assert not outside and len(written) > 4, sorted(map(str, written))
    with open(tmp_path / "exported" / "metrics.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 1 + 6 * len(ids)  # two metrics of three points per run
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS) or _is_number(cell), row
    cells = {cell for row in rows[1:] for cell in row}
    assert "'" + HOSTILE["formula"] in cells and "-0.5" in cells  # a formula is text, a number a number
    report = (tmp_path / "exported" / "report.html").read_text(encoding="utf-8")
    assert "<img src=x" not in report and "<script>window" not in report


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
