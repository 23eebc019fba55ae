"""Resuming and forking compiled runs (``neural run FILE --resume RUN`` / ``--fork RUN[@EPOCH]``).

Both continue from a checkpoint the program logged (``runtime.training_state``: model,
optimizer, scheduler, random number generators, epoch and step; its artifact metadata holds
the last step of each metric at that time). Both train with the run's recorded config:
a fork applies the command line's settings on top of it, a resume refuses those that
would change the results (``train.epochs`` may grow, and the sections that cannot change
results may differ). A resumed run drops the points it logged after the checkpoint and
carries on as ``running``; a fork is a new run that records its parent and fork point.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from neural_dsl_tracking.errors import ConfigError, TrackingError
from neural_dsl_tracking.plugins.tracking.spec import TrackingSpec, fork_point

RESUMABLE = ("crashed", "interrupted", "failed")
RESULT_NEUTRAL = ("tracking", "execution", "train.epochs")
"""Settings a resume may change besides the config sections that cannot change results."""
CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class StartPoint:
    """The checkpoint a resumed or forked run continues from."""

    run_id: str
    epoch: int
    step: int
    metric_steps: dict[str, int]
    path: Path


def _verb(section: TrackingSpec) -> str:
    return "resume" if section.resume is not None else "fork"


def _target(section: TrackingSpec) -> tuple[str, int | None]:
    """The run the section names and the epoch asked for (None: the latest checkpoint)."""
    return (section.resume, None) if section.resume is not None else fork_point(section.fork or "")


@contextmanager
def open_store(section: TrackingSpec, launch_dir: Path) -> Iterator[Any]:
    """The run's store, read only (an absent store is a TrackingError saying so)."""
    from neural_dsl_tracking.plugins.tracking.hooks import store_place
    from neural_dsl_tracking.tracking.store import Store

    store = Store(**store_place(section, launch_dir), create=False)
    try:
        yield store
    finally:
        store.close()


def continued_settings(config: Any, composed: dict[str, Any], settings: Callable[[Any], tuple],
                       launch_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The validated config and composed config to train with: unchanged for a new run; for
    a resume or fork, the run's recorded config with this command line's settings on top
    (a resume refuses those that change results)."""
    from omegaconf import OmegaConf

    from neural_dsl_tracking.compiler import runtime

    section = config.tracking
    if section.resume is None and section.fork is None:
        return config, composed
    verb, (ref, _) = _verb(section), _target(section)
    with open_store(section, launch_dir) as store:
        run = store.get_run(_resolve(store, ref, verb))
    if section.resume is not None and run.status not in (*RESUMABLE, "running"):
        raise ConfigError(f"cannot resume run {run.run_id[:8]}: it is {run.status}; only a crashed, "
                          f"interrupted or failed run is resumed (start a new run from it with "
                          f"--fork {run.run_id[:8]})")
    if not run.config:
        raise ConfigError(f"cannot {verb} run {run.run_id[:8]}: it has no recorded run config "
                          "(it was not trained by a compiled program)")
    keys = runtime.command_line_keys()
    if section.resume is not None:
        _check_unchanged(run, composed, keys)
    return settings(OmegaConf.create(_literal(_rebased(run.config, composed, keys))))


def _resolve(store: Any, ref: str, verb: str) -> str:
    """The full id of the run ``ref`` names; a ConfigError saying what the resume or fork lacks."""
    try:
        return store.resolve_run_id(ref)
    except TrackingError as error:
        raise ConfigError(f"cannot {verb}: {error}") from None


def _check_unchanged(run: Any, composed: dict[str, Any], keys: list[str]) -> None:
    """A ConfigError naming the command line's settings that differ from the run's and can
    change results."""
    from neural_dsl_tracking.compiler.summary import CORE_NEUTRAL_SECTIONS, neutral_plugin_sections

    free = (*RESULT_NEUTRAL, *CORE_NEUTRAL_SECTIONS, *neutral_plugin_sections())
    changed = [f"{key} is {_shown(_get(composed, key))} here and {_shown(_get(run.config, key))} in the run"
               for key in dict.fromkeys(keys)
               if not any(key == name or key.startswith(name + ".") for name in free)
               and _get(composed, key) != _get(run.config, key)]
    if changed:
        raise ConfigError(f"cannot resume run {run.run_id[:8]} with other settings: {'; '.join(changed)}. "
                          f"A resume trains with the run's settings (train.epochs may be raised); to "
                          f"train from its checkpoint with these, fork it: --fork {run.run_id[:8]}")


_ABSENT = object()


def _get(data: Any, key: str) -> Any:
    """The value at dotted ``key`` of nested dicts, or _ABSENT."""
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return _ABSENT
        data = data[part]
    return data


def _shown(value: Any) -> str:
    return "not set" if value is _ABSENT else repr(value)


def _rebased(recorded: dict[str, Any], composed: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """``recorded`` with the value ``composed`` has at each of ``keys`` (removed where
    ``composed`` has none)."""
    import copy

    merged = copy.deepcopy(recorded)
    for key in keys:
        *parents, last = key.split(".")
        node = merged
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node, dict) else {}
        value = _get(composed, key)
        if not isinstance(node, dict):
            continue
        if value is _ABSENT:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
    return merged


def _literal(value: Any) -> Any:
    """Recorded values as OmegaConf takes them literally: ``${`` in a string escaped (a
    recorded config is resolved already)."""
    if isinstance(value, str):
        return value.replace("${", "\\${")
    if isinstance(value, dict):
        return {key: _literal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal(item) for item in value]
    return value


def find_start(store: Any, section: TrackingSpec) -> StartPoint:
    """The checkpoint the section's resume or fork continues from (ConfigError when there is none)."""
    verb, (ref, epoch) = _verb(section), _target(section)
    run_id = _resolve(store, ref, verb)
    versions = [v for v in store.artifact_versions(run_id, CHECKPOINT) if "step" in v.metadata]
    if not versions:
        raise ConfigError(
            f"cannot {verb} run {run_id[:8]}: it has no checkpoint to continue from (it stopped before its "
            f"first one, its program saved none, or saved them without the training state before "
            f"resume existed); set checkpoint_every: 1 in the tracking block (or tracking.checkpoint_every=1) "
            f"so that runs save one every epoch")
    if epoch is not None:
        found = [v for v in versions if v.metadata.get("epoch") == epoch]
        if not found:
            epochs = ", ".join(str(e) for e in sorted({v.metadata.get("epoch") for v in versions}))
            raise ConfigError(f"cannot fork run {run_id[:8]} at epoch {epoch}: it has checkpoints of epochs "
                              f"{epochs} (with version_artifacts: false only the latest is kept)")
        versions = found
    chosen = max(versions, key=lambda v: v.version)
    return StartPoint(run_id, int(chosen.metadata["epoch"]), int(chosen.metadata["step"]),
                      {str(k): int(v) for k, v in chosen.metadata.get("metric_steps", {}).items()}, chosen.path)


def load_start(store: Any, section: TrackingSpec, model: Any,
               model_spec: dict[str, Any] | None = None) -> tuple[StartPoint, dict[str, Any]]:
    """The start point and its training state, checked to fit ``model`` (and for a resume,
    ``model_spec`` to be the network the run recorded)."""
    import torch

    from neural_dsl_tracking.compiler import runtime

    start = find_start(store, section)
    if section.resume is not None and model_spec is not None:
        _check_same_network(store, start.run_id, model_spec)
    state = torch.load(start.path, map_location="cpu", weights_only=True)
    mismatch = runtime.state_mismatch(model, state)
    if mismatch is not None:
        raise ConfigError(f"cannot {_verb(section)} run {start.run_id[:8]} from its checkpoint of epoch "
                          f"{start.epoch}: the checkpoint does not fit this network: {mismatch}")
    return start, state


def _check_same_network(store: Any, run_id: str, model_spec: dict[str, Any]) -> None:
    """A ConfigError naming the first layer where ``model_spec`` differs from the network the
    run recorded (a run without a recorded model passes)."""
    import json

    from neural_dsl_tracking.compiler.summary import LAYER_FACTS
    from neural_dsl_tracking.tracking.store import to_json

    recorded = store.run_models([run_id]).get(run_id)
    if recorded is None:
        return
    ours, theirs = (json.loads(to_json([{key: layer.get(key) for key in ("name", *LAYER_FACTS)}
                                        for layer in spec.get("layers", [])]))
                    for spec in (model_spec, recorded.spec))
    for here, there in zip([*ours, None], [*theirs, None]):
        if here != there:
            raise ConfigError(
                f"cannot resume run {run_id[:8]}: this network is not the one it trained, from layer "
                f"{_layer(here or there)} on ({_layer(there)} in the run, {_layer(here)} here); a resume "
                f"trains the run's network: to train this one from its checkpoint, fork it: --fork {run_id[:8]}")


def _layer(layer: dict[str, Any] | None) -> str:
    if layer is None:
        return "none"
    params = ", ".join(f"{key}={value!r}" for key, value in (layer.get("params") or {}).items())
    return f"{layer.get('name')} {layer.get('type')}({params})"


def record_start(tracker: Any, section: TrackingSpec, start: StartPoint) -> None:
    """Bring the opened run to the start point: a resumed run drops its points after the
    checkpoint; a fork records its parent. Either way its history says so."""
    where = f"at epoch {start.epoch} (step {start.step})"
    if section.resume is not None:
        dropped = tracker.rewind_metrics(start.metric_steps)
        tracker.record_event("resumed", f"from its checkpoint {where}; {dropped} metric points logged "
                                        f"after it dropped")
        return
    tracker.record_parent(start.run_id, start.epoch, start.step)
    tracker.record_event("forked", f"from run {start.run_id[:8]} {where}")
