"""Generated programs run like a user runs them: training, tracking, overrides, sweeps, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neural_dsl_tracking.tracking import ExperimentManager

from .conftest import DIGITS, compile_text, import_program, run_program

MNIST_LIKE = """network Wide {
  input: (28, 28, 1)
  layers:
    Flatten()
    Output(10, "softmax")
  tracking < experiment: "wide" >
}"""


@pytest.fixture(scope="module")
def digits_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from neural_dsl_tracking.compiler import compile_network
    from neural_dsl_tracking.language import parse_file

    out = tmp_path_factory.mktemp("digits")
    return compile_network(parse_file(DIGITS).network(), DIGITS, out / "program")


def _manager(store: Path) -> ExperimentManager:
    return ExperimentManager(store=str(store))


@pytest.mark.slow
def test_digits_training_records_everything(digits_program: Path, tmp_path: Path) -> None:
    launch = tmp_path / "launch"
    launch.mkdir()
    result = run_program(digits_program, "tracking.store=store", cwd=launch)
    assert result.returncode == 0, result.stderr
    assert "epoch 10/10" in result.stdout and "final evaluation" in result.stdout
    assert sorted(p.name for p in launch.iterdir()) == ["store"]  # relative store, no Hydra litter

    manager = _manager(launch / "store")
    (run,) = manager.list_experiments()
    assert run.status == "completed" and run.experiment == "digits-cnn"
    short, store = run.run_id[:8], launch / "store"
    assert "sending to" not in result.stdout  # no mirrors, nothing to wait for
    assert result.stdout.endswith(f"run {short} completed, recorded in {store}: "
                                  f"neural experiments show {short} --store {store}\n")
    assert run.metrics["val_accuracy"]["max"] >= 0.9
    assert run.metrics["final_accuracy"]["latest"] >= 0.9
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_time", "samples_per_s", "batch_loss"):
        assert key in run.metrics, key
    assert run.metrics["val_loss"]["count"] == 10
    assert run.metrics["batch_loss"]["count"] == 10 * 45  # 1438 samples, batches of 32, log_every 1
    history = manager.get_metric_history(run.run_id, "val_accuracy")
    assert list(history.steps) == list(range(1, 11))
    assert run.hyperparameters["optimizer.lr"] == 0.003 and run.hyperparameters["train.epochs"] == 10

    checkpoints = manager.list_artifact_versions(run.run_id, "checkpoint")
    assert [v.version for v in checkpoints] == list(range(1, 11))
    best = manager.get_artifact_version(run.run_id, "checkpoint", "best")
    best_epoch = int(np.argmax(history.values)) + 1
    assert best.metadata["epoch"] == best_epoch
    assert {"model", "source", "config", "checkpoint"} <= set(run.artifacts)
    source = manager.get_artifact_version(run.run_id, "source", -1)
    assert Path(source.path).read_bytes() == DIGITS.read_bytes()
    plots = list((launch / "store" / "runs" / run.run_id / "plots").glob("*.png"))
    assert plots, "no plots were drawn"


@pytest.mark.slow
def test_overrides_reach_the_run_and_the_tensorboard_mirror(digits_program: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = run_program(digits_program, "optimizer.lr=0.01", "train.epochs=2", "tracking.backend=tensorboard",
                         "model.dense_1.units=16", f"tracking.store={store}", "tracking.run_name=override-run",
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run,) = _manager(store).list_experiments()
    assert run.run_name == "override-run"
    assert run.hyperparameters["optimizer.lr"] == 0.01
    assert run.hyperparameters["model.dense_1.units"] == 16
    assert run.metrics["val_loss"]["count"] == 2
    assert "32 samples/s" not in result.stdout and "parameters on cpu" in result.stdout
    assert list(store.rglob("events.out.tfevents.*")), "tensorboard mirror wrote no event file"


@pytest.mark.slow
def test_multirun_gives_one_run_per_job_in_one_store(digits_program: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = run_program(digits_program, "--multirun", "optimizer.lr=0.1,0.01", "train.epochs=1",
                         f"tracking.store={store}", "tracking.run_name=job${hydra:job.num}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = _manager(store).list_experiments()
    assert len(runs) == 2
    assert sorted(r.run_name for r in runs) == ["job0", "job1"]  # checked before the jobs, resolved in each
    assert {r.experiment for r in runs} == {"digits-cnn"}
    assert sorted(r.hyperparameters["optimizer.lr"] for r in runs) == [0.01, 0.1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


BAD_OVERRIDES = [
    ("tracking.visualize_every=-1", ["tracking.visualize_every=-1", "greater than or equal to 0"]),
    ("tracking.backend=neptune", ["tracking.backend", "'neptune'", "'local', 'mlflow', 'wandb' or 'tensorboard'"]),
    ("train.epoch=3", ["unknown setting 'train.epoch'", "did you mean 'train.epochs'", "batch_size"]),
    ("+train.epoch=3", ["train.epoch: unknown setting", "did you mean train.epochs"]),
    ("optimizer.name=Lion", ["optimizer.name='Lion'", "'Adam'"]),
    ("data=npz", ["data.path is not set; give it on the command line: data.path=..."]),
    ("data=imagenet", ["Could not find 'data/imagenet'", "digits npz synthetic"]),
    ("execution.device=tpu", ["execution.device='tpu'", "auto, cpu, cuda"]),
    ("model.dense_1.units=0", ["model.dense_1.units=0", "greater than or equal to 1"]),
    ("loss=mse", ["loss='mse'", "sparse_categorical_crossentropy"]),
    ("seed=-1", ["seed=-1", "greater than or equal to 0"]),
    ("optimizer.lr=inf", ["optimizer.lr=inf", "finite number"]),
    ("optimizer.eps=nan", ["eps must be a finite number"]),
    ("optimizer.betas=[0.9,inf]", ["betas must be a finite number"]),
    ("=3", ["an override needs a key before '='"]),
    ("data=3", ["data=3: Config group override must be a string"]),
    ("data=null", ["data=null: Config group override must be a string"]),
]


@pytest.mark.parametrize("override,expected", BAD_OVERRIDES, ids=[o for o, _ in BAD_OVERRIDES])
def test_bad_overrides_are_reported_with_key_and_allowed_values(digits_program: Path, override: str,
                                                                expected: list[str]) -> None:
    """The same checks the program runs before training (in-process, for speed)."""
    from hydra import compose, initialize_config_dir

    from neural_dsl_tracking.compiler import runtime
    from neural_dsl_tracking.errors import ConfigError
    from neural_dsl_tracking.resources import configs_dir

    module = import_program(digits_program)
    conf = digits_program.parent / "conf"
    search = f"hydra.searchpath=[{configs_dir().as_uri()}]"
    with pytest.raises(ConfigError) as caught:
        runtime.preflight(conf, [override], search)
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[search, override])
        runtime.load_config(cfg, module.MODEL_KINDS, module.LOSS_FAMILY, module.PLUGIN_SECTIONS)
    for text in expected:
        assert text in str(caught.value), str(caught.value)


@pytest.mark.parametrize("override,expected", [BAD_OVERRIDES[1], BAD_OVERRIDES[2], BAD_OVERRIDES[10],
                                               BAD_OVERRIDES[15]])
def test_a_bad_override_exits_with_one_error_and_no_traceback(digits_program: Path, tmp_path: Path,
                                                               override: str, expected: list[str]) -> None:
    result = run_program(digits_program, override, f"tracking.store={tmp_path / 'store'}", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    for text in expected:
        assert text in result.stderr, result.stderr
    assert not (tmp_path / "store").exists()  # nothing recorded for a run that never started


def test_data_that_does_not_fit_the_network_is_refused_before_training(tmp_path: Path) -> None:
    train_py = compile_text(MNIST_LIKE, tmp_path / "wide")
    result = run_program(train_py, "data=digits", f"tracking.store={tmp_path / 'store'}", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "data=digits gives 8x8 images" in result.stderr and "(28, 28, 1)" in result.stderr

    np.savez(tmp_path / "d.npz", x_train=np.zeros((10, 28, 28), np.float32), y_train=np.zeros(10, np.int64))
    result = run_program(train_py, "data=npz", "data.path=d.npz", f"tracking.store={tmp_path / 'store'}",
                         cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "shape (28, 28) per sample" in result.stderr and "(28, 28, 1)" in result.stderr


@pytest.mark.slow
def test_npz_data_trains(tmp_path: Path) -> None:
    train_py = compile_text(MNIST_LIKE, tmp_path / "wide")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.random((64, 28, 28, 1), np.float32), y_train=rng.integers(0, 10, 64),
             x_val=rng.random((16, 28, 28, 1), np.float32), y_val=rng.integers(0, 10, 16))
    result = run_program(train_py, "data=npz", "data.path=d.npz", "train.epochs=1", "tracking.store=s",
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "64 training / 16 validation samples" in result.stdout


@pytest.mark.slow
def test_ctrl_c_marks_the_run_interrupted(digits_program: Path, tmp_path: Path) -> None:
    env = {**os.environ, "NEURAL_NO_PROGRESS": "1"}
    process = subprocess.Popen([sys.executable, str(digits_program), "execution.threads=1", "train.epochs=200",
                                f"tracking.store={tmp_path / 'store'}"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    deadline = time.time() + 300
    for line in process.stdout:
        if line.startswith("epoch 1/"):
            break
        assert time.time() < deadline
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    (run,) = _manager(tmp_path / "store").list_experiments()
    assert run.status == "interrupted"


@pytest.mark.slow
def test_an_exception_marks_the_run_failed_and_is_reraised(digits_program: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra import compose, initialize_config_dir

    from neural_dsl_tracking.compiler import runtime
    from neural_dsl_tracking.resources import configs_dir

    module = import_program(digits_program)
    with initialize_config_dir(config_dir=str(digits_program.parent / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra.searchpath=[{configs_dir().as_uri()}]",
                                                        "train.epochs=1", f"tracking.store={tmp_path / 'store'}"])
    config, composed = runtime.load_config(cfg, module.MODEL_KINDS, module.LOSS_FAMILY, module.PLUGIN_SECTIONS)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("evaluation exploded")

    monkeypatch.setattr(runtime, "evaluate", broken)
    with pytest.raises(RuntimeError, match="evaluation exploded"):
        module.train(config, composed)
    (run,) = _manager(tmp_path / "store").list_experiments()
    assert run.status == "failed"
    assert "checkpoint" not in run.artifacts and "model" not in run.artifacts


@pytest.mark.slow
def test_neural_run_compiles_into_a_cache_and_trains(tmp_path: Path) -> None:
    env = {**os.environ, "NEURAL_NO_PROGRESS": "1"}
    command = [sys.executable, "-m", "neural_dsl_tracking", "run", str(DIGITS), "train.epochs=1",
               "execution.threads=1", "tracking.store=store"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    cached = list((tmp_path / "build" / ".cache").glob("DigitsCNN-*/train.py"))
    assert len(cached) == 1
    assert len(_manager(tmp_path / "store").list_experiments()) == 1
    again = subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "run", str(DIGITS), "train.epoch=1"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 1 and "did you mean 'train.epochs'" in again.stderr
    assert list((tmp_path / "build" / ".cache").glob("DigitsCNN-*/train.py")) == cached


def test_a_network_pytorch_cannot_build_is_one_line_without_native_frames(tmp_path: Path) -> None:
    huge = "network Huge {\n  input: (100000000000, 100000000000, 1)\n  layers:\n    Flatten()\n    Output(10)\n}\n"
    result = run_program(compile_text(huge, tmp_path / "huge"), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: model: the network cannot be built with these settings: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_warnings_print_as_one_warning_line(digits_program: Path, tmp_path: Path) -> None:
    result = run_program(digits_program, "train.epochs=1", "train.validation_split=0",
                         f"tracking.store={tmp_path / 'store'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: monitor 'val_accuracy' has no value yet" in result.stderr, result.stderr
    assert "Warning:" not in result.stderr and "train.py:" not in result.stderr, result.stderr


MONITOR_WITHOUT_MODE = """network Monitored {
  input: (8, 8, 1)
  layers:
    Flatten()
    Dense(16, "relu")
    Output(10, "softmax")
  loss: "sparse_categorical_crossentropy"
  optimizer: Adam(learning_rate=0.002)
  train { epochs: 4 batch_size: 64 }
  tracking < monitor: val_accuracy; visualize_every: 0 >
}"""


def test_the_best_checkpoint_of_an_accuracy_monitor_without_a_mode_is_its_highest(compile_in, tmp_path: Path) -> None:
    """`monitor: val_accuracy` alone used to keep the default mode min: the checkpoint aliased
    best was the epoch of the lowest accuracy. The mode now follows the monitor's name."""
    result = run_program(compile_in(MONITOR_WITHOUT_MODE), "tracking.store=store", "data=digits", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manager = _manager(tmp_path / "store")
    (run,) = manager.list_experiments()
    history = manager.get_metric_history(run.run_id, "val_accuracy")
    best = manager.get_artifact_version(run.run_id, "checkpoint", "best")
    assert best.metadata["monitor"]["mode"] == "max"
    assert best.metadata["epoch"] == int(np.argmax(history.values)) + 1
