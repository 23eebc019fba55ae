"""``neural check``, ``neural compile`` and ``neural run``.

``check`` is the language's command (``language.cli``) with the compiler's checks added:
each network is compiled in memory, nothing written, so every rejection ``compile`` would
make (a shape that does not fit, a layer, the loss against the output) is made by ``check``.

``compile`` writes ``DIR/train.py``, ``DIR/conf/config.yaml`` and ``DIR/source.neural``
(default ``DIR``: ``build/<network name>/``). ``run`` compiles into a cache keyed by the
generated program (``build/.cache/<hash>/``) and runs it with the same Python, passing
Hydra overrides and ``--multirun`` through, and SIGINT, SIGTERM and SIGHUP on (see
``signals``). Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

from neural_dsl_tracking.compiler.signals import run_forwarding
from neural_dsl_tracking.errors import CompileError
from neural_dsl_tracking.language import cli as language_cli

CACHE_DIR = Path("build") / ".cache"
SKIP_IF_DONE = "--skip-if-done"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``check``, ``compile`` and ``run`` commands."""
    language_cli.register(subparsers, verify=check_networks)
    compile_parser = subparsers.add_parser(
        "compile",
        help="compile a network into a PyTorch training program",
        description="Write DIR/train.py (a Hydra program), DIR/conf/config.yaml (every setting) "
        "and a copy of the source. Run it with: python DIR/train.py [KEY=VALUE ...]",
    )
    compile_parser.add_argument("file", metavar="FILE", help="the .neural file")
    compile_parser.add_argument("-o", "--output", metavar="DIR",
                                help="output directory (default: build/<network name>/)")
    compile_parser.add_argument("--network", metavar="NAME",
                                help="which network of the file (default: the first)")
    compile_parser.set_defaults(func=run_compile)

    run_parser = subparsers.add_parser(
        "run",
        help="compile a network and train it in one step",
        description="Compile FILE into build/.cache/ and run the program. Everything after FILE "
        "goes to the program: Hydra overrides (optimizer.lr=0.01 data=digits tracking=mlflow) "
        "and flags such as --multirun.",
    )
    run_parser.add_argument("--sweep", action="store_true",
                            help="search the network's HPO(...) spaces with Optuna, as neural sweep FILE does")
    run_parser.add_argument("-m", "--multirun", action="store_true",
                            help="run a Hydra sweep (e.g. optimizer.lr=0.1,0.01)")
    run_parser.add_argument("--network", metavar="NAME", help="which network of the file (default: the first)")
    run_parser.add_argument(SKIP_IF_DONE, action="store_true",
                            help="do not train a run whose fingerprint a completed run of its store has; "
                                 "say which run instead")
    run_parser.add_argument("--store", metavar="STORE",
                            help="the experiment store the run is recorded in: a folder or a PostgreSQL URL "
                                 "(the same as tracking.store=STORE)")
    run_parser.add_argument("--resume", metavar="RUN",
                            help="continue a crashed, interrupted or failed run from its latest checkpoint "
                                 "(the network's tracking block records them: checkpoint_every)")
    run_parser.add_argument("--fork", metavar="RUN[@EPOCH]",
                            help="start a new run from that run's checkpoint (the latest, or that epoch's), "
                                 "with the settings given after FILE")
    run_parser.add_argument("file", metavar="FILE", help="the .neural file")
    run_parser.add_argument("overrides", nargs=argparse.REMAINDER, metavar="OVERRIDE",
                            help="Hydra overrides and flags passed to the program")
    run_parser.set_defaults(func=run_run)


def _load(path_text: str, network: str | None):  # type: ignore[no-untyped-def]
    from neural_dsl_tracking.language import parse_file

    path = Path(path_text)
    parsed = parse_file(path)
    try:
        return path, parsed.network(network)
    except (KeyError, IndexError):
        names = ", ".join(net.name for net in parsed.networks) or "none"
        raise CompileError(f"{path}: no network named {network!r}; the file defines: {names}") from None


def check_networks(parsed) -> list[str]:  # type: ignore[no-untyped-def]
    """``neural compile``'s checks of every network of a parsed file, nothing written: the
    lines ``neural check`` prints (compile warnings, and a note for what this backend cannot
    build); a CompileError with each failing network's error."""
    from neural_dsl_tracking.compiler.build import check_network, read_source
    from neural_dsl_tracking.compiler.locate import UnsupportedError

    text = read_source(Path(parsed.path))
    lines: list[str] = []
    errors: list[str] = []
    for spec in parsed.networks:
        try:
            lines += [f"warning: {warning}" for warning in check_network(spec, parsed.path, text)]
        except UnsupportedError as error:
            if not error.custom_layer:  # the language has noted each custom layer already
                lines.append(f"note: {error}")
        except CompileError as error:
            errors.append(str(error))
    if errors:
        raise CompileError("\n".join(errors))
    return list(dict.fromkeys(lines))  # a repeated layer warns once


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def run_compile(args: argparse.Namespace) -> int:
    from neural_dsl_tracking.compiler.build import compile_program, read_source, write_compiled

    path, spec = _load(args.file, args.network)
    program = compile_program(spec, path.name, read_source(path))
    _warn(program.warnings)
    out_dir = Path(args.output) if args.output else Path("build") / spec.name
    train_py = write_compiled(program, path, out_dir)
    print(f"wrote {train_py}, {out_dir / 'conf' / 'config.yaml'} and {out_dir / 'source.neural'}")
    print(f"train it:  {_python()} {train_py} [KEY=VALUE ...]")
    return 0


def _python() -> str:
    """How to call this Python: its short name when that is what the PATH finds, else its path."""
    name = Path(sys.executable).name
    found = shutil.which(name)
    return name if found and Path(found).resolve() == Path(sys.executable).resolve() else sys.executable


def compile_cached(file: str, network: str | None = None) -> Path:
    """Compile ``file`` into ``build/.cache/<hash>/`` (reused when unchanged); returns train.py."""
    from neural_dsl_tracking.compiler.build import compile_program, read_source, write_compiled

    path, spec = _load(file, network)
    program = compile_program(spec, path.name, read_source(path))
    _warn(program.warnings)
    digest = hashlib.sha256()
    for part in (program.train_py, program.config_yaml, path.read_bytes()):
        digest.update(part.encode("utf-8") if isinstance(part, str) else part)
    out_dir = CACHE_DIR / f"{spec.name}-{digest.hexdigest()[:16]}"
    if (out_dir / "train.py").is_file():
        return out_dir / "train.py"
    return write_compiled(program, path, out_dir)


def _take_option(args: argparse.Namespace, rest: list[str], flag: str, needs: str) -> list[str]:
    """``rest`` without a ``--flag VALUE`` written after FILE (it is ours: set on ``args``)."""
    name = flag.lstrip("-")
    for index, arg in enumerate(rest):
        if arg.startswith(f"{flag}="):
            setattr(args, name, arg.partition("=")[2])
            return rest[:index] + rest[index + 1:]
        if arg == flag:
            if index + 1 == len(rest):
                raise CompileError(f"{flag} needs {needs}")
            setattr(args, name, rest[index + 1])
            return rest[:index] + rest[index + 2:]
    return rest


def _take_options(args: argparse.Namespace) -> list[str]:
    """The program's arguments, without ``--network``, ``--store``, ``--resume`` and ``--fork`` (ours)."""
    rest = _take_option(args, list(args.overrides), "--network", "the name of a network of the file")
    rest = _take_option(args, rest, "--store", "a store: a folder or a PostgreSQL URL")
    rest = _take_option(args, rest, "--resume", "a run: its id, id prefix or name")
    return _take_option(args, rest, "--fork", "a run: RUN or RUN@EPOCH")


def _continuing(args: argparse.Namespace, extra: list[str], optuna: bool) -> list[str]:
    """``extra`` with the ``tracking.resume`` / ``tracking.fork`` setting of ``--resume`` or
    ``--fork``; a CompileError when they cannot apply."""
    given = [flag for flag in ("resume", "fork") if getattr(args, flag, None) is not None]
    if not given:
        return extra
    if len(given) > 1:
        raise CompileError("--resume and --fork cannot be used together: resume continues a run, "
                           "fork starts a new one from it")
    flag = given[0]
    if optuna or args.multirun or "--multirun" in extra or "-m" in extra or args.skip_if_done \
            or SKIP_IF_DONE in extra:
        raise CompileError(f"--{flag} continues one run: it does not apply to --sweep, --multirun "
                           f"or {SKIP_IF_DONE}")
    return [*extra, _tracking_setting(args, flag)]


def _tracking_setting(args: argparse.Namespace, flag: str) -> str:
    """The override ``tracking.<flag>='<value>'`` that the option ``--<flag>`` stands for; a
    CompileError when the network has no tracking block to take it."""
    _, spec = _load(args.file, args.network)
    if "tracking" not in spec.plugins:
        raise CompileError(f"--{flag}: network {spec.name} has no tracking block, so its runs and "
                           "checkpoints are not recorded")
    quoted = "'" + getattr(args, flag).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"tracking.{flag}={quoted}"


def run_run(args: argparse.Namespace) -> int:
    extra = _take_options(args)
    optuna = args.sweep or "--sweep" in extra
    extra = _continuing(args, extra, optuna)
    if args.store is not None:
        extra.append(_tracking_setting(args, "store"))
    if args.skip_if_done or SKIP_IF_DONE in extra:
        from neural_dsl_tracking.compiler.summary import SKIP_IF_DONE_ENV

        if optuna:
            raise CompileError(f"{SKIP_IF_DONE} does not apply to --sweep: a skipped trial would have no "
                               "value for the search (use it with a --multirun sweep, or alone)")
        extra = [arg for arg in extra if arg != SKIP_IF_DONE]
        os.environ[SKIP_IF_DONE_ENV] = "1"  # the program (each job of a --multirun sweep) checks its store
    train_py = compile_cached(args.file, args.network)
    if optuna:
        from neural_dsl_tracking.plugins.sweep.cli import sweep

        return sweep(train_py, [arg for arg in extra if arg != "--sweep"], source=args.file, network=args.network)
    if args.multirun and "--multirun" not in extra and "-m" not in extra:
        extra.insert(0, "--multirun")
    print(f"running {train_py}", file=sys.stderr, flush=True)
    return run_forwarding([sys.executable, str(train_py), *extra])
