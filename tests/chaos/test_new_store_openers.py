"""Eight processes opening one brand-new store at the same instant, round after round, on
SQLite and PostgreSQL, each creating a run in it; in every fifth round two of them read it
while it is being created instead, and one is killed (SIGKILL) at a random moment of the
opening. Nobody but the killed one fails, readers see either no store or runs, and the
stores are whole."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from .conftest import assert_no_traceback, assert_store_takes_new_runs, check_store

PROCESSES = 8
ROUNDS = {"sqlite": 60, "postgresql": 15}
KILL_EVERY = 5  # every fifth round, two openers read and one is killed

# Driven over its pipes: says "ready", waits for "ROLE PAUSE BASE STORE" (sent to all at
# once), sleeps PAUSE seconds, opens the store as a writer (a run with one point) or a
# reader (list the runs), and answers "ok ..." or lets the error end it (with a traceback).
OPENER = """
    import sys, time
    from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker
    for line in iter(lambda: (print("ready", flush=True), sys.stdin.readline())[1], ""):
        role, pause, base, store = (line.split() + [""])[:4]
        time.sleep(float(pause))
        if role == "write":
            with ExperimentTracker("open", base_dir=base, store=store or None,
                                   auto_visualize=False) as tracker:
                tracker.log_metrics({"loss": 1.0})
            print("ok", tracker.run_id, flush=True)
        else:
            manager = ExperimentManager(base_dir=base, store=store or None)
            runs = manager.list_experiments()
            manager.close()
            print("ok", len(runs), ",".join(sorted({r.status for r in runs})), flush=True)
"""


class Opener:
    def __init__(self, script: Path) -> None:
        self.process = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.line("ready")

    def line(self, expected: str) -> str:
        got = self.process.stdout.readline()
        if not got.startswith(expected):
            self.process.kill()
            raise AssertionError(f"expected {expected!r}, got {got!r}\n"
                                 f"{self.process.stderr.read()[-3000:]}")
        return got.split(maxsplit=1)[1].strip() if " " in got.strip() else ""

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
        assert_no_traceback(self.process.stderr.read())


def open_together(openers: list[Opener], spec, rng, victim: int | None) -> set[str]:
    """One round: every opener opens ``spec`` at once to write a run; with a ``victim``, two
    of them read instead and the victim is killed at a random moment. The runs written."""
    roles = ["write"] * PROCESSES if victim is None else ["write"] * (PROCESSES - 2) + ["read"] * 2
    rng.shuffle(roles)
    for opener, role in zip(openers, roles):  # a few ms apart: some create while others read
        opener.process.stdin.write(f"{role} {rng.uniform(0, 0.02):.4f} {spec.base_dir} {spec.store or ''}\n")
    for opener in openers:
        opener.process.stdin.flush()
    if victim is not None:
        time.sleep(rng.uniform(0.0, 0.15))
        openers[victim].process.send_signal(signal.SIGKILL)
    run_ids = set()
    for index, (opener, role) in enumerate(zip(openers, roles)):
        if index == victim:
            opener.process.wait(timeout=30)
            continue
        answer = opener.line("ok")
        opener.line("ready")
        if role == "write":
            run_ids.add(answer)
        else:  # a reader sees no store, or runs being written or done
            statuses = answer.split()[1].split(",") if " " in answer else []
            assert set(statuses) <= {"completed", "running"}, answer
    return run_ids


def test_eight_processes_open_a_new_store_at_once(store_kind, make_store, tmp_path, rng):
    script = tmp_path / "opener.py"
    script.write_text(textwrap.dedent(OPENER))
    openers = [Opener(script) for _ in range(PROCESSES)]
    try:
        for round_ in range(ROUNDS[store_kind]):
            spec = make_store(store_kind)
            victim = rng.randrange(PROCESSES) if round_ % KILL_EVERY == 0 else None
            run_ids = open_together(openers, spec, rng, victim)
            if victim is not None:
                openers[victim] = Opener(script)
            stored = {r.run_id: r.status for r in check_store(spec)}
            assert all(stored.get(run_id) == "completed" for run_id in run_ids), (stored, run_ids)
            assert len(run_ids) >= PROCESSES - 3
        assert_store_takes_new_runs(spec)
    finally:
        for opener in openers:
            opener.close()
