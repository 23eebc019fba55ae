"""Run models and fingerprints: stored on SQLite and PostgreSQL, found again, stable under
cosmetic edits of the .neural file and changed by real ones; ``neural run --skip-if-done``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neural_dsl_tracking.compiler import runtime
from neural_dsl_tracking.compiler.summary import describe_model, fingerprint

from ..compiler.conftest import DIGITS, compile_text, import_program, network_class
from .test_cli import neural

SPEC = {"network": "Net", "input": [4], "output": [2], "params": 10, "macs": 8,
        "layers": [{"name": "dense_1", "type": "Dense", "depth": 0, "params": {"units": 2},
                    "input": [4], "output": [2], "param_count": 10, "macs": 8},
                   {"name": "dropout_1", "type": "Dropout", "depth": 0, "params": {"rate": 0.1},
                    "input": [2], "output": [2], "param_count": 0, "macs": 0},
                   {"name": "dense_2", "type": "Dense", "depth": 0, "params": {"units": 2},
                    "input": [2], "output": [2], "param_count": 6, "macs": 4}]}


def test_run_model_round_trip_twins_and_delete(make_tracker, manager, store_kwargs):
    first = make_tracker(run_name="first")
    first.log_model_spec(SPEC, fingerprint="f" * 64)
    first.finish()
    time.sleep(0.01)
    second = make_tracker(run_name="second")
    second.log_model_spec(SPEC, fingerprint="f" * 64)
    second.finish("failed")
    other = make_tracker(run_name="other")
    other.log_model_spec({**SPEC, "params": 11}, fingerprint="e" * 64)
    plain = make_tracker(run_name="plain")
    ids = [t.run_id for t in (first, second, other, plain)]

    model = manager.get_run_model("second")
    assert (model.spec, model.params, model.macs, model.fingerprint) == (SPEC, 10, 8, "f" * 64)
    assert manager.get_run_model("plain") is None
    assert set(manager.run_models(ids)) == set(ids[:3])
    assert manager.fingerprint_twins(ids) == {first.run_id: second.run_id, second.run_id: first.run_id}
    assert manager.completed_run_with_fingerprint("f" * 64) == first.run_id
    assert manager.completed_run_with_fingerprint("e" * 64) is None  # still running

    where = [arg for key, value in store_kwargs.items() if value for arg in (f"--{key.replace('_', '-')}", str(value))]
    listed = neural("experiments", "ls", *where).stdout
    assert f"{'f' * 8} same as {first.run_id[:8]}" in listed and f"{'f' * 8} same as {second.run_id[:8]}" in listed
    listed_json = {run["run_name"]: run["model"] for run in json.loads(neural("experiments", "ls", "--json", *where).stdout)}
    assert listed_json["second"] == {"params": 10, "macs": 8, "fingerprint": "f" * 64, "same_as": first.run_id}
    assert listed_json["plain"] is None
    shown_json = json.loads(neural("experiments", "show", "second", "--json", *where).stdout)["model"]
    assert shown_json == {**listed_json["second"], "spec": SPEC}
    shown = neural("experiments", "show", "second", *where).stdout
    assert f"model      Net: 10 parameters, 8 MACs per sample; fingerprint {'f' * 16} (same as {first.run_id[:8]})" in shown
    assert "dropout_1  Dropout  rate=0.1    (2,)   (2,)    0       0" in shown

    store = manager._open()
    counts = store.db.read(lambda cur: cur.all(
        "SELECT layer_type, n FROM run_layer_counts WHERE run_id = ? ORDER BY layer_type", (first.run_id,)))
    assert [tuple(row) for row in counts] == [("Dense", 2), ("Dropout", 1)]
    manager.delete_experiment(first.run_id)
    assert manager.fingerprint_twins(ids[1:]) == {}
    assert store.db.read(lambda cur: cur.all("SELECT * FROM run_layer_counts WHERE run_id = ?", (first.run_id,))) == []


def run_fingerprint(text: str, out_dir: Path, *overrides: str) -> str:
    """The fingerprint the program compiled from ``text`` records when run with ``overrides``
    from ``out_dir``: its config composed by Hydra, its model built and described."""
    from hydra import compose, initialize_config_dir

    train_py = compile_text(text, out_dir)
    module = import_program(train_py)
    search = "hydra.searchpath=[" + ",".join(d.resolve().as_uri() for d in runtime.config_search_dirs()) + "]"
    with initialize_config_dir(config_dir=str(train_py.parent / "conf"), version_base="1.3"):
        config, composed = module.settings(compose(config_name="config", overrides=[search, *overrides]))
    model = runtime.build(network_class(module), config.model)
    spec = describe_model(model, module.model_layers(runtime.hyperparameters(config.model)), config.data.length,
                          module.TOKENS)
    return fingerprint(spec, composed, out_dir)


MLP = """network Mlp {
  input: (8, 8, 1)
  layers:
    Flatten()
    Dense(units=32, activation="relu")
    Dropout(rate=0.1)
    Output(units=10, activation="softmax")
  loss: "sparse_categorical_crossentropy"
  optimizer: Adam(learning_rate=0.003)
  train { epochs: 2 batch_size: 32 validation_split: 0.2 }
  tracking < backend: local; log_every: 5 >
}
"""
COSMETIC = """# the same network, written differently
network Mlp {
  input: (8,8,1)   # digits
  layers:
    Flatten()

    Dense(activation="relu", units=32)     # keyword order
    Dropout(0.1)
    Output(10, "softmax")
  loss: "sparse_categorical_crossentropy"
  optimizer: Adam(learning_rate=0.003)
  train {
    validation_split: 0.2
    batch_size: 32
    epochs: 2
  }
  tracking < log_every: 5; backend: local >
}
"""


def test_cosmetic_edits_and_tracking_settings_keep_the_fingerprint(tmp_path):
    first = run_fingerprint(MLP, tmp_path / "a")
    assert len(first) == 64
    assert run_fingerprint(COSMETIC, tmp_path / "b") == first
    assert run_fingerprint(MLP, tmp_path / "c", "tracking.run_name=other", "tracking.tags=[x]",
                           "tracking.store=elsewhere", "tracking.log_every=1") == first


def test_search_spaces_are_not_part_of_it(tmp_path):
    """A run's results depend on its values, not on the spaces they came from (whose keys
    hold line numbers for a repeat count written as HPO)."""
    spaced = MLP.replace("Dropout(rate=0.1)", "Dropout(rate=0.1) * HPO(choice(1, 2))")
    moved = spaced.replace("network Mlp {", "\n\nnetwork Mlp {").replace("units=32", "units=HPO(choice(32, 64))")
    assert run_fingerprint(moved, tmp_path / "b") == run_fingerprint(spaced, tmp_path / "a")


@pytest.mark.parametrize("change, overrides", [
    (("units=32", "units=33"), ()),
    (("Dropout(rate=0.1)", "Dropout(rate=0.2)"), ()),
    (("learning_rate=0.003", "learning_rate=0.001"), ()),
    (("epochs: 2", "epochs: 3"), ()),
    ((), ("optimizer.lr=0.01",)),
    ((), ("model.dense_1.units=64",)),
    ((), ("seed=7",)),
    ((), ("data=synthetic",)),
])
def test_a_real_change_changes_the_fingerprint(tmp_path, change, overrides):
    text = MLP.replace(*change) if change else MLP
    assert text != MLP or overrides
    assert run_fingerprint(text, tmp_path / "b", *overrides) != run_fingerprint(MLP, tmp_path / "a")


def test_npz_data_is_known_by_its_content_not_its_path(tmp_path):
    text = MLP.replace('input: (8, 8, 1)', 'input: (4,)').replace("Flatten()", "")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 4)).astype(np.float32), rng.integers(0, 10, 20)
    np.savez(tmp_path / "one.npz", x_train=x, y_train=y)
    shutil.copyfile(tmp_path / "one.npz", tmp_path / "same.npz")
    np.savez(tmp_path / "other.npz", x_train=x + 1, y_train=y)
    at = {name: run_fingerprint(text, tmp_path, "data=npz", f"data.path={tmp_path / name}")
          for name in ("one.npz", "same.npz", "other.npz")}
    assert at["one.npz"] == at["same.npz"] != at["other.npz"]


def neural_run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``neural run ARGS`` from ``cwd`` into the store ``cwd/store``, one epoch on one thread."""
    command = [sys.executable, "-m", "neural_dsl_tracking", "run", *args, "tracking.store=store",
               "execution.threads=1", "train.epochs=1"]
    result = subprocess.run(command, cwd=cwd, env={**os.environ, "NEURAL_NO_PROGRESS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow
def test_skip_if_done_reuses_the_completed_run_with_the_same_fingerprint(tmp_path):
    from neural_dsl_tracking.tracking import ExperimentManager

    source = tmp_path / "mlp.neural"
    source.write_text(MLP)
    first = neural_run(tmp_path, "--skip-if-done", "mlp.neural")  # nothing done yet: it trains
    assert "skipped" not in first.stdout and "epoch 1/1" in first.stdout
    manager = ExperimentManager(store=str(tmp_path / "store"))
    (done,) = manager.list_experiments()
    source.write_text(COSMETIC)
    again = neural_run(tmp_path, "mlp.neural", "--skip-if-done")
    assert f"skipped: run {done.run_id[:8]} completed with the same fingerprint" in again.stdout
    assert "epoch 1/1" not in again.stdout
    assert [r.run_id for r in manager.list_experiments()] == [done.run_id]
    manager.close()


def test_skip_if_done_with_an_optuna_sweep_is_one_message(tmp_path, monkeypatch, capsys):
    """A skipped trial would have no value to report: the combination is refused before anything runs."""
    from neural_dsl_tracking.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlp.neural").write_text(MLP)
    assert main(["run", "--skip-if-done", "--sweep", "mlp.neural"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --skip-if-done does not apply to --sweep") and "Traceback" not in err
    assert not (tmp_path / "build").exists()


@pytest.mark.postgres
def test_skip_if_done_never_prints_the_store_password(postgres_url, tmp_path, monkeypatch, capsys):
    from neural_dsl_tracking.compiler.summary import SKIP_IF_DONE_ENV
    from neural_dsl_tracking.plugins.tracking.hooks import completed_twin
    from neural_dsl_tracking.plugins.tracking.spec import TrackingSpec
    from neural_dsl_tracking.tracking import ExperimentTracker

    url = postgres_url.replace("postgres@", "postgres:s3cret@")  # the test server trusts any password
    with ExperimentTracker("x", base_dir=tmp_path, store=url, auto_visualize=False) as tracker:
        tracker.log_model_spec(SPEC, "f" * 64)
    monkeypatch.setenv(SKIP_IF_DONE_ENV, "1")
    assert completed_twin(TrackingSpec(store=url), "f" * 64, tmp_path) == tracker.run_id
    out = capsys.readouterr().out
    assert out.startswith(f"skipped: run {tracker.run_id[:8]}")
    assert "s3cret" not in out and "postgres:***@" in out


def test_plugin_sections_count_unless_the_plugin_says_they_cannot_change_results(tmp_path):
    """The fingerprint knows plugins only through Plugin.changes_results: tracking and sweep
    settings are left out; a section of any other block (or the core's) is part of it."""
    spec = {"input": [4], "output": [2], "layers": []}
    base = {"model": {"dense_1": {"units": 2}}, "tracking": {"log_every": 5}, "sweep": {"trials": 3}}
    first = fingerprint(spec, base, tmp_path)
    assert fingerprint(spec, {**base, "tracking": {"log_every": 1}, "sweep": {"trials": 30}}, tmp_path) == first
    assert fingerprint(spec, {**base, "augment": {"flip": True}}, tmp_path) != first
    assert fingerprint(spec, {**base, "model": {"dense_1": {"units": 3}}}, tmp_path) != first
