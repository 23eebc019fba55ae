"""The project's own error types: every user mistake is one of these.

The CLI prints ``str(error)`` and exits non-zero; it never shows a traceback for them.
"""

from __future__ import annotations


class NeuralError(Exception):
    """Base class of every error caused by user input or user environment."""

    exit_code = 1


class NeuralSyntaxError(NeuralError):
    """The DSL text does not follow the grammar."""


class NeuralValidationError(NeuralError):
    """The DSL text parses but a value is not allowed (type, range, unknown name)."""


class CompileError(NeuralError):
    """A valid spec cannot be turned into a program (unsupported layer, bad shapes)."""


class ConfigError(NeuralError):
    """A composed run configuration (Hydra overrides) is invalid."""


class TrackingError(NeuralError):
    """The experiment store cannot do what was asked (missing run, corrupt artifact, ...)."""


class ArtifactCorruptedError(TrackingError):
    """An artifact object no longer matches its recorded SHA-256."""
