"""Run lineage on the page: where a forked run came from, its forks, a run's resumes, and a
fork drawn with its ancestors' points as one line.

Everything comes from the records of the dashboard's snapshot (``RunRecord.parent`` and
``.events``, read with the runs in bulk, and ``RunSnapshot.forks``): no query per run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from neural_dsl_tracking.dashboard.data import DashboardData, DrawnSeries, RunSnapshot
from neural_dsl_tracking.dashboard.figures import x_values
from neural_dsl_tracking.dashboard.tables import counted, format_time
from neural_dsl_tracking.dashboard.zoom import Span, visible_series

MAX_ANCESTORS = 16  # a chain of forks is followed this far back (and never round a cycle)
NAMED_FORKS = 10  # the hover text names this many forks of a run


def fork_point(parent: Any) -> str:
    """Where a run was forked from its parent (a ``RunParent``): ``epoch 2``, ``step 400``
    (no epoch recorded), or ``its latest checkpoint``."""
    if parent.fork_epoch is not None:
        return f"epoch {parent.fork_epoch}"
    if parent.fork_step is not None:
        return f"step {parent.fork_step}"
    return "its latest checkpoint"


def run_name(run_id: str, family: RunSnapshot) -> str:
    """A run's name, or ``deleted run <id>`` when the store no longer holds it."""
    found = family.by_id.get(run_id)
    return found.run_name if found is not None else f"deleted run {run_id[:8]}"


def resumes(run: Any) -> list[Any]:
    """The run's ``resumed`` events, oldest first."""
    return [event for event in run.events if event.kind == "resumed"]


def lineage_cell(run: Any, family: RunSnapshot) -> str:
    """The run table's lineage cell: ``forked from NAME @ epoch E``, ``N forks`` and
    ``resumed`` (with a count past one), as they apply; empty for a run with no lineage."""
    parts = []
    if run.parent is not None:
        parts.append(f"forked from {run_name(run.parent.run_id, family)} @ {fork_point(run.parent)}")
    forks = family.forks.get(run.run_id, ())
    if forks:
        parts.append(counted(len(forks), "fork"))
    resumed = len(resumes(run))
    if resumed:
        parts.append("resumed" if resumed == 1 else f"resumed {resumed}×")
    return " · ".join(parts)


def lineage_lines(run: Any, family: RunSnapshot) -> list[str]:
    """The run's lineage in full sentences (the run table's hover text, the Summary card):
    its parent and fork point, its forks (the first ``NAMED_FORKS`` named) and each event."""
    lines = []
    if run.parent is not None:
        step = "" if run.parent.fork_step is None or run.parent.fork_epoch is None else \
            f", step {run.parent.fork_step}"
        lines.append(f"forked from {run_name(run.parent.run_id, family)} ({run.parent.run_id}) "
                     f"at {fork_point(run.parent)}{step}")
    forks = family.forks.get(run.run_id, ())
    if forks:
        names = ", ".join(run_name(fork, family) for fork in forks[:NAMED_FORKS])
        more = f" and {len(forks) - NAMED_FORKS} more" if len(forks) > NAMED_FORKS else ""
        lines.append(f"{counted(len(forks), 'fork')}: {names}{more}")
    lines.extend(f"{event.kind} {format_time(event.at)}" + (f": {event.detail}" if event.detail else "")
                 for event in run.events)
    return lines


def relatives(run_id: str, family: RunSnapshot) -> list[str]:
    """The runs a click on a run's lineage cell adds to the selection: its parent, then its
    forks (those the store still holds)."""
    run = family.by_id.get(run_id)
    if run is None:
        return []
    found = [run.parent.run_id] if run.parent is not None else []
    return [other for other in found + list(family.forks.get(run_id, ())) if other in family.by_id]


def ancestors(run: Any, family: RunSnapshot) -> list[tuple[Any, Any]]:
    """The chain a fork descends from, nearest first: (ancestor's record, the ``RunParent``
    of the run forked from it); at most ``MAX_ANCESTORS``, ending at a run the store no
    longer holds or that would close a cycle."""
    chain: list[tuple[Any, Any]] = []
    seen, current = {run.run_id}, run
    while current.parent is not None and len(chain) < MAX_ANCESTORS:
        parent = family.by_id.get(current.parent.run_id)
        if parent is None or parent.run_id in seen:
            break
        chain.append((parent, current.parent))
        seen.add(parent.run_id)
        current = parent
    return chain


@dataclass(frozen=True)
class Fork:
    """A fork point on a joined line: where it is drawn and what its hover says."""

    x: float
    y: float
    text: str


@dataclass(frozen=True)
class JoinedCurve:
    """A fork's points after its ancestors' up to each fork point, as one line.

    ``drawn`` holds every segment's kept points and buckets (its ``count`` and ``last_step``
    are the fork's own, which the live updater extends); ``x`` and ``bucket_x`` are their x
    coordinates; ``start`` is the run start the live updater takes for new points (on the
    relative-time axis the fork's time continues from its fork point)."""

    drawn: DrawnSeries
    x: np.ndarray
    bucket_x: np.ndarray
    start: float
    forks: tuple[Fork, ...]


def until(drawn: DrawnSeries, last: float) -> DrawnSeries:
    """``drawn`` without its points and buckets after step ``last``."""
    keep, buckets = drawn.steps <= last, drawn.bucket_steps <= last
    return replace(drawn, steps=drawn.steps[keep], values=drawn.values[keep], times=drawn.times[keep],
                   bucket_steps=drawn.bucket_steps[buckets], bucket_times=drawn.bucket_times[buckets],
                   bucket_means=drawn.bucket_means[buckets], bucket_counts=drawn.bucket_counts[buckets])


def joined_curve(data: DashboardData, run: Any, key: str, drawn: DrawnSeries, family: RunSnapshot,
                 x_mode: str, points: int, segment: Any = None) -> JoinedCurve | None:
    """``drawn`` (the run's own points of ``key``) after its ancestors' points, each up to its
    descendant's fork point (``fork_cut``: so the steps strictly increase); None when no
    ancestor has points to join. ``segment(ancestor, last)``
    gives an ancestor's drawn points up to step ``last`` (default: its cached series, cut):
    a zoom passes one reading the zoomed range only, where an ancestor may have none while an
    older one has some."""
    segment = segment or (lambda ancestor, last: until(cached(data, ancestor, key, points), last))
    parts: list[tuple[Any, DrawnSeries, Any]] = []  # (record, its points, the RunParent forked from it)
    first = first_step(data, run, key, points)
    for ancestor, link in ancestors(run, family):
        last = None if first is None or key not in ancestor.metrics else fork_cut(link, first)
        if last is None:
            break
        parts.append((ancestor, segment(ancestor, last), link))
        first = first_step(data, ancestor, key, points)
    if not any(part.steps.size for _, part, _ in parts):
        return None
    return _assembled(run, drawn, parts[::-1], x_mode)


def fork_cut(link: Any, first: int) -> int | None:
    """The parent's last step of a metric that its fork (forked at ``link``, a ``RunParent``)
    continues from ``first``, its first step: the fork epoch for a metric logged per epoch
    (the fork's first at the epoch after it), else the fork step (the fork's first after it);
    None for a metric the fork does not continue (logged once at the end, like ``final_*``)."""
    if link.fork_epoch is not None and first == link.fork_epoch + 1:
        return link.fork_epoch
    if link.fork_step is None or first > link.fork_step:
        return first - 1 if link.fork_step is None else link.fork_step
    return None


def cached(data: DashboardData, run: Any, key: str, points: int) -> DrawnSeries:
    """The run's series of ``key`` as the overview draws it (from the cache)."""
    return data.series(run.run_id, key, run.metrics[key].get("count", 0), points)


def first_step(data: DashboardData, run: Any, key: str, points: int) -> int | None:
    """The first step at which the run logged ``key`` (the overview keeps every first point)."""
    steps = cached(data, run, key, points).steps
    return int(steps[0]) if steps.size else None


def _assembled(run: Any, drawn: DrawnSeries, parts: Sequence[tuple[Any, DrawnSeries, Any]],
               x_mode: str) -> JoinedCurve:
    """The joined curve of ``parts`` (oldest ancestor first) and the run's own ``drawn``.

    On the relative-time axis the oldest ancestor's time counts from its start and each
    descendant's continues from its fork point. A fork point is marked when the points on both
    sides of it are drawn (a zoom may hold one side only, or no point of a run between)."""
    xs, bucket_xs, forks = [], [], []
    shift = 0.0  # the x at which the next segment's run start is placed
    following = [(record, part) for record, part, _ in parts[1:]] + [(run, drawn)]
    for (ancestor, part, link), (descendant, after) in zip(parts, following):
        start = ancestor.start_time.timestamp() - shift
        xs.append(x_values(part.steps, part.times, x_mode, start))
        bucket_xs.append(x_values(part.bucket_steps, part.bucket_times, x_mode, start))
        if not part.steps.size:
            continue
        shift = float(xs[-1][-1])
        if after.steps.size:
            forks.append(Fork(shift, float(part.values[-1]),
                              f"{descendant.run_name} forked from {ancestor.run_name} @ {fork_point(link)}"))
    start = run.start_time.timestamp() - shift
    xs.append(x_values(drawn.steps, drawn.times, x_mode, start))
    bucket_xs.append(x_values(drawn.bucket_steps, drawn.bucket_times, x_mode, start))
    every = [part for _, part, _ in parts] + [drawn]
    joined = replace(drawn, **{name: np.concatenate([getattr(part, name) for part in every])
                               for name in ("steps", "values", "times", "bucket_steps", "bucket_times",
                                            "bucket_means", "bucket_counts")})
    return JoinedCurve(joined, np.concatenate(xs), np.concatenate(bucket_xs), start, tuple(forks))


def zoomed_segments(data: DashboardData, key: str, span: Span, points: int, x_mode: str) -> Any:
    """``joined_curve``'s ``segment`` for a chart zoomed to ``span`` on the step or wall-time
    axis: an ancestor's points in the range up to the fork's step, read from the store as the
    zoom reads the run's own."""
    def segment(ancestor: Any, last: int) -> DrawnSeries:
        empty = until(cached(data, ancestor, key, points), -np.inf)
        return until(visible_series(data, [ancestor], key, span, points, x_mode).get(ancestor.run_id, empty), last)
    return segment
