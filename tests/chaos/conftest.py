"""Shared pieces of the chaos suite: processes to attack, the attack loop, store checks.

- ``spawn_writer``: starts ``writer.py`` (a tracker logging metrics, hyperparameters and
  artifacts in a loop, saying on stdout what it has logged and what is flushed);
  ``Writer.parse`` reads what it said.
- ``programs``: a compiled ``examples/digits.neural`` run in real processes by
  ``program_server.py`` (forked after the imports, so a trial costs its run, not 4 s of imports).
- ``attack``: runs trials a few at a time, each signalled after a random delay, and records
  when each line of their output arrived.
- ``check_store``: the store's integrity (SQLite's own check, no orphan rows, summaries
  matching their chunks, artifact objects matching their hashes).
- ``make_store``: a new empty store, SQLite or PostgreSQL.

Random choices come from ``NEURAL_CHAOS_SEED`` (default: a new seed per session; a failing
test prints it) so a failing trial can be replayed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from neural_dsl_tracking.tracking import ExperimentManager
from neural_dsl_tracking.tracking.db import Database

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NEURAL = str(Path(sys.executable).with_name("neural"))
SEED = int(os.environ.get("NEURAL_CHAOS_SEED") or random.SystemRandom().randrange(1 << 30))
CRASH_AFTER = 0.5  # heartbeat age (s) after which the suite's readers call a run crashed
LOSS_WINDOW = 2.0  # kill -9 loses at most what was logged in the last second; checked with a margin
TABLES_WITH_RUN_ID = ("run_tags", "params", "metric_chunks", "metric_summary", "artifact_versions",
                      "artifact_aliases", "mirror_failures")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder is marked ``chaos`` (``-m chaos`` runs the suite alone)."""
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.chaos)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """A failing chaos test says how to replay its random choices."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and HERE in Path(str(item.fspath)).parents:
        report.sections.append(("chaos seed", f"replay with NEURAL_CHAOS_SEED={SEED}"))


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """This test's random source: the session seed and the test's name."""
    return random.Random(f"{SEED}:{request.node.nodeid}")


def assert_no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text[-3000:]


# ---- stores -----------------------------------------------------------------------------
@dataclass
class StoreSpec:
    """Where a store is: ``base_dir`` holds the files (and the SQLite database when ``store`` is None)."""

    base_dir: Path
    store: str | None = None

    def manager(self, crash_after: float | None = CRASH_AFTER) -> ExperimentManager:
        return ExperimentManager(base_dir=self.base_dir, store=self.store, crash_after=crash_after)

    def cli_args(self) -> list[str]:
        """``--base-dir``/``--store`` for ``neural experiments``."""
        return ["--base-dir", str(self.base_dir), *(["--store", self.store] if self.store else [])]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_store(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], StoreSpec]:
    """``make_store(kind)``: a new, empty store (``sqlite``: a folder not yet created)."""
    made = itertools.count()

    def make(kind: str) -> StoreSpec:
        base = tmp_path / f"store{next(made)}"
        if kind == "sqlite":
            return StoreSpec(base)
        return StoreSpec(base, request.getfixturevalue("new_postgres_url")())

    return make


def _scalar(db: Database, sql: str) -> Any:
    return db.read(lambda cur: cur.one(sql))[0]


def check_database(spec: StoreSpec) -> None:
    """SQLite's integrity check, and the same rules on both databases: no row of a run or
    experiment that is not there, aliases on versions that exist, every metric summary
    counting exactly the points of its chunks, every chunk's arrays as long as it says."""
    location = str(spec.base_dir) if spec.store is None else spec.store
    db = Database(location, create=False)
    try:
        if db.dialect == "sqlite":
            assert db.read(lambda cur: cur.all("PRAGMA integrity_check")) == [("ok",)]
        for table in TABLES_WITH_RUN_ID:
            orphans = _scalar(db, f"SELECT COUNT(*) FROM {table} "
                                  "WHERE run_id NOT IN (SELECT run_id FROM runs)")
            assert orphans == 0, f"{orphans} rows of {table} belong to no run"
        assert _scalar(db, "SELECT COUNT(*) FROM runs WHERE experiment NOT IN "
                           "(SELECT name FROM experiments)") == 0
        assert _scalar(db, "SELECT COUNT(*) FROM artifact_aliases a WHERE NOT EXISTS (SELECT 1 FROM "
                           "artifact_versions v WHERE v.run_id = a.run_id AND v.name = a.name "
                           "AND v.version = a.version)") == 0
        size = "length" if db.dialect == "sqlite" else "octet_length"
        assert _scalar(db, f"SELECT COUNT(*) FROM metric_chunks WHERE {size}(steps) <> 8 * n_points "
                           f"OR {size}(vals) <> 8 * n_points OR {size}(times) <> 8 * n_points") == 0
        mismatched = _scalar(db, """
            SELECT COUNT(*) FROM metric_summary s FULL OUTER JOIN
              (SELECT run_id, key, SUM(n_points) AS n FROM metric_chunks GROUP BY run_id, key) c
              ON s.run_id = c.run_id AND s.key = c.key
            WHERE s.n_points IS NULL OR c.n IS NULL OR s.n_points <> c.n""")
        assert mismatched == 0, f"{mismatched} metric summaries disagree with their chunks"
    finally:
        db.close()


def check_store(spec: StoreSpec) -> list:
    """Assert the store is whole, read through the database and the manager; returns its runs."""
    check_database(spec)
    manager = spec.manager()
    try:
        runs = manager.list_experiments()
        for run in runs:
            for key, summary in run.metrics.items():
                history = manager.get_metric_history(run.run_id, key)
                assert summary["count"] == len(history), (run.run_id, key)
                if len(history):
                    finite = history.values[~np.isnan(history.values)]
                    if len(finite):
                        assert summary["min"] == finite.min() and summary["max"] == finite.max()
            for version in manager.list_artifact_versions(run.run_id):
                manager.get_artifact_version(run.run_id, version.name, version.version)  # hashes it
    finally:
        manager.close()
    return runs


def assert_store_takes_new_runs(spec: StoreSpec) -> None:
    """A store that went through the attack still records a new run."""
    from neural_dsl_tracking.tracking import ExperimentTracker

    with ExperimentTracker("after", base_dir=spec.base_dir, store=spec.store, auto_visualize=False) as tracker:
        tracker.log_metrics({"loss": 1.0})
    assert spec.manager().get_experiment(tracker.run_id).status == "completed"


# ---- the attack loop --------------------------------------------------------------------
@dataclass
class Victim:
    """One attacked process: what it printed (with arrival times) and what was done to it."""

    index: int
    process: Any  # anything with .pid and .poll() -> returncode | None
    out: Path
    err: Path
    signal: signal.Signals | None = None  # None: left alone
    ready: str = ""  # the signal goes ``delay`` seconds after a line starting with this
    delay: float = 0.0
    started: float = field(default_factory=time.monotonic)
    lines: list[tuple[float, str]] = field(default_factory=list)
    ready_at: float | None = None
    signalled_at: float | None = None
    returncode: int | None = None
    _read: int = 0

    def read(self) -> None:
        """Take the complete lines printed since the last call, stamped with the time now."""
        if os.stat(self.out).st_size == self._read:
            return
        with open(self.out, "rb") as handle:
            handle.seek(self._read)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._read += len(complete)
        now = time.monotonic()
        self.lines += [(now, line) for line in complete.decode(errors="replace").splitlines()]

    def wait_for(self, prefix: str, timeout: float = 30.0) -> None:
        """Poll the output until a line starts with ``prefix``."""
        deadline = time.monotonic() + timeout
        while not any(line.startswith(prefix) for _, line in self.lines):
            assert self.process.poll() is None, f"ended before {prefix!r}: {self.stderr()[-2000:]}"
            assert time.monotonic() < deadline, f"no {prefix!r} in {timeout} s: {self.describe()}"
            time.sleep(0.01)
            self.read()

    def send(self, sig: signal.Signals) -> None:
        self.signal, self.signalled_at = sig, time.monotonic()
        os.kill(self.process.pid, sig)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to end; its exit code."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            assert time.monotonic() < deadline, f"still running after {timeout} s: {self.describe()}"
            time.sleep(0.01)
        self.read()
        self.returncode = self.process.poll()
        return self.returncode

    def said(self, word: str) -> list[tuple[float, list[str]]]:
        """(arrival, words) of every line that starts with ``word``."""
        return [(at, line.split()[1:]) for at, line in self.lines if line.split()[:1] == [word]]

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def describe(self) -> str:
        when = "never" if self.signalled_at is None else f"{self.signalled_at - self.started:.2f} s"
        last = self.lines[-1][1] if self.lines else "(nothing)"
        name = self.signal.name if self.signal else "no signal"
        return (f"trial {self.index}: {name} at {when} after start ({self.delay:.3f} s after "
                f"{self.ready!r}), "
                f"exit {self.returncode}, last line {last!r}")


def attack(launch: Callable[[int], tuple[Any, Path, Path]], trials: int, *, parallel: int,
           rng: random.Random, signals: list[signal.Signals | None],
           timing: Callable[[random.Random], tuple[str, float]], timeout: float = 30.0) -> list[Victim]:
    """Start ``trials`` processes (``launch(i)`` -> (process, stdout file, stderr file)),
    ``parallel`` at a time, and send each a signal drawn from ``signals`` (None: none) at a
    moment drawn by ``timing(rng)``: (``ready``, ``delay``), ``delay`` seconds after the
    process prints a line starting with ``ready``. Returns them all once they have ended."""
    waiting, running, ended = list(range(trials)), [], []
    while waiting or running:
        while waiting and len(running) < parallel:
            index = waiting.pop(0)
            process, out, err = launch(index)
            ready, delay = timing(rng)
            running.append(Victim(index, process, out, err, rng.choice(signals), ready, delay))
        time.sleep(0.01)
        for victim in list(running):
            _advance(victim, timeout)
            if victim.returncode is not None:
                running.remove(victim)
                ended.append(victim)
    return sorted(ended, key=lambda v: v.index)


def _advance(victim: Victim, timeout: float) -> None:
    returncode = victim.process.poll()
    victim.read()
    now = time.monotonic()
    if victim.ready_at is None and any(line.startswith(victim.ready) for _, line in victim.lines):
        victim.ready_at = now
    if returncode is not None:
        victim.returncode = returncode
        return
    if victim.signal and victim.signalled_at is None and victim.ready_at is not None \
            and now >= victim.ready_at + victim.delay:
        victim.send(victim.signal)
    if now - victim.started > timeout:
        os.kill(victim.process.pid, signal.SIGKILL)
        pytest.fail(f"still running after {timeout} s: {victim.describe()}\n{victim.stderr()[-2000:]}")


def wait_until_stale(victims: list[Victim]) -> None:
    """Sleep until every signalled run's heartbeat is older than CRASH_AFTER."""
    last = max((v.signalled_at for v in victims if v.signalled_at is not None), default=0.0)
    time.sleep(max(0.0, last + CRASH_AFTER + 0.2 - time.monotonic()))


# ---- writers ----------------------------------------------------------------------------
@dataclass
class Writer:
    """What a writer said it had done (see writer.py)."""

    run_id: str | None
    logged: list[tuple[float, int]]
    flushed: int
    params: list[str]
    versions: dict[int, str]  # ckpt version -> sha256
    single: list[str]  # sha256 of each "single" put, in order
    single_stored: list[str]  # ... of each one stored
    refused: list[str]  # messages of the calls that failed

    @classmethod
    def parse(cls, victim: Victim) -> "Writer":
        run = victim.said("run")
        artifacts = [words for _, words in victim.said("artifact")]
        return cls(
            run_id=run[0][1][0] if run else None,
            logged=[(at, int(words[0])) for at, words in victim.said("logged")],
            flushed=max((int(words[0]) for _, words in victim.said("flushed")), default=-1),
            params=[words[0] for _, words in victim.said("param")],
            versions={int(w[1]): w[2] for w in artifacts if w[0] == "ckpt"},
            single=[words[1] for _, words in victim.said("put") if words[0] == "single"],
            single_stored=[w[2] for w in artifacts if w[0] == "single"],
            refused=[line for _, line in victim.lines if line.startswith("refused ")],
        )

    def last_logged(self, before: float = math.inf) -> int:
        """The last step reported logged before ``before`` (monotonic time), -1 if none."""
        return max((step for at, step in self.logged if at < before), default=-1)


@pytest.fixture
def spawn_writer(tmp_path: Path) -> Callable[..., tuple[subprocess.Popen, Path, Path]]:
    """``spawn_writer(spec, seed, steps=None)``: start writer.py on a store; its output goes to files."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    started: list[subprocess.Popen] = []

    def spawn(spec: StoreSpec, seed: int, steps: int | None = None) -> tuple[subprocess.Popen, Path, Path]:
        out, err = scratch / f"{seed}.out", scratch / f"{seed}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, str(HERE / "writer.py"), str(spec.base_dir), spec.store or "", str(seed),
                 str(scratch), *([str(steps)] if steps is not None else [])],
                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
        started.append(process)
        return process, out, err

    yield spawn
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def assert_writer_kept(victim: Victim, writer: Writer, manager: ExperimentManager,
                       logged_at_least: int) -> Any:
    """The writer's run holds every step up to ``logged_at_least`` (and nothing else than a
    gap-free prefix of what it logged), every parameter and artifact version it reported."""
    run = manager.get_experiment(writer.run_id)
    history = manager.get_metric_history(writer.run_id, "loss") if "loss" in run.metrics else None
    count = 0 if history is None else len(history)
    context = f"{victim.describe()}\nstored {count} steps, expected at least {logged_at_least + 1}"
    assert count >= logged_at_least + 1, context
    if history is not None:
        assert np.array_equal(history.steps, np.arange(count)), context
        assert np.array_equal(history.values, np.arange(count) / 2), context
        sparse = manager.get_metric_history(writer.run_id, "sparse")
        assert np.array_equal(sparse.steps, np.arange(0, count, 7)), context
    for key in writer.params:
        assert run.hyperparameters.get(key) == int(key[1:]), f"{context}\nparameter {key} lost"
    stored = {v.version: v.sha256 for v in manager.list_artifact_versions(writer.run_id, "ckpt")}
    assert sorted(stored) == list(range(1, len(stored) + 1)), context
    for number, sha in writer.versions.items():
        assert stored.get(number) == sha, f"{context}\nckpt v{number} lost"
    single = manager.list_artifact_versions(writer.run_id, "single")
    if writer.single_stored:
        assert len(single) == 1, context
        last = writer.single.index(writer.single_stored[-1], len(writer.single_stored) - 1)
        assert single[0].sha256 in writer.single[last:], f"{context}\nthe single artifact went back"
    return run


# ---- compiled programs ------------------------------------------------------------------
class ServedProcess:
    """A child of program_server.py: its pid, and its exit code once the server reports it."""

    def __init__(self, server: "ProgramServer", pid: int) -> None:
        self.server = server
        self.pid = pid

    def poll(self) -> int | None:
        return self.server.exits.get(self.pid)


class ProgramServer:
    """program_server.py serving one compiled program."""

    def __init__(self, train_py: Path, tmp: Path) -> None:
        self.train_py = train_py
        self.exits: dict[int, int] = {}
        self._pids: list[int] = []
        self._started = threading.Condition()
        self.process = subprocess.Popen([sys.executable, str(HERE / "program_server.py"), str(train_py)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, "NEURAL_NO_PROGRESS": "1", "TMPDIR": str(tmp)})
        ready = self.process.stdout.readline()
        assert json.loads(ready or "{}").get("ready"), "program_server.py did not start"
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            message = json.loads(line)
            with self._started:
                if "pid" in message:
                    self._pids.append(message["pid"])
                    self._started.notify_all()
                else:
                    self.exits[message["exit"]] = message["code"]

    def run(self, cwd: Path, args: list[str], out: Path, err: Path) -> ServedProcess:
        """Start ``python train.py ARGS`` in ``cwd``."""
        out.touch()
        err.touch()
        with self._started:
            before = len(self._pids)
            self.process.stdin.write(json.dumps({"cwd": str(cwd), "args": args, "out": str(out),
                                                 "err": str(err)}) + "\n")
            self.process.stdin.flush()
            assert self._started.wait_for(lambda: len(self._pids) > before, timeout=30)
            return ServedProcess(self, self._pids[before])

    def close(self) -> None:
        """Kill the children still running, then stop the server."""
        for pid in self._pids:
            if pid not in self.exits:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def digits_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/digits.neural compiled by ``neural compile``: its train.py."""
    out = tmp_path_factory.mktemp("digits-program")
    done = subprocess.run([NEURAL, "compile", str(REPO / "examples" / "digits.neural"), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out / "train.py"


@pytest.fixture(scope="module")
def programs(digits_program: Path, tmp_path_factory: pytest.TempPathFactory):
    """A ProgramServer for the digits program (module-scoped: it holds torch in memory);
    the work folders that killed programs leave behind stay in pytest's temporary folder."""
    server = ProgramServer(digits_program, tmp_path_factory.mktemp("program-tmp"))
    yield server
    server.close()


def batches_per_epoch(victim: Victim, batch_size: int) -> int | None:
    """From the program's first line: '... N training / M validation samples'."""
    for _, line in victim.lines:
        found = re.search(r"(\d+) training / \d+ validation samples", line)
        if found:
            return -(-int(found.group(1)) // batch_size)
    return None


# ---- the command line ---------------------------------------------------------------------
def neural(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess:
    """Run the ``neural`` command; its output must hold no traceback."""
    done = subprocess.run([NEURAL, *map(str, args)], capture_output=True, text=True, errors="replace",
                          timeout=timeout, **kwargs)
    assert_no_traceback(done.stdout, done.stderr)
    return done


# ---- hostile names ------------------------------------------------------------------------
HOSTILE = {
    "csi": "\x1b[31mred\x1b[0m",
    "osc title": "\x1b]0;pwned\x07osc",
    "osc title st": "\x1b]2;pwned\x1b\\osc",
    "c1 csi": "\x9b31mc1",
    "cr": "ok\rFORGED",
    "nul": "nul\x00byte",
    "newline": "line\nFORGED  row  completed",
    "tab": "tab\tcell",
    "bidi": "abc\u202edcba",
    "formula": "=cmd|' /C calc'!A0",
    "plus": "+1+1",
    "minus": "-2+3",
    "at": "@SUM(A1:A2)",
    "html": "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>",
    "sql": "x'; DROP TABLE runs; --\"",
    "traversal": "../../../evil",
    "long": "L" * 10_000,
}
SHORTER = 200  # a name the store refuses for its length is logged again this long


@dataclass
class HostileStore:
    """A store whose every name is hostile: run id -> the text its names were logged with."""

    path: Path
    runs: dict[str, str]
    refused: list[str]  # messages of the refusals (names over the store's limits)


def _first_accepted(call: Callable[[str], Any], text: str, refused: list[str]) -> str:
    """``call(text)``; if the store refuses it (too long), ``call`` with the text shortened."""
    from neural_dsl_tracking.errors import NeuralError

    try:
        call(text)
        return text
    except NeuralError as error:
        if len(text) <= SHORTER:
            raise
        refused.append(str(error))
    call(text[:SHORTER])
    return text[:SHORTER]


def build_hostile_store(path: Path, scratch: Path) -> HostileStore:
    """One run per hostile text: in its experiment, run name, tags, parameter name and
    value, metric name (values -0.5 * step, numbers starting with '-') and artifact name."""
    from neural_dsl_tracking.tracking import ExperimentTracker

    runs: dict[str, str] = {}
    refused: list[str] = []
    artifact = scratch / "weights.bin"
    artifact.write_bytes(b"weights")
    for text in HOSTILE.values():
        opened: list[ExperimentTracker] = []
        used = _first_accepted(lambda t: opened.append(ExperimentTracker(
            t, base_dir=path, run_name=t, tags=[t, "hostile"], auto_visualize=False)), text, refused)
        tracker = opened[-1]
        _first_accepted(lambda t: tracker.log_hyperparameters({t: t, "lr": 0.1}), text, refused)
        _first_accepted(lambda t: [tracker.log_metrics({t: -0.5 * step, "loss": 1.0 / (step + 1)}, step=step)
                                   for step in range(3)], text, refused)
        _first_accepted(lambda t: tracker.log_artifact(artifact, name=t), text, refused)
        tracker.finish("completed")
        runs[tracker.run_id] = used
    return HostileStore(path, runs, refused)


@pytest.fixture(scope="session")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> HostileStore:
    root = tmp_path_factory.mktemp("hostile")
    return build_hostile_store(root / "store", root)


def assert_terminal_safe(text: str) -> None:
    """Nothing a terminal would act on: no control character but newline (no ESC, CR, NUL,
    BEL, C1 or bidirectional controls), and no line forged by a name."""
    unsafe = sorted({char for char in text if not char.isprintable() and char != "\n"})
    assert not unsafe, f"unescaped {unsafe} in:\n{text[:3000]!r}"
    assert not any(line.startswith("FORGED") for line in text.splitlines()), text[:3000]
