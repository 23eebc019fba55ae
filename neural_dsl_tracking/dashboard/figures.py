"""Plotly figures as plain dicts, built from numpy arrays (pure functions, no Dash).

Arrays travel as Plotly typed-array specs (``{"dtype", "bdata"}``, base64), which is
several times smaller than JSON numbers and decodes without parsing in the browser.
Curves of live runs are plain lists instead: ``Plotly.extendTraces`` cannot grow a spec.
Colours of text, backgrounds and grids come from the theme's template (``figure_template``),
which the page swaps in place when the theme changes (assets/theme.js).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from neural_dsl_tracking.dashboard.tables import shortened

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31",
    "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363",
)  # fmt: skip

X_MODES = {"step": "step", "relative": "relative time (s)", "wall": "wall time"}
RAW_OPACITY_WHEN_SMOOTHED = 0.25
MISSING_TEXT = "—"
MAX_LEGEND_ENTRIES = 12  # more runs than this: names show on hover only
TITLE_CHARS, NAME_CHARS = 48, 60  # longer titles, legend names and parallel axis labels are cut in the middle
BAR_LABEL_CHARS = 24  # run names under the bars of the best-metrics charts
BEST_MARK = "★ "
OTHER_BAR_OPACITY = 0.45
THEMES = ("light", "dark")
# the figures' colours per theme; backgrounds and text match dashboard.css (a test checks both)
FIGURE_COLORS = {
    "light": {"paper": "#ffffff", "text": "#1f2328", "grid": "#e3e6ea", "axis": "#8c959f", "hover": "#ffffff"},
    "dark": {"paper": "#181d24", "text": "#e6edf3", "grid": "#2f3742", "axis": "#6e7681", "hover": "#242b34"},
}


def figure_template(theme: str) -> dict[str, Any]:
    """The Plotly template of a theme (``"light"`` or ``"dark"``): backgrounds, fonts (titles,
    ticks, legend, parallel axes, colour bars), grid, hover labels and the mode bar."""
    colors = FIGURE_COLORS[theme if theme in FIGURE_COLORS else "light"]
    axis = {"gridcolor": colors["grid"], "zerolinecolor": colors["grid"], "linecolor": colors["axis"],
            "tickcolor": colors["axis"], "color": colors["text"]}
    return {"layout": {
        "paper_bgcolor": colors["paper"],
        "plot_bgcolor": colors["paper"],
        "font": {"color": colors["text"]},
        "colorway": list(PALETTE),
        "xaxis": axis,
        "yaxis": axis,
        "legend": {"bgcolor": "rgba(0,0,0,0)", "font": {"color": colors["text"]}},
        "hoverlabel": {"bgcolor": colors["hover"], "bordercolor": colors["axis"], "font": {"color": colors["text"]}},
        "modebar": {"bgcolor": "rgba(0,0,0,0)", "color": colors["axis"], "activecolor": colors["text"]},
    }}


def plotly_text(text: str) -> str:
    """Text shown literally by Plotly, which otherwise reads ``<b>``, ``<br>``, ``&amp;`` as markup."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def color_for(position: int) -> str:
    """A stable colour for the run at ``position`` in the full run list."""
    return PALETTE[position % len(PALETTE)]


def typed_array(values: np.ndarray) -> dict[str, str]:
    """A Plotly typed-array spec: little-endian bytes in base64."""
    array = np.ascontiguousarray(values)
    if array.dtype.kind in "iu":
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        array = array.astype("<i4" if -(2**31) <= low and high < 2**31 else "<f8")
    else:
        array = array.astype("<f8")
    return {"dtype": array.dtype.str[1:], "bdata": base64.b64encode(array.tobytes()).decode("ascii")}


def x_values(steps: np.ndarray, times: np.ndarray, mode: str, run_start: float) -> np.ndarray:
    """The x coordinates for an x-axis mode: steps, seconds since run start, or epoch ms."""
    if mode == "step":
        return steps
    if mode == "relative":
        return times - run_start
    if mode == "wall":
        return times * 1000.0
    raise ValueError(f"unknown x-axis mode {mode!r}")


@dataclass(frozen=True)
class CurveData:
    """One run's curve on one chart: drawn points and (optionally) its smoothed curve."""

    run_id: str
    label: str
    color: str
    x: np.ndarray
    y: np.ndarray
    smooth_x: np.ndarray | None = None
    smooth_y: np.ndarray | None = None
    extendable: bool = False  # a live run: plain arrays, which Plotly.extendTraces can grow


def plain_list(values: np.ndarray) -> list[float | None]:
    """JSON numbers (NaN and infinities become gaps)."""
    array = np.asarray(values, dtype=np.float64)
    return [float(value) if np.isfinite(value) else None for value in array.tolist()]


def line_mode(values: np.ndarray) -> str:
    """``"lines"``, or ``"lines+markers"`` when at most one point is finite (a lone point draws no line)."""
    return "lines+markers" if np.count_nonzero(np.isfinite(values)) <= 1 else "lines"


def _array(values: np.ndarray, extendable: bool) -> Any:
    return plain_list(values) if extendable else typed_array(values)


def metric_figure(key: str, curves: Sequence[CurveData], x_mode: str, log_y: bool,
                  theme: str = "light") -> dict[str, Any]:
    """One chart for metric ``key``: a raw trace per run, plus a smoothed one if given.

    Trace order is raw, smoothed, raw, smoothed... for smoothed charts, raw only otherwise.
    The legend lists run names below the chart, up to ``MAX_LEGEND_ENTRIES`` runs.
    """
    traces: list[dict[str, Any]] = []
    legend = len(curves) <= MAX_LEGEND_ENTRIES
    for curve in curves:
        smoothed = curve.smooth_y is not None
        traces.append(
            {
                "type": "scatter",
                "mode": line_mode(curve.y),
                "name": plotly_text(shortened(curve.label, NAME_CHARS)),
                "legendgroup": curve.run_id,
                "showlegend": legend and not smoothed,
                "opacity": RAW_OPACITY_WHEN_SMOOTHED if smoothed else 1.0,
                "line": {"color": curve.color, "width": 1.2},
                "marker": {"color": curve.color, "size": 6},
                "x": _array(curve.x, curve.extendable),
                "y": _array(curve.y, curve.extendable),
                "meta": {"run_id": curve.run_id, "kind": "raw", "label": plotly_text(curve.label)},
                "hovertemplate": "%{meta.label}<br>%{x}: %{y}<extra>raw</extra>",
            }
        )
        if smoothed:
            traces.append(
                {
                    "type": "scatter",
                    "mode": line_mode(curve.smooth_y),
                    "name": plotly_text(shortened(curve.label, NAME_CHARS)),
                    "legendgroup": curve.run_id,
                    "showlegend": legend,
                    "line": {"color": curve.color, "width": 2},
                    "marker": {"color": curve.color, "size": 6},
                    "x": _array(curve.smooth_x, curve.extendable),
                    "y": _array(curve.smooth_y, curve.extendable),
                    "meta": {"run_id": curve.run_id, "kind": "smoothed", "label": plotly_text(curve.label)},
                    "hovertemplate": "%{meta.label}<br>%{x}: %{y}<extra>smoothed</extra>",
                }
            )
    return {"data": traces, "layout": chart_layout(key, "", x_mode, log_y, theme)}


def chart_layout(key: str, note: str, x_mode: str, log_y: bool, theme: str) -> dict[str, Any]:
    """The layout of a metric chart: titled ``key`` (cut) and ``note``, the legend below."""
    return {
        "template": figure_template(theme),
        "title": {"text": plotly_text(shortened(key, TITLE_CHARS)) + note},
        "uirevision": key,
        "height": 420,
        "margin": {"l": 60, "r": 20, "t": 40, "b": 20},
        "xaxis": {"title": {"text": X_MODES[x_mode]}, "type": "date" if x_mode == "wall" else "linear"},
        "yaxis": {"type": "log" if log_y else "linear"},
        "legend": {"orientation": "h", "y": -0.18, "yanchor": "top"},
        "hovermode": "closest",
    }


def fork_markers(run_id: str, color: str, points: Sequence[tuple[float, float, str]]) -> dict[str, Any]:
    """The fork points of a run's joined line (``(x, y, hover text)`` each): diamonds in the
    run's colour, outside the legend."""
    return {
        "type": "scatter",
        "mode": "markers",
        "x": [x for x, _, _ in points],
        "y": [y for _, y, _ in points],
        "text": [plotly_text(text) for _, _, text in points],
        "legendgroup": run_id,
        "showlegend": False,
        "marker": {"color": color, "size": 11, "symbol": "diamond", "line": {"width": 1, "color": "#ffffff"}},
        "meta": {"run_id": run_id, "kind": "fork"},
        "hovertemplate": "%{text}<br>%{x}: %{y}<extra>fork</extra>",
    }


@dataclass(frozen=True)
class GroupTrace:
    """One group's curve on a grouped chart: its line, band and run count, against steps."""

    label: str
    color: str
    runs: int
    steps: np.ndarray
    center: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


BAND_OPACITY = 0.2


def group_figure(key: str, groups: Sequence[GroupTrace], center: str, band: str, log_y: bool,
                 theme: str = "light") -> dict[str, Any]:
    """One chart for metric ``key`` with a line per group (``center``: mean or median) between
    the edges of its band (``band``: min-max or std); the legend names each group with its
    number of runs. Traces per group: lower edge, upper edge (filled down to the lower), line."""
    traces: list[dict[str, Any]] = []
    for group in groups:
        name = plotly_text(shortened(f"{group.label} (n={group.runs})", NAME_CHARS))
        edge = {"type": "scatter", "mode": "lines", "x": typed_array(group.steps), "legendgroup": group.label,
                "showlegend": False, "hoverinfo": "skip", "line": {"width": 0, "color": group.color}}
        traces.append({**edge, "y": typed_array(group.lower), "meta": {"kind": "band-lower", "group": group.label}})
        traces.append({**edge, "y": typed_array(group.upper), "fill": "tonexty", "fillcolor": _faded(group.color),
                       "meta": {"kind": "band-upper", "group": group.label}})
        traces.append({"type": "scatter", "mode": line_mode(group.center), "name": name,
                       "legendgroup": group.label, "line": {"color": group.color, "width": 2},
                       "marker": {"color": group.color, "size": 6},
                       "x": typed_array(group.steps), "y": typed_array(group.center),
                       "meta": {"kind": "center", "group": plotly_text(group.label), "runs": group.runs},
                       "hovertemplate": f"%{{meta.group}}<br>%{{x}}: %{{y}}<extra>{center}</extra>"})
    band_text = "min-max" if band == "minmax" else "±1 std"
    return {"data": traces, "layout": chart_layout(key, f" ({center}, {band_text})", "step", log_y, theme)}


def _faded(color: str) -> str:
    """``#rrggbb`` as a translucent ``rgba`` for a band."""
    red, green, blue = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{BAND_OPACITY})"


@dataclass(frozen=True)
class Axis:
    """One parallel-coordinates axis: numeric values, or categories mapped to 0..k-1."""

    label: str
    values: list[Any]


def parallel_figure(axes: Sequence[Axis], color_values: Sequence[float | None], color_label: str,
                    theme: str = "light") -> dict[str, Any]:
    """Parallel coordinates, one line per run, coloured by ``color_values``."""
    dimensions = [_parallel_dimension(axis) for axis in axes]
    color = [float("nan") if value is None else value for value in color_values]
    return {
        "data": [
            {
                "type": "parcoords",
                "dimensions": dimensions,
                "line": {
                    "color": color,
                    "colorscale": "Viridis",
                    "showscale": True,
                    "colorbar": {"title": {"text": plotly_text(shortened(color_label, TITLE_CHARS))}},
                },
            }
        ],
        "layout": {"template": figure_template(theme), "height": 480, "margin": {"l": 80, "r": 80, "t": 60, "b": 40}},
    }


@dataclass(frozen=True)
class Bar:
    """One run's bar on a best-metrics chart: its best value (``None`` when missing or not finite)."""

    run_id: str
    label: str
    color: str
    value: float | None
    text: str


def best_figure(key: str, suffix: str, bars: Sequence[Bar], best: int | None, theme: str = "light") -> dict[str, Any]:
    """A bar per run for metric ``key`` (titled with ``suffix`` after it); the bar at position
    ``best`` is marked (★ before its value, full colour; the others are paler)."""
    positions = list(range(len(bars)))
    return {
        "data": [
            {
                "type": "bar",
                "x": positions,
                "y": [bar.value for bar in bars],
                "text": [(BEST_MARK if position == best else "") + bar.text for position, bar in enumerate(bars)],
                "textposition": "outside",
                "cliponaxis": False,
                "marker": {"color": [bar.color for bar in bars],
                           "opacity": [1.0 if position == best else OTHER_BAR_OPACITY for position in positions]},
                "hovertext": [plotly_text(bar.label) for bar in bars],
                "hovertemplate": "%{hovertext}<br>%{text}<extra></extra>",
                "meta": {"best": best, "run_ids": [bar.run_id for bar in bars]},
            }
        ],
        "layout": {
            "template": figure_template(theme),
            "title": {"text": plotly_text(shortened(key, TITLE_CHARS) + suffix)},
            "height": 300,
            "margin": {"l": 60, "r": 20, "t": 50, "b": 60},
            "xaxis": {"tickvals": positions, "ticktext": [plotly_text(shortened(bar.label, BAR_LABEL_CHARS))
                                                          for bar in bars]},
            "yaxis": {"automargin": True},
            "showlegend": False,
        },
    }


def _parallel_dimension(axis: Axis) -> dict[str, Any]:
    present = [value for value in axis.values if value is not None]
    if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in present):
        values = [float("nan") if value is None else float(value) for value in axis.values]
        return {"label": plotly_text(shortened(axis.label, NAME_CHARS)), "values": values}
    texts = [MISSING_TEXT if value is None else str(value) for value in axis.values]
    categories = sorted(set(texts))
    position = {category: index for index, category in enumerate(categories)}
    return {
        "label": plotly_text(shortened(axis.label, NAME_CHARS)),
        "values": [position[text] for text in texts],
        "tickvals": list(range(len(categories))),
        "ticktext": [plotly_text(shortened(category, NAME_CHARS)) for category in categories],
    }
