"""The MLflow mirror, read back with MlflowClient from a SQLite store and a real
``mlflow server`` on 127.0.0.1; failure cases with a closed port and a stopped server."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import pytest

from neural_dsl_tracking.backends import RunInfo, open_mirrors
from neural_dsl_tracking.backends.registry import create_mirror
from neural_dsl_tracking.backends.workers import MirrorWorkers

N_POINTS = 2500  # more than two log_batch calls


def mirror_a_run(uri: str, store: Path, failures: list, png_file: Path, *, experiment: str,
                 status: str = "completed", run_id: str = "run-0001") -> tuple[list[str], dict]:
    """Feed one complete run through open_mirrors(["mlflow"]) and return (unsent, inputs)."""
    checkpoint = store / "ckpt.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"weights" * 1000)
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    points = [("loss", i, 1.0 / (i + 1), 1_700_000_000.0 + i * 0.25) for i in range(N_POINTS)]
    points += [("val/acc@1", 1, 0.5, 1_700_000_100.5), ("val/acc@1", 2, 0.75, 1_700_000_200.5)]
    run = RunInfo(run_id, "exp-from-run", "first run", ["baseline", "cpu"], store)
    mirrors = open_mirrors(["local", "mlflow"], {"mlflow": {"tracking_uri": uri, "experiment": experiment}},
                           run, lambda *a: failures.append(a))
    params = {"lr": 0.01, "optimizer": {"type": "Adam", "betas": [0.9, 0.999]},
              "notes": "x" * 7000, "params": [f"p{i}" for i in range(3)],
              **{f"extra_{i}": i for i in range(150)}}
    mirrors.params(params)
    for start in range(0, len(points), 700):  # several flushes
        mirrors.metrics(points[start : start + 700])
    mirrors.artifact(checkpoint, "checkpoint", 3, sha, ["latest", "best"], "ckpt.pt")
    mirrors.figure(png_file, "loss")
    unsent = mirrors.finish(status, timeout=60)
    return unsent, {"points": points, "sha": sha, "bytes": checkpoint.read_bytes()}


def the_run(client, experiment: str):
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1
    return runs[0]


def check_complete(client, experiment: str, sent: dict, tmp_path: Path, status: str = "FINISHED"):
    run = the_run(client, experiment)
    run_id = run.info.run_id
    assert run.info.run_name == "first run"
    assert run.info.status == status
    tags = run.data.tags
    assert tags["neural.run_id"] == "run-0001" and tags["neural.tags"] == "baseline, cpu"
    assert "baseline" in tags and "cpu" in tags
    params = run.data.params
    assert params["lr"] == "0.01"
    assert params["optimizer.type"] == "Adam" and params["optimizer.betas"] == "[0.9, 0.999]"
    assert params["notes"] == "x" * 6000  # MLflow's limit
    assert len([k for k in params if k.startswith("extra_")]) == 150  # > 100: several calls
    history = sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)
    expected = [p for p in sent["points"] if p[0] == "loss"]
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (step, value, int(round(t * 1000))) for _, step, value, t in expected
    ]
    acc = sorted(client.get_metric_history(run_id, "val/acc_1"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in acc] == [(1, 0.5), (2, 0.75)]
    listed = [a.path for a in client.list_artifacts(run_id, "artifacts/checkpoint/v3")]
    assert listed == ["artifacts/checkpoint/v3/ckpt.pt"]
    local = client.download_artifacts(run_id, "artifacts/checkpoint/v3/ckpt.pt", str(tmp_path))
    assert Path(local).read_bytes() == sent["bytes"]
    assert tags["neural.artifact.checkpoint.v3.sha256"] == sent["sha"]
    assert tags["neural.artifact.checkpoint.best"] == "v3"
    assert tags["neural.artifact.checkpoint.latest"] == "v3"
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/loss.png"]


def test_complete_run_in_a_sqlite_store(mlflow_sqlite_uri, tmp_path, failures, png_file):
    from mlflow import MlflowClient

    unsent, sent = mirror_a_run(mlflow_sqlite_uri, tmp_path / "store", failures, png_file,
                                experiment="sqlite-complete")
    assert unsent == [] and failures == []
    check_complete(MlflowClient(mlflow_sqlite_uri), "sqlite-complete", sent, tmp_path)
    # artifacts of the experiment we created sit next to the database, not in the cwd
    database = Path(mlflow_sqlite_uri.removeprefix("sqlite:///"))
    assert list((database.parent / "mlartifacts").rglob("ckpt.pt"))


@pytest.mark.parametrize("status, expected", [("failed", "FAILED"), ("crashed", "FAILED"),
                                              ("interrupted", "KILLED"),
                                              ("pruned", "FINISHED")])
def test_final_status_is_mapped(mlflow_sqlite_uri, tmp_path, in_process, status, expected):
    from mlflow import MlflowClient

    mirrors = in_process(["mlflow"], {"mlflow": {"tracking_uri": mlflow_sqlite_uri,
                                                   "experiment": f"status-{status}"}},
                           RunInfo(f"r-{status}", "e", None, (), tmp_path), lambda *a: None)
    mirrors.metrics([("loss", 0, 1.0, time.time())])
    assert mirrors.finish(status, timeout=60) == []
    run = the_run(MlflowClient(mlflow_sqlite_uri), f"status-{status}")
    assert run.info.status == expected
    assert run.data.tags["neural.status"] == status  # a pruned trial: FINISHED, tag pruned


def test_tracking_uri_from_the_environment_and_experiment_from_the_run(
    mlflow_sqlite_uri, tmp_path, monkeypatch
):
    """Through the child process, which inherits the environment."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_sqlite_uri)
    mirrors = open_mirrors(["mlflow"], {"mlflow": None},
                           RunInfo("r-env", "experiment-from-run", "n", (), tmp_path), lambda *a: None)
    mirrors.params({"a": 1})
    assert mirrors.finish("completed", timeout=60) == []
    run = the_run(MlflowClient(mlflow_sqlite_uri), "experiment-from-run")
    assert run.data.params == {"a": "1"}


def test_a_resumed_run_continues_the_same_mlflow_run(mlflow_sqlite_uri, tmp_path, in_process):
    from mlflow import MlflowClient

    options = {"mlflow": {"tracking_uri": mlflow_sqlite_uri, "experiment": "resume"}}
    run = RunInfo("r-resume", "e", "n", (), tmp_path)
    first = in_process(["mlflow"], options, run, lambda *a: None)
    first.params({"lr": 0.1})
    first.metrics([("loss", 0, 1.0, 1000.0)])
    assert first.finish("interrupted", timeout=60) == []
    second = in_process(["mlflow"], options, run, lambda *a: None)
    second.params({"lr": 0.2, "epochs": 3})  # MLflow params are immutable: a tag keeps 0.2
    second.metrics([("loss", 1, 0.5, 2000.0)])
    assert second.finish("completed", timeout=60) == []
    client = MlflowClient(mlflow_sqlite_uri)
    found = the_run(client, "resume")
    assert found.info.status == "FINISHED"
    assert found.data.params == {"lr": "0.1", "epochs": "3"}
    assert found.data.tags["neural.param_changed.lr"] == "0.2"
    assert [m.value for m in client.get_metric_history(found.info.run_id, "loss")] == [1.0, 0.5]


@pytest.mark.slow
def test_complete_run_against_mlflow_server(mlflow_server, tmp_path, failures, png_file):
    from mlflow import MlflowClient

    unsent, sent = mirror_a_run(mlflow_server.uri, tmp_path / "store", failures, png_file,
                                experiment="server-complete")
    assert unsent == [] and failures == []
    check_complete(MlflowClient(mlflow_server.uri), "server-complete", sent, tmp_path)


def test_unreachable_server_warns_once_records_the_failure_and_reports_unsent(
    tmp_path, failures, caplog, png_file, closed_port_uri
):
    uri = closed_port_uri
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, "neural_dsl_tracking.backends"):
        unsent, _ = mirror_a_run(uri, tmp_path / "store", failures, png_file, experiment="down")
    assert time.monotonic() - began < 30
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "mlflow mirror failed, retrying with backoff" in warnings[0]
    assert len(failures) == 1 and failures[0][0] == "mlflow" and "127.0.0.1" in failures[0][1]
    assert len(unsent) == 1
    assert unsent[0].startswith(f"mlflow: not sent: {N_POINTS + 2} metric points, 155 parameters, "
                                "artifacts checkpoint v3, plots loss, the run's end (status completed)")


def test_bad_uri_disables_the_mirror(tmp_path, failures, in_process):
    mirrors = in_process(["mlflow"], {"mlflow": {"tracking_uri": "htp://nowhere"}},
                           RunInfo("r", "e", None, (), tmp_path), lambda *a: failures.append(a))
    mirrors.metrics([("loss", 0, 1.0, 1.0)])
    unsent = mirrors.finish("completed", timeout=30)
    assert failures and failures[0][1].startswith("mlflow mirror disabled")
    assert unsent[0].startswith("mlflow: not sent: 1 metric points")


def test_missing_library_is_recorded_and_the_run_goes_on(tmp_path, failures, uninstall, caplog):
    """In-process workers (imports are hidden in this process only), the real mirror class."""
    uninstall("mlflow")
    with caplog.at_level(logging.WARNING, "neural_dsl_tracking.backends"):
        mirrors = MirrorWorkers([create_mirror("mlflow", RunInfo("r", "e", None, (), tmp_path), {})],
                               lambda *a: failures.append(a))
        mirrors.metrics([("loss", 0, 1.0, 1.0)])
        unsent = mirrors.finish("completed", timeout=30)
    assert len(caplog.records) == 1 and "ModuleNotFoundError" in caplog.records[0].getMessage()
    assert failures[0][0] == "mlflow" and "mlflow mirror disabled" in failures[0][1]
    assert "disabled: ModuleNotFoundError" in unsent[0]


@pytest.mark.slow
def test_server_stopped_mid_run(tmp_path, failures, caplog, own_mlflow_server):
    from mlflow import MlflowClient

    server = own_mlflow_server
    try:
        mirrors = open_mirrors(["mlflow"], {"mlflow": {"tracking_uri": server.uri, "experiment": "stop"}},
                               RunInfo("r-stop", "e", None, (), tmp_path), lambda *a: failures.append(a))
        mirrors.metrics([("loss", i, float(i), 1000.0 + i) for i in range(10)])
        client = MlflowClient(server.uri)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the first points are in
            runs = client.search_runs([client.get_experiment_by_name("stop").experiment_id]) \
                if client.get_experiment_by_name("stop") else []
            if runs and len(client.get_metric_history(runs[0].info.run_id, "loss")) == 10:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the first points never reached the server")
    finally:
        server.stop()
    with caplog.at_level(logging.WARNING, "neural_dsl_tracking.backends"):
        mirrors.metrics([("loss", i, float(i), 1000.0 + i) for i in range(10, 20)])
        time.sleep(1.5)  # the worker meets the dead server and starts backing off
        unsent = mirrors.finish("completed", timeout=30)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert failures and failures[0][0] == "mlflow"
    assert unsent and unsent[0].startswith("mlflow: not sent: 10 metric points, the run's end")


def test_a_new_sqlite_store_keeps_the_default_experiments_artifacts_next_to_it(tmp_path, failures, png_file,
                                                                               in_empty_cwd):
    """MLflow's own Default experiment of a store the mirror creates: its artifacts go next to
    the database as a created experiment's do, never into the current directory's ./mlruns."""
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    (tmp_path / "new").mkdir()
    unsent, _ = mirror_a_run(uri, tmp_path / "store", failures, png_file, experiment="Default")
    assert unsent == [] and failures == []
    assert list((tmp_path / "new" / "mlartifacts").rglob("ckpt.pt"))
    assert list(in_empty_cwd.iterdir()) == []
