"""``neural experiments sync``: stored runs sent to TensorBoard, MLflow and W&B through the
mirrors, read back with each system's own reader: every point with its step, value and wall
time, params, tags, status and times, every artifact version's bytes; nothing sent twice."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from neural_dsl_tracking.tracking import ExperimentTracker
from neural_dsl_tracking.tracking.store import Store

STEPS = 1500


def _record(base: Path, tmp: Path, *, tags=("baseline", "team=vision"), backend="local",
            backend_options=None, steps: int = STEPS) -> SimpleNamespace:
    """A finished run in the store at ``base``: params, two metrics, two versions of an
    artifact; its config records the mirrors' options, as a compiled run's does."""
    tracker = ExperimentTracker("sync-exp", base_dir=str(base), tags=list(tags), backend=backend,
                                backend_options=backend_options, auto_visualize=False,
                                system_metrics=0, run_name="first",
                                config={"tracking": dict(backend_options or {})})
    tracker.log_hyperparameters({"lr": 0.01, "optimizer": {"name": "adam", "betas": [0.9, 0.99]}})
    for step in range(steps):
        tracker.log_metrics({"loss": 1.0 / (step + 1), "val/acc": step / steps}, step=step)
    weights = tmp / "weights.bin"
    contents = []
    for data in (b"first" * 999, b"second" * 1234):
        weights.write_bytes(data)
        tracker.log_artifact(weights, name="model", aliases=("latest",))
        contents.append(data)
    tracker.finish()
    store = Store(str(base), create=False)
    try:
        record = store.get_run(tracker.run_id)
        histories = {key: h for (_, key), h in store.metric_histories([tracker.run_id]).items()}
    finally:
        store.close()
    return SimpleNamespace(run_id=tracker.run_id, record=record, histories=histories,
                           artifacts=contents, base=base)


@pytest.fixture(autouse=True)
def in_empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs from an empty folder: a default store of a mirror would land there."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("sync")
    return _record(tmp / "store", tmp)


def _progress_rows(base: Path) -> list[tuple]:
    store = Store(str(base), create=False)
    try:
        return store.db.read(lambda cur: cur.all("SELECT run_id, target, state FROM sync_progress"))
    finally:
        store.close()


def test_tensorboard_gets_every_point_with_its_wall_time_once(stored, neural, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = tmp_path / "tb"
    first = neural("experiments", "--base-dir", stored.base, "sync", stored.run_id[:8],
                   "--to", "tensorboard", "--log-dir", log_dir)
    assert first.code == 0, first.err
    assert f"sent to tensorboard: {2 * STEPS:,} points, 2 artifact version(s)" in first.out
    again = neural("experiments", "--base-dir", stored.base, "sync", stored.run_id[:8],
                   "--to", "tensorboard", "--log-dir", log_dir)
    assert again.code == 0 and "up to date in tensorboard" in again.out
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 1  # the second sync opened nothing

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    for key, history in stored.histories.items():
        got = events.Scalars(key)
        assert [e.step for e in got] == history.steps.tolist()
        assert [e.value for e in got] == history.values.astype(np.float32).tolist()
        assert [e.wall_time for e in got] == history.timestamps.tolist()
    assert [e.step for e in events.Tensors("artifacts/model")] == [1, 2]


def test_mlflow_gets_params_points_tags_times_status_and_artifact_bytes(stored, neural, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = neural("experiments", "--base-dir", stored.base, "sync", stored.run_id,
                    "--to", "mlflow", "--tracking-uri", uri, "--experiment", "elsewhere")
    assert result.code == 0, result.err
    assert result.out.rstrip().endswith(f"({uri} experiment=elsewhere)")  # where it went
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("elsewhere").experiment_id])
    assert run.info.run_name == "first" and run.info.status == "FINISHED"
    assert run.info.start_time == round(stored.record.start_time.timestamp() * 1000)
    assert run.info.end_time == round(stored.record.end_time.timestamp() * 1000)
    assert run.data.params == {"lr": "0.01", "optimizer.name": "adam", "optimizer.betas": "[0.9, 0.99]"}
    assert run.data.tags["team"] == "vision" and run.data.tags["baseline"] == ""
    for key, history in stored.histories.items():
        got = sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(run.info.run_id, key))
        assert got == sorted(zip(history.steps.tolist(), history.values.tolist(),
                                 np.round(history.timestamps * 1000).astype(np.int64).tolist()))
    for version, data in enumerate(stored.artifacts, start=1):
        folder = client.download_artifacts(run.info.run_id, f"artifacts/model/v{version}", str(tmp_path))
        assert Path(folder, "weights.bin").read_bytes() == data
        assert run.data.tags[f"neural.artifact.model.v{version}.sha256"] == hashlib.sha256(data).hexdigest()


def test_a_run_its_mlflow_mirror_already_has_gets_no_point_twice(tmp_path, neural):
    """A run mirrored to MLflow while training, synced to the same place: the same MLflow run,
    no point twice (MLflow keeps one row per key, step, time and value)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = _record(tmp_path / "store", tmp_path, backend=["local", "mlflow"],
                  backend_options={"mlflow": {"tracking_uri": uri}}, steps=300)
    result = neural("experiments", "--base-dir", run.base, "sync", run.run_id, "--to", "mlflow")
    assert result.code == 0, result.err
    assert "sent to mlflow: 600 points" in result.out  # sent again, to the run's own tracking_uri
    client = MlflowClient(tracking_uri=uri)
    [mirrored] = client.search_runs([client.get_experiment_by_name("sync-exp").experiment_id])
    assert len(client.get_metric_history(mirrored.info.run_id, "loss")) == 300
    assert mirrored.info.end_time == round(run.record.end_time.timestamp() * 1000)  # the sync's
    assert not list(tmp_path.glob("cwd/*"))  # nothing went to MLflow's default store


@pytest.mark.parametrize("args, message", [
    (("nope", "--to", "mlflow"), "no run 'nope'"),
    (("{run}", "--to", "comet"), "unknown sync target 'comet'; expected one of: mlflow, wandb, tensorboard"),
    (("{run}", "--to", "mlflow", "--log-dir", "x"),
     "--log-dir is not an option of mlflow; --to mlflow takes --tracking-uri, --experiment"),
    (("{run}", "--to", "wandb", "--mode", "sometimes"), "--mode: Input should be 'offline', 'online'"),
])
def test_bad_input_is_one_message_and_nothing_is_sent(stored, neural, args, message):
    before = _progress_rows(stored.base)
    result = neural("experiments", "--base-dir", stored.base, "sync",
                    *[a.format(run=stored.run_id[:8]) for a in args])
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("error: ") and message in result.err, result.err
    assert _progress_rows(stored.base) == before


def test_a_running_run_is_refused_and_no_store_is_an_error(tmp_path, neural):
    tracker = ExperimentTracker("live", base_dir=str(tmp_path / "store"), auto_visualize=False,
                                system_metrics=0)
    try:
        tracker.log_metrics({"loss": 1.0}, step=0)
        result = neural("experiments", "--base-dir", tmp_path / "store", "sync", tracker.run_id,
                        "--to", "tensorboard", "--log-dir", tmp_path / "tb")
        assert result.code == 1
        assert "is still running; sync it once it has ended" in result.err
        assert not (tmp_path / "tb").exists()
    finally:
        tracker.finish()
    missing = neural("experiments", "--base-dir", tmp_path / "none", "sync", "x", "--to", "mlflow")
    assert missing.code == 1 and "no experiment store at" in missing.err
    assert not (tmp_path / "none").exists()


def test_show_tells_how_to_resend_what_a_failed_mirror_missed(stored, neural):
    store = Store(str(stored.base), create=False)
    try:
        store.record_mirror_failure(stored.run_id, "wandb", "ConnectionError: down")
        store.record_mirror_failure(stored.run_id, "mlflow, wandb", "at finish: not sent: ...")
        store.record_mirror_failure(stored.run_id, "mirrors", "not started: no backends package")
    finally:
        store.close()
    shown = neural("experiments", "--base-dir", stored.base, "show", stored.run_id)
    lines = shown.out.splitlines()
    at = lines.index("  wandb: ConnectionError: down")
    assert lines[at + 3:] == [f"  to send what {name} is missing: neural experiments sync "
                              f"{stored.run_id[:8]} --to {name}" for name in ("wandb", "mlflow")]


def test_one_log_dir_for_several_runs_is_refused(tmp_path, neural):
    """TensorBoard would show the runs of one folder as one run."""
    first = _record(tmp_path / "store", tmp_path, steps=5)
    second = _record(tmp_path / "store", tmp_path, steps=5)
    result = neural("experiments", "--base-dir", first.base, "sync", first.run_id, second.run_id,
                    "--to", "tensorboard", "--log-dir", tmp_path / "tb")
    assert result.code == 1 and "--log-dir is one run's folder" in result.err
    assert not (tmp_path / "tb").exists()
    both = neural("experiments", "--base-dir", first.base, "sync", first.run_id, second.run_id,
                  "--to", "tensorboard")
    assert both.code == 0, both.err
    assert all((first.base / "tensorboard" / run.run_id).is_dir() for run in (first, second))


def test_wandb_gets_each_step_as_one_row_at_its_own_step(stored, neural, tmp_path, monkeypatch,
                                                          bench_interop):
    for name, value in bench_interop.wandb_env(tmp_path).items():  # staging, cache: not in ~
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    result = neural("experiments", "--base-dir", stored.base, "sync", stored.run_id, "--to", "wandb")
    assert result.code == 0, result.err
    [file] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    rows = [bench_interop._wandb_items(r.history.item) for r in bench_interop.wandb_records(file)
            if r.WhichOneof("record_type") == "history"]
    assert [row["_step"] for row in rows] == list(range(STEPS))  # one row per step, at it
    times = np.maximum(*[h.timestamps for h in stored.histories.values()])
    for key, history in stored.histories.items():
        assert [(r["step"], r[key], r["_timestamp"]) for r in rows] == list(
            zip(history.steps.tolist(), history.values.tolist(), times.tolist()))


def test_wandb_rows_whose_step_goes_back_keep_every_point(tmp_path, monkeypatch, bench_interop):
    """W&B drops a row logged at a _step below its current one: such a row goes at the next
    _step, our step in the step column."""
    from neural_dsl_tracking.backends.base import RunInfo
    from neural_dsl_tracking.backends.wandb import WandbMirror

    for name, value in bench_interop.wandb_env(tmp_path).items():  # staging, cache: not in ~
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    mirror = WandbMirror(RunInfo("backwards1", "exp", store_dir=tmp_path), {"mode": "offline"})
    mirror.start()
    mirror.log_metrics([("loss", 0, 1.0, 10.0), ("loss", 10, 0.5, 11.0), ("loss", 20, 0.25, 12.0)])
    mirror.log_metrics([("epoch_loss", 1, 0.7, 13.0), ("loss", 30, 0.1, 14.0)])
    mirror.finish("completed")
    [file] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    rows = [bench_interop._wandb_items(r.history.item) for r in bench_interop.complete_records(file)
            if r.WhichOneof("record_type") == "history"]
    assert [(r["_step"], r["step"], r.get("loss", r.get("epoch_loss"))) for r in rows] == [
        (0, 0, 1.0), (10, 10, 0.5), (20, 20, 0.25), (21, 1, 0.7), (30, 30, 0.1)]


def test_a_run_its_tensorboard_mirror_partly_wrote_gets_the_rest_only(tmp_path, neural):
    """The mirror's event file cut short (it fell behind); a sync to the same folder adds the
    points missing, not again those the mirror wrote."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from neural_dsl_tracking.interop.from_tensorboard import read_run

    log_dir = tmp_path / "tb"
    run = _record(tmp_path / "store", tmp_path, backend=["local", "tensorboard"],
                  backend_options={"tensorboard": {"log_dir": str(log_dir)}}, steps=400)
    [written] = log_dir.glob("events.out.tfevents.*")
    with open(written, "r+b") as handle:  # keep about the first half of what it wrote
        handle.truncate(written.stat().st_size // 2)
    kept = sum(len(steps) for steps, _, _ in read_run(log_dir, "", "").metrics.values())
    assert 0 < kept < 800
    result = neural("experiments", "--base-dir", run.base, "sync", run.run_id, "--to", "tensorboard",
                    "--log-dir", log_dir)
    assert result.code == 0, result.err
    assert f"sent to tensorboard: {800 - kept:,} points" in result.out
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    for key, history in run.histories.items():
        assert sorted((e.step, e.wall_time) for e in events.Scalars(key)) == sorted(
            zip(history.steps.tolist(), history.timestamps.tolist()))


def test_progress_is_kept_in_either_store(store_kwargs, neural, tmp_path):
    """SQLite and PostgreSQL: the second sync finds the first one's progress."""
    tracker = ExperimentTracker("pg", **store_kwargs, auto_visualize=False, system_metrics=0)
    for step in range(50):
        tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    tracker.finish()
    where = ["--base-dir", store_kwargs["base_dir"]]
    if store_kwargs["store"]:
        where += ["--store", store_kwargs["store"]]
    sync = ("sync", tracker.run_id, "--to", "tensorboard", "--log-dir", tmp_path / "tb")
    first = neural("experiments", *where, *sync)
    assert first.code == 0 and "sent to tensorboard: 50 points" in first.out, first.err
    again = neural("experiments", *where, *sync)
    assert again.code == 0 and "up to date in tensorboard" in again.out, again.err


def test_a_missing_sdk_is_one_line_and_the_exit_status(stored, tmp_path):
    """Without the target's package (hidden from a real subprocess), one line names it."""
    hide = tmp_path / "hide"
    (hide / "mlflow").mkdir(parents=True)
    (hide / "mlflow" / "__init__.py").write_text("raise ImportError('No module named mlflow')\n")
    result = subprocess.run(
        [sys.executable, "-m", "neural_dsl_tracking", "experiments", "--base-dir", str(stored.base),
         "sync", stored.run_id, "--to", "mlflow", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(hide)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "not sent: mlflow needs its package" in result.stderr
    assert "pip install 'neural-dsl-tracking[mlflow]'" in result.stderr


def test_one_sync_at_a_time_per_store(stored, tmp_path):
    """A second sync while one runs is refused (it would send the same points again)."""
    first = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from neural_dsl_tracking.interop.importing import "
         "store_lock; from neural_dsl_tracking.tracking.store import Store; "
         f"store = Store({str(stored.base)!r}, create=False)\n"
         "with store_lock(store, 'sync'):\n    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "locked"
        second = subprocess.run(
            [sys.executable, "-m", "neural_dsl_tracking", "experiments", "--base-dir", str(stored.base),
             "sync", stored.run_id, "--to", "tensorboard", "--log-dir", str(tmp_path / "tb")],
            capture_output=True, text=True, timeout=120)
        assert second.returncode == 1 and "another sync into" in second.stderr, second.stderr
        assert not (tmp_path / "tb").exists()
    finally:
        first.kill()
        first.wait(10)


def test_again_sends_what_was_deleted_at_the_destination(stored, neural, tmp_path):
    import shutil

    sync = ("experiments", "--base-dir", stored.base, "sync", stored.run_id, "--to", "tensorboard",
            "--log-dir", tmp_path / "tb")
    assert neural(*sync).code == 0
    shutil.rmtree(tmp_path / "tb")
    assert "up to date in tensorboard" in neural(*sync).out  # the store cannot see the deletion
    again = neural(*sync, "--again")
    assert again.code == 0 and f"sent to tensorboard: {2 * STEPS:,} points" in again.out
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1


def test_a_series_rewritten_since_it_was_sent_is_refused(tmp_path, neural):
    """A resumed run drops its points after the checkpoint and logs new ones: the destination
    keeps the dropped points, so sync says so instead of sending the new ones after them."""
    run = _record(tmp_path / "store", tmp_path, steps=100)
    sync = ("experiments", "--base-dir", run.base, "sync", run.run_id, "--to", "tensorboard")
    assert neural(*sync, "--log-dir", tmp_path / "tb").code == 0
    store = Store(str(run.base), create=False)
    try:
        store.truncate_metrics(run.run_id, {"loss": 59})
        steps = np.arange(60, 130)
        store.append_metrics(run.run_id, {"loss": (steps, steps / 1000.0, 2e9 + steps)})
    finally:
        store.close()
    refused = neural(*sync, "--log-dir", tmp_path / "tb")
    assert refused.code == 1
    assert "metric 'loss' of run" in refused.err and "changed since it was sent there" in refused.err
    fresh = neural(*sync, "--log-dir", tmp_path / "tb2")
    assert fresh.code == 0 and "sent to tensorboard: 230 points" in fresh.out, fresh.err


def test_a_tag_longer_than_wandb_takes_goes_to_the_summary(tmp_path, neural, monkeypatch,
                                                          bench_interop):
    """W&B refuses a run with a tag over 64 characters (an imported TensorBoard run's source
    tag names its folder's path): the run goes, that tag in the summary."""
    for name, value in bench_interop.wandb_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    long_tag = "source:tensorboard:" + "/very/long/log/folder" * 4
    run = _record(tmp_path / "store", tmp_path, tags=("short", long_tag), steps=5)
    result = neural("experiments", "--base-dir", run.base, "sync", run.run_id, "--to", "wandb")
    assert result.code == 0, result.err
    [file] = (tmp_path / "peer" / "wandb").glob("offline-run-*/run-*.wandb")
    records = bench_interop.complete_records(file)
    [started] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert list(started.tags) == ["short"]
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update(bench_interop._wandb_items(r.summary.update))
    assert summary["neural_long_tags"] == [long_tag]


def test_a_run_its_wandb_mirror_partly_wrote_gets_the_rest_only(tmp_path, neural, monkeypatch,
                                                                bench_interop):
    """The mirror's offline run file cut short (it fell behind); a sync to the same W&B folder
    adds the points missing, not again those the mirror wrote."""
    for name, value in bench_interop.wandb_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    run = _record(tmp_path / "store", tmp_path, backend=["local", "wandb"],
                  backend_options={"wandb": {"mode": "offline"}}, steps=400)
    [written] = (tmp_path / "peer" / "wandb").glob("offline-run-*/run-*.wandb")
    bench_interop.complete_records(written)
    with open(written, "r+b") as handle:  # keep about the first half of what it wrote
        handle.truncate(written.stat().st_size // 2)
    kept = sum(r.WhichOneof("record_type") == "history" for r in bench_interop.wandb_records(written))
    assert 0 < kept < 400
    result = neural("experiments", "--base-dir", run.base, "sync", run.run_id, "--to", "wandb")
    assert result.code == 0, result.err
    assert f"sent to wandb: {2 * (400 - kept):,} points" in result.out
    [back] = bench_interop.read_wandb(tmp_path / "peer" / "wandb").values()
    for key, history in run.histories.items():
        if key in back.metrics:
            assert sorted((p[0], p[1]) for p in back.metrics[key]) == sorted(
                zip(history.steps.tolist(), history.values.tolist()))


def test_deleting_a_run_forgets_what_was_sent_of_it(tmp_path, neural):
    """A deleted run's sync progress goes with it: a run recorded again under the same id (an
    import of the same source run) is sent again, not taken as up to date."""
    run = _record(tmp_path / "store", tmp_path, steps=20)
    sent = neural("experiments", "--base-dir", run.base, "sync", run.run_id, "--to", "tensorboard",
                  "--log-dir", tmp_path / "tb")
    assert sent.code == 0, sent.err
    assert [row[0] for row in _progress_rows(run.base)] == [run.run_id]
    deleted = neural("experiments", "--base-dir", run.base, "rm", run.run_id)
    assert deleted.code == 0, deleted.err
    assert _progress_rows(run.base) == []
