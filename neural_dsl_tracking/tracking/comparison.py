"""Comparing runs: matplotlib figures per metric, and an export folder with an HTML report."""

from __future__ import annotations

import csv
import html
import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any


from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.humanize import printable
from neural_dsl_tracking.tracking import grouping
from neural_dsl_tracking.tracking.downsample import downsample_minmax
from neural_dsl_tracking.tracking.records import MetricHistory, RunRecord, jsonable
from neural_dsl_tracking.tracking.values import metric_mode
from neural_dsl_tracking.tracking.visualizer import (
    new_figure,
    plot_metric,
    safe_filename,
    save_png,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HTML_MAX_POINTS = 5000
EXPORT_FILES = ("metrics.csv", "summary.json", "report.html", "groups.csv")  # and compare_*.png

Histories = dict[str, dict[str, MetricHistory]]  # run_id -> key -> history

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)")


def run_label(record: RunRecord) -> str:
    return f"{record.run_name} ({record.run_id[:8]})"


def comparison_figures(records: list[RunRecord], histories: Histories,
                       metrics: list[str]) -> dict[str, Figure]:
    """One matplotlib figure per metric with a line per run."""
    figures = {}
    for key in metrics:
        figure = new_figure()
        ax = figure.add_subplot()
        for record in records:
            history = histories[record.run_id].get(key)
            if history is not None and len(history):
                plot_metric(ax, history, label=run_label(record))
        ax.set_title(key)
        ax.legend(fontsize=8)
        figure.tight_layout()
        figures[key] = figure
    return figures


@dataclass(frozen=True)
class GroupOptions:
    """How a comparison groups its runs: by ``key`` (``grouping.group_runs``), a line
    (``center``) and band per group, and an aggregate per metric (default:
    ``grouping.aggregate_for``, the metric's best by its name, else ``last``)."""

    key: str
    center: str = "mean"
    band: str = "minmax"
    aggregates: dict[str, str] = field(default_factory=dict)

    def checked(self, records: list[RunRecord], metrics: list[str]) -> GroupOptions:
        """These options, or a TrackingError naming what is wrong with them."""
        grouping.check_group_key(records, self.key)
        grouping.check_choice("center", self.center, grouping.CENTERS)
        grouping.check_choice("band", self.band, grouping.BANDS)
        unknown = sorted(set(self.aggregates) - set(metrics))
        if unknown:
            raise TrackingError(f"--aggregate names metric(s) not compared: {', '.join(unknown)}")
        return self


def group_figures(records: list[RunRecord], histories: Histories, metrics: list[str],
                  options: GroupOptions) -> dict[str, Figure]:
    """One matplotlib figure per metric with a line and band per group of runs."""
    groups = grouping.group_runs(records, options.key)
    figures = {}
    for key in metrics:
        figure = new_figure()
        ax = figure.add_subplot()
        for group in groups:
            members = [(h.steps, h.values) for h in (histories[run_id].get(key) for run_id in group.run_ids)
                       if h is not None and len(h)]
            if members:
                curve = grouping.thinned(grouping.group_curve(members, options.center, options.band),
                                         HTML_MAX_POINTS)
                (line,) = ax.plot(curve.steps, curve.center, linewidth=1.5,
                                  label=f"{group.label} (n={len(members)})")
                ax.fill_between(curve.steps, curve.lower, curve.upper, color=line.get_color(), alpha=0.2)
        band = "min-max" if options.band == "minmax" else "±1 std"
        ax.set_title(f"{key} ({options.center}, {band})")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        figure.tight_layout()
        figures[key] = figure
    return figures


def group_rows(records: list[RunRecord], histories: Histories, metrics: list[str],
               options: GroupOptions) -> list[dict[str, Any]]:
    """``grouping.grouped_table`` of the compared runs."""
    return grouping.grouped_table(grouping.group_runs(records, options.key), histories, metrics,
                                  options.aggregates)


def write_groups_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """The grouped table: a row per group and metric (aggregate, runs, mean, std, min, max)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "runs", "metric", "aggregate", "n", "mean", "std", "min", "max"])
        for row in rows:
            for key, stats in row["metrics"].items():
                writer.writerow([spreadsheet_text(row["group"]), " ".join(row["runs"]), spreadsheet_text(key),
                                 stats["aggregate"], stats["n"],
                                 *("" if stats[name] is None else repr(stats[name])
                                   for name in ("mean", "std", "min", "max"))])


def check_out_dir(path: Path, *, empty: bool = False) -> None:
    """TrackingError unless ``path`` is, or can be created as, a folder (an empty one with
    ``empty``); creates nothing."""
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        if folder.exists():
            where = "it is" if folder == path else f"{folder} is"
            raise TrackingError(f"cannot write to {path}: {where} a file, not a folder")
    found = sorted(p.name for p in path.iterdir()) if empty and path.is_dir() else []
    if found:
        shown = ", ".join(map(printable, found[:5])) + (", ..." if len(found) > 5 else "")
        raise TrackingError(f"cannot export to {path}: the folder is not empty ({shown}); "
                            "choose a new folder, or overwrite a previous export there "
                            "(--force, overwrite=True)")


def make_out_dir(path: Path) -> Path:
    """``path`` created as a folder (parents too), or a TrackingError saying why not."""
    check_out_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TrackingError(f"cannot create the folder {path}: {error.strerror or error}") from None
    return path


def remove_export(out_dir: Path) -> None:
    """Delete the files a previous export wrote into ``out_dir``; other files stay."""
    for path in [*(out_dir / name for name in EXPORT_FILES), *out_dir.glob("compare_*.png")]:
        path.unlink(missing_ok=True)


def save_figures(figures: dict[str, Figure], out_dir: Path) -> list[Path]:
    make_out_dir(out_dir)
    return [save_png(fig, out_dir / f"compare_{safe_filename(key)}.png") for key, fig in figures.items()]


def differing_params(records: list[RunRecord]) -> list[str]:
    """Hyperparameter names whose values are not the same in every run."""
    keys = sorted({k for r in records for k in r.hyperparameters})
    missing = object()
    return [k for k in keys
            if len({json.dumps(r.hyperparameters.get(k, missing), default=str, sort_keys=True)
                    for r in records}) > 1]


def summary(records: list[RunRecord], metrics: list[str]) -> dict[str, Any]:
    """The JSON summary of a comparison: runs, differing parameters, best run per metric."""
    best: dict[str, Any] = {}
    for key in metrics:
        scored = [(r.metrics[key]["best"], r) for r in records
                  if key in r.metrics and _finite(r.metrics[key]["best"])]
        if scored:
            pick = min if metric_mode(key) == "min" else max
            value, record = pick(scored, key=lambda item: item[0])
            best[key] = {"run_id": record.run_id, "run_name": record.run_name, "value": value,
                         "mode": metric_mode(key)}
    return {"runs": [asdict(r) for r in records], "differing_params": differing_params(records),
            "metrics": metrics, "best": best}


def export(records: list[RunRecord], histories: Histories, metrics: list[str],
           out_dir: Path, group: GroupOptions | None = None) -> Path:
    """Write metrics.csv, summary.json, compare_*.png and report.html into ``out_dir``; with
    ``group``, also groups.csv (and ``groups`` in summary.json), the PNGs drawn per group."""
    make_out_dir(out_dir)
    with open(out_dir / "metrics.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run_id", "run_name", "metric", "step", "value", "timestamp"])
        for record in records:
            run_id, run_name = spreadsheet_text(record.run_id), spreadsheet_text(record.run_name)
            for key, h in histories[record.run_id].items():
                writer.writerows(zip([run_id] * len(h), [run_name] * len(h),
                                     [spreadsheet_text(key)] * len(h), h.steps.tolist(),
                                     map(repr, h.values.tolist()), h.timestamps.tolist()))
    data = summary(records, metrics)
    if group is not None:
        data["groups"] = group_rows(records, histories, metrics, group)
        data["group_by"] = group.key
        write_groups_csv(data["groups"], out_dir / "groups.csv")
    (out_dir / "summary.json").write_text(
        json.dumps(jsonable(data), indent=2, allow_nan=False), encoding="utf-8")
    figures = (comparison_figures(records, histories, metrics) if group is None
               else group_figures(records, histories, metrics, group))
    save_figures(figures, out_dir)
    (out_dir / "report.html").write_text(_report_html(records, histories, metrics, data),
                                         encoding="utf-8")
    return out_dir


def spreadsheet_text(text: str) -> str:
    """``text`` for a CSV cell: with a leading ``'`` when a spreadsheet would read it as a
    formula (it starts with = + - @ tab or CR and is not a number), as OWASP recommends."""
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _report_html(records: list[RunRecord], histories: Histories, metrics: list[str],
                 data: dict[str, Any]) -> str:
    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    charts = []
    for key in metrics:
        fig = go.Figure()
        for record in records:
            h = histories[record.run_id].get(key)
            if h is None or not len(h):
                continue
            x, y = downsample_minmax(h.steps, h.values, HTML_MAX_POINTS // 2)
            fig.add_trace(go.Scattergl(x=x.tolist(), y=[_plotly_number(v) for v in y.tolist()],
                                       mode="lines", name=run_label(record)))
        fig.update_layout(title=key, xaxis_title="step", yaxis_title=key, height=420,
                          margin=dict(l=60, r=20, t=50, b=50))
        charts.append(pio.to_html(fig, full_html=False, include_plotlyjs=False))
    differing = data["differing_params"]
    head = ["run", "experiment", "status", "duration (s)", *differing,
            *[f"{k} (best)" for k in metrics]]
    rows = []
    for r in records:
        cells = [run_label(r), r.experiment, r.status,
                 "" if r.duration is None else f"{r.duration:.1f}",
                 *[json.dumps(r.hyperparameters.get(k), default=str) for k in differing],
                 *[_fmt(r.metrics.get(k, {}).get("best")) for k in metrics]]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    table = ("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
             + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<title>Run comparison: {html.escape(', '.join(r.run_name for r in records))}</title>"
        "<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}th{background:#f3f3f3}"
        "</style>"
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
        f"<h1>Run comparison</h1><p>Generated {html.escape(datetime.now().isoformat(timespec='seconds'))}; "
        "parameters shown are those that differ between runs.</p>"
        f"{table}<h2>Metrics</h2>{''.join(charts)}</body></html>")


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.6g}"


def _plotly_number(value: float) -> float | None:
    return value if math.isfinite(value) else None
