"""``neural experiments sweeps`` and ``neural experiments show SWEEP`` (issue 13, item 7) on a
real small sweep (Optuna study in the store's database, each trial a tracked run), in a
subprocess through the real CLI; and optuna-dashboard serving the same study over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .sweep_maker import FAILING, TRIALS, make_sweep
from .test_cli import neural


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """(store folder, the sweep made in it)."""
    base = tmp_path_factory.mktemp("sweep") / "store"
    return base, make_sweep(base)


def table_rows(text: str, header: str) -> list[list[str]]:
    """The rows under the table whose header line starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(header))
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_sweeps_lists_each_sweep(swept):
    base, made = swept
    result = neural("experiments", "sweeps", "--base-dir", base)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SWEEP", "EXPERIMENT", "NAME", "OBJECTIVE", "DIRECTION", "TRIALS",
                                "BEST", "CREATED"]
    (row,) = lines[1:]
    assert row.split()[:6] == [made.sweep_id[:8], "digits", "digits-search", "val_accuracy", "maximize", "8/8:"]
    counts = {state: int(n) for n, state in re.findall(r"(\d+) (complete|pruned|failed|running)", row)}
    assert sum(counts.values()) == TRIALS and counts["failed"] == 1 and counts["pruned"] >= 1
    best = max(float(v) for v in re.findall(r"\b0\.\d+\b", row))
    assert row.split()[-3] == f"{best:.6g}"
    data = json.loads(neural("experiments", "sweeps", "--base-dir", base, "--json").stdout)
    assert data[0]["sweep_id"] == made.sweep_id and data[0]["counts"]["failed"] == 1
    assert neural("experiments", "sweeps", "--base-dir", base, "--experiment", "other").stdout \
        .startswith("no sweeps match the filters in")
    assert neural("experiments", "sweeps", "--base-dir", base.parent / "none").stdout \
        .startswith("no experiment store at")


def test_show_sweep_ranks_trials_names_the_best_and_its_importances(swept):
    base, made = swept
    result = neural("experiments", "show", made.sweep_id[:6], "--base-dir", base)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"sweep      {made.sweep_id}" in out and "objective  val_accuracy (maximize)" in out
    assert f"optuna-dashboard {made.storage}" in out
    rows = table_rows(out, "TRIAL")
    assert len(rows) == TRIALS
    values = [float(r[3]) for r in rows if r[3] != "-"]
    assert values == sorted(values, reverse=True)  # maximize: best first
    assert rows[-1][:4] == [f"#{FAILING}", made.run_ids[FAILING][:8], "failed", "-"]
    best_complete = next(r for r in rows if r[2] == "complete")
    number = int(best_complete[0][1:])
    assert f"best trial: #{number}, val_accuracy = {best_complete[3]}, run {made.run_ids[number]}" in out
    importances = {name: float(value) for name, value in table_rows(out.split("parameter importances")[1],
                                                                  "PARAMETER")}
    assert set(importances) == {"lr", "units"} and abs(sum(importances.values()) - 1) < 1e-3
    data = json.loads(neural("experiments", "show", "digits-search", "--base-dir", base, "--json").stdout)
    assert data["best_trial"] == number and set(data["importances"]) == {"lr", "units"}
    assert [t["number"] for t in data["trials"]][-1] == FAILING


def test_show_still_shows_runs_and_says_when_nothing_matches(swept):
    base, made = swept
    run = neural("experiments", "show", made.run_ids[0][:10], "--base-dir", base)
    assert run.returncode == 0 and f"run        {made.run_ids[0]}" in run.stdout
    missing = neural("experiments", "show", "nothing-here", "--base-dir", base)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: no run or sweep 'nothing-here' in the experiment store {base}"


def test_pruned_runs_list_and_colour(swept):
    base, made = swept
    listed = neural("experiments", "ls", "--base-dir", base, "--status", "pruned")
    assert listed.returncode == 0 and "pruned" in listed.stdout
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    coloured = subprocess.run([sys.executable, "-c", _neural_code(), "experiments", "show",
                               made.sweep_id, "--base-dir", str(base)], capture_output=True, text=True,
                              timeout=120, env={**env, "FORCE_COLOR": "1"})
    assert "\x1b[35mpruned\x1b[0m" in coloured.stdout and "\x1b[32mcomplete\x1b[0m" in coloured.stdout


def _neural_code() -> str:
    from .test_cli import NEURAL

    return NEURAL


def test_a_sweep_whose_study_is_gone_still_shows(tmp_path):
    from neural_dsl_tracking.tracking.store import Store

    store = Store(tmp_path / "s")
    sweep_id = store.create_sweep(experiment="e", objective="loss", direction="minimize", sampler="random",
                                  pruner="none", space={}, study_storage=f"sqlite:///{tmp_path}/gone.db",
                                  study_name="missing", requested_trials=2)
    store.record_trial(sweep_id, 0, state="complete", value=0.5, params={"x": 1})
    store.close()
    result = neural("experiments", "show", sweep_id, "--base-dir", tmp_path / "s")
    assert result.returncode == 0, result.stderr
    assert "parameter importances (PED-ANOVA): cannot open the study 'missing'" in result.stdout
    assert "best trial: #0, loss = 0.5" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_optuna_dashboard_serves_the_same_study(swept):
    """``optuna-dashboard <storage URL>`` (the command ``show`` prints) serves the sweep's study
    on 127.0.0.1: its API lists the study with every trial."""
    base, made = swept
    port = _free_port()
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    server = subprocess.Popen([str(dashboard), made.storage, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        studies = _get_json(f"http://127.0.0.1:{port}/api/studies", server)
        (study,) = [s for s in studies["study_summaries"] if s["study_name"] == made.study_name]
        detail = _get_json(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}?after=0", server)
        assert len(detail["trials"]) == TRIALS
        assert sorted({t["state"] for t in detail["trials"]}) == ["Complete", "Fail", "Pruned"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _get_json(url: str, server: subprocess.Popen, timeout: float = 60.0) -> dict:
    """GET ``url`` as JSON, retrying while the server starts (at most ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except OSError:
            if server.poll() is not None:
                raise AssertionError(f"optuna-dashboard exited: {server.stdout.read().decode()}")
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.postgres
def test_a_sweep_in_postgresql_shows_with_importances(tmp_path, postgres_url):
    """The study in the same PostgreSQL database as the runs: listed, ranked, importances read."""
    made = make_sweep(tmp_path / "files", postgres_url)
    listed = neural("experiments", "sweeps", "--store", postgres_url)
    assert listed.returncode == 0 and made.sweep_id[:8] in listed.stdout
    shown = neural("experiments", "show", made.sweep_id[:8], "--store", postgres_url)
    assert shown.returncode == 0, shown.stderr
    assert len(table_rows(shown.stdout, "TRIAL")) == TRIALS
    assert {row[0] for row in table_rows(shown.stdout.split("parameter importances")[1], "PARAMETER")} == \
        {"lr", "units"}


@pytest.mark.slow
def test_a_sweep_run_by_neural_sweep_shows(tmp_path):
    """The engine's own sweep (``neural sweep`` on a tiny network): every trial listed with its
    run, values and state, the best trial the one ``neural sweep`` named, importances computed."""
    from ..sweep.conftest import run_sweep, write_network

    write_network(tmp_path, "store", trials=2, epochs=1, pruner="none")
    swept = run_sweep(tmp_path, "model.neural")
    assert swept.returncode == 0, swept.stdout + swept.stderr
    best_run = re.search(r"best trial \d+ \(run ([0-9a-f]{8})\)", swept.stdout).group(1)
    sweep_id = re.search(r"neural experiments show ([0-9a-f]{8})", swept.stdout.splitlines()[-1]).group(1)
    shown = neural("experiments", "show", sweep_id, "--store", tmp_path / "store")
    assert shown.returncode == 0, shown.stderr
    rows = table_rows(shown.stdout, "TRIAL")
    assert len(rows) == 2 and rows[0][1] == best_run and {row[2] for row in rows} == {"complete"}
    assert "-" not in rows[0][4:]  # the trial's values, one column per parameter
    importances = table_rows(shown.stdout.split("parameter importances")[1], "PARAMETER")
    assert {row[0] for row in importances} == {"model.dense_1.units", "optimizer.lr"}
    runs = neural("experiments", "ls", "--store", tmp_path / "store")
    assert all(row[1] in runs.stdout for row in rows)


def test_hostile_names_print_escaped(tmp_path):
    """A sweep, objective or parameter name with control characters cannot drive the terminal."""
    from neural_dsl_tracking.tracking.store import Store

    store = Store(tmp_path / "s")
    sweep_id = store.create_sweep(experiment="e\x1b[31m", name="evil\nsweep", objective="acc\rx",
                                  direction="maximize", sampler="tpe", pruner="none", space={},
                                  study_storage="s", study_name="n", requested_trials=1)
    store.record_trial(sweep_id, 0, state="complete", value=1.0, params={"p\x1b[2J": "v\n"})
    store.close()
    for args in (("sweeps",), ("show", sweep_id)):
        result = neural("experiments", *args, "--base-dir", tmp_path / "s")
        assert result.returncode == 0 and "\x1b" not in result.stdout and "\r" not in result.stdout
        assert "\\x1b" in result.stdout
    assert "evil\\nsweep" in result.stdout and "p\\x1b[2J" in result.stdout
