"""Hostile text in queries stays a bound value: quotes, ``;``, ``--``, LIKE and GLOB
wildcards, backslashes, NUL and 10 kB strings find exactly the runs that hold them, on
SQLite and PostgreSQL, and leave every table as it was."""

from __future__ import annotations

import pytest

from neural_dsl_tracking.tracking.query import parse_query, quote
from neural_dsl_tracking.tracking.store import Store

HOSTILE = ["'; DROP TABLE runs; --", 'x" OR 1=1 --', "50%_off", "50xyoff", "a_b", "aXb",
           "back\\slash", "back\\\\slash", "semi;colon", "[abc]", "a", "ünï çødé", "--", "%", "_",
           "'", '"', "\\", "*"]
NUL = "nul\x00name"
BIG = ("'\"\\;--%_" * 1250)[:10_000]


@pytest.fixture
def hostile(store_kwargs):
    store = Store(**store_kwargs)
    postgres = store.db.dialect == "postgresql"
    names = HOSTILE + ([] if postgres else [NUL])  # PostgreSQL text cannot hold a NUL
    for name in names:
        run_id = store.create_run(experiment=name, run_name=name, tags=[name])
        store.log_params(run_id, {"note": name, name: 1})
        store.append_metrics(run_id, {name: _series()})
    big = store.create_run(experiment="big", run_name="big")
    store.log_params(big, {"note": BIG})
    yield store, names
    store.close()


def _series():
    import numpy as np

    return np.array([0]), np.array([1.0]), np.array([0.0])


def found(store: Store, query: str) -> list[str]:
    return sorted(run.run_name for run in store.query_runs(parse_query(query)))


def tables(store: Store) -> dict[str, int]:
    counted = ("runs", "params", "run_tags", "metric_summary", "metric_chunks", "experiments")
    return {table: store.db.read(lambda cur, t=table: cur.one(f"SELECT COUNT(*) FROM {t}"))[0]
            for table in counted}


def test_hostile_values_match_only_themselves(hostile):
    store, names = hostile
    before = tables(store)
    wrong = {}
    for name in names:
        text = quote(name)
        literal = [name]
        expect = {
            f"name = {text}": literal,
            f"experiment = {text}": literal,
            f"tags has {text}": literal,
            f"params.note = {text}": literal,
            f"status = completed or name != {text}": sorted(set(names) - {name} | {"big"}),
            f"name in ({text}, 'nothing')": literal,
        }
        if "*" not in name and "?" not in name:  # the glob's own wildcards
            expect[f"name ~ {text}"] = literal
            expect[f"params.note ~ {text}"] = literal
            expect[f"tags ~ {text}"] = literal
        for query, expected in expect.items():
            answer = found(store, query)
            if answer != expected:
                wrong[query] = (answer, expected)
    assert not wrong, wrong
    assert tables(store) == before


def test_wildcards_of_like_and_glob_are_plain_characters(hostile):
    store, _ = hostile
    assert found(store, "name ~ '50%_off'") == ["50%_off"]
    assert found(store, "name ~ 'a_b'") == ["a_b"]
    assert found(store, "name ~ '[abc]'") == ["[abc]"]
    assert found(store, "'a_b'") == ["a_b"]  # a plain word: a part of the name, as written
    assert found(store, "name ~ '50*off'") == ["50%_off", "50xyoff"]
    assert found(store, "name ~ 'a?b'") == ["aXb", "a_b"]
    assert found(store, "'%'") == ["%", "50%_off"]


def test_hostile_keys_are_bound_too(hostile):
    store, names = hostile
    for key in ("a;b--%_\\", "x'--", "note"):
        for query in (f"params.{key} = 1", f"metrics.{key}.max > 0", f"model.layers.{key} >= 1"):
            # a key is one word: anything but spaces, quotes, brackets, commas and operators
            if any(c in key for c in "'"):
                with pytest.raises(Exception, match="query:"):
                    parse_query(query)
                continue
            found(store, query)
    assert found(store, "params.semi;colon = 1") == ["semi;colon"]
    assert found(store, "metrics.50%_off.max = 1") == ["50%_off"]
    assert found(store, "metrics.--.count = 1") == ["--"]


def test_a_nul_and_a_10_kb_string_are_values_like_any_other(hostile):
    store, names = hostile
    expected = [NUL] if NUL in names else []  # SQLite holds it; on PostgreSQL nothing can
    assert found(store, f"name = {quote(NUL)}") == expected
    assert found(store, quote(NUL)) == expected
    assert found(store, f"params.note ~ {quote(NUL)}") == expected
    assert len(found(store, f"name != {quote(NUL)}")) == len(names) + 1 - len(expected)
    assert found(store, f"params.note = {quote(BIG)}") == ["big"]
    assert found(store, f"params.note ~ {quote(BIG[:5000] + '*')}") == ["big"]
    assert found(store, quote(BIG)) == []
    assert found(store, f"name = {quote(BIG)} or tags has {quote(BIG)}") == []


LEAF = ("status not in (failed, running) and params.x ~ 'a' and not model.layers.Conv2D = 0 "
        "and metrics.a.mean != 2 and tags ~ 'x*' and 'w'")
SHAPES = [lambda d: "(name = a or (" * d + LEAF + "))" * d,
          lambda d: "not (name = a or not (" * d + LEAF + "))" * d,
          lambda d: "not " * d + "(" + LEAF + ")",
          lambda d: "(name = a or (tags has b and " * d + "name = c" + "))" * d]


def deepest(shape) -> str:
    """The deepest query of this shape the parser takes (it takes the shallowest)."""
    from neural_dsl_tracking.tracking.query import QueryError

    accepted = shape(1)
    for depth in range(2, 100):
        try:
            parse_query(shape(depth))
        except QueryError as error:
            assert "deeper than" in str(error)
            return accepted
        accepted = shape(depth)
    raise AssertionError("no depth limit")


def test_the_largest_queries_run_and_larger_ones_are_one_error(hostile):
    from neural_dsl_tracking.tracking.query import MAX_CONDITIONS, QueryError

    store, names = hostile
    widest = " or ".join(["'zzz'"] * (MAX_CONDITIONS - 1) + ["name = a"])
    members = f"name in ({', '.join(['x'] * (MAX_CONDITIONS - 1))}, a)"
    assert found(store, widest) == ["a"] and found(store, members) == ["a"]
    for shape in SHAPES:  # the database takes every query the parser takes
        query = deepest(shape)
        found(store, query)
        assert store.count_runs(parse_query(query)) >= 0
    for query in (widest + " or b", members.replace("(", "(y, ")):
        with pytest.raises(QueryError, match=f"at most {MAX_CONDITIONS} conditions"):
            parse_query(query)
