"""Fixtures of the language tests: the corpus folder and a parse helper."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(
    os.environ.get("NEURAL_CORPUS", REPO.parent / "shared" / "corpus" / "neural-dsl-examples")
)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The 19 original Neural DSL files (shared/ beside the clone, or $NEURAL_CORPUS)."""
    assert CORPUS.is_dir(), f"corpus folder {CORPUS} is missing (set NEURAL_CORPUS)"
    return CORPUS
