"""``neural experiments ls`` with --where, --limit and --all, in a real subprocess."""

from __future__ import annotations

import json
import time

import pytest

from neural_dsl_tracking.tracking.store import Store
from tests.tracking.test_cli import neural


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """60 runs a minute apart (run-00 oldest), lr 0.001 * i, every tenth tagged 'ten'."""
    base = tmp_path_factory.mktemp("query_cli") / "store"
    store = Store(base)
    start = time.time() - 3600
    for i in range(60):
        run_id = store.create_run(experiment="odd" if i % 2 else "even", run_name=f"run-{i:02d}",
                                  tags=["ten"] if i % 10 == 0 else [], start_time=start + 60 * i)
        store.log_params(run_id, {"optimizer.lr": 0.001 * i})
        store.set_status(run_id, "completed", end_time=start + 60 * i + 30)
    store.close()
    return base


def listed(result) -> list[str]:
    """The NAME column of an ls table."""
    lines = result.stdout.splitlines()
    column = lines[0].index("NAME")
    return [line[column:].split()[0] for line in lines[1:] if line.strip() and "not listed" not in line]


def test_ls_lists_the_newest_50_and_says_how_many_it_left_out(store):
    result = neural("experiments", "ls", "--base-dir", store)
    assert result.returncode == 0, result.stderr
    assert listed(result) == [f"run-{i:02d}" for i in range(59, 9, -1)]
    assert result.stdout.rstrip().endswith("10 more runs not listed: --limit N or --all to list them")


def test_ls_limit_and_all(store):
    result = neural("experiments", "ls", "--base-dir", store, "--limit", "3")
    assert listed(result) == ["run-59", "run-58", "run-57"]
    assert "57 more runs not listed" in result.stdout
    result = neural("experiments", "ls", "--base-dir", store, "--all")
    assert len(listed(result)) == 60 and "not listed" not in result.stdout
    result = neural("experiments", "ls", "--base-dir", store, "--limit", "59", "--json")
    assert len(json.loads(result.stdout)) == 59 and "1 more run not listed" in result.stderr


def test_ls_where(store):
    result = neural("experiments", "ls", "--base-dir", store, "--where",
                    "params.optimizer.lr >= 0.0295 and (tags has ten or name ~ 'run-5?') and not run-55")
    assert result.returncode == 0, result.stderr
    assert listed(result) == ["run-59", "run-58", "run-57", "run-56", "run-54", "run-53", "run-52",
                              "run-51", "run-50", "run-40", "run-30"]
    assert "not listed" not in result.stdout
    result = neural("experiments", "ls", "--base-dir", store, "--where", "name ~ 'run-?0'", "--experiment", "even",
                    "--status", "completed", "--tag", "ten", "--limit", "2")
    assert listed(result) == ["run-50", "run-40"] and "4 more runs not listed" in result.stdout
    result = neural("experiments", "ls", "--base-dir", store, "--where", "name = nothing")
    assert result.returncode == 0 and result.stdout.strip() == f"no runs match the filters in {store}"


@pytest.mark.parametrize("args, message", [
    (["--where", "params.lr < 0.01 and statsu = done"],
     "error: query:1:22: unknown field 'statsu'; did you mean 'status'? (fields: name, experiment, "
     "status, tags, start, duration, params, metrics, model)\n"
     "  1 | params.lr < 0.01 and statsu = done\n"
     "    |                      ^~~~~~\n"),
    (["--where", "metrics.loss.min <"], "error: query:1:19: the query ends too soon"),
    (["--limit", "0"], "--limit: expected a whole number of at least 1, got '0'"),
    (["--limit", "3", "--all"], "not allowed with argument"),
])
def test_ls_mistakes_are_one_clear_message(store, args, message):
    result = neural("experiments", "ls", "--base-dir", store, *args)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert result.stdout == ""
