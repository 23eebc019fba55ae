"""Eight processes opening one brand-new store at the same instant, round after round, on
SQLite and PostgreSQL: most create a run in it, some read it while it is being created,
and one of them is killed (SIGKILL) at a random moment of the opening. Nobody but the
killed one fails, readers see either no store or whole runs, and the store is whole."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from .conftest import assert_no_traceback, assert_store_takes_new_runs, check_store, replay_hint

PROCESSES = 8
ROUNDS = 5

# Driven over its pipes: says "ready", waits for "ROLE BASE STORE" (sent to all at once),
# opens the store as a writer (a run with one point) or a reader (list the runs), and
# answers "ok ..." or lets the error end it (with a traceback the test will show).
OPENER = """
    import sys
    from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker
    for line in iter(lambda: (print("ready", flush=True), sys.stdin.readline())[1], ""):
        role, base, store = (line.split() + [""])[:3]
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
            raise AssertionError(f"expected {expected!r}, got {got!r} {replay_hint()}\n"
                                 f"{self.process.stderr.read()[-3000:]}")
        return got.split(maxsplit=1)[1].strip() if " " in got.strip() else ""

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
        assert_no_traceback(self.process.stderr.read())


def test_eight_processes_open_a_new_store_at_once(store_kind, make_store, tmp_path, rng):
    script = tmp_path / "opener.py"
    script.write_text(textwrap.dedent(OPENER))
    openers = [Opener(script) for _ in range(PROCESSES)]
    try:
        for _ in range(ROUNDS):
            spec = make_store(store_kind)
            roles = ["write"] * 6 + ["read"] * 2
            rng.shuffle(roles)
            victim = rng.randrange(PROCESSES)
            for opener, role in zip(openers, roles):
                opener.process.stdin.write(f"{role} {spec.base_dir} {spec.store or ''}\n")
            for opener in openers:
                opener.process.stdin.flush()
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
            openers[victim] = Opener(script)
            runs = check_store(spec)
            stored = {r.run_id: r.status for r in runs}
            assert all(stored.get(run_id) == "completed" for run_id in run_ids), (stored, run_ids)
            assert len(run_ids) >= 5
            assert_store_takes_new_runs(spec)
    finally:
        for opener in openers:
            opener.close()
