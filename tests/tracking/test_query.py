"""The run query language on a seeded store, on SQLite and on PostgreSQL: every field and
operator against answers worked out by hand, orders and pages, both engines agreeing, and
errors that point at the column."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import numpy as np
import pytest

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking.query import QueryError, parse_query
from neural_dsl_tracking.tracking.store import Store

# Midnight (local time, as `ls` shows times) ten days ago; the runs start at noon, an hour apart.
DAY = (datetime.now() - timedelta(days=10)).replace(hour=0, minute=0, second=0, microsecond=0)
NOON = DAY + timedelta(hours=12)
NAN = float("nan")


def at(hours: float) -> float:
    return (NOON + timedelta(hours=hours)).timestamp()


def iso(hours: float) -> str:
    return (NOON + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


# name, experiment, tags, status (stale: running with an old heartbeat), start hour, seconds, params,
# metrics, model (params, macs, fingerprint, layer counts)
RUNS = [
    ("resnet-a", "vision", ["baseline", "gpu"], "completed", 0, 600,
     {"optimizer.lr": 0.001, "optimizer.type": "adam", "batch": 32, "aug": True},
     {"val_accuracy": [0.5, 0.9, 0.96], "loss": [1.0, 0.4]},
     (1_200_000, 500_000_000, "aaaa1111", {"Conv2D": 3, "Dense": 2})),
    ("ResNet-B", "vision", ["baseline"], "completed", 1, 7200,
     {"optimizer.lr": 0.01, "optimizer.type": "sgd", "batch": 64, "aug": False},
     {"val_accuracy": [0.6, 0.94], "loss": [0.9, 0.3]},
     (2_500_000, 900_000_000, "bbbb2222", {"Conv2D": 1, "Dense": 1})),
    ("mlp-1", "tabular", [], "failed", 2, 30,
     {"optimizer.lr": 0.1, "optimizer.type": "adam", "batch": 32},
     {"val_accuracy": [0.2, NAN], "loss": [2.0]},
     (50_000, 50_000, "cccc3333", {"Dense": 3})),
    ("mlp-2", "tabular", ["gpu"], "interrupted", 3, 90,
     {"optimizer.lr": "0.01", "optimizer.type": "adam"},
     {"loss": [1.5, 1.2, 0.9]}, None),
    ("sweep-7", "vision", ["sweep"], "running", 4, None,
     {"optimizer.lr": 0.0005},
     {"val_accuracy": [0.97]},
     (1_200_000, 500_000_000, "aaaa1111", {"Conv2D": 3, "Dense": 2})),
    ("stale", "vision", [], "stale", 5, 100,
     {"optimizer.lr": NAN, "layers": [64, 32]}, {}, None),
]
ALL = {run[0] for run in RUNS}

CASES = [
    # params: numbers compare with numbers, text with text
    ("params.optimizer.lr < 0.01", {"resnet-a", "sweep-7"}),
    ("params.optimizer.lr <= 0.01", {"resnet-a", "ResNet-B", "sweep-7"}),
    ("params.optimizer.lr > 0.01", {"mlp-1"}),
    ("params.optimizer.lr >= 1e-1", {"mlp-1"}),
    ("params.optimizer.lr = 0.01", {"ResNet-B"}),
    ("params.optimizer.lr != 0.01", {"resnet-a", "mlp-1", "sweep-7"}),
    ("params.optimizer.lr = '0.01'", {"ResNet-B", "mlp-2"}),
    ("params.optimizer.type = adam", {"resnet-a", "mlp-1", "mlp-2"}),
    ("params.optimizer.type != adam", {"ResNet-B"}),
    ("params.optimizer.type ~ 'ad*'", {"resnet-a", "mlp-1", "mlp-2"}),
    ("params.optimizer.type ~ '?gd'", {"ResNet-B"}),
    ("params.optimizer.type in (sgd, adam)", {"resnet-a", "ResNet-B", "mlp-1", "mlp-2"}),
    ("params.aug = true", {"resnet-a"}),
    ("params.layers = '[64, 32]'", {"stale"}),
    ("params.batch = 32", {"resnet-a", "mlp-1"}),
    ("not params.batch = 32", ALL - {"resnet-a", "mlp-1"}),
    ("params.nothing = 1", set()),
    # metric aggregates (a NaN last value has no last; the mean leaves NaN out)
    ("metrics.val_accuracy.max >= 0.95", {"resnet-a", "sweep-7"}),
    ("metrics.val_accuracy.min < 0.55", {"resnet-a", "mlp-1"}),
    ("metrics.val_accuracy.last > 0.9", {"resnet-a", "ResNet-B", "sweep-7"}),
    ("metrics.val_accuracy.mean > 0.7", {"resnet-a", "ResNet-B", "sweep-7"}),
    ("metrics.val_accuracy.mean < 0.5", {"mlp-1"}),
    ("metrics.loss.count = 3", {"mlp-2"}),
    ("metrics.loss.count != 1", {"resnet-a", "ResNet-B", "mlp-2"}),
    # tags, status, experiment, names
    ("tags has baseline", {"resnet-a", "ResNet-B"}),
    ("tags has gpu and not tags has baseline", {"mlp-2"}),
    ("tags ~ 'g*'", {"resnet-a", "mlp-2"}),
    ("tags in (sweep, gpu)", {"resnet-a", "mlp-2", "sweep-7"}),
    ("status = completed", {"resnet-a", "ResNet-B"}),
    ("status in (running, crashed)", {"sweep-7", "stale"}),
    ("status = crashed", {"stale"}),
    ("status != completed", ALL - {"resnet-a", "ResNet-B"}),
    ("status not in (completed, running)", {"mlp-1", "mlp-2", "stale"}),
    ("experiment = vision", {"resnet-a", "ResNet-B", "sweep-7", "stale"}),
    ("experiment != vision", {"mlp-1", "mlp-2"}),
    ("experiment ~ 'tab*'", {"mlp-1", "mlp-2"}),
    ("name = 'mlp-1'", {"mlp-1"}),
    ("name ~ 'mlp-?'", {"mlp-1", "mlp-2"}),
    ("name ~ '*-*'", ALL - {"stale"}),
    ("name ~ 'resnet*'", {"resnet-a"}),
    # plain words: a part of the name or the id, in any letter case; side by side they and
    ("resnet", {"resnet-a", "ResNet-B"}),
    ("'mlp' -2", {"mlp-2"}),
    ('"sweep"', {"sweep-7"}),
    ("RESNET-b", {"ResNet-B"}),
    ("'0300'", {"mlp-2"}),
    ("tabular", set()),
    # times
    (f"start >= {iso(2)}", {"mlp-1", "mlp-2", "sweep-7", "stale"}),
    (f"start <= {iso(1)}", {"resnet-a", "ResNet-B"}),
    (f"start > {DAY:%Y-%m-%d}", ALL),
    (f"start < '{iso(1).replace('T', ' ')}'", {"resnet-a"}),
    ("start > 1d ago", set()),
    ("start < 2d ago", ALL),
    ("duration < 1m", {"mlp-1"}),
    ("duration >= 2h", {"ResNet-B", "sweep-7"}),
    ("duration > 1h30m", {"ResNet-B", "sweep-7"}),
    ("duration = 90", {"mlp-2"}),
    ("duration <= 100s", {"mlp-1", "mlp-2", "stale"}),
    # model facts (a run without a model matches none)
    ("model.params < 1e6", {"mlp-1"}),
    ("model.params >= 1200000", {"resnet-a", "ResNet-B", "sweep-7"}),
    ("model.macs > 6e8", {"ResNet-B"}),
    ("model.layers.Conv2D >= 2", {"resnet-a", "sweep-7"}),
    ("model.layers.Conv2D = 0", {"mlp-1"}),
    ("model.layers.Conv2D < 2", {"ResNet-B", "mlp-1"}),
    ("model.layers.Dense != 2", {"ResNet-B", "mlp-1"}),
    ("model.fingerprint = aaaa1111", {"resnet-a", "sweep-7"}),
    ("model.fingerprint ~ 'bbbb*'", {"ResNet-B"}),
    # hex shorter than a whole fingerprint (ls prints 8 characters, show 16) is its start
    ("model.fingerprint = aaaa", {"resnet-a", "sweep-7"}),
    ("model.fingerprint != aaaa", {"ResNet-B", "mlp-1"}),
    ("model.fingerprint in (aaaa, 'bbbb2222')", {"resnet-a", "ResNet-B", "sweep-7"}),
    ("model.fingerprint = aaaa11110", set()),
    ("model.fingerprint = 'aaaa*'", set()),
    # and, or, not, parentheses, keywords in any case
    ("(status = completed or status = failed) and params.optimizer.type = adam", {"resnet-a", "mlp-1"}),
    ("status = completed or status = failed and params.optimizer.type = adam",
     {"resnet-a", "ResNet-B", "mlp-1"}),
    ("not (experiment = vision or tags has gpu)", {"mlp-1"}),
    ("NOT experiment = vision AND params.batch = 32", {"mlp-1"}),
    ("tags has baseline params.optimizer.lr > 0.005", {"ResNet-B"}),
    # `and`s of conditions on other tables (counted by intersecting their runs)
    ("params.optimizer.type = adam and metrics.val_accuracy.max >= 0.95", {"resnet-a"}),
    ("tags ~ '*' and model.params >= 1200000 and not status = completed", {"sweep-7"}),
    ("metrics.val_accuracy.mean > 0.7 and metrics.loss.last <= 0.4 and model.layers.Dense <= 2",
     {"resnet-a", "ResNet-B"}),
    ("", ALL),
]
QUERIES = [case[0] for case in CASES]
ORDERS = ["-start", "start", "name", "-name", "metrics.val_accuracy.max", "-params.optimizer.lr",
          "duration", "-model.layers.Conv2D", "status", "-metrics.loss.mean", "model.fingerprint"]


def seed(store: Store) -> None:
    """The runs of RUNS, written through the store's own API."""
    for index, (name, experiment, tags, status, hour, seconds, params, metrics, model) in enumerate(RUNS):
        run_id = f"{index:02d}" + "0" * 30
        start = at(hour)
        store.create_run(experiment=experiment, run_name=name, tags=tags, run_id=run_id, start_time=start)
        store.log_params(run_id, params)
        store.append_metrics(run_id, {key: (np.arange(len(values)), np.array(values, float),
                                            np.full(len(values), start)) for key, values in metrics.items()})
        if model is not None:
            count, macs, fingerprint, layers = model
            spec = {"layers": [{"type": kind} for kind, n in layers.items() for _ in range(n)]}
            store.set_run_model(run_id, spec, params=count, macs=macs, fingerprint=fingerprint)
        if status not in ("running", "stale"):
            store.set_status(run_id, status, end_time=start + seconds)
        if status == "stale":
            store.db.write(lambda cur, rid=run_id, beat=start + seconds: cur.execute(
                "UPDATE runs SET heartbeat = ? WHERE run_id = ?", (beat, rid)))


@pytest.fixture
def seeded(store_kwargs):
    store = Store(**store_kwargs)
    seed(store)
    yield store
    store.close()


def names(store: Store, query: str, **kwargs) -> list[str]:
    return [run.run_name for run in store.query_runs(parse_query(query), **kwargs)]


def test_every_field_and_operator(seeded):
    wrong = {}
    for query, expected in CASES:
        found = names(seeded, query)
        if set(found) != expected or len(found) != len(set(found)):
            wrong[query] = (sorted(found), sorted(expected))
        assert seeded.count_runs(parse_query(query)) == len(expected), query
    assert not wrong, wrong


def test_orders_and_pages(seeded):
    assert names(seeded, "") == ["stale", "sweep-7", "mlp-2", "mlp-1", "ResNet-B", "resnet-a"]
    assert names(seeded, "", order="start") == ["resnet-a", "ResNet-B", "mlp-1", "mlp-2", "sweep-7", "stale"]
    assert names(seeded, "", order="name") == ["ResNet-B", "mlp-1", "mlp-2", "resnet-a", "stale", "sweep-7"]
    # runs without the value come last, newest first
    assert names(seeded, "", order="metrics.val_accuracy.max") == [
        "mlp-1", "ResNet-B", "resnet-a", "sweep-7", "stale", "mlp-2"]
    # numbers first, then the values that are not numbers (as JSON text: "0.01" and NaN)
    assert names(seeded, "", order="-params.optimizer.lr") == [
        "mlp-1", "ResNet-B", "resnet-a", "sweep-7", "stale", "mlp-2"]
    assert names(seeded, "", order=" - model.layers.Conv2D") == [
        "sweep-7", "resnet-a", "ResNet-B", "stale", "mlp-2", "mlp-1"]
    assert names(seeded, "", limit=2) == ["stale", "sweep-7"]
    assert names(seeded, "", limit=2, offset=3) == ["mlp-1", "ResNet-B"]
    assert names(seeded, "", offset=4) == ["ResNet-B", "resnet-a"]
    assert names(seeded, "experiment = vision", order="name", limit=3) == ["ResNet-B", "resnet-a", "stale"]
    assert names(seeded, "", limit=0) == []
    for bad in ({"limit": -1}, {"offset": -2}):
        with pytest.raises(TrackingError, match="limit and offset must be >= 0"):
            seeded.query_runs(None, **bad)


@pytest.mark.postgres
def test_sqlite_and_postgresql_give_the_same_answers(tmp_path, postgres_url):
    stores = [Store(tmp_path / "sqlite"), Store(tmp_path / "pg", postgres_url)]
    try:
        for store in stores:
            seed(store)
        for query in QUERIES:
            for order in ORDERS:
                sqlite, postgres = (names(store, query, order=order) for store in stores)
                assert sqlite == postgres, (query, order)
    finally:
        for store in stores:
            store.close()


def test_the_query_and_the_filters_combine(seeded):
    both = parse_query("tags has gpu") & parse_query("experiment = tabular")
    assert [r.run_name for r in seeded.query_runs(both)] == ["mlp-2"]
    assert [r.run_name for r in seeded.query_runs(parse_query("") & parse_query("mlp-1"))] == ["mlp-1"]
    nested = parse_query("tags has gpu and params.optimizer.type = adam") & parse_query("experiment = tabular")
    assert seeded.count_runs(nested) == 1


BENCH_ANDS = ["params.optimizer.type = adam and params.batch >= 64",
              "metrics.val_accuracy.mean > 0.5 and metrics.loss.last < 0.3",
              "model.layers.Conv2D >= 2 and model.params < 1e6",
              "params.optimizer.lr < 0.01 and metrics.val_accuracy.max >= 0.95 and tags has baseline "
              "and model.layers.Conv2D >= 2 and status in (completed, running)"]


@pytest.mark.parametrize("text", BENCH_ANDS)
def test_counting_an_and_merges_sets_read_in_run_id_order(tmp_path, text):
    """bench/query.py's `and`s took 90-150 ms of CPU to count over 100,000 runs, each run
    checked against each condition: each condition's runs are now read through an index in run
    id order and merged, with no set sorted or gathered into a temporary table."""
    store = Store(tmp_path / "experiments")
    try:
        seed(store)
        counted = parse_query(text).count_sql("sqlite", now=time.time(), crash_after=30.0)
        assert counted is not None
        plan = [row[3] for row in store.db.read(lambda cur: cur.all(f"EXPLAIN QUERY PLAN {counted[0]}", counted[1]))]
        assert any(step.startswith("MERGE (INTERSECT)") for step in plan), plan
        assert not [step for step in plan if "TEMP B-TREE" in step], plan
        reads = [step for step in plan if step.startswith(("SEARCH", "SCAN"))
                 and step.split()[1] not in ("runs", "r", "found")]
        assert reads and all(" INDEX " in step for step in reads), plan
    finally:
        store.close()


def test_a_mean_is_kept_across_flushes(seeded):
    run_id = seeded.create_run(experiment="vision", run_name="flushes")
    for part in ([1.0, 2.0], [NAN, 6.0], [float("inf"), float("-inf")]):
        seeded.append_metrics(run_id, {"m": (np.arange(len(part)), np.array(part), np.zeros(len(part)))})
        if part[0] == 1.0:
            assert names(seeded, "metrics.m.mean = 1.5") == ["flushes"]
        if part[1] == 6.0:
            assert names(seeded, "metrics.m.mean = 3") == ["flushes"]
    # inf + -inf has no mean, on either engine
    assert names(seeded, "metrics.m.mean > 0") == [] and names(seeded, "metrics.m.mean < 0") == []
    assert names(seeded, "metrics.m.count = 6") == ["flushes"]


ERRORS = [
    ("parms.lr < 1", 1, 1, "unknown field 'parms'; did you mean 'params'?"),
    ("metrics.acc.maxx > 1", 1, 1, "did you mean 'max'?"),
    ("metrics.acc > 1", 1, 1, "a metric needs a key and an aggregate"),
    ("status = complete", 1, 10, "unknown status 'complete'; did you mean 'completed'?"),
    ("tags = x", 1, 6, "tags takes has, ~, in, not '=' (tags has 'x')"),
    ("name < x", 1, 6, "name takes =, !=, ~, in, not '<'"),
    ("start in (2026-01-01)", 1, 1, "start takes <, <=, >, >=, not 'in'"),
    ("params.lr <", 1, 12, "the query ends too soon"),
    ("name ~ (", 1, 8, "unexpected '('"),
    ("a and", 1, 6, "the query ends too soon"),
    ("(a", 1, 3, "expected ')'"),
    ("a)", 1, 2, "unexpected ')'"),
    ("metrics.acc.max > abc", 1, 19, "expected a number, got 'abc'"),
    ("model.params > '5'", 1, 16, "expected a number"),
    ("metrics.a.max > 1e999", 1, 17, "out of range"),
    ("params.opt < adam", 1, 14, "< compares numbers; 'adam' is text"),
    ("start > yesterday", 1, 9, "expected a date"),
    ("start > 2026-13-45", 1, 9, "expected a date"),
    ("start = 2026-01-01", 1, 7, "start takes <, <=, >, >=, not '='"),
    ("duration > 2hours", 1, 12, "expected a duration"),
    ("duration > 2x", 1, 12, "expected a duration"),
    ("name = x ago", 1, 8, "'ago' is for start times"),
    ("model.layer.Conv2D > 1", 1, 1, "unknown model fact 'layer'; did you mean 'layers'?"),
    ("model.layers > 1", 1, 1, "give the layer type"),
    ("model.layers.dense >= 1", 1, 1, "unknown layer type 'dense'; did you mean 'Dense'?"),
    ("model.layers.LSTM >= 1 or model.layers.conv2d = 0", 1, 27, "did you mean 'Conv2D'?"),
    ("params < 3", 1, 1, "give the parameter's name"),
    ("name.first = x", 1, 1, "'name' has no parts"),
    ("params..x = 1", 1, 1, "empty part"),
    ("x = 'unterminated", 1, 5, "a quoted string is not closed"),
    ("name = a and\n  experiment = b and\n  statsu = failed", 3, 3, "did you mean 'status'?"),
]


@pytest.mark.parametrize("query, line, column, message", ERRORS)
def test_a_bad_query_is_one_message_with_a_caret(query, line, column, message):
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    text = str(caught.value)
    header, shown, caret = text.split("\n")
    assert header.startswith(f"query:{line}:{column}: ") and message in header, text
    source_line = query.split("\n")[line - 1]
    assert shown.endswith(f"| {source_line}"), text
    assert caret.index("^") - caret.index("|") - 2 == column - 1, text


def test_an_order_names_a_field():
    from neural_dsl_tracking.tracking.query import parse_order

    assert parse_order("-metrics.loss.min")[1] is True
    for order, message in (("", "give a field"), ("-strat", "did you mean 'start'?"), ("tags", "tags")):
        with pytest.raises(QueryError, match=message):
            parse_order(order)


def test_a_query_answers_as_the_runs_change(seeded):
    """Statuses are read when the query runs: a running run turns crashed, a finished one not."""
    assert names(seeded, "status = crashed") == ["stale"]
    crashed_now = seeded.query_runs(parse_query("status = crashed"), crash_after=0.0)
    assert sorted(r.run_name for r in crashed_now) == ["stale", "sweep-7"]
    assert {r.status for r in crashed_now} == {"crashed"}
    started = time.time()
    seeded.create_run(experiment="new", run_name="fresh")
    assert names(seeded, "start > 1m ago") == ["fresh"] and time.time() - started < 60


def test_conditions_met_by_many_runs_are_checked_run_by_run(seeded):
    """The form the store picks for a condition most runs meet (EXISTS per run, see
    query._Compiler) answers like the form for a few (IN over the gathered ids)."""
    wrong = {}
    for query, expected in CASES:
        where, args = parse_query(query).sql(seeded.db.dialect, now=time.time(), crash_after=30.0,
                                             many=lambda sql, args: True)
        found = {row[0] for row in seeded.db.read(lambda cur: cur.all(
            f"SELECT r.run_name FROM runs r WHERE {where}", args))}
        if found != expected:
            wrong[query] = (sorted(found), sorted(expected))
    assert not wrong, wrong


def test_numbers_of_parameters_logged_before_the_column_are_filled_in(seeded):
    from neural_dsl_tracking.tracking.schema import _fill_param_numbers

    seeded.db.write(lambda cur: cur.execute("UPDATE params SET num = NULL"))
    assert names(seeded, "params.optimizer.lr < 0.01") == []
    seeded.db.write(_fill_param_numbers)
    assert set(names(seeded, "params.optimizer.lr < 0.01")) == {"resnet-a", "sweep-7"}
    assert set(names(seeded, "params.aug = true or params.layers = '[64, 32]'")) == {"resnet-a", "stale"}
