"""The sweep block checked before the first trial, by ``neural check`` and ``neural compile``.

The objective must be a metric the generated program logs after each epoch, the direction
must fit it, and a ``grid`` sampler needs a finite space. (Each ``HPO(...)`` space is
checked whole, every option and both bounds, by the language when the file is read, as
for a single value of that setting.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from neural_dsl_tracking.errors import ConfigError
from neural_dsl_tracking.language.diagnostics import did_you_mean
from neural_dsl_tracking.language.values import dsl_repr
from neural_dsl_tracking.plugins.sweep.spec import SEARCH_METHODS, SweepSpec, direction_of

if TYPE_CHECKING:
    from neural_dsl_tracking.language.spec import ModelSpec, ParamValue, SourcePos
    from neural_dsl_tracking.plugins.base import Problem, ProgramInfo

_BETTER = {"minimize": "lower is better", "maximize": "higher is better"}


def check_sweep(spec: SweepSpec, network: ModelSpec, program: ProgramInfo) -> list[Problem]:
    """Every mistake in the sweep block as (where, what)."""
    problems = _objective(spec, network, program) or _direction(spec, network)
    if spec.sampler == "grid":
        problems += _grid(network)
    problems += _search_method(network)
    if spec.address is not None and spec.launcher != "ray":
        problems.append((_where(network, "sweep", "address"),
                         "address is the Ray cluster's HOST:PORT, used only with launcher: ray"))
    return problems


def check_composed(spec: SweepSpec, loss: str) -> None:
    """The composed config's objective and direction, which overrides may have changed since
    the block was checked: a ConfigError before the first trial when they cannot work."""
    from neural_dsl_tracking.compiler.losses import LOSS_FAMILIES
    from neural_dsl_tracking.compiler.program import epoch_metric_names

    objective = spec.objective or ""
    logged = epoch_metric_names(LOSS_FAMILIES[loss])
    if objective not in logged:
        raise ConfigError(f"sweep.objective={objective}: not a metric the program logs after each epoch "
                          f"(it logs {', '.join(logged)}){did_you_mean(objective, logged)}")
    fitting = direction_of(objective)
    if fitting is not None and spec.direction not in (None, fitting):
        raise ConfigError(f"the sweep's direction {spec.direction} does not fit its objective '{objective}' "
                          f"({_BETTER[fitting]}); give sweep.direction={fitting}")


def _where(network: ModelSpec, keyword: str, key: str) -> SourcePos | None:
    """Where ``key`` of the ``keyword`` block is written, else the sweep block, else the network."""
    for block, name in ((keyword, key), ("sweep", "")):
        found = network.plugin_pos.get(block, {}).get(name)
        if found is not None:
            return found
    return network.pos


def _source(network: ModelSpec, key: str, tracking_key: str) -> tuple[SourcePos | None, str]:
    """Where a sweep setting came from: the sweep block, the tracking block's ``tracking_key``
    (its default), or neither (the built-in default): the position and how to say it."""
    if key in network.plugin_pos.get("sweep", {}):
        return _where(network, "sweep", key), ""
    if tracking_key in network.plugin_pos.get("tracking", {}):
        return _where(network, "tracking", tracking_key), f" (from the tracking block's {tracking_key})"
    return _where(network, "sweep", ""), " (the default)"


def _objective(spec: SweepSpec, network: ModelSpec, program: ProgramInfo) -> list[Problem]:
    objective = spec.objective or ""
    logged = program.epoch_metrics
    if objective in logged:
        return []
    pos, origin = _source(network, "objective", "monitor")
    declared = (f"; '{objective}' is declared in metrics:, but the program computes only "
                f"{', '.join(logged)}" if objective in network.metrics else "")
    return [(pos, f"sweep objective '{objective}'{origin} is not a metric the program logs "
                  f"(it logs {', '.join(logged)}){did_you_mean(objective, logged)}{declared}")]


def _direction(spec: SweepSpec, network: ModelSpec) -> list[Problem]:
    objective = spec.objective or ""
    fitting = direction_of(objective)
    if spec.direction is None:
        return [(_where(network, "sweep", ""), f"cannot tell whether the objective '{objective}' is better "
                 "lower or higher; write direction: minimize or direction: maximize")]
    if fitting is None or fitting == spec.direction:
        return []
    pos, origin = _source(network, "direction", "mode")
    return [(pos, f"direction {spec.direction}{origin} does not fit the objective '{objective}' "
                  f"({_BETTER[fitting]}); write direction: {fitting}")]


def _search_method(network: ModelSpec) -> list[Problem]:
    """An unknown ``train { search_method }``, with the one meant (``"tpe"``: ``"bayesian"``)."""
    method = network.train.search_method
    if method is None or method.lower() in SEARCH_METHODS:
        return []
    meant = {sampler: name for name, sampler in SEARCH_METHODS.items()}.get(method.lower())
    hint = f"; did you mean '{meant}'?" if meant else did_you_mean(method, SEARCH_METHODS)
    return [(_where(network, "sweep", ""), f"train search_method {method!r} is not a way the sweep "
                                            f"searches{hint} (known: {', '.join(SEARCH_METHODS)})")]


def _grid(network: ModelSpec) -> list[Problem]:
    """A continuous space (range without a step over floats, log_range) has no grid."""
    from neural_dsl_tracking.compiler.hpo import hpo_space
    from neural_dsl_tracking.plugins.sweep.space import grid

    problems: list[Problem] = []
    for pos, what, value in _spaces(network):
        try:
            grid({what: hpo_space(value)})
        except ConfigError:
            problems.append((pos, f"{what} is {dsl_repr(value)}, a continuous space: the grid sampler "
                                  "needs a finite set of values; give the range a step "
                                  "(range(a, b, step=s)) or use choice(...)"))
    return problems


def _spaces(network: ModelSpec) -> Iterator[tuple[SourcePos | None, str, ParamValue]]:
    """Every searched ``HPO(...)`` value of the network: where its owner is written, what
    it sets (``Dense: 'units'``), the space."""
    from neural_dsl_tracking.compiler.hpo import is_hpo

    pending = list(network.layers)
    while pending:
        layer = pending.pop(0)
        pending[:0] = layer.children
        for name, value in layer.params.items():
            for item in value if isinstance(value, list) else [value]:
                if is_hpo(item):
                    yield layer.pos, f"{layer.type}: '{name}'", item
    optimizer = network.optimizer
    if optimizer is not None:
        settings = dict(optimizer.params)
        if optimizer.schedule is not None:  # the schedule's initial rate stands for the learning rate
            settings.pop("learning_rate", None)
            settings.update({name: getattr(optimizer.schedule, name)
                             for name in ("initial_learning_rate", "decay_steps", "decay_rate")})
        for name, value in settings.items():
            if is_hpo(value):
                yield optimizer.pos, f"{optimizer.type}: '{name}'", value
    train = network.train
    for name in ("epochs", "batch_size", "validation_split"):
        if is_hpo(getattr(train, name)):
            yield network.pos, f"train: '{name}'", getattr(train, name)
