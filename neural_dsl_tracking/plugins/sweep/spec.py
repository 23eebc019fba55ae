"""SweepSpec: the validated content of a ``sweep < ... >`` block.

The same model validates the block in a `.neural` file and the ``sweep`` section of a
Hydra-composed run config (``sweep.trials=50`` on the command line), like TrackingSpec.
``objective`` and ``direction`` left out are filled when the network is read (see
:func:`resolve_objective`), so the generated config always names both.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from neural_dsl_tracking.limits import MAX_INT64
from neural_dsl_tracking.tracking.values import metric_direction

Sampler = Literal["tpe", "random", "grid"]
Pruner = Literal["none", "median", "hyperband"]
Direction = Literal["minimize", "maximize"]

SEARCH_METHODS: dict[str, Sampler] = {"random": "random", "bayesian": "tpe", "grid": "grid"}
"""``train { search_method: ... }`` as the original language spells it -> the sampler."""

SPELT_ELSEWHERE: dict[str, dict[str, str]] = {
    "direction": {"max": "maximize", "min": "minimize"},
    "sampler": {"bayesian": "tpe"},
}
"""A value as another part of the language spells it (the tracking block's ``mode``,
``search_method``) -> the value this block means by it: refused, naming the one meant."""
_LITERALS = {"direction": Direction, "sampler": Sampler}

DEFAULT_OBJECTIVE = "val_loss"
MAX_TRIALS = 1_000_000
MAX_PARALLEL = 1024


class SweepSpec(BaseModel):
    """Fields, types and defaults of the sweep block (see docs/sweeps.md)."""

    model_config = ConfigDict(extra="forbid")

    trials: int = Field(20, ge=1, le=MAX_TRIALS)
    sampler: Sampler = "tpe"
    pruner: Pruner = "median"
    parallel: int = Field(1, ge=1, le=MAX_PARALLEL)
    objective: str | None = None
    """The metric to optimise; None: the tracking block's ``monitor``, else ``val_loss``."""
    direction: Direction | None = None
    """None: the tracking block's ``mode`` (when written) if the objective is its monitor,
    else from the objective's name (accuracy-like maximize, loss-like minimize)."""
    seed: int | None = Field(None, ge=0, le=MAX_INT64)
    launcher: Literal["local", "ray"] = "local"
    address: str | None = None
    """The Ray cluster's address (``launcher: ray``), one of :data:`RAY_ADDRESS_FORMS`;
    None: a local Ray."""
    timeout: float | None = Field(None, gt=0)
    """Seconds after which no new trial starts; None: no limit."""

    @field_validator("sampler", "direction", mode="before")
    @classmethod
    def _spelt_here(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse a value spelt as elsewhere in the language (:data:`SPELT_ELSEWHERE`) as
        pydantic refuses an unknown one, naming the value meant (``meant``, which the
        messages of a block and of an override offer as "did you mean")."""
        meant = SPELT_ELSEWHERE[info.field_name].get(value) if isinstance(value, str) else None
        if meant is None:
            return value
        quoted = [repr(option) for option in get_args(_LITERALS[info.field_name])]
        expected = f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        raise PydanticCustomError("literal_error", "Input should be {expected}; did you mean '{meant}'?",
                                  {"expected": expected, "meant": meant})

    @field_validator("objective", "address")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty text")
        return value

    @field_validator("address")
    @classmethod
    def _ray_address(cls, value: str | None) -> str | None:
        problem = None if value is None else ray_address_problem(value)
        if problem is not None:
            raise ValueError(f"{problem}: a Ray cluster's address is {RAY_ADDRESS_FORMS}")
        return value


RAY_ADDRESS_FORMS = "HOST:PORT (head:6379, an IPv6 host in brackets: [fd00::5]:6379), ray://HOST:PORT or auto"
"""The addresses ``ray.init(address=...)`` connects to (``local`` aside: it starts a new Ray)."""
_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?")


def ray_address_problem(address: str) -> str | None:
    """What keeps Ray from connecting to ``address`` (``has no port``...), or None."""
    if address == "auto":
        return None
    if address == "local":
        return "local starts a new Ray: leave the address out to run Ray on this machine"
    scheme, found, rest = address.partition("://")
    if found and scheme != "ray":
        return f"{scheme}:// is not a Ray address (ray:// is the Ray client's)"
    host, colon, port = (rest if found else address).rpartition(":")
    if not colon or not port.isdigit():
        return "has no port"
    if not host:
        return "has no host"
    if not 1 <= int(port) <= 65535:
        return f"port {int(port)} is not from 1 to 65535"
    return _host_problem(host, port)


def _host_problem(host: str, port: str) -> str | None:
    """What is wrong with the ``host`` of ``host:port``: a name, IPv4, or IPv6 in brackets."""
    import ipaddress

    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host} is not an IPv6 address"
        return None
    if ":" in host:
        return f"an IPv6 host goes in brackets ([{host}]:{port})"
    return None if _HOST_NAME.fullmatch(host) else f"{host!r} is not a host name or IP address"


def direction_of(objective: str) -> Direction | None:
    """``maximize`` for an accuracy-like name, ``minimize`` for a loss-like one, else None:
    the store's rule (``metric_direction``), so trials rank as ``show`` ranks the metric."""
    found = metric_direction(objective)
    return None if found is None else ("maximize" if found == "max" else "minimize")


def resolve_objective(
    spec: SweepSpec, monitor: str | None, mode: str | None, search_method: str | None
) -> SweepSpec:
    """``spec`` with its defaults that depend on the rest of the network filled in:
    objective and direction from the tracking block's ``monitor``/``mode`` (or from the
    objective's name), the sampler from ``search_method`` when the block sets none."""
    update: dict[str, object] = {}
    objective = spec.objective or monitor or DEFAULT_OBJECTIVE
    update["objective"] = objective
    if spec.direction is None:
        if monitor is not None and objective == monitor and mode in ("min", "max"):
            update["direction"] = "minimize" if mode == "min" else "maximize"
        else:
            update["direction"] = direction_of(objective)
    method = (search_method or "").lower()
    if "sampler" not in spec.model_fields_set and method in SEARCH_METHODS:
        update["sampler"] = SEARCH_METHODS[method]
    return spec.model_copy(update=update)
