"""Validation of a generated program's composed Hydra config, before any training.

``validate_run_config`` turns the composed config into a :class:`RunConfig` or raises one
:class:`~neural_dsl_tracking.errors.ConfigError` that names every bad key, the value
given and what is allowed. Each plugin's section (``tracking``, ``sweep``) is checked by
the plugin's own spec model, the one that validates its DSL block.
"""

from __future__ import annotations

import difflib
import math
import re
from functools import lru_cache
from typing import Any, Iterator, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo

from neural_dsl_tracking import limits
from neural_dsl_tracking.compiler.losses import LOSS_FAMILIES
from neural_dsl_tracking.compiler.optimizers import OPTIMIZERS
from neural_dsl_tracking.errors import ConfigError
from neural_dsl_tracking.humanize import abridged
from neural_dsl_tracking.plugins import discover_plugins

DEVICE = re.compile(r"(auto|cpu|cuda|cuda:\d+|mps)\Z")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class OptimizerConfig(BaseModel):
    """``optimizer:``: the name and its PyTorch arguments (the name decides which are allowed)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: Literal[tuple(OPTIMIZERS)]  # type: ignore[valid-type]
    lr: float = Field(gt=0)

    @model_validator(mode="after")
    def _known_arguments(self) -> "OptimizerConfig":
        allowed = OPTIMIZERS[self.name][1]
        for key, value in (self.model_extra or {}).items():
            if key not in allowed:
                raise ValueError(f"{self.name} has no argument {key!r}; it takes " + ", ".join(allowed))
            if isinstance(value, bool) is not isinstance(allowed[key], bool):
                raise ValueError(f"{key} must be {'true or false' if isinstance(allowed[key], bool) else 'a number'}")
            if not _finite(value):
                raise ValueError(f"{key} must be a finite number, got {value}")
        return self

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments for the ``torch.optim`` class."""
        extra = dict(self.model_extra or {})
        if "betas" in extra:
            extra["betas"] = tuple(extra["betas"])
        return {"lr": self.lr, **extra}


def _finite(value: Any) -> bool:
    """False for a float (or a list holding one) that is infinite or NaN."""
    if isinstance(value, (list, tuple)):
        return all(_finite(item) for item in value)
    return not isinstance(value, float) or math.isfinite(value)


class ScheduleConfig(_Section):
    """``schedule:``: Keras' ExponentialDecay, stepped once per batch."""

    name: Literal["ExponentialDecay"] = "ExponentialDecay"
    decay_steps: int = limits.SIZE.field()
    decay_rate: float = Field(gt=0)
    staircase: bool = False


class TrainConfig(_Section):
    epochs: int = limits.EPOCHS.field()
    batch_size: int = limits.BATCH_SIZE.field()
    validation_split: float = Field(ge=0, lt=1)
    shuffle: bool = True


class ExecutionConfig(_Section):
    device: str = "auto"
    threads: Optional[int] = limits.THREADS.field(None)
    """CPU threads for PyTorch; None keeps PyTorch's default (one per core)."""

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        value = "cuda" if value.lower() == "gpu" else value.lower()
        if not DEVICE.match(value):
            raise ValueError("must be auto, cpu, cuda, cuda:N, gpu or mps")
        return value

    @field_validator("threads")
    @classmethod
    def _threads(cls, value: int | None) -> int | None:
        cpus = limits.cpu_count()
        if value is not None and value > cpus:
            raise ValueError(f"this machine has {cpus} CPUs; give at most {cpus}, or leave it unset "
                             "for one thread per core")
        return value


class DataConfig(_Section):
    """``data:``: one of the config group's sources."""

    name: Literal["digits", "synthetic", "npz"]
    path: Optional[str] = None
    samples: int = limits.SAMPLES.field(1024)
    length: int = limits.LENGTH.field(16)
    """The size used for dynamic (None) input dimensions by the synthetic source."""
    scale: bool = True

    @model_validator(mode="after")
    def _path_for_npz(self) -> "DataConfig":
        if self.name == "npz" and not self.path:
            raise ValueError("data=npz needs data.path=FILE.npz (arrays x_train, y_train, optional x_val, y_val)")
        return self


def _model_section(kinds: dict[str, dict[str, str]]) -> type[BaseModel]:
    layers = {}
    for layer, params in kinds.items():
        fields = {
            name: (int, limits.SIZE.field()) if kind == "width" else (float, Field(ge=0, lt=1))
            for name, kind in params.items()
        }
        layers[layer] = (create_model(f"Layer_{layer}", __base__=_Section, **fields), ...)
    return create_model("ModelSection", __base__=_Section, **layers)


def _plugin_fields(plugin_sections: tuple[str, ...]) -> dict[str, Any]:
    """A field per installed plugin: its spec model for the sections the program was
    compiled with, None (the section must be absent) for the others."""
    plugins = discover_plugins()
    missing = [keyword for keyword in plugin_sections if keyword not in plugins]
    if missing:
        raise ConfigError(f"{missing[0]}: this program was compiled with the {missing[0]!r} plugin, "
                          "which is not installed (or is disabled by NEURAL_DISABLE_PLUGINS)")
    return {keyword: (Optional[plugin.spec_model] if keyword in plugin_sections else None, None)
            for keyword, plugin in plugins.items()}


def run_config_model(kinds: dict[str, dict[str, str]], loss_family: str,
                     plugin_sections: tuple[str, ...]) -> type[BaseModel]:
    """The pydantic model of one generated program's config (``plugin_sections``: the
    keywords of the plugin blocks its network declares); built once per process for the
    same program and installed plugins (building one costs milliseconds, a sweep validates
    a config per trial)."""
    frozen = tuple((layer, tuple(params.items())) for layer, params in kinds.items())
    installed = tuple((keyword, plugin.spec_model) for keyword, plugin in discover_plugins().items())
    return _built_model(frozen, loss_family, plugin_sections, installed)


@lru_cache(maxsize=16)
def _built_model(kinds: tuple[tuple[str, tuple[tuple[str, str], ...]], ...], loss_family: str,
                 plugin_sections: tuple[str, ...], installed: tuple[tuple[str, Any], ...]) -> type[BaseModel]:
    """:func:`run_config_model` of the frozen ``kinds``; ``installed`` (the plugins' spec
    models) is part of the key only."""
    losses = tuple(name for name, family in LOSS_FAMILIES.items() if family == loss_family)
    return create_model(
        "RunConfig",
        __base__=_Section,
        seed=(int, limits.SEED.field()),
        loss=(Literal[losses], ...),  # type: ignore[valid-type]
        model=(_model_section({layer: dict(params) for layer, params in kinds}), ...),
        optimizer=(OptimizerConfig, ...),
        schedule=(Optional[ScheduleConfig], None),
        train=(TrainConfig, ...),
        execution=(ExecutionConfig, ExecutionConfig()),
        data=(DataConfig, ...),
        hpo=(dict, Field(default_factory=dict)),
        **_plugin_fields(plugin_sections),
    )


def validate_run_config(data: dict[str, Any], kinds: dict[str, dict[str, str]], loss_family: str,
                        plugin_sections: tuple[str, ...]) -> Any:
    """The validated config, or ConfigError naming each bad key and what is allowed."""
    for keyword in discover_plugins():
        if keyword not in plugin_sections and data.get(keyword) is not None:
            raise ConfigError(f"{keyword}: this program was compiled from a network without a {keyword} "
                              f"block; add `{keyword} < ... >` to the .neural file and compile again")
    wide = [f"{key}={abridged(value)}: integers are up to 64 bits (at most {limits.MAX_INT64})"
            for key, value in _wide_integers(data, [])]
    if wide:
        raise ConfigError(_problems(wide))
    model = run_config_model(kinds, loss_family, plugin_sections)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe(error, model, data)) from None


def describe(error: ValidationError, model: type[BaseModel], data: dict[str, Any]) -> str:
    """One message listing every problem as ``key=value: what is wrong / allowed``."""
    lines = []
    for problem in error.errors():
        loc = list(problem["loc"])
        key = _dotted(loc)
        if problem["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            message = "unknown setting"
            if hint:
                message += f" (did you mean {_dotted([*loc[:-1], hint[0]])}?)"
            if allowed:
                message += "; allowed here: " + ", ".join(allowed)
            lines.append(f"{key}: {message}")
            continue
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "less_than_equal":
            why = getattr(_field_at(model, loc), "description", None)
            message += f" ({why})" if why else ""
        if problem["type"] == "missing":
            lines.append(f"{key}: missing")
            continue
        given = problem.get("input")
        shown = key if isinstance(given, dict) else f"{key}={_show(given)}"
        lines.append(f"{shown}: {message}")
    return _problems(lines)


def _problems(lines: list[str]) -> str:
    plural = "s" if len(lines) > 1 else ""
    return f"invalid setting{plural} in the run configuration:\n  " + "\n  ".join(lines)


def _wide_integers(value: Any, loc: list[Any]) -> Iterator[tuple[str, int]]:
    """(dotted key, value) of every integer beyond 64 bits, at any depth (Hydra reads any size)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _wide_integers(item, [*loc, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _wide_integers(item, [*loc, index])
    elif isinstance(value, int) and abs(value) > limits.MAX_INT64:
        yield _dotted(loc), value


def _dotted(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "config"


def _show(value: Any) -> str:
    return abridged(repr(value) if isinstance(value, str) else value)


def _allowed_keys(model: type[BaseModel], loc: list[Any]) -> list[str]:
    if not loc:
        return list(model.model_fields)
    field = _field_at(model, loc)
    return list(getattr(_model_type(field.annotation) if field else None, "model_fields", {}))


def _field_at(model: type[BaseModel], loc: list[Any]) -> FieldInfo | None:
    """The field a validation error's location points at (list indexes skipped), or None."""
    current: Any = model
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return None
        current = _model_type(field.annotation)
    return field


def _model_type(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for inner in getattr(annotation, "__args__", ()) or ():
        found = _model_type(inner)
        if found is not None:
            return found
    return None
