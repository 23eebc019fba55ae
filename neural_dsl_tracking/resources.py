"""Locate the data files that ship with the package (grammar, Hydra configs).

In a wheel they live in ``neural_dsl_tracking/_data/``; in a source checkout
(editable install) they are the top-level ``grammar/`` and ``configs/`` folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the directory of shipped data ``name`` (``"grammar"`` or ``"configs"``)."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"package data folder {name!r} is missing from the installation")


def grammar_path(filename: str) -> Path:
    """Path of a ``.lark`` file shipped in ``grammar/``."""
    return data_dir("grammar") / filename


def configs_dir() -> Path:
    """The folder of Hydra config groups shipped with the package."""
    return data_dir("configs")
