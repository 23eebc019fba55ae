"""``neural sweep FILE [OVERRIDES...] [--trials N] [--store STORE] [--resume SWEEP]``.

Compiles FILE like ``neural run`` (into ``build/.cache/``), then searches the network's
``HPO(...)`` spaces with Optuna, each trial a tracked run (see ``runner``). ``neural run
--sweep`` comes here too. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import gc
import shlex
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from neural_dsl_tracking.errors import ConfigError
from neural_dsl_tracking.tracking.cli import _positive  # the same check as ls --limit


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` command."""
    parser = subparsers.add_parser(
        "sweep", parents=[_options()],
        help="search a network's HPO(...) spaces with Optuna, each trial a tracked run",
        description="Compile FILE and run the trials of its sweep block (or the defaults: 20 TPE trials "
        "with median pruning) over its HPO(...) expressions. OVERRIDES are Hydra overrides as for "
        "neural run; a searched setting given one is not searched. Options may come before or after FILE.",
    )
    parser.add_argument("file", metavar="FILE", help="the .neural file")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, metavar="OVERRIDE",
                        help="Hydra overrides (KEY=VALUE)")
    parser.set_defaults(func=run_sweep_command)


def _options() -> argparse.ArgumentParser:
    """The command's options, read before FILE by the command's parser and after it from the rest."""
    options = argparse.ArgumentParser(prog="neural sweep", add_help=False)
    options.add_argument("--trials", type=_positive, metavar="N",
                         help="how many trials the sweep runs in all (default: the sweep block's)")
    options.add_argument("--store", metavar="STORE",
                         help="where trials and the study are recorded: a folder or a PostgreSQL URL "
                         "(default: the tracking block's store)")
    options.add_argument("--resume", metavar="SWEEP",
                         help="continue (or join) the sweep with this id, id prefix or name")
    options.add_argument("--network", metavar="NAME", help="which network of the file (default: the first)")
    options.add_argument("--launcher", choices=("local", "ray"),
                         help="where trials run: this machine, or Ray tasks (default: the sweep block's)")
    options.add_argument("--address", metavar="HOST:PORT",
                         help="the Ray cluster's head for --launcher ray (default: a Ray started on this machine)")
    return options


def run_sweep_command(args: argparse.Namespace) -> int:
    """``neural sweep``: compile, then sweep."""
    from neural_dsl_tracking.compiler.cli import compile_cached

    args, overrides = _options().parse_known_args(args.overrides, namespace=args)
    flags = [arg for arg in overrides if arg.startswith("-")]
    if flags:
        raise ConfigError(f"neural sweep: unknown option {flags[0]} (options: --trials, --store, --resume, "
                          "--network, --launcher, --address; the rest are KEY=VALUE overrides)")
    train_py = compile_cached(args.file, args.network)
    settings, options = _option_overrides(args)
    return sweep(train_py, [*overrides, *settings], trials=args.trials, resume=args.resume, source=args.file,
                 network=args.network, hint=[*overrides, *options])


def _option_overrides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The overrides ``--store``, ``--launcher`` and ``--address`` stand for, and the options
    as the resume hint repeats them (a store folder made absolute, so the hint works anywhere)."""
    from neural_dsl_tracking.plugins.sweep.space import override_value
    from neural_dsl_tracking.tracking.db import is_database_url

    overrides: list[str] = []
    options: list[str] = []
    if args.store:
        store = args.store if is_database_url(args.store) else str(Path(args.store).expanduser().absolute())
        overrides.append(f"tracking.store={override_value(store)}")
        options += ["--store", store]
    if args.launcher:
        overrides.append(f"sweep.launcher={args.launcher}")
        options += ["--launcher", args.launcher]
    if args.address:
        overrides.append(f"sweep.address={override_value(args.address)}")
        options += ["--address", args.address]
    return overrides, options


def sweep(train_py: Path, overrides: list[str], *, trials: int | None = None, resume: str | None = None,
          source: str = "FILE", network: str | None = None, hint: list[str] | None = None) -> int:
    """Run the sweep of a compiled program in this process; returns the exit code. ``source``
    and ``network`` (the user's file and ``--network``) go into the resume hint, with ``hint``
    (the overrides and options as the user gave them; default: ``overrides``)."""
    from neural_dsl_tracking.compiler import signals

    _exit_without_collecting()
    again = [source, *(["--network", network] if network else []), *(overrides if hint is None else hint)]
    stopped = ""
    try:
        with signals.stop_signals_handled(), _collecting_from_the_trials() as trials_start:
            _sweep(train_py, overrides, trials, resume, source, again, trials_start)
    except signals.Terminated:
        stopped = "terminated"
    except KeyboardInterrupt:
        stopped = "interrupted"
    if stopped:
        print(stopped, file=sys.stderr)
    if stopped == "terminated":
        signals.end_by_signal(signal.SIGTERM)
    return 130 if stopped else 0


@functools.cache
def _exit_without_collecting() -> None:
    """Freeze this process's objects when it exits, so the interpreter does not collect them
    one by one (about a second of CPU with PyTorch, Optuna and Hydra loaded, after the sweep
    has ended; the forked workers end with ``os._exit``)."""
    atexit.register(gc.freeze)


@contextmanager
def _collecting_from_the_trials() -> Iterator[Callable[[], None]]:
    """Python's cyclic garbage collector off while the sweep starts (importing PyTorch, Optuna
    and Hydra with it on costs about 0.4 s more CPU, in collections that free almost nothing),
    until the call this yields: it freezes the objects made so far (never scanned again, and
    shared as they are with the workers forked after it) and turns collection on for the
    trials. Collection is as it was when the block ends, however it ends."""
    enabled = gc.isenabled()

    def trials_start() -> None:
        gc.freeze()
        if enabled:
            gc.enable()

    gc.disable()
    try:
        yield trials_start
    finally:
        if enabled:
            gc.enable()


def _sweep(train_py: Path, overrides: list[str], trials: int | None, resume: str | None, source: str,
           again: list[str], trials_start: Callable[[], None]) -> None:
    from neural_dsl_tracking.plugins.sweep.runner import drive, prepare

    plan, store = prepare(train_py, overrides, trials=trials, resume=resume, source=source)
    spec = plan.spec
    print(f"sweep {plan.name} ({plan.sweep_id[:8]}): {spec.trials} trials of {', '.join(plan.distributions)}; "
          f"{spec.sampler} sampler, {spec.pruner} pruner, {spec.parallel} at once; "
          f"{spec.direction} {spec.objective}", flush=True)
    print(f"resume or join it: {shlex.join(['neural', 'sweep', *again, '--resume', plan.sweep_id[:8]])}",
          flush=True)
    launch, close, interrupt = _launcher(plan)
    trials_start()
    try:
        drive(plan, store, launch, lambda result: _print_trial(result, spec.objective or ""), interrupt)
    finally:
        close()
    _print_summary(store, plan)


def _launcher(plan):  # type: ignore[no-untyped-def]
    """(launch, close, interrupt) for the sweep's launcher (see ``runner.drive``)."""
    if plan.spec.launcher == "ray":
        try:
            from neural_dsl_tracking.plugins.sweep.launch_ray import ray_launcher
        except ImportError as error:
            raise ConfigError(f"sweep.launcher=ray: the Ray launcher is not available ({error})") from None
        return (*ray_launcher(plan), None)
    from neural_dsl_tracking.plugins.sweep.launch_local import local_launcher

    return local_launcher(plan.spec.parallel)


def _print_trial(result, objective: str) -> None:  # type: ignore[no-untyped-def]
    from neural_dsl_tracking.plugins.sweep.space import overrides

    value = "" if result.value is None else f"  {objective} {result.value:.4g}"
    run = f"  run {result.run_id[:8]}" if result.run_id else ""
    why = f"  ({result.message})" if result.message else ""
    print(f"trial {result.number} {result.state}{value} after {result.epochs} epochs{run}:  "
          f"{' '.join(overrides(result.values))}{why}", flush=True)


def _print_summary(store, plan) -> None:  # type: ignore[no-untyped-def]
    from neural_dsl_tracking.plugins.sweep.runner import best_checkpoint
    from neural_dsl_tracking.plugins.sweep.space import overrides

    sweep = store.get_sweep(plan.sweep_id)
    counts = ", ".join(f"{count} {state}" for state, count in sweep.counts.items() if count)
    print(f"sweep {sweep.name}: {counts or 'no trials'}", flush=True)
    best = sweep.best_trial
    if best is not None:
        run = f" (run {best.run_id[:8]})" if best.run_id else ""
        print(f"best trial {best.number}{run}: {sweep.objective} {best.value:.4g} with "
              f"{' '.join(overrides(best.params))}", flush=True)
        checkpoint = best_checkpoint(store, sweep)
        if checkpoint is not None:
            print(f"best checkpoint: run {checkpoint.run_id[:8]}, checkpoint version {checkpoint.version} "
                  f"(alias best, epoch {checkpoint.metadata.get('epoch')})", flush=True)
    print(f"look at it: neural experiments show {plan.sweep_id[:8]} --store {shlex.quote(store.location)}",
          flush=True)
