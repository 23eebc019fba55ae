"""What the store refuses: a store URL of a kind it cannot use, resuming a run that is
alive elsewhere, names beyond the length limits; and deleting a run while another process
logs the same content."""

from __future__ import annotations

from pathlib import Path

import pytest

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker

UNSUPPORTED_URLS = ["sqlite:///{tmp}/s", "sqlite://{tmp}/s", "mysql://u:secret@localhost/db",
                    "file://{tmp}/s"]


@pytest.mark.parametrize("url", UNSUPPORTED_URLS)
def test_a_store_url_other_than_postgresql_is_refused_and_creates_nothing(tmp_path, url,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = url.format(tmp=tmp_path)
    expected = "unsupported store URL .*: give a folder path for an embedded SQLite store"
    with pytest.raises(TrackingError, match=expected) as raised:
        ExperimentTracker("e", store=url, auto_visualize=False)
    assert "secret" not in str(raised.value)
    with pytest.raises(TrackingError, match=expected):
        ExperimentManager(store=url).list_experiments()
    assert list(tmp_path.iterdir()) == []


def test_a_compiled_programs_store_url_is_checked_before_it_becomes_a_folder(tmp_path):
    from neural_dsl_tracking.plugins.tracking.hooks import open_tracker
    from neural_dsl_tracking.plugins.tracking.spec import TrackingSpec

    source = tmp_path / "m.neural"
    source.write_text("network N {}\n")
    with pytest.raises(TrackingError, match="unsupported store URL sqlite:///runs.db"):
        open_tracker(TrackingSpec(store="sqlite:///runs.db"), {}, launch_dir=tmp_path,
                     source_file=source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.neural"]


def test_resuming_a_run_that_is_alive_is_refused(make_tracker, manager):
    alive = make_tracker(run_name="alive")
    alive.log_metrics({"loss": 1.0})
    for ref in (alive.run_id, "alive"):
        with pytest.raises(TrackingError, match=rf"cannot resume run {alive.run_id[:8]}: it is "
                                                r"still running elsewhere \(last heartbeat \d+ s "
                                                r"ago\).*NEURAL_TRACKING_CRASH_AFTER"):
            make_tracker(run_id=ref)
    alive.log_metrics({"loss": 2.0})
    alive.finish()
    assert manager.get_metric_history(alive.run_id, "loss").values.tolist() == [1.0, 2.0]
    assert manager.get_experiment(alive.run_id).status == "completed"


@pytest.mark.parametrize("status", ["failed", "interrupted", "completed"])
def test_a_finished_run_resumes(make_tracker, status):
    first = make_tracker()
    first.finish(status)
    again = make_tracker(run_id=first.run_id)
    assert again.status == "running" and again.run_id == first.run_id


HOLDER = """
import sys, time
from neural_dsl_tracking.tracking import ExperimentTracker
tracker = ExperimentTracker("held", base_dir=sys.argv[1], store=sys.argv[2] or None,
                            auto_visualize=False)
tracker.log_metrics({"loss": 1.0})
tracker.get_metric_history("loss")  # flushed
print(tracker.run_id, flush=True)
time.sleep(120)
"""


def test_a_run_alive_in_another_process_resumes_only_once_it_counts_as_crashed(
        store_kwargs, tmp_path, monkeypatch):
    import signal
    import subprocess
    import sys
    import time

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_kwargs["base_dir"]),
                               store_kwargs["store"] or ""], stdout=subprocess.PIPE, text=True)
    try:
        run_id = holder.stdout.readline().strip()
        with pytest.raises(TrackingError, match="still running elsewhere"):
            ExperimentTracker("x", **store_kwargs, run_id=run_id, auto_visualize=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    monkeypatch.setenv("NEURAL_TRACKING_CRASH_AFTER", "1")
    time.sleep(1.2)
    with ExperimentTracker("x", **store_kwargs, run_id=run_id, auto_visualize=False) as resumed:
        resumed.log_metrics({"loss": 2.0})
    run = ExperimentManager(**store_kwargs).get_experiment(run_id)
    assert run.status == "completed" and run.metrics["loss"]["count"] == 2


# Each round: a new run logs the shared content, checks that its stored object is whole,
# and deletes the run (which frees the object when no other run uses it). A fixed number of
# rounds (so a loaded machine takes longer, it does not test less), with a hang guard.
SHARER = """
import sys, time
from pathlib import Path
from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker
base, store, content, target = sys.argv[1], sys.argv[2] or None, Path(sys.argv[3]), int(sys.argv[4])
manager = ExperimentManager(base_dir=base, store=store)
rounds = broken = 0
deadline = time.monotonic() + 150
while rounds < target and time.monotonic() < deadline:
    tracker = ExperimentTracker("shared", base_dir=base, store=store, auto_visualize=False)
    tracker.log_artifact(content, name="weights")
    try:
        tracker.get_artifact_version("weights")
    except TrackingError as error:
        broken += 1
        print(error, file=sys.stderr)
    tracker.finish()
    manager.delete_experiment(tracker.run_id)
    rounds += 1
print(rounds, broken)
"""


def test_deleting_a_run_never_removes_an_object_another_process_is_logging(store_kwargs,
                                                                            tmp_path):
    import subprocess
    import sys

    content = tmp_path / "weights.bin"
    content.write_bytes(b"the same weights in every run" * 1000)
    base, store = str(store_kwargs["base_dir"]), store_kwargs["store"] or ""
    jobs = [subprocess.Popen([sys.executable, "-c", SHARER, base, store, str(content), "25"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [job.communicate(timeout=200) for job in jobs]
    for job, (out, err) in zip(jobs, results):
        assert job.returncode == 0 and "Traceback" not in err, err
    counts = [tuple(map(int, out.split())) for out, _ in results]
    assert all(rounds == 25 for rounds, _ in counts), counts
    assert [broken for _, broken in counts] == [0, 0], [err for _, err in results]


LONG = "n" * 251
LIMIT = "n" * 250


def _refused(what: str):
    return pytest.raises(TrackingError, match=rf"^{what} 'n{{56}}\.\.\. has 251 characters; "
                                              r"the limit is 250$")


def test_names_and_tags_up_to_250_characters_are_recorded(make_tracker, manager, tmp_path):
    (tmp_path / "f.bin").write_bytes(b"f")
    tracker = make_tracker("e" * 250, run_name=LIMIT, tags=[LIMIT])
    tracker.log_metrics({LIMIT: 1.0})
    tracker.log_hyperparameters({LIMIT: "v" * 49_998})  # 50,000 characters as JSON
    tracker.log_artifact(tmp_path / "f.bin", name=LIMIT, aliases=[LIMIT])
    tracker.finish()
    run = manager.get_experiment(tracker.run_id)
    assert (run.experiment, run.run_name, run.tags) == ("e" * 250, LIMIT, [LIMIT])
    assert list(run.metrics) == [LIMIT] and list(run.hyperparameters) == [LIMIT]
    assert LIMIT in manager.get_artifact_version(tracker.run_id, LIMIT, LIMIT).aliases


def test_a_run_of_a_250_character_experiment_gets_a_default_name_within_the_limit(
        make_tracker):
    tracker = make_tracker("e" * 250)
    assert len(tracker.run_name) == 250 and tracker.run_name.endswith(tracker.run_id[:8])


def test_longer_names_are_refused_when_logged_and_nothing_of_that_call_is_stored(
        make_tracker, manager, tmp_path):
    with _refused("experiment name"):
        make_tracker(LONG)
    with _refused("run name"):
        make_tracker(run_name=LONG)
    with _refused("tag"):
        make_tracker(tags=["ok", LONG])
    assert manager.list_experiments() == []
    tracker = make_tracker()
    with _refused("metric name"):
        tracker.log_metrics({"loss": 1.0, LONG: 2.0})
    with _refused("metric name"):
        tracker.log_metrics({"loss": 1.0, LONG: 2})  # the slow path for non-floats too
    with _refused("parameter name"):
        tracker.log_hyperparameters({"lr": 0.1, LONG: 1})
    with pytest.raises(TrackingError, match=r"^hyperparameter 'notes': its value has 50,003 "
                                            r"characters as JSON; values are limited to 50,000"):
        tracker.log_hyperparameters({"lr": 0.1, "notes": "v" * 50_001})
    (tmp_path / "f.bin").write_bytes(b"f")
    with _refused("artifact name"):
        tracker.log_artifact(tmp_path / "f.bin", name=LONG)
    with _refused("alias"):
        tracker.log_artifact(tmp_path / "f.bin", aliases=[LONG])
    tracker.finish()
    run = manager.get_experiment(tracker.run_id)
    assert (run.metrics, run.hyperparameters, run.artifacts) == ({}, {}, [])
    objects = tracker.run_dir.parent.parent / "objects"
    assert not objects.exists() or not any(p.is_file() for p in objects.rglob("*"))


def test_a_store_written_before_the_limits_still_opens_and_reads(make_tracker, manager,
                                                                   store_kwargs):
    from neural_dsl_tracking.tracking.store import Store

    tracker = make_tracker("e", run_name="short", tags=["t"])
    tracker.log_metrics({"m": 1.0})
    tracker.log_hyperparameters({"p": 1})
    tracker.finish()
    long = "x" * 10_000
    store = Store(**store_kwargs)  # rewrite the names as an older version could have stored them
    store.db.write(lambda cur: [cur.execute(sql, (long, tracker.run_id)) for sql in (
        "UPDATE runs SET run_name = ? WHERE run_id = ?",
        "UPDATE run_tags SET tag = ? WHERE run_id = ?",
        "UPDATE params SET key = ? WHERE run_id = ?",
        "UPDATE metric_summary SET key = ? WHERE run_id = ?",
        "UPDATE metric_chunks SET key = ? WHERE run_id = ?")])
    store.close()
    run = manager.get_experiment(tracker.run_id)
    assert (run.run_name, run.tags, list(run.hyperparameters), list(run.metrics)) == (
        long, [long], [long], [long])
    assert manager.get_metric_history(tracker.run_id, long).values.tolist() == [1.0]
    resumed = make_tracker(run_id=tracker.run_id)
    resumed.log_metrics({"m": 3.0})
    resumed.finish()
    assert manager.get_experiment(tracker.run_id).metrics["m"]["count"] == 1
