"""The dashboard on stores of thousands of runs: a warm-up that grows linearly, a run table
paged, sorted and filtered on the server, and live ticks that send nothing when nothing
changed. The stores are written in bulk by the dashboard bench's ``bulk_store``."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

import pytest

from neural_dsl_tracking.dashboard import data as data_module
from neural_dsl_tracking.dashboard.data import DashboardData

BENCH = Path(__file__).resolve().parents[2] / "bench" / "dashboard.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_dashboard", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bulk_store = _bench().bulk_store


class LineCounter:
    """Counts the Python lines executed in one module, in every thread, while active."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines = 0

    def _local(self, frame, event, arg):
        if event == "line":
            self.lines += 1
        return self._local

    def _global(self, frame, event, arg):
        return self._local if frame.f_code.co_filename == self.filename else None

    def __enter__(self) -> "LineCounter":
        threading.settrace(self._global)
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc) -> None:
        sys.settrace(None)
        threading.settrace(None)


def warm_up_lines(base_dir: Path) -> tuple[int, int]:
    """Series warmed and lines of ``dashboard/data.py`` executed to warm a fresh dashboard."""
    data = DashboardData(base_dir)
    data.runs()
    with LineCounter(data_module.__file__) as counter:
        warmed = data.warm()
    return warmed, counter.lines


def test_the_warm_up_grows_linearly_with_the_store(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    bulk_store(small, 150, steps=5)
    bulk_store(large, 600, steps=5)
    (small_series, small_lines), (large_series, large_lines) = warm_up_lines(small), warm_up_lines(large)
    assert (small_series, large_series) == (450, 1800)
    # 4x the series: linear work is ~4x the lines; the old scan of the whole cache on every
    # insert made it ~13x (1,800 inserts x up to 1,800 keys)
    assert large_lines < 6 * small_lines, (small_lines, large_lines)
