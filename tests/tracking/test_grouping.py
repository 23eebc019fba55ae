"""Grouping runs: aligned group curves and per-group aggregates, checked against numpy."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.grouping import (
    aggregate_for,
    aligned,
    check_group_key,
    group_curve,
    group_runs,
    group_stats,
    grouped_table,
    parse_aggregates,
    run_aggregate,
)


def seeded_runs(seed: int = 7, runs: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Runs logging on different step grids (every 1, 2 or 3 steps, starting and stopping apart)."""
    rng = np.random.default_rng(seed)
    out = []
    for run in range(runs):
        stride = 1 + run % 3
        steps = np.arange(run, 60 + 7 * run, stride, dtype=np.int64)
        out.append((steps, rng.normal(size=steps.size).cumsum()))
    return out


def carried(steps: np.ndarray, values: np.ndarray, at: int) -> float:
    """The reference: a run's value at step ``at``, its last value at or before it, inside its span."""
    if at < steps[0] or at > steps[-1]:
        return np.nan
    return float(values[steps <= at][-1])


def test_aligned_carries_each_value_forward_inside_the_runs_span_only():
    series = seeded_runs()
    union, matrix = aligned(series)
    assert np.array_equal(union, np.unique(np.concatenate([s for s, _ in series])))
    expected = np.array([[carried(s, v, at) for at in union] for s, v in series])
    np.testing.assert_array_equal(matrix, expected)


@pytest.mark.parametrize("center", ["mean", "median"])
@pytest.mark.parametrize("band", ["minmax", "std"])
def test_group_curve_line_and_band_match_numpy(center, band):
    series = seeded_runs(seed=11)
    curve = group_curve(series, center, band)
    union = np.unique(np.concatenate([s for s, _ in series]))
    for position, at in enumerate(union):
        column = np.array([carried(s, v, at) for s, v in series])
        column = column[~np.isnan(column)]
        line = column.mean() if center == "mean" else np.median(column)
        low, high = (column.min(), column.max()) if band == "minmax" else (line - column.std(), line + column.std())
        assert curve.count[position] == column.size
        assert curve.center[position] == pytest.approx(line)
        assert curve.lower[position] == pytest.approx(low)
        assert curve.upper[position] == pytest.approx(high)


def test_repeated_steps_keep_the_last_value_and_nan_is_left_aside():
    curve = group_curve([(np.array([0, 1, 1, 2]), np.array([1.0, 5.0, 3.0, np.nan])),
                         (np.array([0, 2]), np.array([3.0, 7.0]))])
    assert curve.steps.tolist() == [0, 1, 2]
    assert curve.center.tolist() == [2.0, 3.0, 7.0]
    assert curve.count.tolist() == [2, 2, 1]


def test_run_aggregates_and_group_stats_match_numpy():
    rng = np.random.default_rng(3)
    values = rng.normal(size=50)
    values[[4, 49]] = np.nan
    known = values[~np.isnan(values)]
    assert run_aggregate(values, "last") == known[-1]
    assert run_aggregate(values, "min") == known.min()
    assert run_aggregate(values, "max") == known.max()
    assert run_aggregate(values, "mean") == pytest.approx(known.mean())
    numbers = rng.normal(size=6).tolist()
    stats = group_stats(numbers + [float("nan")])
    assert stats == {"n": 6, "mean": pytest.approx(np.mean(numbers)), "std": pytest.approx(np.std(numbers)),
                     "min": min(numbers), "max": max(numbers)}


def record(run_id: str, lr: float | None, experiment: str = "exp", tags=()) -> SimpleNamespace:
    params = {"optimizer": {"lr": lr}} if lr is not None else {}
    return SimpleNamespace(run_id=run_id, experiment=experiment, tags=list(tags), hyperparameters=params)


def test_group_runs_by_parameter_tags_and_experiment():
    records = [record("a", 0.1, tags=["x"]), record("b", 0.01, "other"), record("c", 0.1, tags=["x"]),
               record("d", None)]
    by_lr = group_runs(records, "params.optimizer.lr")
    assert [(g.label, g.run_ids) for g in by_lr] == [("optimizer.lr=0.1", ("a", "c")),
                                                     ("optimizer.lr=0.01", ("b",)),
                                                     ("optimizer.lr=(none)", ("d",))]
    assert group_runs(records, "optimizer.lr") == by_lr
    assert [g.run_ids for g in group_runs(records, "tags")] == [("a", "c"), ("b", "d")]
    assert [g.label for g in group_runs(records, "experiment")] == ["experiment=exp", "experiment=other"]
    with pytest.raises(TrackingError, match="cannot group by 'params.momentum'"):
        check_group_key(records, "params.momentum")
    assert check_group_key(records, "optimizer.lr") == "optimizer.lr"


def test_grouped_table_aggregates_each_metric_as_chosen():
    rng = np.random.default_rng(5)
    records = [record(str(i), 0.1 if i % 2 else 0.2) for i in range(6)]
    histories = {r.run_id: {"loss": SimpleNamespace(values=rng.normal(size=20))} for r in records}
    rows = grouped_table(group_runs(records, "params.optimizer.lr"), histories, ["loss"], {"loss": "min"})
    for row in rows:
        mins = [histories[run_id]["loss"].values.min() for run_id in row["runs"]]
        assert row["metrics"]["loss"] == {"aggregate": "min", "n": 3, "mean": pytest.approx(np.mean(mins)),
                                          "std": pytest.approx(np.std(mins)), "min": min(mins), "max": max(mins)}


def test_a_metric_without_a_chosen_aggregate_takes_its_best_by_name_else_its_last():
    rng = np.random.default_rng(8)
    records = [record(str(i), 0.1) for i in range(3)]
    metrics = ["val_loss", "val_accuracy", "lr_scale"]
    histories = {r.run_id: {key: SimpleNamespace(values=rng.normal(size=10)) for key in metrics} for r in records}
    (row,) = grouped_table(group_runs(records, "params.optimizer.lr"), histories, metrics, {"lr_scale": "mean"})
    for key, name, how in (("val_loss", "min", np.min), ("val_accuracy", "max", np.max),
                           ("lr_scale", "mean", np.mean)):
        assert row["metrics"][key]["aggregate"] == name
        assert row["metrics"][key]["mean"] == pytest.approx(np.mean([how(histories[r.run_id][key].values)
                                                                     for r in records]))
    (row,) = grouped_table(group_runs(records, "params.optimizer.lr"), histories, metrics)
    assert row["metrics"]["lr_scale"]["aggregate"] == "last"
    assert aggregate_for("loss") == "min" and aggregate_for("f1", {"loss": "max"}) == "max"
    assert aggregate_for("step_time") == "last" and aggregate_for("loss", {"loss": "mean"}) == "mean"


def test_bad_choices_are_one_message():
    with pytest.raises(TrackingError, match="band must be one of minmax, std, got 'iqr'"):
        group_curve([], band="iqr")
    with pytest.raises(TrackingError, match="METRIC=AGGREGATE"):
        parse_aggregates(["loss"])
    with pytest.raises(TrackingError, match="the aggregate of loss must be one of last, min, max, mean"):
        parse_aggregates(["loss=best"])
    assert parse_aggregates(["loss=min", "a=b=mean"]) == {"loss": "min", "a=b": "mean"}


@pytest.fixture
def seeded_store(tmp_path):
    """Five runs on different step grids: lr 0.1 (three seeds) and lr 0.01 (two)."""
    from neural_dsl_tracking.tracking.store import Store

    base = tmp_path / "store"
    store = Store(base)
    series = seeded_runs(seed=21)
    for index, (steps, values) in enumerate(series):
        run_id = store.create_run(experiment="seeds", run_name=f"run{index}", start_time=1e9 + index)
        store.log_params(run_id, {"optimizer": {"lr": 0.1 if index < 3 else 0.01}, "seed": index})
        store.append_metrics(run_id, {"loss": (steps, values, 1e9 + steps)})
        store.set_status(run_id, "completed", end_time=1e9 + 100)
    store.close()
    return base, series


def test_export_with_group_by_writes_the_grouped_table(seeded_store, tmp_path):
    import csv
    import json

    from neural_dsl_tracking.tracking import ExperimentManager
    from neural_dsl_tracking.tracking.comparison import GroupOptions

    base, series = seeded_store
    manager = ExperimentManager(base_dir=base)
    ids = [run.run_id for run in manager.list_experiments()]
    out = manager.export_comparison(ids, tmp_path / "out", group=GroupOptions("params.optimizer.lr",
                                                                             aggregates={"loss": "max"}))
    rows = {row["group"]: row for row in csv.DictReader(open(out / "groups.csv", encoding="utf-8"))}
    assert set(rows) == {"optimizer.lr=0.1", "optimizer.lr=0.01"}
    maxima = [values.max() for _, values in series[:3]]
    first = rows["optimizer.lr=0.1"]
    assert (first["metric"], first["aggregate"], first["n"]) == ("loss", "max", "3")
    assert float(first["mean"]) == pytest.approx(np.mean(maxima))
    assert float(first["std"]) == pytest.approx(np.std(maxima))
    assert float(first["min"]) == min(maxima) and float(first["max"]) == max(maxima)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["group_by"] == "params.optimizer.lr" and len(summary["groups"]) == 2
    manager.close()


NEURAL = ("import sys, neural_dsl_tracking.cli as cli; "
          "cli.STAGE_COMMANDS = ('neural_dsl_tracking.tracking.cli',); sys.exit(cli.main(sys.argv[1:]))")


def neural(*args) -> subprocess.CompletedProcess:
    """``neural ARGS`` in a subprocess (the tracking stage only), which never prints a traceback."""
    result = subprocess.run([sys.executable, "-c", NEURAL, *map(str, args)], capture_output=True, text=True,
                            timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_compare_group_by_prints_a_row_per_group_and_bad_options_are_one_message(seeded_store, tmp_path):
    from neural_dsl_tracking.tracking import ExperimentManager

    base, series = seeded_store
    manager = ExperimentManager(base_dir=base)
    ids = [run.run_id for run in manager.list_experiments()]
    manager.close()
    done = neural("experiments", "compare", *ids, "--base-dir", base, "--group-by", "params.optimizer.lr",
                  "--aggregate", "loss=min", "--band", "std", "-o", tmp_path / "plots")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "loss (min)" in lines[0] and "RUNS" in lines[0]
    minima = [values.min() for _, values in series[3:]]
    (row,) = [line for line in lines if line.startswith("optimizer.lr=0.01")]
    assert row.split()[1] == "2" and f"{np.mean(minima):.4g} ± {np.std(minima):.2g}" in row
    assert (tmp_path / "plots" / "compare_loss.png").is_file()
    default = neural("experiments", "compare", *ids, "--base-dir", base, "--group-by", "seed", "-o", tmp_path / "p2")
    assert "loss (min)" in default.stdout.splitlines()[0]  # a loss's best, by its name
    for args, message in ((["--group-by", "params.momentum"], "cannot group by 'params.momentum'"),
                          (["--aggregate", "loss=min"], "--aggregate, --center and --band need --group-by"),
                          (["--group-by", "seed", "--aggregate", "loss=best"], "the aggregate of loss must be")):
        failed = neural("experiments", "compare", *ids, "--base-dir", base, *args)
        assert failed.returncode != 0 and message in failed.stderr, failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1


def test_step_range_reads_agree_on_sqlite_and_postgresql(store_kwargs):
    """``get_metric_histories(steps=)`` reads only the chunks holding the range (several chunks
    here, one flush each, steps out of order in one), on both databases."""
    from neural_dsl_tracking.tracking import ExperimentManager
    from neural_dsl_tracking.tracking.store import CHUNK_POINTS, Store

    store = Store(store_kwargs["base_dir"], store_kwargs["store"])
    run_id = store.create_run(experiment="range", run_name="r")
    steps = np.arange(2 * CHUNK_POINTS + 10)
    values = np.random.default_rng(2).normal(size=steps.size)
    store.append_metrics(run_id, {"m": (steps, values, steps * 1.0)})
    late = np.array([5, 3, 2 * CHUNK_POINTS + 20])  # logged again later, out of order
    store.append_metrics(run_id, {"m": (late, np.array([1.0, 2.0, 3.0]), late * 1.0)})
    store.close()
    manager = ExperimentManager(**store_kwargs)
    for low, high in ((0, 4), (3, 5), (CHUNK_POINTS - 2, CHUNK_POINTS + 1), (2 * CHUNK_POINTS, 10**9)):
        got = manager.get_metric_histories([run_id], ["m"], steps=(low, high))[(run_id, "m")]
        full = manager.get_metric_history(run_id, "m")
        keep = (full.steps >= low) & (full.steps <= high)
        assert got.steps.tolist() == full.steps[keep].tolist()
        assert got.values.tolist() == full.values[keep].tolist()
    manager.close()
