"""``neural compile``: files written, defaults, and clear errors (in-process, no training)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from neural_dsl_tracking.cli import main

from .conftest import CORPUS, DIGITS


def test_compile_writes_program_config_and_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["compile", str(DIGITS)]) == 0
    out = tmp_path / "build" / "DigitsCNN"
    assert (out / "train.py").is_file() and (out / "source.neural").read_bytes() == DIGITS.read_bytes()
    config = yaml.safe_load((out / "conf" / "config.yaml").read_text())
    assert config["defaults"][:3] == ["_self_", {"data": "digits"}, {"tracking": None}]
    assert config["optimizer"]["name"] == "Adam" and config["optimizer"]["lr"] == 0.003
    assert config["train"] == {"epochs": 10, "batch_size": 32, "validation_split": 0.2, "shuffle": True}
    assert config["tracking"]["experiment"] == "digits-cnn" and config["tracking"]["mode"] == "max"
    assert config["model"]["conv2d_1"] == {"filters": 16}
    assert config["hydra"] == {"output_subdir": None}
    assert "wrote build/DigitsCNN/train.py" in capsys.readouterr().out

    assert main(["compile", str(DIGITS), "-o", "elsewhere"]) == 0
    assert (tmp_path / "elsewhere" / "train.py").is_file()


def test_compile_picks_a_network_by_name(tmp_path: Path) -> None:
    source = tmp_path / "two.neural"
    source.write_text("network A {\n input: (4,)\n layers:\n Output(2)\n}\n"
                      "network B {\n input: (6,)\n layers:\n Output(3)\n}\n")
    assert main(["compile", str(source), "--network", "B", "-o", str(tmp_path / "b")]) == 0
    assert "class B(nn.Module)" in (tmp_path / "b" / "train.py").read_text()


@pytest.mark.parametrize("args,message", [
    ([str(CORPUS / "nested_layers.neural")], "nested_layers.neural:5:5: layer TransformerEncoder: expects a sequence"),
    ([str(CORPUS / "tiny.neural"), "--network", "Huge"], "no network named 'Huge'; the file defines: Tiny"),
    (["missing.neural"], "missing.neural"),
])
def test_compile_errors_are_one_message_and_exit_1(args: list[str], message: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["compile", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "build").exists()


def test_an_unwritable_output_directory_is_a_clear_error(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["compile", str(DIGITS), "-o", str(blocker / "out")]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot write the program into {blocker / 'out'}")


def test_the_train_it_line_names_a_python_that_has_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))  # the PATH's python is not this one
    assert main(["compile", str(DIGITS), "-o", str(tmp_path / "out")]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line == f"train it:  {sys.executable} {tmp_path / 'out' / 'train.py'} [KEY=VALUE ...]"


@pytest.mark.parametrize("network", [["--network", "Huge"], ["--network=Huge"]])
def test_run_takes_network_written_after_the_file(network: list[str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(CORPUS / "tiny.neural"), "train.epochs=1", *network]) == 1
    assert capsys.readouterr().err == (f"error: {CORPUS / 'tiny.neural'}: no network named 'Huge'; "
                                       "the file defines: Tiny\n")
    assert main(["run", str(CORPUS / "tiny.neural"), "--network"]) == 1
    assert "--network needs the name of a network" in capsys.readouterr().err


def _program_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _changed_digits(tmp_path: Path) -> Path:
    """DIGITS with another learning rate: a program that differs in every file."""
    source = tmp_path / "digits.neural"
    source.write_text(DIGITS.read_text().replace("learning_rate=0.003", "learning_rate=0.004"))
    return source


@pytest.mark.parametrize("blocked", ["train.py", "source.neural", "conf/config.yaml"])
def test_compile_over_a_folder_in_the_way_changes_nothing(blocked: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["compile", str(DIGITS), "-o", str(out)]) == 0
    (out / blocked).unlink()
    (out / blocked).mkdir()
    (out / blocked / "kept").write_text("mine")
    before = _program_files(out)
    capsys.readouterr()
    assert main(["compile", str(_changed_digits(tmp_path)), "-o", str(out)]) == 1
    assert capsys.readouterr().err == f"error: cannot write the program: {out / blocked} is a folder, not a file\n"
    assert _program_files(out) == before  # the old program whole, the folder untouched, no temporary files
    assert sorted(p.name for p in out.iterdir()) == sorted(["conf", "source.neural", "train.py"])


def test_compile_into_a_file_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "program"
    target.write_text("not a folder")
    assert main(["compile", str(DIGITS), "-o", str(target)]) == 1
    assert capsys.readouterr().err == f"error: cannot write the program into {target}: it is a file, not a folder\n"
    assert target.read_text() == "not a folder"


def test_a_rename_failing_halfway_puts_the_previous_program_back(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """train.py is renamed into place last; when that fails (here: the old one is immutable),
    the config and source already renamed are put back."""
    import subprocess

    out = tmp_path / "out"
    assert main(["compile", str(DIGITS), "-o", str(out)]) == 0
    before = _program_files(out)
    if subprocess.run(["chattr", "+i", str(out / "train.py")], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root on ext2/3/4, XFS or Btrfs)")
    try:
        capsys.readouterr()
        assert main(["compile", str(_changed_digits(tmp_path)), "-o", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: cannot write the program into {out}: [Errno 1] Operation not permitted")
        assert len(err.splitlines()) == 1
        assert _program_files(out) == before
        assert sorted(p.name for p in out.iterdir()) == ["conf", "source.neural", "train.py"]
    finally:
        subprocess.run(["chattr", "-i", str(out / "train.py")], capture_output=True)


def test_a_full_disk_leaves_the_previous_program_whole(small_disk: Path, fill_disk,  # type: ignore[no-untyped-def]
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = small_disk / "out"
    assert main(["compile", str(DIGITS), "-o", str(out)]) == 0
    before = _program_files(out)
    fill_disk(small_disk)
    capsys.readouterr()
    assert main(["compile", str(_changed_digits(tmp_path)), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write the program into {out}: [Errno 28] No space left on device")
    assert _program_files(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["conf", "source.neural", "train.py"]


TRACKED = """network Small {
  input: (8, 8, 1)
  layers: Flatten() Dense(HPO(choice(8, 16))) Output(10, "softmax")
  loss: "sparse_categorical_crossentropy"
  train { epochs: 1 }
  tracking < monitor: val_accuracy; mode: max >
  sweep < trials: 1; pruner: none >
}
"""


@pytest.mark.parametrize("where", ["before", "after"])
def test_run_store_option_records_the_run_there(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # neural sweep and neural experiments take --store; neural run passed it to Hydra, which
    # read the store's path as a broken override ("Error parsing override 'elsewhere'").
    from neural_dsl_tracking.tracking import ExperimentManager

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEURAL_NO_PROGRESS", "1")
    (tmp_path / "small.neural").write_text(TRACKED)
    store = ["--store", "my store"]
    args = [*store, "small.neural"] if where == "before" else ["small.neural", *store]
    assert main(["run", *args, "execution.threads=1"]) == 0, capsys.readouterr().err
    manager = ExperimentManager(store=str(tmp_path / "my store"))
    assert [run.status for run in manager.list_experiments()] == ["completed"]
    manager.close()
    assert not (tmp_path / "neural_experiments").exists()


def test_run_sweep_takes_the_store_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from neural_dsl_tracking.tracking import ExperimentManager

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEURAL_NO_PROGRESS", "1")
    (tmp_path / "small.neural").write_text(TRACKED)
    assert main(["run", "--sweep", "small.neural", "--store", "swept", "execution.threads=1"]) == 0, \
        capsys.readouterr().err
    manager = ExperimentManager(store=str(tmp_path / "swept"))
    (sweep,) = manager.list_sweeps()
    assert [trial.state for trial in sweep.trials] == ["complete"]
    manager.close()


def test_run_store_option_without_a_tracking_block_is_one_message(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(CORPUS / "tiny.neural"), "--store", "somewhere"]) == 1
    assert capsys.readouterr().err == ("error: --store: network Tiny has no tracking block, so its runs "
                                       "and checkpoints are not recorded\n")
    assert main(["run", str(CORPUS / "tiny.neural"), "--store"]) == 1
    assert "--store needs" in capsys.readouterr().err
