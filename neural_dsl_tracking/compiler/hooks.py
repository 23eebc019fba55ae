"""Hook points of generated programs and how plugins contribute code to them.

A plugin's ``hooks`` attribute names a class constructed with the plugin's validated spec
(e.g. ``TrackingHooks(tracking_spec)``). Each method returns lines of code built with the
safe builders of :mod:`neural_dsl_tracking.compiler.codegen`; the compiler indents and
places them. Names the hook code may use at each point:

- ``imports``: module level, before the model class.
- ``setup``: ``config`` (the validated run config; ``config.<plugin keyword>`` is the
  plugin's section), ``composed`` (the composed config as plain data), ``model``,
  ``optimizer``, ``LAUNCH_DIR``, ``SOURCE_FILE``, ``workdir`` (a temporary directory,
  removed at the end, when ``uses_workdir``).
- ``after_batch``: ``epoch``, ``step`` (batches so far), ``batch_loss`` (a float).
- ``after_epoch``: ``epoch``, ``epoch_metrics`` (loss, accuracy, val_loss, val_accuracy,
  lr, epoch_time, samples_per_s).
- ``on_checkpoint``: ``epoch``, ``step``, ``checkpoint_path`` (the full training state,
  written every ``checkpoint_every()`` epochs, an expression evaluated at run time; None
  means no checkpoints).
- ``configure`` (optional): in ``main``, after ``config, composed = settings(cfg)`` and
  before ``train(config, composed)``; may replace both (``settings`` validates a config).
- ``resume_state()`` (optional): an expression, evaluated after ``setup``, giving the
  training state to continue from (what ``runtime.training_state`` saves in a checkpoint)
  or None to start afresh; the first hook returning an expression decides.
- ``teardown``: in a ``finally``; ``status`` is ``completed``, ``failed`` or ``interrupted``
  and ``final_metrics`` holds the final evaluation when training completed.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Protocol

from neural_dsl_tracking.compiler.codegen import Expr
from neural_dsl_tracking.errors import CompileError
from neural_dsl_tracking.language.spec import ModelSpec

class ProgramHooks(Protocol):
    """What a plugin's hooks class provides."""

    uses_workdir: bool

    def imports(self) -> list[str]: ...
    def setup(self) -> list[str]: ...
    def after_batch(self) -> list[str]: ...
    def after_epoch(self) -> list[str]: ...
    def checkpoint_every(self) -> Expr | None: ...
    def on_checkpoint(self) -> list[str]: ...
    def teardown(self) -> list[str]: ...


def load_hooks(spec: ModelSpec) -> list[ProgramHooks]:
    """The hooks of every plugin block the network declares: by ``order`` (a hooks class
    attribute, 0 when absent; higher runs later at every point), then by keyword."""
    if not spec.plugins:
        return []
    from neural_dsl_tracking.plugins import discover_plugins

    plugins = discover_plugins()
    hooks = []
    for keyword in sorted(spec.plugins):
        plugin = plugins.get(keyword)
        if plugin is None:
            raise CompileError(f"network {spec.name} uses the {keyword!r} block, but no installed plugin provides it")
        if plugin.hooks is not None:
            hooks.append(_hooks_class(plugin.hooks)(spec.plugins[keyword]))
    return sorted(hooks, key=lambda hook: getattr(hook, "order", 0))


def _hooks_class(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    try:
        return getattr(import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise CompileError(f"plugin hooks {path!r} cannot be loaded: {error}") from error
