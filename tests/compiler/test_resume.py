"""``neural run FILE --resume RUN`` and ``--fork RUN[@EPOCH]`` on real compiled digits runs.

One reference run trains 3 epochs uninterrupted; a second, the same settings and seed, is
SIGKILLed in the middle of an epoch (after its checkpoint, once the store holds batches
past it) and resumed: it must end exactly as the reference did (model, optimizer and every
random number generator restored, CPU, one thread), each step once in the store. Then the
refusals (a live run, a completed run, other settings, a network the checkpoint does not
fit) and a fork of the reference at epoch 2 with another learning rate.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neural_dsl_tracking.tracking.store import Store

from .conftest import DIGITS

pytestmark = pytest.mark.slow

SETTINGS = ["train.epochs=3", "train.batch_size=4", "tracking.visualize_every=0", "tracking.system_metrics=0",
            "execution.threads=1"]
BATCHES = 360  # 1438 training samples in batches of 4


def neural_run(*args: str, cwd: Path, crash_after: float = 30, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEURAL_NO_PROGRESS": "1", "NEURAL_TRACKING_CRASH_AFTER": str(crash_after)}
    return subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "run", str(DIGITS), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def kill_mid_epoch(cwd: Path) -> tuple[str, int]:
    """Start a run, SIGKILL it inside an epoch after its first checkpoint; its id and the
    epoch of its latest checkpoint then."""
    env = {**os.environ, "NEURAL_NO_PROGRESS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "neural_dsl_tracking", "run", str(DIGITS), *SETTINGS],
                               cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        lines = []
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("epoch 1/3"):
                break
        store = Store(cwd / "neural_experiments", create=False)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run = store.list_runs()[0]
            checkpoints = store.artifact_versions(run.run_id, "checkpoint")
            logged = store.metric_summaries(run.run_id).get("batch_loss")
            if checkpoints and logged and logged.max_step > checkpoints[-1].metadata["step"] + 20:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the run logged no batch past its first checkpoint in 120 s:\n" + "".join(lines))
        os.killpg(process.pid, signal.SIGKILL)
        assert logged.max_step < 3 * BATCHES, "the run ended before it was killed"
        store.close()
        return run.run_id, checkpoints[-1].metadata["epoch"]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The reference run, the killed run (refused while live, then resumed) and the store."""
    cwd = tmp_path_factory.mktemp("resume")
    reference = neural_run(*SETTINGS, cwd=cwd)
    assert reference.returncode == 0, reference.stderr
    killed, epoch = kill_mid_epoch(cwd)
    store = Store(cwd / "neural_experiments", create=False)
    before = store.metric_summaries(killed)["batch_loss"].max_step
    live = neural_run("--resume", killed[:8], cwd=cwd, crash_after=600)
    time.sleep(1.0)
    resumed = neural_run("--resume", killed[:8], cwd=cwd, crash_after=0.5)
    assert resumed.returncode == 0, resumed.stderr
    reference_id = next(r.run_id for r in store.list_runs() if r.run_id != killed)
    return {"cwd": cwd, "store": store, "reference": reference_id, "killed": killed, "live": live,
            "resumed": resumed, "logged_before": before, "checkpoint_epoch": epoch}


def test_a_killed_run_resumes_to_the_end_the_uninterrupted_run_reached(runs: dict) -> None:
    store, killed, reference = runs["store"], runs["killed"], runs["reference"]
    record = store.get_run(killed)
    assert record.status == "completed"
    assert [e.kind for e in record.events] == ["resumed"]
    epoch = runs["checkpoint_epoch"]  # 1 but on a machine too loaded to poll in time
    assert f"from its checkpoint at epoch {epoch} (step {epoch * BATCHES})" in record.events[0].detail
    assert runs["logged_before"] > epoch * BATCHES  # points past the checkpoint were logged, then dropped
    assert f"epoch {epoch}/3" not in runs["resumed"].stdout and f"epoch {epoch + 1}/3" in runs["resumed"].stdout

    for key in ("val_accuracy", "loss", "lr"):
        assert store.metric_history(killed, key).steps.tolist() == [1, 2, 3]
    steps = store.metric_history(killed, "batch_loss").steps
    assert steps.tolist() == list(range(1, 3 * BATCHES + 1))  # each step once, in order
    assert store.metric_summaries(killed)["batch_loss"].count == 3 * BATCHES

    # the loss curve continues as if never stopped: the same values as the uninterrupted run
    for key in ("batch_loss", "val_loss", "val_accuracy"):
        ours, theirs = store.metric_history(killed, key), store.metric_history(reference, key)
        np.testing.assert_allclose(ours.values, theirs.values, rtol=1e-6, atol=1e-7)


def test_a_live_run_and_a_completed_run_are_not_resumed(runs: dict) -> None:
    live = runs["live"]
    assert live.returncode == 1
    assert "cannot resume run" in live.stderr and "still running elsewhere" in live.stderr
    assert "Traceback" not in live.stderr

    completed = neural_run("--resume", runs["reference"][:8], cwd=runs["cwd"])
    assert completed.returncode == 1
    assert f"cannot resume run {runs['reference'][:8]}: it is completed" in completed.stderr
    assert f"--fork {runs['reference'][:8]}" in completed.stderr and "Traceback" not in completed.stderr


def test_a_resume_refuses_settings_that_change_results(runs: dict) -> None:
    store = runs["store"]
    crashed = store.create_run(experiment="digits-cnn", run_name="stopped", status="failed",
                               config=store.get_run(runs["killed"]).config)
    changed = neural_run("--resume", "stopped", "optimizer.lr=0.01", cwd=runs["cwd"])
    assert changed.returncode == 1
    assert "cannot resume run" in changed.stderr and "optimizer.lr is 0.01 here and 0.003 in the run" in changed.stderr
    assert "Traceback" not in changed.stderr
    unknown = neural_run("--fork", "nosuch@2", cwd=runs["cwd"])
    assert unknown.returncode == 1 and "cannot fork: no run 'nosuch' in the experiment store" in unknown.stderr
    missing = neural_run("--resume", "stopped", "train.epochs=5", cwd=runs["cwd"])  # epochs may grow
    assert missing.returncode == 1
    assert f"cannot resume run {crashed[:8]}: it has no checkpoint" in missing.stderr
    assert "checkpoint_every: 1" in missing.stderr and "Traceback" not in missing.stderr


def test_a_fork_starts_a_new_run_from_the_checkpoint_of_its_epoch(runs: dict) -> None:
    store, parent = runs["store"], runs["reference"]
    parent_before = store.metric_history(parent, "batch_loss")
    forked = neural_run("--fork", f"{parent[:8]}@2", "optimizer.lr=0.0001", cwd=runs["cwd"])
    assert forked.returncode == 0, forked.stderr
    child = next(r for r in store.list_runs() if r.parent is not None)
    assert child.status == "completed" and child.run_id not in (parent, runs["killed"])
    assert (child.parent.run_id, child.parent.fork_epoch, child.parent.fork_step) == (parent, 2, 2 * BATCHES)
    assert [e.kind for e in child.events] == ["forked"]
    assert child.hyperparameters["optimizer.lr"] == 0.0001
    assert child.hyperparameters["train.batch_size"] == 4  # the parent's settings, the fork's on top
    assert store.get_run(parent).children == (child.run_id,)

    steps = store.metric_history(child.run_id, "batch_loss").steps
    assert steps.tolist() == list(range(2 * BATCHES + 1, 3 * BATCHES + 1))  # its own points, after the fork
    assert store.metric_history(child.run_id, "val_accuracy").steps.tolist() == [3]
    assert store.metric_history(child.run_id, "lr").values.tolist() == [0.0001]
    after = store.metric_history(parent, "batch_loss")
    assert np.array_equal(after.steps, parent_before.steps) and np.array_equal(after.values, parent_before.values)

    shown = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "experiments", "show", child.run_id[:8]],
                           cwd=runs["cwd"], capture_output=True, text=True, timeout=120)
    assert f"parent     {parent[:8]}" in shown.stdout and "@ epoch 2 (step 720)" in shown.stdout
    assert "forked: from run" in shown.stdout
    shown = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "experiments", "show", parent[:8]],
                           cwd=runs["cwd"], capture_output=True, text=True, timeout=120)
    assert f"forks      {child.run_id[:8]}" in shown.stdout


def test_a_fork_the_checkpoint_does_not_fit_names_the_layer(runs: dict) -> None:
    parent = runs["reference"]
    count = len(runs["store"].list_runs())
    changed = neural_run("--fork", parent[:8], "model.dense_1.units=32", cwd=runs["cwd"])
    assert changed.returncode == 1
    assert f"cannot fork run {parent[:8]} from its checkpoint of epoch 3" in changed.stderr
    assert "layer dense_1: its weight is (64, 512) in the checkpoint and (32, 512) here" in changed.stderr
    assert "Traceback" not in changed.stderr
    missing = neural_run("--fork", f"{parent[:8]}@7", cwd=runs["cwd"])
    assert missing.returncode == 1 and "has checkpoints of epochs 1, 2, 3" in missing.stderr
    assert len(runs["store"].list_runs()) == count  # no run opened for either


def test_the_recorded_config_is_taken_literally_with_the_command_line_on_top() -> None:
    from omegaconf import OmegaConf

    from neural_dsl_tracking.plugins.tracking.resume import _literal, _rebased

    recorded = {"tracking": {"run_name": "cost ${oops}", "tags": ["${x}"], "resume": None},
                "optimizer": {"lr": 0.003, "betas": [0.9, 0.999]}, "data": {"name": "digits", "scale": True}}
    composed = {"tracking": {"run_name": None, "tags": [], "fork": "abc@2"},
                "optimizer": {"lr": 0.01, "betas": [0.5, 0.5]}, "data": {"name": "synthetic", "samples": 10}}
    merged = _rebased(recorded, composed, ["optimizer.lr", "tracking.fork", "data", "tracking.resume"])
    assert merged == {"tracking": {"run_name": "cost ${oops}", "tags": ["${x}"], "fork": "abc@2"},
                      "optimizer": {"lr": 0.01, "betas": [0.9, 0.999]}, "data": {"name": "synthetic", "samples": 10}}
    assert OmegaConf.to_container(OmegaConf.create(_literal(merged)), resolve=True) == merged


def test_a_resume_refuses_a_network_that_is_not_the_runs(runs: dict) -> None:
    """The run recorded its network with activation tanh in dense_1; the file says relu: the
    shapes fit, the computation is another."""
    store, reference = runs["store"], runs["reference"]
    model = store.run_models([reference])[reference]
    spec = {**model.spec, "layers": [{**layer, "params": {**layer["params"], "activation": "tanh"}}
                                     if layer["name"] == "dense_1" else layer for layer in model.spec["layers"]]}
    other = store.create_run(experiment="digits-cnn", run_name="tanh", status="interrupted",
                             config=store.get_run(reference).config)
    store.set_run_model(other, spec, params=model.params, macs=model.macs)
    checkpoint = store.find_artifact_version(reference, "checkpoint", -1)
    with store.objects.stage(checkpoint.path) as content:
        store.add_artifact_version(other, "checkpoint", content, filename="checkpoint-epoch3.pt",
                                   metadata=checkpoint.metadata, aliases=())

    refused = neural_run("--resume", "tanh", cwd=runs["cwd"])
    assert refused.returncode == 1
    assert f"cannot resume run {other[:8]}: this network is not the one it trained, from layer dense_1" in refused.stderr
    assert "activation='tanh'" in refused.stderr and "activation='relu'" in refused.stderr
    assert f"--fork {other[:8]}" in refused.stderr and "Traceback" not in refused.stderr
    assert store.get_run(other).status == "interrupted" and store.get_run(other).events == ()


@pytest.mark.parametrize(("args", "message"), [
    (["--resume", "abc", "--multirun"], "--resume continues one run: it does not apply to --sweep, --multirun"),
    (["--fork=abc", "--skip-if-done"], "--fork continues one run"),
    (["--resume", "a", "--fork", "b"], "--resume and --fork cannot be used together"),
    (["--resume"], "--resume needs a run: its id, id prefix or name"),
])
def test_resume_and_fork_flags_that_cannot_apply(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "run", str(DIGITS), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "build").exists()  # refused before compiling


def test_resume_needs_a_tracking_block(tmp_path: Path) -> None:
    source = tmp_path / "plain.neural"
    source.write_text(DIGITS.read_text().split("  tracking <")[0] + "}\n")
    done = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "run", str(source), "--resume", "abc"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--resume: network DigitsCNN has no tracking block" in done.stderr
