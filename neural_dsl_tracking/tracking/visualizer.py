"""MetricVisualizer: PNG plots of a run's metrics.

Plots are drawn with matplotlib's object API (``Figure`` + Agg, no pyplot state). Drawing
is kept cheap: fixed margins instead of ``tight_layout`` (which draws the figure once more
to measure it), one draw per figure (the one ``savefig`` does), a modest resolution, fast
PNG compression, and long series cut down to per-bucket min/max by numpy. Each file is
written to a temporary name and renamed, so a reader never sees half a PNG. The background
rounds run in a separate process (``plot_process.py``); this module only draws.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from neural_dsl_tracking.tracking.downsample import downsample_minmax
from neural_dsl_tracking.tracking.records import MetricHistory
from neural_dsl_tracking.tracking.system_metrics import is_system_metric
from neural_dsl_tracking.tracking.values import to_float, to_step

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from neural_dsl_tracking.tracking.store import Store

MAX_PLOT_POINTS = 4000
DPI = 80
PNG_OPTIONS = {"compress_level": 1}  # zlib level 1: a fraction of the time, files ~20 % larger
GRID_COLUMNS = 3
TILE_WIDTH, TILE_HEIGHT = 4.2, 3.0  # inches per subplot of the combined figures
ORIGINAL_PLOT_NAMES = {"all_metrics_individual": "all_metrics", "metric_correlation": "correlation",
                       "metric_distributions": "histograms"}
"""The original API's names for the plots ``MetricVisualizer.create_*_plots`` return."""


class FigureMap(dict):
    """Figures by name; a figure is also found under each name ``aliases`` maps to its name
    (the original API's keys), without iteration listing it twice."""

    def __init__(self, figures: Mapping[str, Figure], aliases: Mapping[str, str]) -> None:
        super().__init__(figures)
        self.aliases = dict(aliases)

    def __missing__(self, key: str) -> Figure:
        if key in self.aliases and dict.__contains__(self, self.aliases[key]):
            return self[self.aliases[key]]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or (
            key in self.aliases and dict.__contains__(self, self.aliases[key]))

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default


def safe_filename(name: str) -> str:
    """A file name made from a metric or figure name: no separators, no leading dots, and a
    short hash when characters were replaced, so distinct names never share a file."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:100] or "metric"
    if cleaned != name:
        cleaned += "-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]
    return cleaned


def new_figure(width: float = 8.0, height: float = 4.5) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path: Path) -> Path:
    """Write a figure atomically as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        figure.savefig(tmp, format="png", pil_kwargs=PNG_OPTIONS)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def grid(figure: Figure, n: int, top: float) -> list[Axes]:
    """``n`` subplots in rows of up to three, fixed margins; spare cells hidden."""
    cols = min(GRID_COLUMNS, n)
    rows = math.ceil(n / cols)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    height = figure.get_figheight()
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.45 / height, top=1 - top / height,
                           wspace=0.25, hspace=0.65 * 3.0 / TILE_HEIGHT)
    for ax in axes[n:]:
        ax.set_visible(False)
    return list(axes[:n])


def set_title(ax: Axes, text: str, **options: object) -> None:
    """A title at a fixed height: matplotlib otherwise measures the tick labels to place it."""
    ax.set_title(text, y=1.0, **options)


def few_ticks(ax: Axes) -> None:
    """At most about five ticks per axis: each tick is several artists to create and draw."""
    ax.locator_params(nbins=5)


def plot_metric(ax: Axes, history: MetricHistory, label: str | None = None) -> None:
    x, y = downsample_minmax(history.steps, history.values, MAX_PLOT_POINTS // 2)
    ax.plot(x, y, linewidth=1.2, label=label or history.key)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    few_ticks(ax)


class SingleMetricFigure:
    """One figure reused for every per-metric plot: only the data, the marks and the title
    change from metric to metric, so axes and ticks are built once per round."""

    def __init__(self) -> None:
        self.figure = new_figure()
        ax = self.ax = self.figure.add_subplot()
        self.figure.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.91)
        (self.line,) = ax.plot([], [], linewidth=1.2)
        self.marks = {}
        for word, colour in (("min", "tab:green"), ("max", "tab:red")):
            (point,) = ax.plot([], [], "o", color=colour, zorder=3, markersize=5)
            text = ax.annotate("", (0, 0), xytext=(5, 0), textcoords="offset points", fontsize=8,
                               color=colour)
            self.marks[word] = (point, text)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        few_ticks(ax)
        self.title = ax.set_title("", y=1.0)

    def draw(self, history: MetricHistory, path: Path) -> Path:
        """Plot ``history`` with its minimum and maximum marked, saved to ``path``."""
        self.show(history)
        return save_png(self.figure, path)

    def show(self, history: MetricHistory) -> Figure:
        """Plot ``history`` with its minimum and maximum marked; returns the figure."""
        self.line.set_data(*downsample_minmax(history.steps, history.values, MAX_PLOT_POINTS // 2))
        finite = np.isfinite(history.values)
        values = np.where(finite, history.values, np.nan)
        middle = (int(history.steps.min()) + int(history.steps.max())) / 2
        for word, pick, rise in (("min", np.nanargmin, -12), ("max", np.nanargmax, 6)):
            point, text = self.marks[word]
            if not finite.any():
                point.set_data([], [])
                text.set_text("")
                continue
            index = int(pick(values))
            step, value = history.steps[index], history.values[index]
            point.set_data([step], [value])
            text.xy = (step, value)
            text.xyann = (-5, rise) if step > middle else (5, rise)  # label towards the middle
            text.set_horizontalalignment("right" if step > middle else "left")
            text.set_text(f"{word} {value:.4g} @ {step}")
        self.title.set_text(history.key)
        self.ax.relim()
        self.ax.autoscale_view()
        return self.figure


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


def load_histories(store: Store, run_id: str) -> dict[str, MetricHistory]:
    """Every metric series of one run, as stored."""
    return {key: store.metric_history(run_id, key) for key in store.metric_keys(run_id)}


def histories_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, MetricHistory]:
    """The series in a list of ``{"step": s, metric: value, ...}`` dicts (the original API's
    metrics history): a row without a step is at its index, ``timestamp`` is its points'
    time, and ``None`` values are skipped."""
    columns: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"metrics_history[{index}] must be a dict of metric -> value, "
                            f"got {type(row).__name__}")
        step = index if row.get("step") is None else to_step(row["step"])
        when = math.nan if row.get("timestamp") is None else to_float("timestamp", row["timestamp"])
        for key, value in row.items():
            if key not in ("step", "timestamp") and value is not None:
                steps, values, times = columns.setdefault(key, ([], [], []))
                steps.append(step)
                values.append(to_float(key, value))
                times.append(when)
    return {key: MetricHistory(key, np.array(steps, np.int64), np.array(values, np.float64),
                               np.array(times, np.float64))
            for key, (steps, values, times) in columns.items()}


def grid_figure(n: int) -> tuple[Figure, list[Axes]]:
    """A figure of ``n`` tiles, in rows of up to three."""
    cols = min(GRID_COLUMNS, n)
    figure = new_figure(TILE_WIDTH * cols, TILE_HEIGHT * math.ceil(n / cols))
    return figure, grid(figure, n, top=0.7)


def combined_figure(histories: dict[str, MetricHistory]) -> Figure:
    """Every metric in a tile of its own."""
    figure, axes = grid_figure(len(histories))
    for ax, history in zip(axes, histories.values()):
        plot_metric(ax, history)
        set_title(ax, history.key, fontsize=9)
    figure.suptitle("all metrics")
    return figure


def histograms_figure(histories: dict[str, MetricHistory]) -> Figure:
    """The distribution of every metric's finite values, a tile each."""
    figure, axes = grid_figure(len(histories))
    for ax, history in zip(axes, histories.values()):
        finite = history.values[np.isfinite(history.values)]
        if finite.size:
            ax.hist(finite, bins=min(50, max(5, int(math.sqrt(finite.size)))), color="tab:blue",
                    alpha=0.8, histtype="stepfilled")  # one polygon, not a patch per bin
        few_ticks(ax)
        set_title(ax, f"{history.key} distribution", fontsize=9)
    figure.suptitle("distributions")
    return figure


def correlation_figure(histories: dict[str, MetricHistory]) -> Figure | None:
    """The correlation matrix of the metrics on the steps they share (None without two
    metrics and three shared steps with finite values)."""
    keys, matrix = aligned_by_step(histories)
    if len(keys) < 2:
        return None
    matrix = matrix[np.isfinite(matrix).all(axis=1)]
    if matrix.shape[0] < 3:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(matrix, rowvar=False)
    size = max(4.0, 0.8 * len(keys) + 2)
    label_room = 1.6  # inches for rotated tick labels (long names are cut by the edge)
    figure = new_figure(size + 1 + label_room, size + label_room)
    ax = figure.add_subplot()
    figure.subplots_adjust(left=label_room / (size + 1 + label_room), right=0.95,
                           bottom=label_room / (size + label_room), top=0.93)
    image = ax.imshow(np.nan_to_num(corr), vmin=-1, vmax=1, cmap="coolwarm")
    ax.set_xticks(range(len(keys)), keys, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(keys)), keys, fontsize=8)
    for i in range(len(keys)):
        for j in range(len(keys)):
            text = "n/a" if not np.isfinite(corr[i, j]) else f"{corr[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=ax)
    set_title(ax, "metric correlation (by shared step)")
    return figure


def _handed_out(figures: dict[str, Figure], out_dir: str | Path | None) -> FigureMap:
    """``figures`` as a FigureMap (with the original names), saved as ``<name>.png`` in
    ``out_dir`` when one is given."""
    if out_dir is not None:
        for name, figure in figures.items():
            save_png(figure, Path(out_dir) / f"{name}.png")
    return FigureMap(figures, ORIGINAL_PLOT_NAMES)


class MetricVisualizer:
    """Draws the standard plots of one run into ``plots_dir``."""

    def __init__(self, plots_dir: Path, load: Callable[[], dict[str, MetricHistory]]) -> None:
        self.plots_dir = Path(plots_dir)
        self.load = load
        self._drawn: dict[Path, tuple] = {}  # per-metric file -> the series it shows

    def generate(self) -> list[Path]:
        """Draw every plot now; returns the files. A per-metric plot whose series has not
        grown since this visualizer drew it, and whose file is still there, is kept. The
        system metrics (``system/*``, on a clock of their own) are left to the dashboard."""
        histories = {k: h for k, h in self.load().items() if len(h) and not is_system_metric(k)}
        if not histories:
            return []
        single: SingleMetricFigure | None = None
        paths = []
        for history in histories.values():
            path = self.plots_dir / f"metric_{safe_filename(history.key)}.png"
            shown = (len(history), history.steps[-1].item(), history.values[-1].tobytes())
            if self._drawn.get(path) != shown or not path.exists():
                single = single or SingleMetricFigure()
                single.draw(history, path)
                self._drawn[path] = shown
            paths.append(path)
        paths.append(self._draw_combined(histories))
        paths.append(self._draw_histograms(histories))
        correlation = self._draw_correlation(histories)
        if correlation is not None:
            paths.append(correlation)
        return paths

    def _draw_combined(self, histories: dict[str, MetricHistory]) -> Path:
        return save_png(combined_figure(histories), self.plots_dir / "all_metrics.png")

    def _draw_histograms(self, histories: dict[str, MetricHistory]) -> Path:
        return save_png(histograms_figure(histories), self.plots_dir / "histograms.png")

    def _draw_correlation(self, histories: dict[str, MetricHistory]) -> Path | None:
        figure = correlation_figure(histories)
        return None if figure is None else save_png(figure, self.plots_dir / "correlation.png")

    # ---- the original API: plots of a list of {"step": ..., metric: value} rows ----------
    @staticmethod
    def create_metric_plots(metrics_history: Iterable[Mapping[str, Any]],
                            out_dir: str | Path | None = None) -> FigureMap:
        """A figure per metric (``metric_<name>``, minimum and maximum marked), every metric
        (``all_metrics``) and their correlation (``correlation``, with two metrics or more),
        saved as PNGs in ``out_dir`` when given. ``metrics_history``: a list of
        ``{"step": s, metric: value, ...}`` dicts. Empty history: no figures."""
        histories = histories_from_rows(metrics_history)
        figures = {f"metric_{safe_filename(key)}": SingleMetricFigure().show(history)
                   for key, history in histories.items()}
        if histories:
            figures["all_metrics"] = combined_figure(histories)
        correlation = correlation_figure(histories)
        if correlation is not None:
            figures["correlation"] = correlation
        return _handed_out(figures, out_dir)

    @staticmethod
    def create_distribution_plots(metrics_history: Iterable[Mapping[str, Any]],
                                  out_dir: str | Path | None = None) -> FigureMap:
        """The distribution of each metric's values (``histograms``), saved as a PNG in
        ``out_dir`` when given; ``metrics_history`` as for ``create_metric_plots``."""
        histories = histories_from_rows(metrics_history)
        figures = {"histograms": histograms_figure(histories)} if histories else {}
        return _handed_out(figures, out_dir)
