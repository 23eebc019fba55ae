"""``neural experiments import --from tensorboard``: event files written by torch's
``SummaryWriter`` (TensorBoard's event writer), read back point for point."""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import struct
import subprocess
import termios
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from neural_dsl_tracking.tracking import ExperimentManager

STEPS = 300
T0 = 1_700_000_000.0


def _write(folder: Path, points: dict, hparams: dict | None = None, new_style: tuple = ()) -> None:
    """One SummaryWriter session in ``folder``: scalars at explicit steps and wall times (those
    in ``new_style`` as scalar tensors), a text and a histogram (not scalars), hparams."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    writer = SummaryWriter(str(folder))
    for key, rows in points.items():
        for step, value, wall in rows:
            writer.add_scalar(key, value, step, walltime=wall, new_style=key in new_style)
    writer.add_text("notes", "not a scalar", 0, walltime=T0)
    writer.add_histogram("weights", np.arange(10.0), 0, walltime=T0)
    if hparams:
        for summary in hparams_summary(hparams, {})[:2]:
            writer.file_writer.add_summary(summary, walltime=T0)
    writer.close()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """``logs/exp/run_a`` (simple values, scalar tensors, hparams) and ``logs/run_b`` (two
    event files, one written after the other)."""
    root = tmp_path_factory.mktemp("tb") / "logs"
    run_a = {"loss": [(s, 1.0 / (s + 1), T0 + s * 0.25) for s in range(STEPS)],
             "val/acc": [(s, s / STEPS, T0 + s * 0.5 + 0.125) for s in range(0, STEPS, 3)]}
    _write(root / "exp" / "run_a", run_a, hparams={"lr": 0.01, "layers": 3, "opt": "adam", "bn": True},
           new_style=("val/acc",))
    first = {"loss": [(s, 2.0 - s / 100, T0 + 1000 + s) for s in range(50)]}
    second = {"loss": [(s, 1.0 - s / 100, T0 + 2000 + s) for s in range(50, 80)]}
    _write(root / "run_b", first)
    _write(root / "run_b", second)
    return SimpleNamespace(root=root, runs={"exp/run_a": run_a,
                                            "run_b": {"loss": first["loss"] + second["loss"]}})


def _expected(rows: list) -> tuple[list, list, np.ndarray]:
    rows = sorted(rows, key=lambda row: (row[0], row[2]))
    return ([r[0] for r in rows], [float(np.float32(r[1])) for r in rows],
            np.array([r[2] for r in rows]))


def test_every_scalar_point_and_the_hparams_are_imported(logs, tmp_path, neural):
    result = neural("experiments", "import", "--from", "tensorboard", logs.root, "--store", tmp_path / "s")
    assert result.code == 0, result.err
    assert result.out.rstrip().endswith(
        f"tensorboard: imported 2 runs ({STEPS + STEPS // 3 + 80:,} points), skipped 0 already imported, "
        "failed 0")
    manager = ExperimentManager(base_dir=tmp_path / "s")
    runs = {r.run_name: r for r in manager.list_experiments()}
    assert sorted(runs) == ["exp/run_a", "run_b"]
    for name, written in logs.runs.items():
        run = runs[name]
        assert run.experiment == "logs" and run.status == "completed"
        assert run.tags == [f"source:tensorboard:{(logs.root / name).resolve()}"]
        assert sorted(run.metrics) == sorted(written)
        for key, rows in written.items():
            history = manager.get_metric_history(run.run_id, key)
            steps, values, times = _expected(rows)
            assert history.steps.tolist() == steps and history.values.tolist() == values
            assert np.array_equal(history.timestamps, times)
    assert runs["exp/run_a"].hyperparameters == {"lr": 0.01, "layers": 3, "opt": "adam", "bn": True}
    assert runs["run_b"].hyperparameters == {}
    assert runs["run_b"].start_time.timestamp() <= T0 + 1000
    assert runs["run_b"].end_time.timestamp() >= T0 + 2079

    again = neural("experiments", "import", "--from", "tensorboard", logs.root, "--store", tmp_path / "s",
                   "--experiment", "other")
    assert again.code == 0 and "skipped 2 already imported" in again.out


def test_experiment_option_names_the_experiment(logs, tmp_path, neural):
    result = neural("experiments", "import", "--from", "tensorboard", logs.root / "exp" / "run_a",
                    "--experiment", "mine", "--store", tmp_path / "s")
    assert result.code == 0, result.err
    (run,) = ExperimentManager(base_dir=tmp_path / "s").list_experiments()
    assert (run.experiment, run.run_name) == ("mine", "run_a")


def test_a_truncated_event_file_imports_what_is_complete(logs, tmp_path, neural):
    copy = tmp_path / "cut" / "run"
    shutil.copytree(logs.root / "exp" / "run_a", copy)
    (event_file,) = copy.glob("events.out.tfevents.*")
    data = event_file.read_bytes()
    event_file.write_bytes(data[:len(data) // 2])
    result = neural("experiments", "import", "--from", "tensorboard", tmp_path / "cut", "--store", tmp_path / "s")
    assert result.code == 0, result.err
    assert "is truncated or damaged after" in result.out and "imported what is complete" in result.out
    (run,) = ExperimentManager(base_dir=tmp_path / "s").list_experiments()
    count = run.metrics["loss"]["count"]
    assert 0 < count < STEPS
    history = ExperimentManager(base_dir=tmp_path / "s").get_metric_history(run.run_id, "loss")
    assert history.steps.tolist() == list(range(count))


def test_bad_folders_are_one_clear_message(tmp_path, neural):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("no events")
    (tmp_path / "file").write_text("x")
    for location, expected in ((tmp_path / "plain", "no event files"), (tmp_path / "file", "it is a file"),
                               (tmp_path / "absent", "it does not exist")):
        result = neural("experiments", "import", "--from", "tensorboard", location, "--store", tmp_path / "s")
        assert result.code == 1 and result.out == ""
        assert result.err.startswith("error: cannot import from TensorBoard at") and expected in result.err
        assert len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_a_garbage_event_file_fails_that_run_only(logs, tmp_path, neural):
    source = tmp_path / "mixed"
    shutil.copytree(logs.root / "run_b", source / "good")
    (source / "bad").mkdir()
    (source / "bad" / "events.out.tfevents.1.host.1.0").write_bytes(b"\x00garbage" * 50)
    (source / "link").mkdir()  # an event file elsewhere, linked in: not read
    (event_file,) = (logs.root / "exp" / "run_a").glob("events.out.tfevents.*")
    (source / "link" / event_file.name).symlink_to(event_file)
    result = neural("experiments", "import", "--from", "tensorboard", source, "--store", tmp_path / "s")
    assert result.code == 1
    assert "failed   " in result.out and "no readable TensorBoard events" in result.out
    assert "imported 1 run (80 points)" in result.out and result.out.rstrip().endswith("failed 2")
    assert [r.run_name for r in ExperimentManager(base_dir=tmp_path / "s").list_experiments()] == ["good"]


def test_a_second_import_into_the_same_store_meanwhile_is_refused(logs, tmp_path, neural):
    store = tmp_path / "s"
    store.mkdir()
    with open(store / "import.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = neural("experiments", "import", "--from", "tensorboard", logs.root, "--store", store)
    assert result.code == 1 and result.out == ""
    assert result.err == f"error: another import into {store} is running; wait for it to finish\n"
    assert neural("experiments", "import", "--from", "tensorboard", logs.root, "--store", store).code == 0


def test_a_progress_bar_on_a_terminal_only(logs, tmp_path, neural_argv):
    command = [*neural_argv, "experiments", "import", "--from", "tensorboard", str(logs.root)]
    env = {key: value for key, value in os.environ.items() if key != "NEURAL_NO_PROGRESS"}
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    try:
        done = subprocess.run([*command, "--store", str(tmp_path / "a")], stdout=subprocess.PIPE,
                              stderr=follower, env=env, timeout=120)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0
    assert b"importing:" in shown and b"/2 [" in shown  # runs done / runs
    piped = subprocess.run([*command, "--store", str(tmp_path / "b")], capture_output=True, env=env,
                           timeout=120)
    assert piped.returncode == 0 and piped.stderr == b""
