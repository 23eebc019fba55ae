"""Bounds of a run's settings: the same limit in `neural check` and as a Hydra override of a
generated program, refused with one error line before anything runs; never a crash, a
traceback, a store in the launch directory or a run that cannot end."""

from __future__ import annotations

from pathlib import Path

import pytest

from neural_dsl_tracking import limits
from neural_dsl_tracking.cli import main
from neural_dsl_tracking.errors import ConfigError

from .conftest import DIGITS, import_program, run_program

CPUS = limits.cpu_count()
NETWORK = """network Bounded {{
  input: (8, 8, 1)
  layers:
    Flatten()
    Output(10, "softmax")
  {section}
}}
"""
EMPTY_STORE = "must be a folder or a database URL, not empty text"

# (section of the file, the refused value as written, message)
DSL_CASES = [
    ("execution { threads: 100000 }", "100000", "threads must be at most 1024, got 100000"),
    ("execution { threads: 0 }", "0", "threads must be a positive integer, got 0"),
    ("train { epochs: 5000000 }", "5000000", "epochs must be at most 1000000, got 5000000"),
    ("train { batch_size: HPO(choice(32, 2000000)) }", "HPO", "batch_size must be at most 1000000"),
    ("train { epochs: HPO(range(1, 2000000, step=10)) }", "HPO", "epochs must be at most 1000000"),
    ("tracking < log_every: 5000000000 >", "5000000000", "'log_every' must be <= 1000000000, got 5000000000"),
    ("tracking < visualize_every: 5000000000 >", "5000000000", "'visualize_every' must be <= 1000000000"),
    ("tracking < checkpoint_every: 2000000 >", "2000000", "'checkpoint_every' must be <= 1000000"),
    ('tracking < store: "" >', '""', f"'store' {EMPTY_STORE}"),
    ('tracking < store: "   " >', '"   "', f"'store' {EMPTY_STORE}"),
]


@pytest.mark.parametrize("section,value,message", DSL_CASES, ids=[c[0] for c in DSL_CASES])
def test_neural_check_refuses_an_absurd_setting_where_it_is_written(
        section: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bounded.neural"
    path.write_text(NETWORK.format(section=section), encoding="utf-8")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    column = section.index(value) + 3  # the section is indented by two spaces
    assert err.startswith(f"error: {path}:6:{column}: {message}"), err
    assert "Traceback" not in err and "Input should be" not in err


def test_settings_within_the_bounds_pass_the_check(tmp_path: Path) -> None:
    path = tmp_path / "bounded.neural"
    path.write_text(NETWORK.format(section=f"execution {{ threads: {CPUS} }}\n  train {{ epochs: 1000000 "
                                           "batch_size: HPO(choice(1, 1000000)) }\n  tracking < "
                                           "log_every: 1000000000; checkpoint_every: 0; store: s >"))
    assert main(["check", str(path)]) == 0


def test_threads_may_be_an_hpo_choice(tmp_path: Path) -> None:
    """It was a yaml RepresenterError traceback at compile time (the choice went into the config raw)."""
    import yaml

    from .conftest import compile_text

    train_py = compile_text(NETWORK.format(section="execution { threads: HPO(choice(1, 2)) }"), tmp_path)
    config = yaml.safe_load((train_py.parent / "conf" / "config.yaml").read_text())
    assert config["execution"]["threads"] == 1
    assert config["hpo"]["space"]["execution.threads"]["values"] == [1, 2]


@pytest.fixture(scope="module")
def digits_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from neural_dsl_tracking.compiler import compile_network
    from neural_dsl_tracking.language import parse_file

    return compile_network(parse_file(DIGITS).network(), DIGITS, tmp_path_factory.mktemp("digits") / "program")


def preflight(program: Path, overrides: list[str], multirun: bool = False) -> None:
    """The checks a generated program makes before it trains, in-process (for speed)."""
    from neural_dsl_tracking.compiler import runtime
    from neural_dsl_tracking.resources import configs_dir

    search = f"hydra.searchpath=[{configs_dir().as_uri()}]"
    runtime.preflight(program.parent / "conf", overrides, search, multirun=multirun,
                      check=import_program(program).settings)


HUGE = "99999999999999999999999"
WIDE = f"integers are up to 64 bits (at most {2**63 - 1})"
OVERRIDE_CASES = [
    (["execution.threads=100000"], "execution.threads=100000: Input should be less than or equal to 1024"),
    ([f"execution.threads={CPUS + 1}"],
     f"execution.threads={CPUS + 1}: this machine has {CPUS} CPUs; give at most {CPUS}"),
    ([f"train.epochs={HUGE}"], f"train.epochs={HUGE}: {WIDE}"),
    (["train.epochs=" + "9" * 5000], f"cannot read the override train.epochs=...: {WIDE}"),
    (["train.epochs=5000000"], "train.epochs=5000000: Input should be less than or equal to 1000000"),
    (["train.batch_size=2000000"], "train.batch_size=2000000: Input should be less than or equal to 1000000"),
    ([f"model.dense_1.units={HUGE}"], f"model.dense_1.units={HUGE}: {WIDE}"),
    ([f"model.dense_1.units={HUGE}{HUGE}"], f"model.dense_1.units=99999999999999999999... (46 characters): {WIDE}"),
    ([f"seed={HUGE}"], f"seed={HUGE}: {WIDE}"),
    ([f"tracking.log_every={HUGE}"], f"tracking.log_every={HUGE}: {WIDE}"),
    (["tracking.log_every=2000000000"], "tracking.log_every=2000000000: Input should be less than or equal to"),
    (["tracking.visualize_every=2000000000"], "tracking.visualize_every=2000000000: Input should be less than"),
    (["tracking.checkpoint_every=2000000"], "tracking.checkpoint_every=2000000: Input should be less than"),
    (["data=synthetic", "data.samples=1000000000"], "data.samples=1000000000: Input should be less than"),
    (["data=synthetic", "data.length=2000000"], "data.length=2000000: Input should be less than"),
    (["tracking.store="], f"tracking.store='': {EMPTY_STORE}"),
    (["tracking.store='   '"], f"tracking.store='   ': {EMPTY_STORE}"),
]


@pytest.mark.parametrize("overrides,message", OVERRIDE_CASES, ids=[" ".join(c[0])[:60] for c in OVERRIDE_CASES])
def test_an_absurd_override_is_refused_before_training(digits_program: Path, overrides: list[str],
                                                       message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        preflight(digits_program, overrides)
    assert message in str(caught.value), str(caught.value)


@pytest.mark.parametrize("override", ["execution.threads=100000", "execution.threads=20000",
                                      f"train.epochs={HUGE}", "tracking.store="])
def test_the_program_exits_with_one_error_line(digits_program: Path, tmp_path: Path, override: str) -> None:
    """100000 threads segfaulted and 20000 printed libgomp's error; an empty store recorded the
    run in the launch directory; a 77-bit epoch count was accepted."""
    result = run_program(digits_program, "tracking.store=store", override, cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: invalid setting in the run configuration:\n  "), result.stderr
    assert len(result.stderr.splitlines()) == 2 and "libgomp" not in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing recorded, not even in the launch directory


def test_a_network_too_large_for_the_memory_is_refused_without_allocating(digits_program: Path,
                                                                          tmp_path: Path) -> None:
    result = run_program(digits_program, "model.dense_1.units=1000000000", "tracking.store=store",
                         cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: model: the network would have 523,000,004,810 parameters, about "
                                    "7793.3 GiB to train (weights, gradients, optimizer state), more than "
                                    "this machine's "), result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_synthetic_data_larger_than_half_the_memory_is_refused(digits_program: Path, tmp_path: Path) -> None:
    values = 8 * 8 + 10  # an 8x8 image and 10 outputs per sample
    samples = limits.machine_memory() // (2 * 8 * values) + 1000
    if samples > limits.SAMPLES.high:
        pytest.skip("this machine holds the largest synthetic data set allowed")
    result = run_program(digits_program, "data=synthetic", f"data.samples={samples}", "tracking.store=store",
                         cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"error: data=synthetic: {samples:,} samples of 74 values take about "), \
        result.stderr
    assert "more than half of this machine's" in result.stderr and "lower data.samples\n" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_every_job_of_a_sweep_is_checked_before_the_first_trains(digits_program: Path) -> None:
    preflight(digits_program, ["optimizer.lr=0.1,0.01", "model.dense_1.units=choice(32,64)", "data=digits",
                               "tracking.run_name=job${hydra:job.num}"], multirun=True)
    with pytest.raises(ConfigError) as caught:
        preflight(digits_program, ["optimizer.lr=0.1,0.01", "train.batch_size=32,-1"], multirun=True)
    assert str(caught.value).startswith("sweep job 2 of 4 (optimizer.lr=0.1 train.batch_size=-1): invalid "
                                        "setting in the run configuration:\n  train.batch_size=-1: ")
    with pytest.raises(ConfigError, match=r"sweep job 3 of 3 \(data=npz\): data.path is not set"):
        preflight(digits_program, ["data=digits,synthetic,npz"], multirun=True)
    with pytest.raises(ConfigError, match="did you mean 'optimizer.lr'"):
        preflight(digits_program, ["optimizer.lrr=0.1,0.01"], multirun=True)
    with pytest.raises(ConfigError, match="cannot read the overrides"):
        preflight(digits_program, ["optimizer.lr=[0.1"])


def test_several_values_without_multirun_say_how_to_sweep(digits_program: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        preflight(digits_program, ["train.batch_size=32,64"])
    assert str(caught.value) == ("train.batch_size=32,64: several values make a sweep, which needs --multirun; "
                                 "write a list as train.batch_size=[a,b] or a string as train.batch_size='a,b'")


def test_neural_run_multirun_with_a_bad_value_trains_nothing(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "neural_dsl_tracking", "run", str(DIGITS), "--multirun",
               "train.batch_size=32,-1", "train.epochs=1", "execution.threads=1", "tracking.store=store"]
    result = subprocess.run(command, cwd=tmp_path, env={**os.environ, "NEURAL_NO_PROGRESS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "error: sweep job 2 of 2 (train.batch_size=-1): invalid setting" in result.stderr
    assert "train.batch_size=-1: Input should be greater than or equal to 1" in result.stderr
    assert "Traceback" not in result.stderr and "epoch" not in result.stdout
    assert not (tmp_path / "store").exists()  # the first job never started


def test_a_sweep_asked_by_hydra_mode_is_checked_before_training_too(digits_program: Path, tmp_path: Path) -> None:
    result = run_program(digits_program, "hydra.mode=MULTIRUN", "train.batch_size=32,-1", "tracking.store=store",
                         cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: sweep job 2 of 2 (train.batch_size=-1): invalid setting"), result.stderr
    assert not (tmp_path / "store").exists()
