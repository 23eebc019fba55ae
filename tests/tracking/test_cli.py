"""``neural experiments ...`` in a subprocess: readable output, clear errors, no tracebacks.

The command runs through the real ``neural_dsl_tracking.cli.main`` with only the tracking
stage registered, so these tests do not depend on the other stages' commands.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from neural_dsl_tracking.tracking import ExperimentTracker

NEURAL = ("import sys, neural_dsl_tracking.cli as cli; "
          "cli.STAGE_COMMANDS = ('neural_dsl_tracking.tracking.cli',); sys.exit(cli.main(sys.argv[1:]))")


def neural(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", NEURAL, *map(str, args)], capture_output=True,
                            text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture
def store(tmp_path):
    base = tmp_path / "store"
    for lr in (0.1, 0.2):
        with ExperimentTracker("cli", base_dir=base, run_name=f"lr{lr}", tags=["t"],
                               auto_visualize=False) as tracker:
            tracker.log_hyperparameters({"lr": lr})
            tracker.log_metrics({"loss": lr, "acc": 1 - lr})
            (tmp_path / "w.pt").write_bytes(b"w")
            tracker.log_artifact(tmp_path / "w.pt", name="ckpt", aliases=["best"])
    return base


def test_ls_lists_runs_as_a_table_and_json(store):
    result = neural("experiments", "ls", "--base-dir", store)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["RUN", "EXPERIMENT", "NAME", "STATUS"]
    assert len(lines) == 3 and "completed" in lines[1] and "loss=" in lines[1]
    data = json.loads(neural("experiments", "--base-dir", store, "ls", "--json").stdout)
    assert sorted(r["run_name"] for r in data) == ["lr0.1", "lr0.2"]
    result = neural("experiments", "ls", "--base-dir", store, "--status", "failed")
    assert result.stdout.startswith("no runs match the filters in")


def test_show_prints_params_metrics_artifacts(store):
    result = neural("experiments", "show", "lr0.1", "--base-dir", store)
    assert result.returncode == 0
    out = result.stdout
    assert "status     completed" in out and "lr" in out and "acc" in out
    assert "ckpt" in out and "best, latest" in out


def test_show_of_a_start_shared_by_a_run_and_a_sweep_is_ambiguous(store):
    # show took the run and said nothing of the sweep whose id starts the same way.
    from neural_dsl_tracking.tracking.store import Store

    db = Store(str(store))
    run_id = db.list_runs()[0].run_id
    sweep_id = run_id[:3] + "0" * 29 if run_id[3] != "0" else run_id[:3] + "1" * 29
    db.create_sweep(experiment="cli", objective="loss", direction="minimize", sampler="tpe", pruner="none",
                    space={}, study_storage="sqlite://", study_name="s", requested_trials=1, sweep_id=sweep_id)
    db.close()
    shared = neural("experiments", "show", run_id[:3], "--base-dir", store)
    assert shared.returncode == 1
    assert shared.stderr == (f"error: {run_id[:3]!r} is ambiguous in {store}: it matches run {run_id[:12]} and "
                             f"sweep {sweep_id[:12]}; give more of the id\n")
    assert f"run        {run_id}" in neural("experiments", "show", run_id[:4], "--base-dir", store).stdout
    assert f"sweep      {sweep_id}" in neural("experiments", "show", sweep_id[:4], "--base-dir", store).stdout
    assert f"run        {run_id}" in neural("experiments", "show", run_id, "--base-dir", store).stdout


def test_show_prints_mirror_failures(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "neural_dsl_tracking.backends", None)
    with pytest.warns(RuntimeWarning):
        with ExperimentTracker("m", base_dir=tmp_path, backend="wandb", auto_visualize=False) as t:
            pass
    out = neural("experiments", "show", t.run_id, "--base-dir", tmp_path).stdout
    assert "mirror failures:" in out and "wandb: not started" in out


def test_compare_and_export(store, tmp_path):
    runs = neural("experiments", "ls", "--base-dir", store, "--json").stdout
    ids = [r["run_id"][:8] for r in json.loads(runs)]
    result = neural("experiments", "compare", *ids, "--base-dir", store, "-o", tmp_path / "cmp")
    assert result.returncode == 0 and "lr" in result.stdout.splitlines()[0]
    assert (tmp_path / "cmp" / "compare_loss.png").exists()
    result = neural("experiments", "export", *ids, "-o", tmp_path / "exp", "--base-dir", store)
    assert result.returncode == 0 and "report.html" in result.stdout
    assert (tmp_path / "exp" / "report.html").exists()


def test_rm_deletes(store):
    result = neural("experiments", "rm", "lr0.1", "--base-dir", store)
    assert result.returncode == 0 and "deleted run" in result.stdout
    assert "lr0.1" not in neural("experiments", "ls", "--base-dir", store).stdout


def test_rm_refuses_a_running_run_without_force(tmp_path):
    tracker = ExperimentTracker("live", base_dir=tmp_path, auto_visualize=False)
    result = neural("experiments", "rm", tracker.run_id, "--base-dir", tmp_path)
    assert result.returncode == 1 and "still running" in result.stderr
    tracker.finish()


@pytest.mark.parametrize("args, message", [
    (["show", "nope"], "error: no run or sweep 'nope'"),
    (["compare", "nope"], "error: no run 'nope'"),
    (["import", "/does/not/exist"], "cannot import /does/not/exist: it does not exist"),
])
def test_user_mistakes_give_one_clear_error(store, args, message):
    result = neural("experiments", *args, "--base-dir", store)
    assert result.returncode == 1 and message in result.stderr


def test_compare_and_export_mistakes_print_only_the_error(store, tmp_path):
    result = neural("experiments", "compare", "lr0.1", "lr0.2", "--metric", "nope", "--base-dir", store)
    assert result.returncode == 1 and not result.stdout
    assert result.stderr.strip() == "error: no run among those compared has metric(s) nope"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "metrics.csv").write_text("my own data")
    result = neural("experiments", "export", "lr0.1", "-o", tmp_path / "mine", "--base-dir", store)
    assert result.returncode == 1 and not result.stdout and "not empty" in result.stderr
    assert (tmp_path / "mine" / "metrics.csv").read_text() == "my own data"
    result = neural("experiments", "export", "lr0.1", "-o", tmp_path / "mine", "--force", "--base-dir", store)
    assert result.returncode == 0 and "run_id" in (tmp_path / "mine" / "metrics.csv").read_text()


@pytest.mark.parametrize("source", ["missing", "afile", "empty"])
def test_import_of_a_bad_folder_creates_no_store(tmp_path, source):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty").mkdir()
    result = neural("experiments", "import", tmp_path / source, "--base-dir", tmp_path / "store")
    assert result.returncode == 1 and f"cannot import {tmp_path / source}" in result.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("action", [["ls"], ["ls", "--json"], ["show", "abc"], ["rm", "abc"]])
def test_a_store_path_that_is_a_file_is_an_error(tmp_path, action):
    (tmp_path / "afile").write_text("x")
    result = neural("experiments", *action, "--base-dir", tmp_path / "afile")
    assert result.returncode == 1 and not result.stdout
    assert f"{tmp_path / 'afile'} is a file, not an experiment store folder" in result.stderr


def test_a_run_named_twice_is_handled_once(store):
    result = neural("experiments", "compare", "lr0.1", "lr0.1", "lr0.2", "--metric", "loss",
                    "--metric", "loss", "--base-dir", store)
    assert result.returncode == 0
    table = result.stdout.splitlines()
    assert table[0].split().count("loss") == 1 and len(table) == 4  # head, 2 runs, "plots saved"
    result = neural("experiments", "rm", "lr0.1", "lr0.1", "--base-dir", store)
    assert result.returncode == 0 and result.stdout.count("deleted run") == 1


def test_compare_and_export_of_emoji_metrics_print_no_font_warnings(tmp_path):
    with ExperimentTracker("e", base_dir=tmp_path / "store", auto_visualize=False) as tracker:
        tracker.log_metrics({"loss/🚀": 1.0, "ünï": 2.0})
    for action in (["compare", tracker.run_id], ["export", tracker.run_id, "-o", tmp_path / "out"]):
        result = neural("experiments", *action, "--base-dir", tmp_path / "store")
        assert result.returncode == 0 and result.stderr == ""


def test_show_prints_long_metric_and_parameter_names_whole(tmp_path):
    long = "val/per_class/accuracy/" + "x" * 40
    with ExperimentTracker("e", base_dir=tmp_path, auto_visualize=False) as tracker:
        tracker.log_metrics({long + "_cat": 1.0, long + "_dog": 2.0})
        tracker.log_hyperparameters({long + "_lr": 0.1, "note": "y" * 200})
    out = neural("experiments", "show", tracker.run_id, "--base-dir", tmp_path).stdout
    for name in (long + "_cat", long + "_dog", long + "_lr"):
        assert name in out
    assert "y" * 200 not in out  # values are still clipped


def test_ls_says_whether_there_is_a_store_at_all(tmp_path):
    result = neural("experiments", "ls", "--base-dir", tmp_path / "typo")
    assert result.returncode == 0 and result.stdout.strip() == f"no experiment store at {tmp_path / 'typo'}"
    assert not (tmp_path / "typo").exists()
    ExperimentTracker("e", base_dir=tmp_path / "store", auto_visualize=False).finish("failed")
    result = neural("experiments", "ls", "--base-dir", tmp_path / "store", "--status", "completed")
    assert result.stdout.strip() == f"no runs match the filters in {tmp_path / 'store'}"
    result = neural("experiments", "ls", "--base-dir", tmp_path / "store")
    assert result.stdout.strip().startswith("RUN")


def test_import_command(tmp_path):
    folder = tmp_path / "old" / "exp_abcdef12"
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text('{"start_time": "2024-01-01T00:00:00", "status": "completed"}')
    (folder / "metrics.json").write_text('[{"timestamp": 1.0, "step": 0, "loss": 0.5}]')
    result = neural("experiments", "import", tmp_path / "old", "--base-dir", tmp_path / "store")
    assert result.returncode == 0 and "1 imported" in result.stdout
    assert "exp_abcdef12" in neural("experiments", "ls", "--base-dir", tmp_path / "store").stdout


def test_store_on_postgresql(postgres_url, tmp_path):
    with ExperimentTracker("pg", base_dir=tmp_path, store=postgres_url, auto_visualize=False) as t:
        t.log_metrics({"loss": 1.0})
    result = neural("experiments", "ls", "--store", postgres_url)
    assert result.returncode == 0 and t.run_id[:8] in result.stdout


def test_bare_experiments_takes_the_dashboard_options():
    result = neural("experiments", "--help")
    assert result.returncode == 0
    for option in ("--port", "--host", "--base-dir", "--store", "ls", "import"):
        assert option in result.stdout


@pytest.mark.parametrize("command", [["ls"], [], ["--port", "0"]], ids=["ls", "dashboard",
                                                                     "dashboard-port"])
def test_a_sqlite_url_as_store_is_refused_with_what_to_give(tmp_path, command):
    result = neural("experiments", *command, "--store", f"sqlite:///{tmp_path}/runs.db")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: unsupported store URL sqlite:///")
    assert "give a folder path for an embedded SQLite store" in result.stderr
    assert list(tmp_path.iterdir()) == []
