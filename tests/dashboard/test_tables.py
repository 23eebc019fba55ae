"""Pure helpers: table rows, directions, formatting, figure encoding."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from neural_dsl_tracking.dashboard.figures import Axis, metric_figure, parallel_figure, plotly_text, typed_array
from neural_dsl_tracking.dashboard.figures import CurveData
from neural_dsl_tracking.dotted import flatten
from neural_dsl_tracking.humanize import duration as format_duration
from neural_dsl_tracking.dashboard.tables import (
    best_value,
    default_direction,
    format_value,
    hyperparameter_rows,
    short_text,
    unique_labels,
)


@pytest.mark.parametrize("key,direction", [("loss", "min"), ("val_loss", "min"), ("accuracy", "max"),
                                           ("val_acc", "max"), ("f1", "max"), ("error_rate", "min")])
def test_default_direction(key, direction):
    assert default_direction(key) == direction


def test_best_value_follows_the_direction():
    metrics = {"loss": {"min": 0.1, "max": 2.0}}
    assert best_value(metrics, "loss", "min") == 0.1
    assert best_value(metrics, "loss", "max") == 2.0
    assert best_value(metrics, "missing", "min") is None


def test_hyperparameter_rows_flag_differences_and_missing_values():
    runs = [{"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}}, {"lr": 0.1, "opt": {"name": "sgd"}}]
    rows = {row.name: row for row in hyperparameter_rows(runs, only_differences=False)}
    assert set(rows) == {"lr", "opt.name", "opt.beta"}
    assert not rows["lr"].differs and rows["opt.name"].differs
    assert rows["opt.beta"].values == ["0.9", "—"] and rows["opt.beta"].differs
    only = [row.name for row in hyperparameter_rows(runs, only_differences=True)]
    assert only == ["opt.beta", "opt.name"]


def test_formatting():
    assert format_duration(3723) == "1h 02m 03s" and format_duration(75) == "1m 15s"
    assert format_duration(None) == "—"
    assert format_value(0.1 + 0.2) == "0.3" and format_value(True) == "true" and format_value([1, 2.5]) == "[1, 2.5]"
    assert flatten({"a": {"b": {"c": 1}}, "d": {}}) == {"a.b.c": 1, "d": {}}


def test_unique_labels_disambiguate_repeated_names():
    labels = unique_labels([("aaaaaaaa1", "run"), ("bbbbbbbb2", "run"), ("c", "other")])
    assert labels == {"aaaaaaaa1": "run (aaaaaaaa)", "bbbbbbbb2": "run (bbbbbbbb)", "c": "other"}


def test_typed_arrays_round_trip():
    spec = typed_array(np.array([1, 2, 3], dtype=np.int64))
    assert spec["dtype"] == "i4"
    assert np.frombuffer(base64.b64decode(spec["bdata"]), "<i4").tolist() == [1, 2, 3]
    spec = typed_array(np.array([0.5, np.nan]))
    assert spec["dtype"] == "f8"
    assert np.isnan(np.frombuffer(base64.b64decode(spec["bdata"]), "<f8")[1])
    assert typed_array(np.array([2**40]))["dtype"] == "f8"


def test_user_text_is_escaped_for_plotly():
    assert plotly_text("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"
    curve = CurveData("id", "<b>run</b>", "#000", np.arange(3), np.ones(3))
    figure = metric_figure("<i>loss</i>", [curve], "step", log_y=False)
    assert figure["data"][0]["name"] == "&lt;b&gt;run&lt;/b&gt;"
    assert figure["layout"]["title"]["text"] == "&lt;i&gt;loss&lt;/i&gt;"
    parallel = parallel_figure([Axis("<p>", ["<a>", None])], [1.0, None], "m")
    dimension = parallel["data"][0]["dimensions"][0]
    assert dimension["label"] == "&lt;p&gt;" and "&lt;a&gt;" in dimension["ticktext"]


def test_live_curves_are_plain_lists_others_typed_arrays():
    live = CurveData("a", "a", "#000", np.arange(3), np.array([1.0, np.nan, 2.0]), extendable=True)
    done = CurveData("b", "b", "#000", np.arange(3), np.ones(3))
    traces = metric_figure("loss", [live, done], "step", log_y=False)["data"]
    assert traces[0]["y"] == [1.0, None, 2.0]
    assert set(traces[1]["y"]) == {"dtype", "bdata"}


def test_long_text_is_cut_in_the_middle_with_the_full_text_as_title():
    assert short_text("loss") == {"children": "loss"}
    long = "a" * 50 + "b" * 50
    props = short_text(long, 21)
    assert props == {"children": "a" * 10 + "…" + "b" * 10, "title": long}


def test_dropdown_values_stand_in_for_long_names_and_map_back():
    from neural_dsl_tracking.dashboard.layout import chosen_name, chosen_names, option_value, text_options

    names = ["loss", "x" * 10_000 + "-one", "x" * 10_000 + "-two"]
    options = text_options(names)
    assert options[0] == {"label": "loss", "value": "loss", "title": "loss"}
    assert all(len(option["value"]) <= 60 and len(option["label"]) <= 80 for option in options)
    assert len({option["value"] for option in options}) == 3
    assert chosen_names([option["value"] for option in options[::-1]], names) == names[::-1]
    assert chosen_names(["gone"], names) == ["gone"] and chosen_names(None, names) == []
    assert chosen_name(option_value(names[2]), names) == names[2] and chosen_name(None, names) is None


def test_best_value_of_a_series_of_nans_is_nan():
    import math

    assert math.isnan(best_value({"loss": {"min": None, "max": None, "count": 3}}, "loss", "min"))
    assert best_value({"loss": {"min": float("-inf"), "count": 2}}, "loss", "min") == float("-inf")
