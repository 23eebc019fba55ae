"""The generated ``conf/config.yaml``: every setting of the network, ready for Hydra.

Sections: ``seed``, ``loss``, ``model`` (layer sizes and rates), ``optimizer``,
``schedule``, ``train``, ``execution``, ``data`` (a config group), one section per plugin
block the network declares (``tracking``, ``sweep``: the block's validated settings, under
the plugin's keyword; a plugin's presets are a config group), and ``hpo`` (search spaces
of the HPO expressions, whose defaults the other sections hold).
"""

from __future__ import annotations

import math
from typing import Any


from neural_dsl_tracking.compiler.hpo import hpo_default, hpo_space, is_hpo
from neural_dsl_tracking.compiler.locate import Locator
from neural_dsl_tracking.compiler.losses import LossPlan
from neural_dsl_tracking.compiler.model_emitter import ModelCode
from neural_dsl_tracking.compiler.optimizers import (
    OPTIMIZERS,
    canonical_optimizer,
    split_call_text,
    torch_param_name,
)
from neural_dsl_tracking.errors import CompileError
from neural_dsl_tracking.language.spec import ModelSpec, SourcePos

DEFAULT_SEED = 42
DIGITS_SHAPES = ((8, 8, 1), (8, 8), (64,), (1, 8, 8))
DIGITS_CLASSES = 10
"""The ``digits`` data source: the input shapes it fills, and its classes."""

TRAIN_KEYS = ("epochs", "batch_size", "validation_split")


class _Settings:
    """Collects values and the HPO spaces found on the way."""

    def __init__(self, locator: Locator, pos: SourcePos | None) -> None:
        self.locator, self.pos = locator, pos  # messages about the settings point at the network
        self.hpo: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []

    def value(self, path: str, raw: Any) -> Any:
        if is_hpo(raw):
            self.hpo[path] = hpo_space(raw)
            return hpo_default(raw)
        if isinstance(raw, (dict, list)) or raw is None or isinstance(raw, (bool, int, float, str)):
            return raw
        raise self.locator.error(self.pos, f"{path} cannot be {raw!r} here")


def build_config(spec: ModelSpec, model: ModelCode, loss: LossPlan,
                 locator: Locator) -> tuple[dict[str, Any], list[str]]:
    """The config dict for ``spec`` and the compile warnings it raised; messages point into
    ``locator``'s source."""
    settings = _Settings(locator, spec.pos)
    where = locator.at(spec.pos)
    optimizer, schedule = _optimizer(spec, settings)
    train = {key: settings.value(f"train.{key}", getattr(spec.train, key)) for key in TRAIN_KEYS}
    _check_train(train, settings)
    for key in spec.train.extra:
        settings.warnings.append(f"{where}: train setting {key!r} is not used by the PyTorch program")
    threads = settings.value("execution.threads", spec.execution.extra.get("threads"))
    for key in spec.execution.extra:
        if key == "threads":
            continue
        settings.warnings.append(f"{where}: execution setting {key!r} is not used by the PyTorch program")
    defaults: list[Any] = ["_self_", {"data": default_data(model)}, *_plugin_groups(spec)]
    defaults += [
        {"override hydra/output": "neural"},
        {"override hydra/job_logging": "disabled"},
        {"override hydra/hydra_logging": "disabled"},
    ]
    config: dict[str, Any] = {
        "defaults": defaults,
        "seed": DEFAULT_SEED,
        "loss": loss.name,
        "model": model.hyperparameters,
        "optimizer": optimizer,
        "schedule": schedule,
        "train": {**train, "shuffle": True},
        "execution": {"device": _device(spec.execution.device, settings), "threads": threads},
    }
    config.update({keyword: block.model_dump(mode="json") for keyword, block in spec.plugins.items()})
    hpo_space_all = {**model.hpo, **settings.hpo, **_repeat_spaces(spec, locator.name)}
    config["hpo"] = {"search_method": spec.train.search_method, "space": hpo_space_all}
    config["hydra"] = {"output_subdir": None}
    return config, settings.warnings


def _plugin_groups(spec: ModelSpec) -> list[dict[str, None]]:
    """The config groups of the network's plugin blocks that have presets, none chosen
    (``tracking=mlflow`` on the command line chooses one)."""
    from neural_dsl_tracking.plugins import discover_plugins

    plugins = discover_plugins()
    return [{keyword: None} for keyword in spec.plugins
            if keyword in plugins and plugins[keyword].config_group is not None]


def default_data(model: ModelCode) -> str:
    """``digits`` when the network takes 8x8 images into its 10 classes, else ``synthetic``."""
    fits_digits = (
        not model.input_is_tokens
        and model.input_shape in DIGITS_SHAPES
        and len(model.output_shape) == 1
        and model.output_shape[0] == DIGITS_CLASSES
    )
    return "digits" if fits_digits else "synthetic"


def _device(device: str, settings: _Settings) -> str:
    value = device.strip().lower()
    if value.startswith("tpu"):
        raise settings.locator.unsupported(settings.pos, f"execution device {device!r}: the PyTorch program runs on "
                                           "cpu, cuda, cuda:N or mps, not on a TPU; write device: \"auto\" (or leave "
                                           "it out)")
    return "cuda" if value == "gpu" else value


def _repeat_spaces(spec: ModelSpec, source_name: str) -> dict[str, dict[str, Any]]:
    """``X * HPO(choice(6, 12))``: the repeat count's space, keyed ``repeat.<file>:<line>:<column>``.
    The program is built with the default count; another count is another network, so
    these entries have no sweep expression (edit the count and compile again)."""
    spaces: dict[str, dict[str, Any]] = {}
    pending = list(spec.layers)
    while pending:
        layer = pending.pop(0)
        pending.extend(layer.children)
        if layer.repeat is not None and layer.pos is not None:
            space = {k: v for k, v in hpo_space(layer.repeat).items() if k != "sweep"}
            spaces[f"repeat.{layer.pos.at(source_name)}"] = {**space, "layer": layer.type}
    return spaces


def _check_train(train: dict[str, Any], settings: _Settings) -> None:
    for key in ("epochs", "batch_size"):
        value = train[key]
        if isinstance(value, float) and value.is_integer():
            train[key] = value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise settings.locator.error(settings.pos, f"train.{key} must be a positive integer, got {value!r}")
    split = train["validation_split"]
    if isinstance(split, bool) or not isinstance(split, (int, float)) or not 0 <= split < 1:
        raise settings.locator.error(settings.pos, f"train.validation_split must be from 0 to below 1, got {split!r}")


def _optimizer(spec: ModelSpec, settings: _Settings) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The optimizer section (and the schedule); errors point at the ``optimizer:`` entry."""
    written_at = spec.optimizer.pos if spec.optimizer and spec.optimizer.pos else settings.pos

    def error(message: str) -> CompileError:
        return settings.locator.error(written_at, message)

    written = spec.optimizer.type if spec.optimizer else "Adam"
    params = dict(spec.optimizer.params) if spec.optimizer else {}
    parsed = split_call_text(written) if "(" in written else None
    if parsed is not None:
        written, text_params = parsed
        params = {**text_params, **params}
    name = canonical_optimizer(written)
    if name is None:
        raise error(f"optimizer {written!r} is not supported; supported optimizers: " + ", ".join(OPTIMIZERS))
    section: dict[str, Any] = {"name": name, **OPTIMIZERS[name][1]}
    for keras_name, raw in params.items():
        if keras_name in ("beta_1", "beta_2") and "betas" in section:
            if is_hpo(raw):
                raise error(f"{keras_name} cannot be an HPO(...) expression")
            betas = list(section["betas"])
            betas[0 if keras_name == "beta_1" else 1] = raw
            section["betas"] = betas
            continue
        key = torch_param_name(name, keras_name)
        if key is None:
            raise error(f"optimizer {name} has no parameter {keras_name!r}; it takes "
                        + ", ".join(["learning_rate", *(k for k in OPTIMIZERS[name][1] if k != "lr")]))
        section[key] = settings.value(f"optimizer.{key}", raw)
    schedule = None
    if spec.optimizer and spec.optimizer.schedule:
        sched = spec.optimizer.schedule
        section["lr"] = settings.value("optimizer.lr", sched.initial_learning_rate)
        schedule = {
            "name": sched.type,
            "decay_steps": settings.value("schedule.decay_steps", sched.decay_steps),
            "decay_rate": settings.value("schedule.decay_rate", sched.decay_rate),
            "staircase": sched.staircase,
        }
    lr = section["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0 or not math.isfinite(lr):
        raise error(f"the learning rate must be a positive number, got {lr!r}")
    section["lr"] = float(lr)
    return section, schedule


def _escape_interpolation(value: Any) -> Any:
    """Strings from the DSL must not trigger OmegaConf interpolation (``${...}``)."""
    if isinstance(value, str):
        return value.replace("${", "\\${")
    if isinstance(value, list):
        return [_escape_interpolation(item) for item in value]
    if isinstance(value, dict):
        return {key: _escape_interpolation(item) for key, item in value.items()}
    return value


def config_yaml(config: dict[str, Any], header: str) -> str:
    """The YAML text of the config, DSL strings escaped for OmegaConf, with a header comment."""
    import yaml  # only when a program is written: neural check does not need it

    body = dict(config)
    defaults = body.pop("defaults")
    hydra = body.pop("hydra")
    text = yaml.safe_dump({"defaults": defaults}, sort_keys=False, default_flow_style=False)
    text += yaml.safe_dump(_escape_interpolation(body), sort_keys=False, default_flow_style=False,
                           allow_unicode=True, width=100)
    text += yaml.safe_dump({"hydra": hydra}, sort_keys=False)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + text
