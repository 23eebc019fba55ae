"""Dotted keys for nested settings, as Hydra overrides and MLflow params spell them."""

from __future__ import annotations

from typing import Any, Mapping


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"lr": 0.1}}`` -> ``{"optimizer.lr": 0.1}``.

    Lists and other values stay as they are; an empty mapping stays a value.
    """
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
