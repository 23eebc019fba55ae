"""The main job, end to end (``make demo``): compile, train, sweep, and say where the runs are.

    python -m neural_dsl_tracking.compiler.demo [--store neural_experiments] [--epochs N]

1. ``neural compile examples/digits.neural`` -> ``build/DigitsCNN/``
2. train it once on the embedded store,
3. a two-point learning-rate sweep (``--multirun optimizer.lr=0.001,0.01``) into the same
   store and experiment,
4. list the runs and print the commands that compare them,
5. ``neural sweep examples/cnn_hpo.neural``: its sweep block's 8 TPE trials with median
   pruning, 3 epochs each, into the same store; print the best trial and how to look at it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from neural_dsl_tracking.errors import NeuralError

EXAMPLE = Path("examples") / "digits.neural"
SWEEP_EXAMPLE = Path("examples") / "cnn_hpo.neural"
SWEEP_EPOCHS = 3


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _run(command: list[str]) -> None:
    print("$ " + " ".join(command), flush=True)
    code = subprocess.call(command)
    if code:
        raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neural-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", default=str(EXAMPLE), help="the .neural file (default: %(default)s)")
    parser.add_argument("--store", default="neural_experiments", help="experiment store (default: %(default)s)")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: the file's)")
    parser.add_argument("--sweep-example", default=str(SWEEP_EXAMPLE),
                        help="the .neural file with a sweep block (default: %(default)s)")
    parser.add_argument("--sweep-epochs", type=int, default=SWEEP_EPOCHS,
                        help="epochs per trial of the sweep (default: %(default)s)")
    parser.add_argument("--trials", type=int, help="trials of the sweep (default: its sweep block's)")
    args = parser.parse_args(argv)
    os.environ.setdefault("NEURAL_NO_PROGRESS", "1")

    from neural_dsl_tracking.compiler import compile_network
    from neural_dsl_tracking.language import parse_file

    try:
        spec = parse_file(args.example).network()
        out_dir = Path("build") / spec.name
        _step(f"compile {args.example}")
        train_py = compile_network(spec, args.example, out_dir)
        print(f"wrote {train_py} and {out_dir / 'conf' / 'config.yaml'}")
    except NeuralError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    common = [f"tracking.store={args.store}"] + ([f"train.epochs={args.epochs}"] if args.epochs else [])
    python = sys.executable

    _step("train on the embedded store")
    _run([python, str(train_py), *common, "tracking.run_name=demo-baseline"])
    _step("two-point learning-rate sweep (Hydra multirun)")
    _run([python, str(train_py), "--multirun", "optimizer.lr=0.001,0.01", *common])

    from neural_dsl_tracking.tracking import ExperimentManager

    tracking = spec.plugins.get("tracking")
    experiment = tracking.experiment if tracking else spec.name
    runs = ExperimentManager(store=args.store).list_experiments(experiment=experiment)[:3]
    _step(f"runs of experiment {experiment!r} in {Path(args.store).resolve()}")
    for run in runs:
        accuracy = run.metrics.get("val_accuracy", {}).get("max")
        shown = "n/a" if accuracy is None else f"{accuracy:.4f}"
        print(f"  {run.run_id[:8]}  {run.run_name:<24} {run.status:<10} lr={run.hyperparameters.get('optimizer.lr')}"
              f"  best val_accuracy {shown}")
    ids = " ".join(run.run_id[:8] for run in runs)
    neural = Path(python).with_name("neural")
    print("\ncompare them:")
    print(f"  {neural} experiments ls --store {args.store}")
    print(f"  {neural} experiments compare {ids} --metric val_accuracy --metric val_loss --store {args.store}")
    print(f"  {neural} experiments --store {args.store}        # dashboard on http://127.0.0.1:8052")

    _step(f"sweep {args.sweep_example}: its HPO(...) spaces searched, each trial a tracked run")
    _run([python, "-m", "neural_dsl_tracking.cli", "sweep", args.sweep_example, f"tracking.store={args.store}",
          f"train.epochs={args.sweep_epochs}", *([f"sweep.trials={args.trials}"] if args.trials else [])])
    _print_best(args.store, neural)
    return 0


def _print_best(store: str, neural: Path) -> None:
    """The newest sweep's best trial and the commands that look at the sweep."""
    from neural_dsl_tracking.plugins.sweep.space import overrides
    from neural_dsl_tracking.tracking import ExperimentManager

    sweep = ExperimentManager(store=store).list_sweeps()[0]
    counts = ", ".join(f"{count} {state}" for state, count in sweep.counts.items() if count)
    _step(f"sweep {sweep.name}: {counts}")
    best = sweep.best_trial
    if best is None:
        print("no trial completed")
    else:
        print(f"best trial {best.number}: {sweep.objective} {best.value:.4f} (run {best.run_id[:8]})")
        print(f"  {' '.join(overrides(best.params))}")
    print("\nlook at it:")
    print(f"  {neural} experiments show {sweep.sweep_id[:8]} --store {store}   # trials, best, importances")
    print(f"  {neural} experiments --store {store}        # dashboard: the Sweeps tab")
    print(f"  {neural.with_name('optuna-dashboard')} {sweep.study_storage_shown}   # the same study in Optuna's dashboard")


if __name__ == "__main__":
    sys.exit(main())
