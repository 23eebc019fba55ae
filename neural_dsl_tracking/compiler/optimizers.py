"""Optimizers the generated programs support, with Keras defaults and PyTorch names.

Config keys use PyTorch's argument names (``optimizer.lr``, ``optimizer.betas``);
the DSL's Keras names (``learning_rate``, ``beta_1``, ``epsilon``, ``rho``...) map onto them.
"""

from __future__ import annotations

import ast
from typing import Any

BETAS = [0.9, 0.999]

OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Adam": ("Adam", {"lr": 0.001, "betas": BETAS, "eps": 1e-7, "weight_decay": 0.0, "amsgrad": False}),
    "AdamW": ("AdamW", {"lr": 0.001, "betas": BETAS, "eps": 1e-7, "weight_decay": 0.004, "amsgrad": False}),
    "SGD": ("SGD", {"lr": 0.01, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}),
    "RMSprop": ("RMSprop", {"lr": 0.001, "alpha": 0.9, "momentum": 0.0, "eps": 1e-7, "centered": False,
                            "weight_decay": 0.0}),
    "Adagrad": ("Adagrad", {"lr": 0.001, "initial_accumulator_value": 0.1, "eps": 1e-7, "weight_decay": 0.0}),
    "Adadelta": ("Adadelta", {"lr": 0.001, "rho": 0.95, "eps": 1e-7, "weight_decay": 0.0}),
    "Adamax": ("Adamax", {"lr": 0.001, "betas": BETAS, "eps": 1e-7, "weight_decay": 0.0}),
    "Nadam": ("NAdam", {"lr": 0.001, "betas": BETAS, "eps": 1e-7, "weight_decay": 0.0}),
}
"""DSL name -> (class in ``torch.optim``, parameters with their Keras defaults)."""

KERAS_NAMES = {
    "learning_rate": "lr",
    "lr": "lr",
    "epsilon": "eps",
    "eps": "eps",
    "momentum": "momentum",
    "nesterov": "nesterov",
    "weight_decay": "weight_decay",
    "amsgrad": "amsgrad",
    "centered": "centered",
    "initial_accumulator_value": "initial_accumulator_value",
    "betas": "betas",
    "alpha": "alpha",
}


def canonical_optimizer(name: str) -> str | None:
    """The table's spelling of an optimizer name written any case (``adam`` -> ``Adam``)."""
    wanted = name.strip().strip("\"'").lower()
    for known in OPTIMIZERS:
        if known.lower() == wanted:
            return known
    return None


def torch_param_name(optimizer: str, keras_name: str) -> str | None:
    """The config key for a DSL optimizer parameter, None if the optimizer has no such thing."""
    if keras_name == "rho":
        return "alpha" if optimizer == "RMSprop" else "rho"
    name = KERAS_NAMES.get(keras_name, keras_name)
    return name if name in OPTIMIZERS[optimizer][1] else None


def split_call_text(text: str) -> tuple[str, dict[str, Any]] | None:
    """``"Adam(learning_rate=1e-4)"`` written as a string: (name, literal kwargs), else None.

    Only literal keyword arguments are accepted; nothing is evaluated.
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
        return None
    kwargs: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            return None
        try:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            return None
    return node.func.id, kwargs
