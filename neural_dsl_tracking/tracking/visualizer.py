"""MetricVisualizer: PNG plots of a run's metrics, drawn off the hot path.

Plots are drawn with matplotlib's object API (``Figure`` + Agg, no pyplot state), so a
background thread can draw while training continues. Each file is written to a temporary
name and renamed, so a reader never sees half a PNG.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from neural_dsl_tracking.tracking.records import MetricHistory

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_PLOT_POINTS = 4000


def safe_filename(name: str) -> str:
    """A file name made from a metric or figure name: no separators, no leading dots, and a
    short hash when characters were replaced, so distinct names never share a file."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:100] or "metric"
    if cleaned != name:
        cleaned += "-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]
    return cleaned


def downsample_minmax(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * buckets`` points keeping each bucket's min and max, so spikes survive."""
    n = len(x)
    if n <= 2 * buckets:
        return x, y
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = []
    for start, end in zip(edges[:-1], edges[1:]):
        part = y[start:end]
        finite = np.isfinite(part)
        if not finite.any():
            keep.append(start)
            continue
        masked = np.where(finite, part, np.nan)
        lo, hi = start + int(np.nanargmin(masked)), start + int(np.nanargmax(masked))
        keep.extend(sorted({lo, hi}))
    index = np.asarray(keep, dtype=np.int64)
    return x[index], y[index]


def new_figure(width: float = 8.0, height: float = 4.5) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path: Path) -> Path:
    """Write a figure atomically as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    figure.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def plot_metric(ax, history: MetricHistory, label: str | None = None, mark_extremes: bool = True) -> None:
    x, y = downsample_minmax(history.steps, history.values, MAX_PLOT_POINTS // 2)
    ax.plot(x, y, linewidth=1.2, label=label or history.key)
    finite = np.isfinite(history.values)
    if mark_extremes and finite.any():
        values = np.where(finite, history.values, np.nan)
        for index, colour, word in ((int(np.nanargmin(values)), "tab:green", "min"),
                                    (int(np.nanargmax(values)), "tab:red", "max")):
            step, value = history.steps[index], history.values[index]
            ax.scatter([step], [value], color=colour, zorder=3, s=28)
            ax.annotate(f"{word} {value:.4g} @ {step}", (step, value), textcoords="offset points",
                        xytext=(5, 6 if word == "max" else -12), fontsize=8, color=colour)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)


def aligned_by_step(histories: dict[str, MetricHistory]) -> tuple[list[str], np.ndarray]:
    """Keys and a (steps x keys) matrix of each key's last value at the steps all keys share."""
    columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, h in histories.items():
        if len(h) == 0:
            continue
        reversed_steps = h.steps[::-1]
        unique, first = np.unique(reversed_steps, return_index=True)
        columns[key] = (unique, h.values[::-1][first])
    if len(columns) < 2:
        return list(columns), np.empty((0, len(columns)))
    common = None
    for steps, _ in columns.values():
        common = steps if common is None else np.intersect1d(common, steps, assume_unique=True)
    keys = list(columns)
    matrix = np.column_stack([vals[np.searchsorted(steps, common)] for steps, vals in columns.values()])
    return keys, matrix


class MetricVisualizer:
    """Draws the standard plots of one run into ``plots_dir``."""

    def __init__(self, plots_dir: Path, load: Callable[[], dict[str, MetricHistory]]) -> None:
        self.plots_dir = Path(plots_dir)
        self.load = load
        self.rounds = 0
        self.skipped = 0
        self._warned = False
        self._rest_until = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None

    # ---- background worker ----------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="neural-tracking-plots", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask for a redraw; skipped (and counted) while a round is still drawing, and for as
        long again after it, so plotting never takes more than half a core from training."""
        if self._busy.locked() or self._wake.is_set() or time.monotonic() < self._rest_until:
            self.skipped += 1
            return
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            with self._busy:
                self._wake.clear()
                started = time.monotonic()
                try:
                    self.generate()
                except Exception as error:  # noqa: BLE001 - plots never break training
                    if not self._warned:
                        self._warned = True
                        warnings.warn(f"background plots failed: {error}", RuntimeWarning,
                                      stacklevel=1)
                finished = time.monotonic()
                self._rest_until = finished + (finished - started)

    def stop(self) -> None:
        """Stop the worker after the round in progress, if any."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    # ---- drawing ----------------------------------------------------------------------
    def generate(self) -> list[Path]:
        """Draw every plot now; returns the files written."""
        histories = {k: h for k, h in self.load().items() if len(h)}
        self.rounds += 1
        if not histories:
            return []
        paths = [self._draw_single(h) for h in histories.values()]
        paths.append(self._draw_combined(histories))
        paths.append(self._draw_histograms(histories))
        correlation = self._draw_correlation(histories)
        if correlation is not None:
            paths.append(correlation)
        return paths

    def _draw_single(self, history: MetricHistory) -> Path:
        figure = new_figure()
        ax = figure.add_subplot()
        plot_metric(ax, history)
        ax.set_title(history.key)
        figure.tight_layout()
        return save_png(figure, self.plots_dir / f"metric_{safe_filename(history.key)}.png")

    def _draw_combined(self, histories: dict[str, MetricHistory]) -> Path:
        n = len(histories)
        cols = min(3, n)
        rows = math.ceil(n / cols)
        figure = new_figure(4.2 * cols, 3.0 * rows)
        for i, history in enumerate(histories.values()):
            ax = figure.add_subplot(rows, cols, i + 1)
            plot_metric(ax, history, mark_extremes=False)
            ax.set_title(history.key, fontsize=9)
        figure.suptitle("all metrics")
        figure.tight_layout()
        return save_png(figure, self.plots_dir / "all_metrics.png")

    def _draw_histograms(self, histories: dict[str, MetricHistory]) -> Path:
        n = len(histories)
        cols = min(3, n)
        rows = math.ceil(n / cols)
        figure = new_figure(4.2 * cols, 3.0 * rows)
        for i, history in enumerate(histories.values()):
            ax = figure.add_subplot(rows, cols, i + 1)
            finite = history.values[np.isfinite(history.values)]
            if finite.size:
                ax.hist(finite, bins=min(50, max(5, int(math.sqrt(finite.size)))), color="tab:blue",
                        alpha=0.8)
            ax.set_title(f"{history.key} distribution", fontsize=9)
        figure.tight_layout()
        return save_png(figure, self.plots_dir / "histograms.png")

    def _draw_correlation(self, histories: dict[str, MetricHistory]) -> Path | None:
        keys, matrix = aligned_by_step(histories)
        if len(keys) < 2:
            return None
        matrix = matrix[np.isfinite(matrix).all(axis=1)]
        if matrix.shape[0] < 3:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.corrcoef(matrix, rowvar=False)
        size = max(4.0, 0.8 * len(keys) + 2)
        figure = new_figure(size + 1, size)
        ax = figure.add_subplot()
        image = ax.imshow(np.nan_to_num(corr), vmin=-1, vmax=1, cmap="coolwarm")
        ax.set_xticks(range(len(keys)), keys, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(keys)), keys, fontsize=8)
        for i in range(len(keys)):
            for j in range(len(keys)):
                text = "n/a" if not np.isfinite(corr[i, j]) else f"{corr[i, j]:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7)
        figure.colorbar(image, ax=ax)
        ax.set_title("metric correlation (by shared step)")
        figure.tight_layout()
        return save_png(figure, self.plots_dir / "correlation.png")
