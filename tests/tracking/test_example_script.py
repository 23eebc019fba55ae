"""examples/experiment_tracking_example.py runs as a user runs it: offline, in a subprocess,
from an empty folder; it prints what the five examples did and writes only under --out."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from neural_dsl_tracking.tracking import ExperimentManager

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "experiment_tracking_example.py"
BANNERS = ["Example 1: Basic Experiment Tracking", "Example 2: Artifact Versioning",
           "Example 3: Backend Integration", "Example 4: Experiment Comparison",
           "Example 5: Automatic Visualizations", "All Examples Complete!"]

pytest.importorskip("mlflow")
pytest.importorskip("wandb")
pytest.importorskip("tensorboard")


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory):
    """One run of the script into ``out`` from the empty folder ``cwd``, with ``TMPDIR`` an
    empty folder ``tmp``; ``cpu``: CPU seconds of the script and the processes it waited for."""
    root = tmp_path_factory.mktemp("example")
    cwd, out, tmp = root / "cwd", root / "out" / "new", root / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_"))}
    env.update(TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(result.stdout[-3000:], result.stderr[-3000:], f"wall {wall:.1f} s, CPU {cpu:.1f} s", sep="\n")
    return SimpleNamespace(result=result, out=out, cwd=cwd, tmp=tmp, cpu=cpu)


def test_it_runs_every_example_without_a_traceback(ran) -> None:
    result = ran.result
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    positions = [result.stdout.index(banner) for banner in BANNERS]
    assert positions == sorted(positions)


def test_it_takes_under_a_minute_of_cpu(ran) -> None:
    """CPU time, not wall time: this machine's load is not the script's cost."""
    assert ran.cpu < 60


def test_it_writes_only_under_out(ran) -> None:
    result, out = ran.result, ran.out
    assert list(ran.cwd.iterdir()) == [] and list(ran.tmp.iterdir()) == []
    assert f"Writing under {out}" in result.stdout
    printed = re.findall(r"(/\S+\.(?:png|pt|db))", result.stdout)
    assert printed and all(Path(p).is_relative_to(out) and Path(p).is_file() for p in printed)
    assert {p.name for p in out.iterdir()} >= {"neural_experiments", "mlflow.db", "wandb",
                                               "tensorboard", "figures"}


def test_every_run_is_in_the_store_and_completed(ran) -> None:
    runs = ExperimentManager(base_dir=ran.out / "neural_experiments").list_experiments()
    assert sorted(r.experiment for r in runs) == sorted(
        ["basic_training", "versioned_artifacts", "backend_integration", "visualization_demo"]
        + ["lr_comparison"] * 3)
    assert {r.status for r in runs} == {"completed"}


def test_artifact_versions_are_listed_and_the_latest_verified(ran) -> None:
    stdout = ran.result.stdout
    assert all(f"  Version {n}: " in stdout for n in range(1, 6))
    assert "Latest: version 5" in stdout
    assert "Checksum verified: True" in stdout
    assert "Epoch in the latest checkpoint: 5" in stdout


def test_three_backends_are_read_back(ran) -> None:
    """Each system holds the run's last values, as the store does."""
    result = ran.result
    (run,) = ExperimentManager(base_dir=ran.out / "neural_experiments").list_experiments(
        experiment="backend_integration")
    stored = ", ".join(f"{k}={v['latest']:.4f}" for k, v in sorted(run.metrics.items()))
    assert re.search(rf"MLflow +backend_integration/\S+ \(FINISHED\): {re.escape(stored)}\n",
                     result.stdout)
    assert re.search(rf"W&B offline offline-run-\S+: 30 history rows; last {re.escape(stored)}\n",
                     result.stdout)
    assert f"TensorBoard backend_integration: 120 points; last {stored}\n" in result.stdout


def test_comparison_is_keyed_as_the_original_and_exported(ran) -> None:
    result, out = ran.result, ran.out
    assert "Generated 4 comparison plots" in result.stdout
    assert "  - comparison_val_loss: Figure" in result.stdout
    folder = Path(re.search(r"Comparison exported to: (\S+)", result.stdout).group(1))
    assert folder.parent == out / "neural_experiments" / "comparisons"
    assert {"metrics.csv", "summary.json", "report.html", "compare_val_loss.png"} <= {
        p.name for p in folder.iterdir()}
    assert "Best val_loss: run lr=0.1" in result.stdout


def test_visualisations_are_png_files(ran) -> None:
    result, out = ran.result, ran.out
    assert "Generated 7 visualizations:" in result.stdout
    assert "MetricVisualizer drew 7 figures from a list of dicts:" in result.stdout
    for path in out.joinpath("figures").glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list(out.joinpath("figures").glob("*.png"))) == 7


def test_the_guides_code_blocks_parse_and_its_quick_start_runs(tmp_path, monkeypatch) -> None:
    from neural_dsl_tracking.language import parse_text

    guide = (SCRIPT.parents[1] / "docs" / "guide.md").read_text(encoding="utf-8")
    for index, text in enumerate(re.findall(r"```neural\n(.*?)```", guide, flags=re.DOTALL)):
        assert parse_text(text, f"docs/guide.md[{index}]").networks
    python = re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL)
    assert python
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python[0], "docs/guide.md", "exec"), namespace)  # noqa: S102 - the quick start
    assert namespace["run"].status == "completed"
    assert [v.name for v in namespace["tracker"].list_artifact_versions("model.pt")] == ["model.pt"]
