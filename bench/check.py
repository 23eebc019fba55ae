"""``neural check`` cold, one new process per file, over the original Neural DSL's 19-file corpus.

Issue 11 wants one file checked in under 0.5 s cold. Two trees are timed side by side,
alternating file by file, with the same Python (this venv's): the baseline commit
(``--baseline``, default 81bde21, before neural check ran the compiler's checks), checked
out as a ``git worktree`` in a temporary folder, and this working tree. Each process is
``python -m neural_dsl_tracking check FILE`` with ``PYTHONPATH`` set to its tree, so it
imports that tree's package; the wall time includes starting Python. A file's time is
the median of ``--rounds`` runs. Printed per tree: median and max per file and the total,
in wall time and in the process's CPU time (user + system: what the wall time would be on
an idle core; on a loaded machine the wall time is mostly waiting). The exit code is 1 when
the working tree's slowest file takes ``--target`` seconds or more of wall time.

    .venv/bin/python bench/check.py [--rounds 3] [--baseline 81bde21] [--target 0.5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("NEURAL_CORPUS", REPO.parent / "shared" / "corpus" / "neural-dsl-examples"))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cold_check(tree: Path, file: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``neural check FILE`` in a new process importing ``tree``'s package."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started, cpu = time.perf_counter(), _children_cpu()
    subprocess.run([sys.executable, "-m", "neural_dsl_tracking", "check", str(file)], cwd=tree, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)
    return time.perf_counter() - started, _children_cpu() - cpu


def _summary(name: str, kind: str, times: dict[str, float]) -> str:
    values = list(times.values())
    slowest = max(times, key=times.__getitem__)
    return (f"{name:<17} {kind:<4} median {statistics.median(values):.3f} s   max {max(values):.3f} s ({slowest})   "
            f"total {sum(values):.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per file and tree (the median counts)")
    parser.add_argument("--baseline", default="81bde21", help="the commit to compare with")
    parser.add_argument("--target", type=float, default=0.5, help="seconds a file must stay under")
    args = parser.parse_args()
    files = sorted(p for p in CORPUS.iterdir() if p.suffix in (".neural", ".nr"))
    assert len(files) == 19, f"expected the 19-file corpus in {CORPUS}, found {len(files)} files"
    with tempfile.TemporaryDirectory(prefix="bench-check-") as temp:
        baseline = Path(temp) / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(baseline), args.baseline],
                       check=True)
        try:
            trees = {f"baseline {args.baseline}": baseline, "working tree": REPO}
            for tree in trees.values():  # write the bytecode and warm the file cache: a cold process, not a cold disk
                _cold_check(tree, files[0])
            times: dict[tuple[str, str], dict[str, float]] = {(n, k): {} for n in trees for k in ("wall", "cpu")}
            for file in files:
                runs: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
                for _ in range(args.rounds):
                    for name, tree in trees.items():
                        runs[name].append(_cold_check(tree, file))
                for name in trees:
                    times[name, "wall"][file.name] = statistics.median(wall for wall, _ in runs[name])
                    times[name, "cpu"][file.name] = statistics.median(cpu for _, cpu in runs[name])
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(baseline)], check=False)
    print(f"neural check, cold (a new process per file), {len(files)} files, median of {args.rounds} runs each "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
    for (name, kind), per_file in times.items():
        print("  " + _summary(name, kind, per_file))
    worst = max(times["working tree", "wall"].values())
    verdict = "met" if worst < args.target else "MISSED"
    print(f"target: every file under {args.target} s cold: slowest {worst:.3f} s, {verdict}")
    return 0 if worst < args.target else 1


if __name__ == "__main__":
    sys.exit(main())
