"""What a DSL plugin contributes: a grammar fragment, a spec model for its block, hooks.

Plugins are discovered through the entry-point group ``neural_dsl_tracking.plugins``;
each entry point names a :class:`Plugin` instance. The language front end uses
``keyword``, ``grammar_file``, ``spec_model`` and ``complete``; the compiler imports
``hooks`` (a ``"module:attribute"`` path) only when it generates code. The block's
settings become the ``<keyword>:`` section of the generated config, validated again by
``spec_model`` when the program runs (after Hydra overrides), with ``config_group`` as
its Hydra config group of presets; ``check`` runs at compile time with what the compiler
knows of the program.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from pydantic import BaseModel

if TYPE_CHECKING:
    from neural_dsl_tracking.language.spec import ModelSpec, SourcePos


@dataclass(frozen=True)
class ProgramInfo:
    """What the compiler knows of the program it generates, for plugins' checks."""

    epoch_metrics: tuple[str, ...]
    """The metrics the program logs after each epoch (``loss``, ``val_accuracy``...)."""


Problem = tuple["SourcePos | None", str]
"""A mistake a plugin's check found: where (None: the network) and what."""


@dataclass(frozen=True)
class Plugin:
    """A DSL extension registered under the entry-point group."""

    keyword: str
    """The block keyword in the DSL, e.g. ``tracking``."""

    grammar_file: str
    """A ``.lark`` fragment in ``grammar/`` (or an absolute path) that defines the block's syntax."""

    spec_model: type[BaseModel]
    """Validates the block's entries (nested dicts from dotted keys)."""

    hooks: str | None = None
    """``"module:attribute"`` of the code-generation hooks, imported lazily; None when
    the plugin adds no code to the generated program."""

    complete: Callable[[BaseModel, "ModelSpec"], BaseModel] | None = None
    """Fills defaults that depend on the network (its name, its sections, the other
    plugins' validated blocks), e.g. the experiment name."""

    config_group: str | None = None
    """A folder of Hydra presets for the ``<keyword>`` config group (``tracking=mlflow``),
    named after the keyword: relative to the package's ``configs/``, or absolute (a plugin
    shipping its own; its parent folder joins the program's search path). None: no presets."""

    layers: str | None = None
    """``"module:attribute"`` of a mapping layer type -> :class:`~neural_dsl_tracking.plugins.layers.PluginLayer`:
    layers the language checks and the compiler builds like built-in ones; imported only
    when a network uses a layer that is not built in. None: the plugin provides no layers."""

    check: Callable[[BaseModel, "ModelSpec", ProgramInfo], list[Problem]] | None = None
    """Checks the completed block against the network and the program compiled from it
    (run by ``neural check`` and ``neural compile``); each problem becomes one
    ``file:line:col`` message with a caret. Positions of the block's settings are in
    ``ModelSpec.plugin_pos[keyword]``."""

    changes_results: bool = True
    """False when the block's settings cannot change what a run computes (where and how it is
    recorded, how runs are searched): its config section is then left out of the run's
    fingerprint, so two runs differing only there are the same computation."""

    def config_group_dir(self) -> Path | None:
        """The folder of this plugin's Hydra presets, or None."""
        if self.config_group is None:
            return None
        from neural_dsl_tracking.resources import configs_dir

        path = Path(self.config_group)
        return path if path.is_absolute() else configs_dir() / path
