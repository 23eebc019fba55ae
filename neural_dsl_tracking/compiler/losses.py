"""Loss names from the DSL, their families, and how the network's head meets them.

A cross-entropy loss trains on logits: a final ``softmax`` is kept out of ``forward``
(no double softmax); a binary cross-entropy likewise takes the final ``sigmoid``'s logits.
A 2-unit softmax with ``binary_crossentropy`` trains as 2-class cross-entropy, which is
the same quantity. Regression losses see the network's declared outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from neural_dsl_tracking.compiler.locate import Locator
from neural_dsl_tracking.compiler.shapes import show
from neural_dsl_tracking.language.diagnostics import did_you_mean
from neural_dsl_tracking.language.spec import ModelSpec, SourcePos

LOSS_FAMILIES: dict[str, str] = {
    "sparse_categorical_crossentropy": "cross_entropy",
    "categorical_crossentropy": "cross_entropy",
    "binary_crossentropy": "binary",
    "mean_squared_error": "regression",
    "mean_absolute_error": "regression",
    "huber": "regression",
}
"""Canonical loss names and their family."""


def has_accuracy(family: str) -> bool:
    """Whether programs of a loss family count correct predictions (classification)."""
    return family != "regression"

ALIASES = {
    "crossentropy": "sparse_categorical_crossentropy",
    "cross_entropy": "sparse_categorical_crossentropy",
    "sparse_categorical_cross_entropy": "sparse_categorical_crossentropy",
    "categorical_cross_entropy": "categorical_crossentropy",
    "binary_cross_entropy": "binary_crossentropy",
    "bce": "binary_crossentropy",
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "huber_loss": "huber",
}

STRIPPED = {"cross_entropy": ("softmax",), "binary": ("sigmoid", "softmax"), "regression": ()}


def canonical_loss(name: str, locator: Locator, pos: SourcePos | None) -> str:
    """The canonical name of a DSL loss; a CompileError at ``pos`` listing the supported ones."""
    key = name.strip().strip("\"'").lower()
    key = ALIASES.get(key, key)
    if key not in LOSS_FAMILIES:
        known = [*LOSS_FAMILIES, *ALIASES]
        raise locator.error(pos, f"loss {name!r} is not supported{did_you_mean(key, known)}; supported losses: "
                            + ", ".join(known))
    return key


@dataclass
class LossPlan:
    """The loss a network trains with, decided at compile time."""

    name: str
    family: str
    locator: Locator
    pos: SourcePos | None
    """Where messages point: the ``loss:`` entry, or the final layer for a default loss."""

    def strips(self, activation: str) -> bool:
        return activation in STRIPPED[self.family]

    def check_output(self, output_shape: tuple[int | None, ...], head: str | None) -> None:
        """Reject heads that cannot meet the loss; turn 2-unit softmax + BCE into cross-entropy."""
        units = output_shape[-1] if output_shape else None
        if self.family == "binary" and head == "softmax":
            if units != 2:
                raise self.locator.error(self.pos, f"binary_crossentropy with a {units}-unit softmax output is "
                                         "ambiguous; use a sigmoid output or categorical_crossentropy")
            self.family = "cross_entropy"
            self.name = "sparse_categorical_crossentropy"
        if self.family == "binary" and units != 1:
            raise self.locator.error(self.pos, f"binary_crossentropy needs an output layer with 1 unit (the "
                                     f"probability of the positive class), but the network outputs "
                                     f"{show(output_shape)}; for {units} classes use categorical_crossentropy")
        if self.family == "cross_entropy" and (units is None or units < 2):
            raise self.locator.error(self.pos, f"{self.name} needs an output layer with at least 2 units "
                                     f"(one per class), but the network outputs {show(output_shape)}")


def plan_loss(spec: ModelSpec, locator: Locator) -> LossPlan:
    """The loss of ``spec``; without one, a default that fits the final layer."""
    pos = spec.loss_pos if spec.loss else (spec.layers[-1].pos if spec.layers else None)
    if spec.loss:
        name = canonical_loss(spec.loss, locator, pos)
    else:
        final = spec.layers[-1].params if spec.layers else {}
        activation = str(final.get("activation") or "linear").lower()
        if activation == "sigmoid":
            name = "binary_crossentropy"
        elif final.get("units") == 1 and activation == "linear":
            name = "mean_squared_error"
        else:
            name = "sparse_categorical_crossentropy"
    return LossPlan(name=name, family=LOSS_FAMILIES[name], locator=locator, pos=pos)
