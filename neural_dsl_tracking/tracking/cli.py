"""``neural experiments``: ls | show | sweeps | compare | export | rm | import; bare, it starts
the dashboard.

Imports nothing heavy at module level: the tracking engine is loaded when a command runs.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import warnings
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.humanize import duration, file_size, printable, status_text
from neural_dsl_tracking.tracking.values import RUN_STATUSES

LS_LIMIT = 50
"""How many runs ``ls`` lists unless told (--limit N, --all)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``experiments`` command and its actions."""
    parser = subparsers.add_parser(
        "experiments", conflict_handler="resolve",
        help="list, show, compare, export, delete or import runs, list sweeps; "
             "alone, start the dashboard",
        description="Without an action, start the comparison dashboard on the store.")
    _store_options(parser, suppress=False)
    try:
        from neural_dsl_tracking.dashboard.cli import add_launch_arguments
    except ImportError:
        pass
    else:
        add_launch_arguments(parser)
    parser.set_defaults(func=_launch_dashboard)
    common = argparse.ArgumentParser(add_help=False)
    _store_options(common, suppress=True)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    ls = actions.add_parser("ls", parents=[common], help="list runs, newest first")
    ls.add_argument("--experiment", help="only runs of this experiment")
    ls.add_argument("--status", choices=RUN_STATUSES)
    ls.add_argument("--tag", help="only runs with this tag")
    ls.add_argument("--where", metavar="QUERY",
                    help="only runs matching a query, e.g. \"params.optimizer.lr < 0.01 and tags has "
                         "'baseline'\" (docs/compare.md, Query language)")
    shown = ls.add_mutually_exclusive_group()
    shown.add_argument("--limit", type=_positive, metavar="N",
                       help=f"list the newest N runs (default {LS_LIMIT})")
    shown.add_argument("--all", action="store_true", help="list every run")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=_ls)

    show = actions.add_parser("show", parents=[common], help="everything about one run or sweep")
    show.add_argument("run", metavar="RUN_OR_SWEEP",
                      help="run or sweep: id, unique id prefix, or name")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(func=_show)

    sweeps = actions.add_parser("sweeps", parents=[common], help="list sweeps, newest first")
    sweeps.add_argument("--experiment", help="only sweeps of this experiment")
    sweeps.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sweeps.set_defaults(func=_sweeps)

    grouped = argparse.ArgumentParser(add_help=False)
    grouped.add_argument("--group-by", metavar="KEY",
                         help="group the runs by experiment, tags or a hyperparameter (params.NAME): "
                              "a line and band per group, a row per group")
    grouped.add_argument("--center", choices=("mean", "median"), default="mean",
                         help="each group's line (default mean)")
    grouped.add_argument("--band", choices=("minmax", "std"), default="minmax",
                         help="each group's band: min-max or +-1 std (default minmax)")
    grouped.add_argument("--aggregate", action="append", metavar="METRIC=AGG",
                         help="how a run's metric counts in its group's row: last, min, max or mean "
                              "(repeatable; default: min for a loss, max for a score, by its name, else last)")
    compare = actions.add_parser("compare", parents=[common, grouped], help="compare runs side by side")
    compare.add_argument("runs", nargs="+", metavar="RUN")
    compare.add_argument("--metric", action="append", dest="metrics", help="metric to compare (repeatable)")
    compare.add_argument("-o", "--out", help="folder for the comparison PNGs")
    compare.set_defaults(func=_compare)

    diff = actions.add_parser("diff", parents=[common],
                              help="the differences between two runs: model layers, config, source")
    diff.add_argument("a", metavar="A", help="run id, unique id prefix, or run name")
    diff.add_argument("b", metavar="B", help="the run to compare A with")
    diff.add_argument("--json", action="store_true", help="print JSON instead of text")
    diff.set_defaults(func=_diff)

    export = actions.add_parser("export", parents=[common, grouped],
                                help="write CSV, JSON, PNG plots and an HTML report")
    export.add_argument("runs", nargs="+", metavar="RUN")
    export.add_argument("-o", "--out", required=True, help="output folder")
    export.add_argument("--metric", action="append", dest="metrics", help="metric to include (repeatable)")
    export.add_argument("--force", action="store_true",
                        help="write into a non-empty folder, replacing a previous export's files")
    export.set_defaults(func=_export)

    rm = actions.add_parser("rm", parents=[common], help="delete runs and their unused artifact objects")
    rm.add_argument("runs", nargs="+", metavar="RUN")
    rm.add_argument("--force", action="store_true", help="also delete runs that are still running")
    rm.set_defaults(func=_rm)

    _register_sync(actions, common)

    imp = actions.add_parser("import", parents=[common],
                             help="import runs from MLflow, TensorBoard, W&B offline folders or "
                                  "the original Neural DSL tracker (docs/interop.md)")
    imp.add_argument("dir", metavar="SOURCE",
                     help="neural-dsl: a run folder, or a folder of run folders; mlflow: a local "
                          "tracking URI (sqlite:///..., file:///...) or folder; tensorboard: a log "
                          "folder; wandb: a wandb/ folder of offline-run-* folders, or one of them")
    imp.add_argument("--from", dest="system", default="neural-dsl",
                     choices=("neural-dsl", "mlflow", "tensorboard", "wandb"),
                     help="what wrote SOURCE (default neural-dsl: the original tracker's folders)")
    imp.add_argument("--experiment", metavar="NAME",
                     help="mlflow: only this experiment; wandb: only this project; tensorboard: "
                          "the experiment of every run (default: the run folder's path)")
    imp.set_defaults(func=_import)


def _register_sync(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``sync RUN... --to TARGET``, with each mirror's options (backends.registry.MIRRORS) as
    flags spelt as in the tracking block (``tracking_uri`` is ``--tracking-uri``)."""
    from neural_dsl_tracking.backends.registry import MIRRORS

    sync = actions.add_parser(
        "sync", parents=[common], help="send runs to MLflow, W&B or TensorBoard (resumable)",
        description="Send stored runs through the mirrors: what the destination has already "
                    "got is not sent again, and a killed sync continues where it stopped.")
    sync.add_argument("runs", nargs="+", metavar="RUN", help="run id, unique id prefix, or name")
    sync.add_argument("--to", required=True, metavar="TARGET", dest="target",
                      help=f"where to send them: {', '.join(MIRRORS)}")
    sync.add_argument("--again", action="store_true",
                      help="send everything again, forgetting what was sent there before "
                           "(after deleting it at the destination)")
    owners: dict[str, list[str]] = {}
    for target, (_module, _cls, keys) in MIRRORS.items():
        for key in keys:
            owners.setdefault(key, []).append(target)
    for key, targets in owners.items():
        sync.add_argument(f"--{key.replace('_', '-')}", dest=f"option_{key}", metavar="VALUE",
                          help=f"{' and '.join(targets)}: {key} (as in the tracking block); default: "
                               f"the run's own tracking.{targets[0]}.{key}, else the mirror's default")
    sync.set_defaults(func=_sync)


def _store_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--base-dir/--store; on actions they only override what was given before the action."""
    parser.add_argument("--base-dir", default=argparse.SUPPRESS if suppress else "neural_experiments",
                        help="store directory (default neural_experiments)")
    parser.add_argument("--store", default=argparse.SUPPRESS if suppress else None,
                        help="store location: a directory or a postgresql+psycopg:// URL")


def _manager(args: argparse.Namespace) -> Any:
    from neural_dsl_tracking.tracking import ExperimentManager

    return ExperimentManager(base_dir=args.base_dir, store=args.store)


def _launch_dashboard(args: argparse.Namespace) -> int:
    try:
        from neural_dsl_tracking.dashboard.cli import launch_from_args
    except ImportError as error:
        raise TrackingError(f"the dashboard is not available ({error}); "
                            "use an action: ls, show, compare, export, rm, import") from None
    return launch_from_args(args)


# ---- actions ------------------------------------------------------------------------------
def _ls(args: argparse.Namespace) -> int:
    from neural_dsl_tracking.tracking.model_view import model_cells, model_summary

    manager = _manager(args)
    query = _ls_query(args)
    runs, left_out = _ls_page(manager, query, None if args.all else args.limit or LS_LIMIT)
    ids = [r.run_id for r in runs]
    models, twins = manager.run_models(ids), manager.fingerprint_twins(ids)
    filtered = any(given is not None for given in (args.where, args.experiment, args.status, args.tag))
    if _json_or_none(args, manager, runs, "runs match the filters" if filtered else "runs",
                     lambda run: {**asdict(run), "model": model_summary(models.get(run.run_id), twins)}):
        _say_left_out(left_out, args.json)
        return 0
    rows = [[r.run_id[:8], r.experiment, r.run_name, r.status, _when(r.start_time),
             duration(r.duration, "-"), *model_cells(models.get(r.run_id), twins), _metric_line(r.metrics)]
            for r in runs]
    _table(["RUN", "EXPERIMENT", "NAME", "STATUS", "STARTED", "DURATION", "PARAMS", "MACS", "FINGERPRINT",
            "LATEST METRICS"], rows, status_column=3)
    _say_left_out(left_out, args.json)
    return 0


def _ls_query(args: argparse.Namespace) -> Any:
    """--where with --experiment, --status and --tag, as one query."""
    from neural_dsl_tracking.tracking.query import parse_query, quote

    query = parse_query(args.where or "")
    for given, text in ((args.experiment, "experiment = {}"), (args.status, "status = {}"),
                        (args.tag, "tags has {}")):
        if given is not None:
            query = query & parse_query(text.format(quote(given)))
    return query


def _ls_page(manager: Any, query: Any, limit: int | None) -> tuple[list, int]:
    """The newest ``limit`` runs matching ``query`` (all when None), and how many more match."""
    runs = manager.query_runs(query, limit=limit)
    left_out = manager.count_runs(query) - len(runs) if limit is not None and len(runs) == limit else 0
    return runs, left_out


def _say_left_out(left_out: int, to_stderr: bool) -> None:
    """How many matching runs ``ls`` did not list (on stderr under --json)."""
    if left_out:
        print(f"{left_out:,} more run{'s' if left_out > 1 else ''} not listed: --limit N or --all to list them",
              file=sys.stderr if to_stderr else sys.stdout)


def _positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _show(args: argparse.Namespace) -> int:
    from neural_dsl_tracking.tracking.model_view import model_fields, model_summary, print_layers
    from neural_dsl_tracking.tracking.records import SweepRecord, jsonable

    manager = _manager(args)
    found = _run_or_sweep(manager, args.run)
    if isinstance(found, SweepRecord):
        return _show_sweep(found, args.json)
    run = found
    versions = manager.list_artifact_versions(run.run_id)
    model = manager.get_run_model(run.run_id)
    twins = manager.fingerprint_twins([run.run_id])
    if args.json:
        data = asdict(run)
        data["artifact_versions"] = [asdict(v) for v in versions]
        data["model"] = None if model is None else {**model_summary(model, twins), "spec": model.spec}
        print(json.dumps(jsonable(data), indent=2))
        return 0
    fields = [("run", run.run_id), ("experiment", run.experiment), ("name", run.run_name),
              ("status", run.status), ("started", _when(run.start_time)),
              ("ended", _when(run.end_time)), ("duration", duration(run.duration, "-")),
              ("tags", ", ".join(run.tags) or "-")]
    if run.source_file:
        fields.append(("source", f"{run.source_file} (sha256 {(run.source_sha256 or '')[:12]})"))
    for label, value in fields + _lineage_fields(manager, run) + model_fields(model, twins.get(run.run_id)):
        print(f"{label:<11}{status_text(value) if label == 'status' else printable(value)}")
    if model is not None:
        print_layers(model.spec)
    if run.events:
        print("\nhistory:")
        for event in run.events:
            print(f"  {_when(event.at)}  {event.kind}: {printable(event.detail)}")
    print("\nhyperparameters:" + ("" if run.hyperparameters else " none"))
    if run.hyperparameters:
        _table(["NAME", "VALUE"], [[k, json.dumps(v, default=str)] for k, v in run.hyperparameters.items()],
               indent=2, whole_first=True)
    print("\nmetrics:" + ("" if run.metrics else " none"))
    if run.metrics:
        _table(["KEY", "LATEST", "BEST", "MIN", "MAX", "COUNT"],
               [[k, _num(m["latest"]), _num(m["best"]), _num(m["min"]), _num(m["max"]), str(m["count"])]
                for k, m in run.metrics.items()], indent=2, whole_first=True)
    print("\nartifacts:" + ("" if versions else " none"))
    if versions:
        _table(["NAME", "VERSION", "SIZE", "SHA256", "ALIASES", "CREATED"],
               [[v.name, f"v{v.version}", file_size(v.size), v.sha256[:12], ", ".join(v.aliases),
                 _when(v.created_at)] for v in versions], indent=2, whole_first=True)
    if run.mirror_failures:
        print("\nmirror failures:")
        for backend, message in run.mirror_failures:
            print(f"  {printable(backend)}: {printable(message)}")
        for backend in _failed_mirrors(run.mirror_failures):
            print(f"  to send what {backend} is missing: neural experiments sync "
                  f"{run.run_id[:8]} --to {backend}")
    return 0


def _lineage_fields(manager: Any, run: Any) -> list[tuple[str, str]]:
    """``parent`` (the run this one was forked from, and where) and ``forks`` (the runs forked from it)."""
    from neural_dsl_tracking.tracking.store import NotFound

    fields = []
    if run.parent is not None:
        try:
            name = manager.get_experiment(run.parent.run_id).run_name
        except NotFound:
            name = "deleted"
        at = "" if run.parent.fork_epoch is None else f" @ epoch {run.parent.fork_epoch}"
        step = "" if run.parent.fork_step is None else f" (step {run.parent.fork_step})"
        fields.append(("parent", f"{run.parent.run_id[:8]} ({name}){at}{step}"))
    if run.children:
        fields.append(("forks", ", ".join(child[:8] for child in run.children)))
    return fields


def _failed_mirrors(failures: list[tuple[str, str]]) -> list[str]:
    """The mirrors named by a run's failures, once each (a failure at finish may name several:
    ``mlflow, wandb``)."""
    from neural_dsl_tracking.backends.registry import MIRRORS

    named = (name for backend, _ in failures for name in backend.split(", "))
    return [name for name in dict.fromkeys(named) if name in MIRRORS]


def _run_or_sweep(manager: Any, ref: str) -> Any:
    """The run or the sweep ``ref`` names; one error when it names neither, or both."""
    from neural_dsl_tracking.tracking.store import NotFound

    def found(get: Callable[[str], Any]) -> Any:
        try:
            return get(ref)
        except NotFound:
            return None

    run = found(manager.get_experiment)
    sweep = found(manager.get_sweep) if run is None or run.run_id != ref.strip() else None
    where = _where(str(manager.store_location or manager.base_dir))
    if run is not None and sweep is not None:
        raise TrackingError(f"{ref!r} is ambiguous in {where}: it matches run {run.run_id[:12]} and sweep "
                            f"{sweep.sweep_id[:12]}; give more of the id")
    if run is None and sweep is None:
        raise TrackingError(f"no run or sweep {ref!r} in the experiment store {where}")
    return run or sweep


def _json_or_none(args: argparse.Namespace, manager: Any, items: list, noun: str,
                  data: Callable[[Any], dict]) -> bool:
    """With --json, print ``data`` of each item as JSON; without, say when there are no
    ``noun`` (or no store): ``no runs in STORE``, ``no sweeps match the filters in STORE``.
    True when that was all there is to print."""
    from neural_dsl_tracking.tracking.records import jsonable

    if args.json:
        print(json.dumps([jsonable(data(item)) for item in items], indent=2))
        return True
    if not items:
        where = _where(str(args.store or args.base_dir))
        print(f"no {noun} in {where}" if manager.exists else f"no experiment store at {where}")
        return True
    return False


def _sweeps(args: argparse.Namespace) -> int:
    manager = _manager(args)
    sweeps = manager.list_sweeps(args.experiment)
    noun = "sweeps" if args.experiment is None else "sweeps match the filters"
    if _json_or_none(args, manager, sweeps, noun, _sweep_data):
        return 0
    rows = [[s.sweep_id[:8], s.experiment, s.name, s.objective, s.direction, _trial_counts(s),
             _num(s.best_trial.value if s.best_trial else None), _when(s.created_at)] for s in sweeps]
    _table(["SWEEP", "EXPERIMENT", "NAME", "OBJECTIVE", "DIRECTION", "TRIALS", "BEST", "CREATED"], rows)
    return 0


def _sweep_data(sweep: Any) -> dict[str, Any]:
    """A sweep as JSON-ready data: its fields (the study storage without its password), its
    counts and its best trial's number."""
    data = asdict(sweep)
    data["study_storage"] = sweep.study_storage_shown
    data["counts"] = sweep.counts
    data["best_trial"] = sweep.best_trial.number if sweep.best_trial else None
    return data


def _trial_counts(sweep: Any) -> str:
    """``6/8: 4 complete, 1 pruned, 1 failed`` (states with no trial left out)."""
    counts = ", ".join(f"{n} {state}" for state, n in sweep.counts.items() if n)
    return f"{len(sweep.trials)}/{sweep.requested_trials}" + (f": {counts}" if counts else "")


def _show_sweep(sweep: Any, as_json: bool) -> int:
    """Print a sweep: its settings, its trials best first, its best trial and the parameter
    importances."""
    from neural_dsl_tracking.tracking.sweeps import IMPORTANCE_METHOD, param_importances

    try:
        importances, why_not = param_importances(sweep), ""
    except TrackingError as error:
        importances, why_not = {}, str(error)
    if as_json:
        print(json.dumps(_sweep_json(sweep, importances), indent=2))
        return 0
    fields = [("sweep", sweep.sweep_id), ("experiment", sweep.experiment), ("name", sweep.name),
              ("objective", f"{sweep.objective} ({sweep.direction})"),
              ("sampler", sweep.sampler), ("pruner", sweep.pruner),
              ("trials", _trial_counts(sweep)), ("created", _when(sweep.created_at)),
              ("study", f"{sweep.study_name} in {sweep.study_storage_shown}"),
              ("optuna", f"optuna-dashboard {shlex.quote(sweep.study_storage_shown)}")]
    if sweep.source_file:
        fields.append(("source", f"{sweep.source_file} (sha256 {(sweep.source_sha256 or '')[:12]})"))
    for label, value in fields:
        print(f"{label:<11}{printable(value)}")
    _print_trials(sweep)
    _print_best(sweep)
    print(f"\nparameter importances ({IMPORTANCE_METHOD}):" + ("" if importances else f" {printable(why_not)}"))
    if importances:
        _table(["PARAMETER", "IMPORTANCE"], [[k, f"{v:.3f}"] for k, v in importances.items()],
               indent=2, whole_first=True)
    return 0


def _sweep_json(sweep: Any, importances: dict[str, float]) -> Any:
    """``show SWEEP --json``: the sweep's data, its trials best first, and the importances."""
    from neural_dsl_tracking.tracking.records import jsonable

    data = _sweep_data(sweep)
    data["trials"] = [asdict(t) for t in sweep.ranked_trials()]
    data["importances"] = importances
    return jsonable(data)


def _print_trials(sweep: Any) -> None:
    """The trials table, best first, one column per parameter."""
    print(f"\ntrials (best {sweep.objective} first):" + ("" if sweep.trials else " none"))
    if not sweep.trials:
        return
    params = list(dict.fromkeys(key for t in sweep.trials for key in t.params))
    rows = [[f"#{t.number}", (t.run_id or "-")[:8], t.state, _num(t.value),
             *[_value(t.params[p]) if p in t.params else "-" for p in params]]
            for t in sweep.ranked_trials()]
    _table(["TRIAL", "RUN", "STATE", sweep.objective, *params], rows, indent=2, status_column=2)


def _print_best(sweep: Any) -> None:
    """The best trial: its number, value, run id and values."""
    best = sweep.best_trial
    if best is None:
        print("\nbest trial: none complete yet")
        return
    print(f"\nbest trial: #{best.number}, {printable(sweep.objective)} = {_num(best.value)}, "
          f"run {best.run_id or '- (deleted)'}")
    if best.params:
        _table(["PARAMETER", "VALUE"], [[k, _value(v)] for k, v in best.params.items()],
               indent=2, whole_first=True)


def _quiet_missing_glyphs() -> None:
    """Characters the plot font lacks are drawn as boxes; one warning per glyph is noise here."""
    warnings.filterwarnings("ignore", r"Glyph \d+ .* missing from", UserWarning)


def _compare(args: argparse.Namespace) -> int:
    from neural_dsl_tracking.tracking.comparison import differing_params

    _quiet_missing_glyphs()
    manager = _manager(args)
    runs = list({r.run_id: r for r in map(manager.get_experiment, args.runs)}.values())
    out = Path(args.out) if args.out else None
    group = _group_options(args)
    metrics = list(manager.compare_experiments([r.run_id for r in runs], metrics=args.metrics,
                                               out_dir=out, group=group))
    if group is not None:
        _print_groups(runs, metrics, group, manager)
        print(f"plots saved to {printable(str(out or manager.comparison_dir(runs)))}")
        return 0
    params = differing_params(runs)
    rows = [[r.run_id[:8], r.run_name, r.status,
             *[json.dumps(r.hyperparameters.get(p), default=str) for p in params],
             *[_num(r.metrics.get(m, {}).get("best")) for m in metrics]] for r in runs]
    _table(["RUN", "NAME", "STATUS", *params, *[f"{m} (best)" for m in metrics]], rows, status_column=2)
    if not params:
        print("(hyperparameters are identical)")
    print(f"plots saved to {printable(str(out or manager.comparison_dir(runs)))}")
    return 0


def _group_options(args: argparse.Namespace) -> Any:
    """The comparison's ``GroupOptions`` from --group-by, --center, --band and --aggregate
    (None without --group-by; --aggregate alone is a TrackingError)."""
    from neural_dsl_tracking.tracking.comparison import GroupOptions
    from neural_dsl_tracking.tracking.grouping import parse_aggregates

    aggregates = parse_aggregates(args.aggregate)
    if args.group_by is None:
        if aggregates or args.center != "mean" or args.band != "minmax":
            raise TrackingError("--aggregate, --center and --band need --group-by KEY")
        return None
    return GroupOptions(args.group_by, args.center, args.band, aggregates)


def _print_groups(runs: list[Any], metrics: list[str], group: Any, manager: Any) -> None:
    """A row per group: its runs and, per metric, the mean +- std of its runs' aggregates."""
    from neural_dsl_tracking.tracking.comparison import group_rows
    from neural_dsl_tracking.tracking.grouping import aggregate_for

    read = manager.get_metric_histories([r.run_id for r in runs], metrics)
    histories = {r.run_id: {key: read[(r.run_id, key)] for key in metrics if (r.run_id, key) in read}
                 for r in runs}
    rows = group_rows(runs, histories, metrics, group)
    head = ["GROUP", "RUNS", *[f"{m} ({aggregate_for(m, group.aggregates)})" for m in metrics]]
    _table(head, [[row["group"], len(row["runs"]),
                   *[_spread(row["metrics"][m]) for m in metrics]] for row in rows], whole_first=True)


def _spread(stats: dict[str, Any]) -> str:
    """``mean ± std`` of a group's aggregates (``-`` when none)."""
    return "-" if stats["mean"] is None else f"{stats['mean']:.4g} ± {stats['std']:.2g}"


def _diff(args: argparse.Namespace) -> int:
    from neural_dsl_tracking.tracking.diff import diff_runs, source_text
    from neural_dsl_tracking.tracking.model_view import print_diff
    from neural_dsl_tracking.tracking.records import jsonable

    manager = _manager(args)
    a, b = manager.get_experiment(args.a), manager.get_experiment(args.b)
    result = diff_runs(a, b, manager.run_models([a.run_id, b.run_id]),
                       (source_text(manager, a), source_text(manager, b)))
    if args.json:
        print(json.dumps(jsonable(result.as_dict()), indent=2))
    else:
        print_diff(result)
    return 0


def _export(args: argparse.Namespace) -> int:
    _quiet_missing_glyphs()
    manager = _manager(args)
    ids = list(dict.fromkeys(manager.get_experiment(ref).run_id for ref in args.runs))
    out = manager.export_comparison(ids, args.out, metrics=args.metrics, overwrite=args.force,
                                    group=_group_options(args))
    print(f"exported {len(ids)} run(s) to {printable(str(out))}")
    for path in sorted(out.iterdir()):
        print(f"  {printable(path.name)}")
    return 0


def _sync(args: argparse.Namespace) -> int:
    from neural_dsl_tracking.interop.sync import sync_runs
    from neural_dsl_tracking.tracking.store import Store

    given = {name[len("option_"):]: value for name, value in vars(args).items()
             if name.startswith("option_") and value is not None}
    store = Store(args.base_dir, args.store, create=False)
    failed = 0
    try:
        for line, ok in sync_runs(store, args.runs, args.target, given, again=args.again):
            print(printable(line), file=sys.stdout if ok else sys.stderr)
            failed += not ok
    finally:
        store.close()
    return 1 if failed else 0


def _rm(args: argparse.Namespace) -> int:
    manager = _manager(args)
    runs = list({r.run_id: r for r in map(manager.get_experiment, args.runs)}.values())
    running = [r for r in runs if r.status == "running"]
    if running and not args.force:
        raise TrackingError(f"run {running[0].run_id[:8]} is still running; stop it first or use --force")
    for run in runs:
        freed = manager.delete_experiment(run.run_id)
        print(f"deleted run {run.run_id[:8]} ({printable(run.run_name)}); "
              f"freed {file_size(freed)} of artifacts")
    return 0


def _import(args: argparse.Namespace) -> int:
    if args.system != "neural-dsl":
        return _import_from(args)
    if args.experiment is not None:
        raise TrackingError("--experiment applies to --from mlflow, tensorboard or wandb; "
                            "the original tracker's folders name their experiments")
    from neural_dsl_tracking.tracking.importer import find_run_folders, import_runs
    from neural_dsl_tracking.tracking.store import Store

    find_run_folders(Path(args.dir))  # a bad folder is an error before any store is created
    store = Store(args.base_dir, args.store, create=True)
    try:
        results = import_runs(Path(args.dir), store)
    finally:
        store.close()
    for result in results:
        _print_imported(result.status, result.run_id, str(result.folder), result.notes)
    counts = Counter(r.status for r in results)
    links = f"{counts['link']} symbolic link(s) not followed, " if counts["link"] else ""
    print(f"{counts['imported']} imported, {counts['skipped']} already present, {links}"
          f"{counts['error']} failed")
    return 1 if counts["error"] else 0


def _import_from(args: argparse.Namespace) -> int:
    """``import --from mlflow|tensorboard|wandb``: a line per run, its notes, a summary line."""
    from neural_dsl_tracking.interop.importing import import_runs, source_runs, summary_line
    from neural_dsl_tracking.tracking.store import Store

    runs = source_runs(args.system, args.dir, args.experiment)  # bad input: before any store
    store = Store(args.base_dir, args.store, create=True)
    try:
        outcomes = import_runs(runs, store)
    finally:
        store.close()
    for outcome in outcomes:
        _print_imported(outcome.status, outcome.run_id, outcome.label, outcome.notes)
    print(summary_line(args.system, outcomes))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _print_imported(status: str, run_id: str | None, what: str, notes: list[str]) -> None:
    """One imported (skipped, failed) run: status, run id, where it came from; its notes below."""
    print(f"{status:<9}{(run_id or '-')[:8]:<10}{printable(what)}")
    for note in notes:
        print(f"{'':<19}note: {printable(note)}")


# ---- formatting ---------------------------------------------------------------------------
def _table(head: Sequence[str], rows: list[list[str]], indent: int = 0, *,
           whole_first: bool = False, status_column: int | None = None) -> None:
    """Columns up to 48 characters wide (the first one whole with ``whole_first``: names);
    control characters in cells are escaped; the cells of ``status_column`` are coloured on a
    terminal (``status_text``)."""
    head, rows = [printable(str(c)) for c in head], [[printable(str(c)) for c in row] for row in rows]
    widths = [max(len(c) for c in column) for column in zip(head, *rows)]
    widths = [w if i == 0 and whole_first else min(48, w) for i, w in enumerate(widths)]
    for row in [list(head), *rows]:
        cells = [_clip(c, w).ljust(w) for c, w in zip(row, widths)]
        if status_column is not None:
            cells[status_column] = status_text(row[status_column], widths[status_column])
        print(" " * indent + "  ".join(cells).rstrip())


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.6g}"


def _value(value: Any) -> str:
    """A trial's parameter value: numbers to 6 significant digits, anything else as JSON."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _num(value)
    return json.dumps(value, default=str)


def _metric_line(metrics: dict[str, dict]) -> str:
    return " ".join(f"{k}={_num(m['latest'])}" for k, m in list(metrics.items())[:4])


def _where(location: str) -> str:
    """A store location to print: a database URL without its password."""
    from neural_dsl_tracking.tracking.db import is_database_url, redact

    return redact(location) if is_database_url(location) else location


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
