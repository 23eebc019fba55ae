"""Support code imported by generated ``train.py`` programs.

The program itself holds the model and the training loop (where the plugin hooks sit);
this module holds what every program shares: starting Hydra with the package's config
groups, checking overrides and the composed config before training, devices, seeds,
optimizers, schedules, losses and batching.
"""

from __future__ import annotations

import difflib
import math
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from neural_dsl_tracking.dotted import flatten  # noqa: F401 - generated programs call runtime.flatten
from neural_dsl_tracking.compiler import masking  # noqa: F401 - generated models call runtime.masking
from neural_dsl_tracking.compiler import signals
from neural_dsl_tracking.compiler.data import NetworkIO, Splits, check_arrays, load_data
from neural_dsl_tracking.compiler.losses import has_accuracy
from neural_dsl_tracking.compiler.runconfig import validate_run_config
from neural_dsl_tracking.errors import ConfigError, NeuralError
from neural_dsl_tracking.humanize import file_size, shows_progress
from neural_dsl_tracking.limits import MAX_INT64, machine_memory
from neural_dsl_tracking.resources import configs_dir

BYTES_PER_PARAMETER = 16
"""float32 weights, their gradients and two optimizer moments (Adam's) per parameter."""
HYDRA_FLAGS_WITH_VALUE = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
                          "--experimental-rerun", "--info", "-i", "--package", "-p", "--cfg", "-c"}
_work_folders: set[Path] = set()  # made by work_folder() and not removed yet


# ---------------------------------------------------------------- launching


def launch(main: Callable[[], None], conf_dir: Path, check: Callable[[Any], Any] | None = None) -> None:
    """Run a ``@hydra.main`` program: config groups on the search path, overrides checked first.

    ``check`` validates one composed config (the program's ``settings``); before a
    ``--multirun`` sweep starts, every job's config goes through it, so a bad value stops
    the sweep before anything trains. User mistakes (bad overrides, invalid settings, data
    that does not fit) print one ``error:`` line block and exit 1 without a traceback.
    Ctrl-C and SIGTERM stop the program alike (see ``signals``): the run is closed
    ``interrupted``, the ``finally`` blocks run, the work folders are removed; then Ctrl-C
    prints ``interrupted`` and exits 130, SIGTERM prints ``terminated`` and ends the process
    by SIGTERM (exit status 143). Warnings print as ``warning: message`` lines, like the
    compiler's.
    """
    warnings.formatwarning = _format_warning
    stopped = ""
    try:
        try:
            signals.handle_stop_signals()
            _start(main, conf_dir, check)
        finally:
            signals.ignore_stop_signals()
    except signals.Terminated:  # the first stop raises, wherever it lands, even in the finally above
        stopped = "terminated"
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        _remove_work_folders()
    if stopped:
        print(stopped, file=sys.stderr)
    if stopped == "terminated":
        signals.end_by_signal(signal.SIGTERM)
    if stopped == "interrupted":
        sys.exit(130)


def _start(main: Callable[[], None], conf_dir: Path, check: Callable[[Any], Any] | None) -> None:
    """Check the arguments and run ``main`` (Hydra flags first); a user mistake exits with its message."""
    search = "hydra.searchpath=[" + ",".join(d.resolve().as_uri() for d in config_search_dirs()) + "]"
    flags, overrides = _split_arguments(sys.argv[1:])
    if not any(arg.startswith("hydra.searchpath") for arg in overrides):
        overrides.append(search)
    sys.argv[1:] = [*flags, *overrides]  # Hydra wants its flags before the overrides
    try:
        multirun = "--multirun" in flags or "-m" in flags or "hydra.mode=MULTIRUN" in overrides
        preflight(conf_dir, overrides, search, multirun=multirun, check=check)
        main()
    except NeuralError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)


@contextmanager
def work_folder() -> Iterator[Path]:
    """A new private folder in the temporary directory (``neural-run-*``) for a run's files,
    removed with what it holds when the block ends, however it ends.

    Its name is noted before the folder exists, so a Ctrl-C or SIGTERM landing before the
    block is entered (or in the removal) cannot leave it behind: :func:`launch` removes it.
    """
    path = Path(tempfile.gettempdir()) / f"neural-run-{secrets.token_hex(8)}"
    _work_folders.add(path)
    try:
        path.mkdir(mode=0o700)
    except OSError:  # not created (the name taken, a read-only TMPDIR): not ours to remove
        _work_folders.discard(path)
        raise
    try:
        yield path
    finally:
        _remove_work_folder(path)


def _remove_work_folder(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    _work_folders.discard(path)


def _remove_work_folders() -> None:
    """Remove the work folders whose block a signal cut short."""
    for path in list(_work_folders):
        _remove_work_folder(path)


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    """``warning: message``, without the file, line number and source line of whoever warned."""
    return f"warning: {message}\n"


def _split_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra flags with their values, overrides), in their original order."""
    flags: list[str] = []
    overrides: list[str] = []
    expecting_value = False
    for arg in argv:
        if expecting_value:
            flags.append(arg)
            expecting_value = False
        elif arg.startswith("-"):
            flags.append(arg)
            expecting_value = arg in HYDRA_FLAGS_WITH_VALUE
        else:
            overrides.append(arg)
    return flags, overrides


def preflight(conf_dir: Path, overrides: list[str], search: str, multirun: bool = False,
              check: Callable[[Any], Any] | None = None) -> None:
    """Compose and ``check`` the config of every job and report problems clearly.

    Without ``multirun`` that is one job; with it, every combination of the swept values,
    as Hydra's basic sweeper will run them. Each override must name a setting the config has
    (or add one with ``+``); Hydra refuses a job with one that does not, and only then is the
    config composed with the group overrides alone, to say which key is wrong and what is
    there: a job that composes is composed once.
    """
    from hydra import initialize_config_dir

    parsed = _parse_overrides(overrides)
    settings = [o for o in parsed if not (o.key_or_group == "hydra" or o.key_or_group.startswith("hydra."))]
    jobs = _sweep_jobs(settings) if multirun else [_single_job(settings)]
    with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
        swept = {o.get_key_element() for o in settings if o.is_sweep_override()}
        for number, job in enumerate(jobs, 1):
            values = " ".join(line for line in job if line.partition("=")[0] in swept)
            where = f"sweep job {number} of {len(jobs)} ({values}): " if len(jobs) > 1 else ""
            _check_job(job, number - 1, search, check, where, settings if number == 1 else [])


def _check_keys(settings: list[Any], search: str) -> None:
    """Each override (not adding) names a key of the config composed with the group overrides
    alone, or a group; else a ConfigError naming it and what exists there."""
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    groups = [_first_value(o) for o in settings if _is_group(o.key_or_group)]
    try:
        base = compose(config_name="config", overrides=[search, *groups])
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(_first_line(error)) from None
    except ValueError as error:  # e.g. data=3: Hydra wants a group option's name
        raise ConfigError(f"{' '.join(groups)}: {_first_line(error)}") from None
    known = OmegaConf.to_container(base, resolve=False)
    for override in settings:
        if not (override.is_add() or override.is_force_add()):
            _check_key(override.key_or_group, known, override.is_delete())


def _check_job(job: list[str], num: int, search: str, check: Callable[[Any], Any] | None, where: str,
               settings: list[Any]) -> None:
    """Compose job ``num`` from its overrides and ``check`` it; a problem is a ConfigError
    starting ``where``, or, when it does not compose because one of ``settings`` (the parsed
    overrides) names a key or group the config does not have, the ConfigError saying so."""
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        config = compose(config_name="config", overrides=[search, *job], return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        if settings:
            _check_keys(settings, search)
        raise ConfigError(where + _first_line(error)) from None
    try:
        if check is not None:
            check(_job_config(config, num))
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        raise ConfigError(where + _first_line(error)) from None
    except ConfigError as error:
        raise ConfigError(where + str(error)) from None


def _job_config(config: Any, num: int) -> Any:
    """A composed config as job ``num`` sees it: ``${hydra:...}`` resolves, the hydra node is hidden."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    with open_dict(config):
        config.hydra.job.num = num
    HydraConfig.instance().set_config(config)
    return OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])


def _parse_overrides(overrides: list[str]) -> list[Any]:
    """Hydra's reading of the overrides; one that cannot be read is a ConfigError naming it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for line in overrides:
        try:
            parsed += parser.parse_overrides([line])
        except HydraException as error:
            raise ConfigError(f"cannot read the overrides: {_first_line(error)}") from None
        except ValueError:  # Python's limit on converting an integer of over 4300 digits
            raise ConfigError(f"cannot read the override {line.partition('=')[0]}=...: integers are "
                              f"up to 64 bits (at most {MAX_INT64})") from None
    return parsed


def _single_job(settings: list[Any]) -> list[str]:
    """The overrides of a run without --multirun, where several values are a mistake."""
    for override in settings:
        if override.is_sweep_override():
            raise ConfigError(f"{override.input_line}: several values make a sweep, which needs --multirun; "
                              f"write a list as {override.get_key_element()}=[a,b] or a string as "
                              f"{override.get_key_element()}='a,b'")
    return [override.input_line for override in settings]


def _sweep_jobs(settings: list[Any]) -> list[list[str]]:
    """The overrides of each job of a --multirun sweep, split as Hydra's basic sweeper splits them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.errors import HydraException

    try:
        (jobs,) = BasicSweeper.split_arguments(settings, None)
    except HydraException as error:
        raise ConfigError(_first_line(error)) from None
    return jobs


def _first_value(override: Any) -> str:
    """An override as a single-value line (a sweep contributes its first value)."""
    if override.is_sweep_override():
        return f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}"
    return override.input_line


def _check_key(key: str, known: Any, deleting: bool) -> None:
    """An override of a key the config does not have: name it and what exists there."""
    if not key:
        raise ConfigError("an override needs a key before '=' (e.g. optimizer.lr=0.01)")
    parts = key.split(".")
    node = known
    for depth, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
            continue
        if depth == 0 and _is_group(part):
            return
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {'.'.join(parts[:depth])} is a value, not a section")
        allowed = sorted(str(k) for k in node)
        hint = difflib.get_close_matches(part, allowed, n=1)
        where = ".".join(parts[:depth]) or "the top level"
        message = f"unknown setting {key!r}"
        if hint:
            message += f" (did you mean {'.'.join([*parts[:depth], hint[0]])!r}?)"
        message += f"; settings in {where}: {', '.join(allowed)}"
        if not deleting:
            message += f". To add a new key on purpose use +{key}=..."
        raise ConfigError(message)


def config_search_dirs() -> list[Path]:
    """Hydra's search path: the package's ``configs/`` and the folders holding the config
    groups of installed plugins that ship their presets elsewhere."""
    from neural_dsl_tracking.plugins import discover_plugins

    dirs = [configs_dir()]
    for plugin in discover_plugins().values():
        group = plugin.config_group_dir()
        if group is not None and group.parent not in dirs:
            dirs.append(group.parent)
    return dirs


def _is_group(name: str) -> bool:
    return bool(name) and any((folder / name).is_dir() for folder in config_search_dirs())


def _first_line(error: BaseException) -> str:
    text = str(error).split("Config search path")[0].strip()
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__


# ---------------------------------------------------------------- configuration


def load_config(cfg: Any, kinds: dict[str, dict[str, str]], loss_family: str,
                plugin_sections: tuple[str, ...]) -> tuple[Any, dict]:
    """The validated run config and the composed config as plain data."""
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    try:
        composed = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as error:
        raise ConfigError(f"{error.full_key} is not set; give it on the command line: {error.full_key}=...") from None
    except OmegaConfBaseException as error:
        raise ConfigError(_first_line(error)) from None
    return validate_run_config(composed, kinds, loss_family, tuple(plugin_sections)), composed


def hyperparameters(section: Any) -> SimpleNamespace:
    """The ``model:`` section as attributes: ``hp.dense_1.units``."""
    data = section.model_dump() if hasattr(section, "model_dump") else dict(section)
    return SimpleNamespace(**{name: SimpleNamespace(**params) for name, params in data.items()})


# ---------------------------------------------------------------- environment


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; returns the generator used for shuffling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def training_state(epoch: int, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                   scheduler: Any, generator: torch.Generator) -> dict[str, Any]:
    """Everything training continues from after ``epoch`` (``step`` batches in all): the
    model, optimizer and scheduler states and the random number generators' states (Python,
    NumPy, PyTorch's CPU and CUDA ones, the shuffling generator), as tensors and plain data
    only, so ``torch.load(..., weights_only=True)`` reads it back."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    rng = {"python": _plain(random.getstate()),
           "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
           "torch": torch.get_rng_state(), "generator": generator.get_state(),
           "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    return {"epoch": epoch, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(), "rng": rng}


def _plain(value: Any) -> Any:
    """Tuples as lists, all the way down (what a weights-only load reads back)."""
    return [_plain(item) for item in value] if isinstance(value, (tuple, list)) else value


def _tuples(value: Any) -> Any:
    """Lists as tuples, all the way down (Python's random state, from its saved form)."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


def state_mismatch(model: nn.Module, state: dict[str, Any]) -> str | None:
    """What stops ``state`` (a :func:`training_state`) from loading into ``model``, naming the
    first layer that differs; None when it fits."""
    saved, here = state["model"], model.state_dict()
    for key in [*here, *(key for key in saved if key not in here)]:
        layer, _, tensor = key.rpartition(".")
        if key not in saved:
            return f"layer {layer} has a {tensor} here that the checkpoint does not have"
        if key not in here:
            return f"layer {layer} has a {tensor} in the checkpoint that the network here does not have"
        if tuple(saved[key].shape) != tuple(here[key].shape):
            return (f"layer {layer}: its {tensor} is {tuple(saved[key].shape)} in the checkpoint and "
                    f"{tuple(here[key].shape)} here")
    return None


def restore_training(state: dict[str, Any] | None, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, generator: torch.Generator) -> tuple[int, int]:
    """Load a :func:`training_state` (None: start afresh); returns the first epoch to train
    and the number of batches trained so far."""
    if state is None:
        return 1, 0
    model.load_state_dict(state["model"])
    _load_optimizer(optimizer, scheduler, state)
    rng = state["rng"]
    random.setstate(_tuples(rng["python"]))
    kind, keys, position, has_gauss, gauss = rng["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(state["epoch"]) + 1, int(state["step"])


def _load_optimizer(optimizer: torch.optim.Optimizer, scheduler: Any, state: dict[str, Any]) -> None:
    """The saved optimizer and schedule states (moments, counters), under this run's settings
    (learning rate, betas...: a fork may change them), the schedule's factor applied."""
    configured = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(state["optimizer"])
    for group, settings in zip(optimizer.param_groups, configured):
        group.update(settings)
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
        scheduler.base_lrs = [settings.get("initial_lr", settings["lr"]) for settings in configured]
        for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = base * factor(scheduler.last_epoch)


def command_line_keys() -> list[str]:
    """The keys (or config groups) this Hydra job's command line set, deleted or added, in
    order; the ``hydra`` ones left out."""
    from hydra.core.hydra_config import HydraConfig

    keys = [o.key_or_group for o in _parse_overrides(list(HydraConfig.get().overrides.task))]
    return [key for key in keys if key != "hydra" and not key.startswith("hydra.")]


def select_device(name: str, threads: int | None = None) -> torch.device:
    """``auto`` picks CUDA when present; asking for an absent accelerator is an error.

    ``threads`` caps PyTorch's CPU threads (small models on a busy machine run far faster
    on one thread than on oversubscribed cores).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"execution.device={name} but CUDA is not available here; "
                          "use execution.device=auto or execution.device=cpu")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("execution.device=mps but MPS is not available; use execution.device=auto")
    return torch.device(name)


# ---------------------------------------------------------------- model and data


def build(model_class: type[nn.Module], section: Any) -> nn.Module:
    """Instantiate the network with the configured sizes; a size PyTorch rejects, or one too
    large to train in this machine's memory, is a ConfigError."""
    _check_fits_memory(model_class, section)
    try:
        return model_class(hyperparameters(section))
    except (ValueError, RuntimeError, AssertionError, TypeError) as error:
        raise ConfigError(f"model: the network cannot be built with these settings: {_torch_message(error)}") from None


def _check_fits_memory(model_class: type[nn.Module], section: Any) -> None:
    """The parameters, counted on the meta device (nothing allocated), must fit in memory to train."""
    try:
        with torch.device("meta"):
            parameters = sum(p.numel() for p in model_class(hyperparameters(section)).parameters())
    except (ValueError, RuntimeError, AssertionError, TypeError, NotImplementedError):
        return  # building it for real reports the problem
    needed, memory = parameters * BYTES_PER_PARAMETER, machine_memory()
    if needed > memory:
        raise ConfigError(f"model: the network would have {parameters:,} parameters, about {file_size(needed)} "
                          f"to train (weights, gradients, optimizer state), more than this machine's "
                          f"{file_size(memory)} of memory; lower the sizes in the model section")


def _torch_message(error: BaseException) -> str:
    """The first line of a PyTorch error (C++ errors append a stack of native frames)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def prepare_data(config: Any, model: nn.Module, tokens: int | None, loss_family: str,
                 launch_dir: Path) -> Splits:
    """Load the configured data and check it against the network before training."""
    probe_shape = tuple(config.data.length if d is None else d for d in model.input_shape)
    probe = (torch.zeros((2, *probe_shape), dtype=torch.long) if tokens is not None
             else torch.zeros((2, *probe_shape)))
    model.eval()
    try:
        with torch.no_grad():
            output_shape = tuple(model(probe).shape[1:])
    except RuntimeError as error:
        raise ConfigError(f"model: the network does not run with these settings: {_torch_message(error)}") from None
    io = NetworkIO(tuple(model.input_shape), output_shape, tokens, loss_family)
    splits = load_data(config.data, io, config.train.validation_split, config.seed, launch_dir)
    splits = check_arrays(splits, io)
    _probe(model, Objective(config.loss, loss_family), splits)
    return splits


def _probe(model: nn.Module, objective: Objective, splits: Splits) -> None:
    """Two samples of each set through the network and the loss: data that does not fit is a ConfigError."""
    x_train, y_train, x_val, y_val = to_tensors(splits, torch.device("cpu"))
    for name, x, y in (("training", x_train, y_train), ("validation", x_val, y_val)):
        if not len(x):
            continue
        try:
            with torch.no_grad():
                output = model(x[:2])
                objective(output, y[:2])
                objective.correct(output, y[:2])
        except (RuntimeError, ValueError, IndexError) as error:
            raise ConfigError(f"the {name} data does not fit the network (inputs {tuple(x.shape[1:])}, "
                              f"labels {tuple(y.shape[1:])} per sample): {_torch_message(error)}") from None


def to_tensors(splits: Splits, device: torch.device) -> tuple[torch.Tensor, ...]:
    def tensor(array: np.ndarray) -> torch.Tensor:
        dtype = torch.long if np.issubdtype(array.dtype, np.integer) else torch.float32
        return torch.as_tensor(array, dtype=dtype, device=device)

    return tuple(tensor(a) for a in (splits.x_train, splits.y_train, splits.x_val, splits.y_val))


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool,
            generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of in-memory tensors (reshuffled each call when ``shuffle``)."""
    n = len(x)
    order = torch.randperm(n, generator=generator).to(x.device) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            yield x[start:start + batch_size], y[start:start + batch_size]
        else:
            index = order[start:start + batch_size]
            yield x[index], y[index]


# ---------------------------------------------------------------- optimisation


def build_optimizer(model: nn.Module, section: Any) -> torch.optim.Optimizer:
    from neural_dsl_tracking.compiler.optimizers import OPTIMIZERS

    cls = getattr(torch.optim, OPTIMIZERS[section.name][0])
    try:
        return cls(model.parameters(), **section.arguments())
    except (ValueError, TypeError) as error:
        raise ConfigError(f"optimizer: {_torch_message(error)}") from None


def build_scheduler(optimizer: torch.optim.Optimizer, section: Any) -> Any:
    """Keras' ExponentialDecay: ``lr * decay_rate ** (step / decay_steps)``, per batch."""
    if section is None:
        return None
    rate, steps, staircase = section.decay_rate, section.decay_steps, section.staircase

    def factor(step: int) -> float:
        exponent = step // steps if staircase else step / steps
        return rate ** exponent

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Objective:
    """The loss on the network's outputs and, for classification, correct predictions."""

    def __init__(self, loss: str, family: str) -> None:
        self.family = family
        if family == "cross_entropy":
            self.function: nn.Module = nn.CrossEntropyLoss()
        elif family == "binary":
            self.function = nn.BCEWithLogitsLoss()
        else:
            self.function = {"mean_squared_error": nn.MSELoss(), "mean_absolute_error": nn.L1Loss(),
                             "huber": nn.HuberLoss()}[loss]

    @property
    def has_accuracy(self) -> bool:
        return has_accuracy(self.family)

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.family == "cross_entropy":
            if output.dim() > 2:
                output = output.movedim(-1, 1)
                if target.dtype != torch.long:
                    target = target.movedim(-1, 1)
            return self.function(output, target)
        return self.function(output, target.reshape(output.shape).to(output.dtype))

    def correct(self, output: torch.Tensor, target: torch.Tensor) -> tuple[int, int]:
        """(correct predictions, predictions) in a batch."""
        if self.family == "cross_entropy":
            labels = target if target.dtype == torch.long else target.argmax(-1)
            hits = output.argmax(-1) == labels
        else:
            hits = (output > 0) == (target.reshape(output.shape) > 0.5)
        return int(hits.sum()), hits.numel()


def evaluate(model: nn.Module, objective: Objective, x: torch.Tensor, y: torch.Tensor,
             batch_size: int) -> dict[str, float]:
    """Mean loss (and accuracy) over a dataset, without gradients."""
    if len(x) == 0:
        return {}
    model.eval()
    total_loss, hits, count = 0.0, 0, 0
    with torch.no_grad():
        for xb, yb in batches(x, y, batch_size, shuffle=False):
            output = model(xb)
            total_loss += float(objective(output, yb)) * len(xb)
            if objective.has_accuracy:
                h, n = objective.correct(output, yb)
                hits, count = hits + h, count + n
    metrics = {"loss": total_loss / len(x)}
    if objective.has_accuracy:
        metrics["accuracy"] = hits / max(count, 1)
    return metrics


def epoch_line(epoch: int, epochs: int, metrics: dict[str, float]) -> str:
    """One progress line per epoch: losses, accuracies, learning rate, throughput."""
    parts = [f"epoch {epoch}/{epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in metrics:
            parts.append(f"{key} {metrics[key]:.4f}")
    parts.append(f"lr {metrics['lr']:.3g}")
    parts.append(f"{metrics['samples_per_s']:.0f} samples/s")
    parts.append(f"{metrics['epoch_time']:.2f} s")
    return "  ".join(parts)


def fail(error: NeuralError) -> None:
    """Report a user mistake found inside the Hydra task and stop (no traceback)."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


def sinusoidal_encoding(steps: int, features: int) -> torch.Tensor:
    """The fixed positional encoding of "Attention Is All You Need": ``(steps, features)``,
    sines on even features and cosines on odd ones."""
    position = torch.arange(steps, dtype=torch.float32).unsqueeze(1)
    rates = torch.exp(torch.arange(0, features, 2, dtype=torch.float32) * (-math.log(10000.0) / features))
    table = torch.zeros(steps, features)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates[: features // 2])
    return table


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


class EpochProgress:
    """A per-epoch progress bar with running loss, accuracy and samples/s (tqdm, on a terminal).

    Off a terminal (or with NEURAL_NO_PROGRESS set) it only iterates; the program prints one
    summary line per epoch either way.
    """

    def __init__(self, iterable: Any, total: int, description: str) -> None:
        self._bar = None
        if shows_progress():
            from tqdm import tqdm

            self._bar = tqdm(iterable, total=total, desc=description, unit="batch", leave=False,
                             mininterval=0.2)
        self._iterable = iterable if self._bar is None else self._bar
        self._started = time.perf_counter()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable)

    def show(self, loss: float, hits: int, predictions: int, seen: int) -> None:
        """Update the bar's figures (cheap: a no-op without a bar, throttled with one)."""
        if self._bar is None or self._bar.n % 5:
            return
        figures = {"loss": f"{loss:.4f}"}
        if predictions:
            figures["acc"] = f"{hits / predictions:.3f}"
        figures["samples/s"] = f"{seen / max(time.perf_counter() - self._started, 1e-9):.0f}"
        self._bar.set_postfix(figures, refresh=False)


def clock() -> float:
    """Wall-clock seconds."""
    return time.perf_counter()


def cpu_clock() -> float:
    """CPU seconds used by this process (all its threads), whatever else the machine runs."""
    return time.process_time()
