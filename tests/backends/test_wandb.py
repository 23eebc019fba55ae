"""The W&B mirror in offline mode, read back by parsing the offline ``.wandb`` run file."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from neural_dsl_tracking.backends import RunInfo, open_mirrors
from neural_dsl_tracking.backends.registry import create_mirror
from neural_dsl_tracking.backends.workers import MirrorWorkers


def test_complete_offline_run(tmp_path, failures, png_file, readback, in_empty_cwd):
    store = tmp_path / "store"
    checkpoint = tmp_path / "ckpt.pt"
    checkpoint.write_bytes(b"weights" * 100)
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    run = RunInfo("3f2a9c", "digits", "first run", ["baseline"], store)
    mirrors = open_mirrors(["wandb"], {"wandb": {"project": "neural-tests", "mode": "offline"}},
                           run, lambda *a: failures.append(a))
    mirrors.params({"lr": 0.01, "optimizer": {"type": "Adam"}, "layers": [64, 10]})
    batch = [("loss", s, 1.0 / (s + 1), 1_700_000_000.0 + s) for s in range(300)]
    epochs = [("val_loss", s, 0.5 / s, 1_700_000_500.0 + s) for s in (1, 2, 3)]
    mirrors.metrics(batch[:150] + epochs[:1])  # epoch points interleave with batch steps
    mirrors.metrics(batch[150:] + epochs[1:])
    mirrors.metrics([("loss", 5, 9.0, 1_700_000_900.0)])  # a step going backwards is kept
    mirrors.artifact(checkpoint, "checkpoint", 2, sha, ["latest", "best"], "ckpt.pt")
    mirrors.figure(png_file, "loss")
    assert mirrors.finish("completed", timeout=60) == []
    assert failures == []
    assert list(in_empty_cwd.iterdir()) == []  # nothing written to the current directory

    back = readback.wandb(store / "wandb")
    assert back.run.project == "neural-tests" and back.run.run_id == "3f2a9c"
    assert back.run.display_name == "first run" and list(back.run.tags) == ["baseline"]
    assert back.config == {"lr": 0.01, "optimizer": {"type": "Adam"}, "layers": [64, 10]}
    rows = [row for row in back.history if "step" in row and "plots/loss/_type" not in row]
    sent = batch + epochs + [("loss", 5, 9.0, 1_700_000_900.0)]
    got = sorted((key, row["step"], row[key]) for row in rows for key in ("loss", "val_loss")
                 if key in row)
    assert got == sorted((k, s, v) for k, s, v, _ in sent)
    # a row's time is its points' time (the latest, when points at one step are merged)
    times = {(k, s, v): t for k, s, v, t in sent}
    for row in rows:
        keys = [k for k in ("loss", "val_loss") if k in row]
        assert row["_timestamp"] == max(times[(k, row["step"], row[k])] for k in keys)
    # points at the same step share one row: step 1 holds loss and val_loss
    assert any(row["step"] == 1 and "loss" in row and "val_loss" in row for row in rows)
    images = [row for row in back.history if row.get("plots/loss/_type") == "image-file"]
    assert len(images) == 1 and images[0]["plots/loss/width"] == 30
    image_path = back.files[0].parent / "files" / images[0]["plots/loss/path"]
    assert image_path.read_bytes() == png_file.read_bytes()
    (artifact,) = back.artifacts
    assert (artifact.name, artifact.type) == ("checkpoint", "model")
    assert sorted(artifact.aliases) == ["best", "latest"]
    import json
    assert json.loads(artifact.metadata) == {"sha256": sha, "version": 2, "neural_run_id": "3f2a9c"}
    (entry,) = artifact.manifest.contents
    assert entry.path == "ckpt.pt"
    assert Path(entry.local_path).read_bytes() == checkpoint.read_bytes()
    assert back.summary["neural_status"] == "completed"
    assert back.exit_code == 0


def test_failed_run_exits_non_zero_and_project_defaults_to_experiment(tmp_path, readback):
    run = RunInfo("r-failed", "my experiment/1", None, (), tmp_path)
    mirrors = open_mirrors(["wandb"], {"wandb": {"mode": "offline"}}, run, lambda *a: None)
    mirrors.metrics([("loss", 0, 1.0, 1.0)])
    html = tmp_path / "interactive.html"
    html.write_text("<html><body>plotly</body></html>")
    mirrors.figure(html, "interactive")  # a Plotly figure saved by log_figure
    assert mirrors.finish("failed", timeout=60) == []
    back = readback.wandb(tmp_path / "wandb")
    assert back.run.project == "my_experiment_1"
    assert back.exit_code == 1 and back.summary["neural_status"] == "failed"
    assert [row["plots/interactive/_type"] for row in back.history
            if "plots/interactive/_type" in row] == ["html-file"]


def test_a_pruned_trial_ends_finished_with_its_status_in_the_summary(tmp_path, readback):
    """A sweep's pruned trial is a normal end, as W&B sweeps' early-terminated runs are."""
    run = RunInfo("r-pruned", "e", None, (), tmp_path)
    mirrors = open_mirrors(["wandb"], {"wandb": {"mode": "offline"}}, run, lambda *a: None)
    mirrors.metrics([("val_accuracy", 0, 0.2, 1.0)])
    assert mirrors.finish("pruned", timeout=60) == []
    back = readback.wandb(tmp_path / "wandb")
    assert back.exit_code == 0 and back.summary["neural_status"] == "pruned"


def test_missing_library_is_recorded_and_the_run_goes_on(tmp_path, failures, uninstall, caplog):
    """In-process workers (imports are hidden in this process only), the real mirror class."""
    uninstall("wandb")
    with caplog.at_level(logging.WARNING, "neural_dsl_tracking.backends"):
        mirrors = MirrorWorkers([create_mirror("wandb", RunInfo("r", "e", None, (), tmp_path), {})],
                               lambda *a: failures.append(a))
        mirrors.params({"lr": 1})
        unsent = mirrors.finish("completed", timeout=30)
    assert len(caplog.records) == 1 and "wandb mirror disabled" in caplog.records[0].getMessage()
    assert failures[0][0] == "wandb"
    assert unsent == ["wandb: not sent: 1 parameters, the run's end (status completed) "
                      "(disabled: ModuleNotFoundError: import of wandb halted; None in sys.modules)"]


def test_wandb_dir_from_the_environment_is_honoured(tmp_path, readback, monkeypatch):
    wandb_dir = tmp_path / "wandb-home"
    wandb_dir.mkdir()
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    store = tmp_path / "store"
    run = RunInfo("r-wandb-dir", "placed", None, (), store)
    mirrors = open_mirrors(["wandb"], {"wandb": {"mode": "offline"}}, run, lambda *a: None)
    mirrors.metrics([("loss", 0, 1.5, 1.0)])
    assert mirrors.finish("completed", timeout=60) == []
    back = readback.wandb(wandb_dir / "wandb")
    assert back.run.run_id == "r-wandb-dir" and back.summary["neural_status"] == "completed"
    assert [row["loss"] for row in back.history if "loss" in row] == [1.5]
    assert not (store / "wandb").exists()
