"""The difference between two runs: their models layer by layer, their configs, their sources.

Layers are aligned as sequences (``difflib``): first on type and parameters, so identical
layers pair up wherever they moved to; then, in the stretches left, on type alone, so a
layer of the same type at the same place pairs as *changed*. Inserting one layer adds one
row; it does not mark every later layer as changed (their shapes may change, and say so).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from neural_dsl_tracking.tracking.records import RunModel, RunRecord

COMPARED = ("input", "output", "param_count", "macs")
"""The per-layer facts a change reports besides its parameters."""


@dataclass
class LayerChange:
    """One row of an aligned pair of models: ``same``, ``changed``, ``added`` (only in B) or
    ``removed`` (only in A); ``a``/``b`` are the layers (spec rows) on each side."""

    status: str
    a: dict[str, Any] | None
    b: dict[str, Any] | None
    params: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """The parameters whose values differ: name -> (value in A, value in B)."""
    facts: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Shapes, parameter count and MACs that differ: name -> (in A, in B)."""

    @property
    def param_delta(self) -> int:
        """B's parameter count minus A's (a removed layer counts negative)."""
        return (self.b or {}).get("param_count", 0) - (self.a or {}).get("param_count", 0)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "a": self.a, "b": self.b,
                "params": {k: list(v) for k, v in self.params.items()},
                "facts": {k: list(v) for k, v in self.facts.items()}, "param_delta": self.param_delta}


@dataclass
class RunDiff:
    """What differs between runs A and B."""

    a: RunRecord
    b: RunRecord
    layers: list[LayerChange] | None
    """The aligned layers; None when either run recorded no model."""
    without_model: list[str]
    """The ids of the runs (of A and B) that recorded no model."""
    totals: dict[str, tuple[Any, Any]]
    """``params`` and ``macs`` of each model (None for a run without one)."""
    config: list[tuple[str, Any, Any]]
    """(key, value in A, value in B) of every differing config value (absent: None)."""
    source: str
    """A unified diff of the two source files ("" when they are the same or not recorded)."""

    def as_dict(self) -> dict[str, Any]:
        totals = {key: {"a": a, "b": b, "delta": None if a is None or b is None else b - a}
                  for key, (a, b) in self.totals.items()}
        return {"a": self.a.run_id, "b": self.b.run_id,
                "layers": None if self.layers is None else [c.as_dict() for c in self.layers],
                **totals, "config": [{"key": k, "a": a, "b": b} for k, a, b in self.config],
                "source": self.source}


def align_layers(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[LayerChange]:
    """The layers of two model specs aligned, each pair compared."""
    changes: list[LayerChange] = []
    for tag, i1, i2, j1, j2 in _opcodes(a, b, _exact):
        if tag == "equal":
            changes += [_compare(x, y) for x, y in zip(a[i1:i2], b[j1:j2])]
        else:
            changes += _align_by_type(a[i1:i2], b[j1:j2])
    return changes


def _align_by_type(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[LayerChange]:
    """A stretch with no identical layers: same-type layers at matching places pair as
    changed, the rest are removed (A) and added (B)."""
    changes: list[LayerChange] = []
    for tag, i1, i2, j1, j2 in _opcodes(a, b, _kind):
        if tag == "equal":
            changes += [_compare(x, y) for x, y in zip(a[i1:i2], b[j1:j2])]
            continue
        changes += [LayerChange("removed", x, None) for x in a[i1:i2]]
        changes += [LayerChange("added", None, y) for y in b[j1:j2]]
    return changes


def _opcodes(a: list[dict[str, Any]], b: list[dict[str, Any]], key: Any) -> list[tuple[str, int, int, int, int]]:
    matcher = difflib.SequenceMatcher(None, [key(x) for x in a], [key(y) for y in b], autojunk=False)
    return matcher.get_opcodes()


def _kind(layer: dict[str, Any]) -> str:
    return f"{layer.get('depth', 0)}:{layer['type']}"


def _exact(layer: dict[str, Any]) -> str:
    return _kind(layer) + json.dumps(layer.get("params", {}), sort_keys=True, default=str)


def _compare(a: dict[str, Any], b: dict[str, Any]) -> LayerChange:
    pa, pb = a.get("params", {}), b.get("params", {})
    params = {k: (pa.get(k), pb.get(k)) for k in dict.fromkeys([*pa, *pb]) if pa.get(k) != pb.get(k)}
    facts = {k: (a.get(k), b.get(k)) for k in COMPARED if a.get(k) != b.get(k)}
    return LayerChange("changed" if params or facts else "same", a, b, params, facts)


def diff_runs(a: RunRecord, b: RunRecord, models: dict[str, RunModel], sources: tuple[str, str]) -> RunDiff:
    """Compare runs ``a`` and ``b`` given their recorded models (by run id) and source texts."""
    from neural_dsl_tracking.tracking.comparison import differing_params  # numpy: not for ls/show

    ma, mb = models.get(a.run_id), models.get(b.run_id)
    layers = align_layers(ma.spec["layers"], mb.spec["layers"]) if ma and mb else None
    totals = {key: (getattr(ma, key) if ma else None, getattr(mb, key) if mb else None)
              for key in ("params", "macs")}
    config = [(key, a.hyperparameters.get(key), b.hyperparameters.get(key)) for key in differing_params([a, b])]
    source = "".join(difflib.unified_diff(sources[0].splitlines(keepends=True), sources[1].splitlines(keepends=True),
                                          f"{a.run_id[:8]}/{_source_name(a)}", f"{b.run_id[:8]}/{_source_name(b)}"))
    without = [run.run_id for run, model in ((a, ma), (b, mb)) if model is None]
    return RunDiff(a, b, layers, without, totals, config, source)


def source_text(manager: Any, run: RunRecord) -> str:
    """A run's source file as it was stored (its ``source`` artifact); "" when it has none."""
    if "source" not in run.artifacts:
        return ""
    return manager.read_artifact_version(run.run_id, "source", -1,
                                         lambda v: v.path.read_text(encoding="utf-8", errors="replace"))[1]


def _source_name(run: RunRecord) -> str:
    return (run.source_file or "source").replace("\\", "/").rsplit("/", 1)[-1]
