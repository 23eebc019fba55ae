"""Sweeps (issue 13 item 9): what a tracked trial costs, whether the search pays, and
whether parallel trials scale.

(a) Bookkeeping per trial. The same in-memory objective (a function of the trial's values
    that spins the CPU for ``--objective-ms``), ``--trials`` trials, the same sampler (TPE),
    pruner (median), seed and search space, in this process, on the same SQLite file (the
    store's, with its engine settings): a bare Optuna ask/report/tell loop (run twice, after
    ours, the mean reported; its one epoch is the last, never pruned, as in our engine), and
    our engine's trials (``runner.drive``, trials in this process, after ``runner.prepare``,
    timed apart as it runs once per sweep), whose "program" makes the tracking calls a compiled
    program makes (open the run, log its hyperparameters, source and config, log the epoch's
    metrics and report the objective, finish the run; no model to save). Printed: each
    loop's wall and CPU time and the difference per trial, each judged against the target
    (<= 20 ms): the wall figure as the issue states it, the CPU figure as the one a loaded
    machine does not inflate.
(b) The search pays. ``neural run examples/cnn_hpo.neural`` (its compiled defaults: each
    HPO(...)'s first value) against ``neural sweep`` of the same file, ``--hpo-trials`` TPE
    trials (seed 0) without pruning: the sweep's best val_accuracy must be at least the
    defaults' (the last epoch's, as the sweep's objective is). The same sweep with the
    median pruner (the example's block) is printed beside it.
(c) Parallel trials. The same fixed sweep (random sampler, seed 0, no pruning,
    ``--parallel-trials`` trials of ``--parallel-epochs`` epochs) with ``parallel: 1`` and
    ``parallel: 2``, each a ``neural sweep`` process: the wall time of 1 worker over 2 (target
    >= 1.6x), and each run's serial part and trial phase. The default sweep (16 trials x 20
    epochs, about 24 s of trials on one worker) is sized so the trials are what is timed: both
    runs pay the same ~2 s start (Python, PyTorch, torch._dynamo), which with 5 epochs (about 6 s
    of trials) is a quarter of the 1-worker run and caps the ratio near 1.55x whatever the
    workers do (bench/README.md, "Sweeps").

    .venv/bin/python bench/sweep.py [--parts abc] [--trials 200] [--objective-ms 10]
                                    [--hpo-trials 20] [--epochs 3]
                                    [--parallel-trials 16] [--parallel-epochs 20]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cnn_hpo.neural"

NETWORK = """network BenchSweep {
  input: (8, 8, 1)
  layers:
    Flatten()
    Dense(HPO(choice(8, 16, 32, 64)), activation="relu")
    Dropout(HPO(range(0.0, 0.5, step=0.1)))
    Output(10, "softmax")
  loss: "sparse_categorical_crossentropy"
  optimizer: Adam(learning_rate=HPO(log_range(0.0001, 0.1)))
  train { epochs: 1 batch_size: 32 }
  tracking < monitor: val_loss; mode: min; store: "STORE" >
  sweep < trials: TRIALS; sampler: tpe; pruner: median; seed: 0 >
}
"""

OBJECTIVE = '''"""The bench's in-memory objective: a bowl over the searched values, after spinning the CPU."""
import math
import time

SPIN = float({spin})


def objective(values: dict) -> float:
    deadline = time.perf_counter() + SPIN
    while time.perf_counter() < deadline:
        pass
    units, rate, lr = values["model.dense_1.units"], values["model.dropout_1.rate"], values["optimizer.lr"]
    return (math.log10(lr) + 2.5) ** 2 + (rate - 0.2) ** 2 + abs(math.log2(units) - 5) / 10
'''

PROGRAM = '''"""The compiled BenchSweep program with its training replaced by the bench objective,
making the tracking calls the compiled program makes."""
import importlib.util
from pathlib import Path

from neural_dsl_tracking.compiler import runtime
from neural_dsl_tracking.plugins.sweep.hooks import report_epoch
from neural_dsl_tracking.plugins.tracking.hooks import finish_run, open_tracker, write_file
from bench_objective import objective

HERE = Path(__file__).resolve().parent
SOURCE_FILE = HERE / "source.neural"
_spec = importlib.util.spec_from_file_location("bench_sweep_compiled", HERE / "train.py")
_compiled = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_compiled)
settings = _compiled.settings


def _at(composed, path):
    for key in path.split("."):
        composed = composed[key]
    return composed


def train(config, composed):
    values = {path: _at(composed, path) for path in composed["hpo"]["space"]}
    with runtime.work_folder() as workdir:
        tracker = open_tracker(config.tracking, composed, launch_dir=Path.cwd(), source_file=SOURCE_FILE)
        tracker.log_hyperparameters(runtime.flatten(composed))
        tracker.log_artifact(SOURCE_FILE, name="source", version=config.tracking.version_artifacts)
        tracker.log_artifact(write_file(workdir, "config.json", composed), name="config",
                             version=config.tracking.version_artifacts)
        status = "failed"
        try:
            metrics = {"val_loss": objective(values)}
            tracker.log_metrics(metrics, step=1)
            report_epoch(1, metrics)
            status = "completed"
        finally:
            finish_run(tracker, status)
    return metrics
'''


# ---------------------------------------------------------------- (a) bookkeeping


def _bench_program(root: Path, trials: int, spin_ms: float) -> Path:
    """Compile BenchSweep into ``root/program`` and put the bench program beside train.py."""
    from neural_dsl_tracking.compiler import compile_network
    from neural_dsl_tracking.language import parse_file

    source = root / "bench_sweep.neural"
    source.write_text(NETWORK.replace("STORE", str(root / "store")).replace("TRIALS", str(trials)))
    out = root / "program"
    compile_network(parse_file(source).network(), source, out)
    (out / "bench_objective.py").write_text(OBJECTIVE.format(spin=spin_ms / 1000))
    (out / "bench_program.py").write_text(PROGRAM)
    sys.path.insert(0, str(out))
    return out / "bench_program.py"


def _bare_loop(plan, name: str, trials: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(wall, CPU) seconds of a bare Optuna ask/report/tell loop: a study ``name`` in the same database
    (same engine settings), with the same sampler, pruner, seed and space."""
    import dataclasses

    from bench_objective import objective

    from neural_dsl_tracking.plugins.sweep.study import open_study

    started = time.perf_counter(), time.process_time()
    study = open_study(dataclasses.replace(plan.settings, study_name=name), create=True)
    for _ in range(trials):
        trial = study.ask(plan.distributions)
        value = objective(trial.params)
        trial.report(value, 1)  # epoch 1 is the last: not pruned (as in the engine)
        study.tell(trial, value)
    return time.perf_counter() - started[0], time.process_time() - started[1]


def _our_loop(program: Path, trials: int):  # type: ignore[no-untyped-def]
    """(wall, CPU) seconds of preparing our engine's sweep of the bench program (once per sweep:
    composing and checking the config, recording the sweep), of its trials (in this process, the
    store's writer threads included in the CPU), and the plan."""
    from neural_dsl_tracking.plugins.sweep.launch_local import in_process
    from neural_dsl_tracking.plugins.sweep.runner import drive, prepare

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        started = time.perf_counter(), time.process_time()
        plan, store = prepare(program, [], trials=trials)
        prepared = time.perf_counter(), time.process_time()
        results = drive(plan, store, in_process, lambda result: None)
        ended = time.perf_counter(), time.process_time()
    failed = [r for r in results if r.state == "failed"]
    if failed:
        raise SystemExit(f"bench trial {failed[0].number} failed: {failed[0].message}")
    return _since(started, prepared), _since(prepared, ended), plan


def _since(start: tuple[float, float], end: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds from ``start`` to ``end``."""
    return end[0] - start[0], end[1] - start[1]


def bookkeeping(trials: int, spin_ms: float) -> bool:
    """Part (a); True when the target is met."""
    import warnings

    warnings.filterwarnings("ignore", message="Heartbeat of storage")  # the store's storage has heartbeats
    os.environ["NEURAL_NO_PROGRESS"] = "1"
    with tempfile.TemporaryDirectory(prefix="neural-bench-sweep-") as tmp:
        root = Path(tmp)
        program = _bench_program(root, trials, spin_ms)
        cwd = os.getcwd()
        os.chdir(root)
        try:
            setup, ours, plan = _our_loop(program, trials)
            first, second = _bare_loop(plan, "bare-1", trials), _bare_loop(plan, "bare-2", trials)
            bare = ((first[0] + second[0]) / 2, (first[1] + second[1]) / 2)
        finally:
            os.chdir(cwd)
    added = [(mine - theirs) / trials * 1000 for mine, theirs in zip(ours, bare)]
    print(f"(a) {trials} trials of a {spin_ms:g} ms in-memory objective, TPE seed 0, median pruner, "
          "the store's SQLite file (wall; CPU of this process):")
    for name, (wall, cpu) in (("bare Optuna ask/tell", bare), ("neural sweep engine", ours)):
        print(f"    {name:<21} {wall:7.2f} s  {wall / trials * 1000:6.1f} ms/trial   "
              f"{cpu:7.2f} s CPU  {cpu / trials * 1000:6.1f} ms/trial")
    print(f"    ratio                 {ours[0] / bare[0]:.2f} wall, {ours[1] / bare[1]:.2f} CPU")
    print(f"    preparing the sweep   {setup[0]:7.2f} s          once, not in the figures above "
          f"({setup[1]:.2f} s CPU; {setup[1] / trials * 1000:.1f} ms CPU a trial if spread over them)")
    verdicts = [f"{figure:.1f} ms {kind} (target <= 20 ms: {'met' if figure <= 20 else 'MISSED'})"
                for kind, figure in zip(("wall", "CPU"), added)]
    print(f"    added per trial       {'; '.join(verdicts)}", flush=True)
    print("    (both figures judged: the wall one counts other jobs' load, the CPU one does not)", flush=True)
    return all(figure <= 20 for figure in added)


# ---------------------------------------------------------------- (b), (c) real sweeps


def _neural(cwd: Path, *args: str) -> tuple[float, str]:
    """(seconds, stdout) of ``neural ARGS`` in ``cwd``; exits on failure."""
    seconds, _, stdout = _timed_neural(cwd, *args)
    return seconds, stdout


def _timed_neural(cwd: Path, *args: str) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process and its workers, stdout) of ``neural ARGS`` in
    ``cwd``; exits on failure."""
    import resource

    env = {**os.environ, "NEURAL_NO_PROGRESS": "1", "HYDRA_FULL_ERROR": "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "neural_dsl_tracking.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"neural {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu, done.stdout


def _last_val_accuracy(store: Path) -> float:
    """The last val_accuracy of the one run in ``store``."""
    from neural_dsl_tracking.tracking import ExperimentManager

    manager = ExperimentManager(store=str(store))
    run_id = manager.list_experiments()[0].run_id
    return float(manager.get_metric_history(run_id, "val_accuracy").values[-1])


def search_pays(trials: int, epochs: int) -> bool:
    """Part (b); True when the TPE sweep's best is at least the defaults' val_accuracy
    (without pruning; the same sweep with the median pruner is printed beside it)."""
    with tempfile.TemporaryDirectory(prefix="neural-bench-sweep-") as tmp:
        root = Path(tmp)
        _neural(root, "run", str(EXAMPLE), f"train.epochs={epochs}", f"tracking.store={root / 'defaults'}")
        defaults = _last_val_accuracy(root / "defaults")
        print(f"(b) {EXAMPLE.name}, {epochs} epochs: compiled defaults (each space's first value) "
              f"val_accuracy {defaults:.4f}", flush=True)
        met = True
        for pruner in ("none", "median"):
            best, counts, seconds = _tpe_sweep(root, pruner, trials, epochs)
            ok = best >= defaults
            met = met and (ok or pruner != "none")
            print(f"    {trials}-trial TPE sweep, pruner {pruner:<6}: best {best:.4f} ({counts}, {seconds:.0f} s)   "
                  f"(>= defaults: {'met' if ok else 'MISSED'})", flush=True)
    return met


def _tpe_sweep(root: Path, pruner: str, trials: int, epochs: int) -> tuple[float, str, float]:
    """(best value, counts by state, seconds) of a TPE sweep of the example."""
    from neural_dsl_tracking.tracking import ExperimentManager

    store = root / f"sweep-{pruner}"
    seconds, _ = _neural(root, "sweep", str(EXAMPLE), f"train.epochs={epochs}", f"tracking.store={store}",
                         f"sweep.trials={trials}", "sweep.sampler=tpe", f"sweep.pruner={pruner}", "sweep.seed=0")
    sweep = ExperimentManager(store=str(store)).list_sweeps()[0]
    counts = ", ".join(f"{n} {state}" for state, n in sweep.counts.items() if n)
    return (sweep.best_trial.value if sweep.best_trial else float("nan")), counts, seconds


def parallel_speedup(trials: int, epochs: int) -> bool:
    """Part (c); True when 2 workers finish the fixed sweep >= 1.6x faster than 1. Also printed,
    from the runs' recorded times: each sweep's serial part (launch to its first trial's run, plus
    its last run's end to exit) and its trial phase (first trial's start to last trial's end)."""
    walls, cpus, phases = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="neural-bench-sweep-") as tmp:
        root = Path(tmp)
        _neural(root, "compile", str(EXAMPLE))  # the sweeps below reuse the compiled program
        for workers in (1, 2):
            launched = time.time()
            walls[workers], cpus[workers], _ = _timed_neural(
                root, "sweep", str(EXAMPLE), f"train.epochs={epochs}", f"tracking.store={root / f'p{workers}'}",
                f"sweep.trials={trials}", "sweep.sampler=random", "sweep.pruner=none", "sweep.seed=0",
                f"sweep.parallel={workers}", "execution.threads=1")
            phases[workers] = _trial_phase(root / f"p{workers}", launched)
    speedup = walls[1] / walls[2]
    met = speedup >= 1.6
    print(f"(c) fixed sweep ({trials} trials of {EXAMPLE.name}, {epochs} epochs, random sampler, 1 torch thread "
          f"per trial) on {os.cpu_count()} CPUs: 1 worker {walls[1]:.1f} s, 2 workers {walls[2]:.1f} s: "
          f"{speedup:.2f}x   (target >= 1.6x: {'met' if met else 'MISSED'})", flush=True)
    for workers in (1, 2):
        first, last = phases[workers]
        print(f"    {workers} worker{'s' if workers > 1 else ' '}: serial part {first + walls[workers] - last:.1f} s "
              f"(launch to first trial {first:.1f} s), trial phase {last - first:.1f} s", flush=True)
    print(f"    trial phase 1 worker / 2 workers: {(phases[1][1] - phases[1][0]) / (phases[2][1] - phases[2][0]):.2f}x",
          flush=True)
    print(f"    CPU of the processes (the neural sweep process and its workers): 1 worker {cpus[1]:.1f} s, "
          f"2 workers {cpus[2]:.1f} s", flush=True)
    return met


def _trial_phase(store: Path, launched: float) -> tuple[float, float]:
    """Seconds from ``launched`` to the first trial's run start and to the last one's end."""
    from neural_dsl_tracking.tracking import ExperimentManager

    runs = ExperimentManager(store=str(store)).list_experiments()
    starts = [run.start_time.timestamp() for run in runs]
    ends = [run.end_time.timestamp() for run in runs if run.end_time is not None]
    return min(starts) - launched, max(ends) - launched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="abc", help="which parts to run (default: %(default)s)")
    parser.add_argument("--trials", type=int, default=200, help="(a) trials of each loop")
    parser.add_argument("--objective-ms", type=float, default=10.0, help="(a) the objective's CPU time")
    parser.add_argument("--hpo-trials", type=int, default=20, help="(b) trials of the TPE sweep")
    parser.add_argument("--parallel-trials", type=int, default=16, help="(c) trials of the fixed sweep")
    parser.add_argument("--epochs", type=int, default=3, help="(b) epochs per run")
    parser.add_argument("--parallel-epochs", type=int, default=20, help="(c) epochs per trial")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    results = []
    if "a" in args.parts:
        results.append(bookkeeping(args.trials, args.objective_ms))
    if "b" in args.parts:
        results.append(search_pays(args.hpo_trials, args.epochs))
    if "c" in args.parts:
        results.append(parallel_speedup(args.parallel_trials, args.parallel_epochs))
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if not all(results):
        print("a target was missed (see MISSED above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
