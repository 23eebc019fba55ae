"""Fixtures of the tracking tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def make_tracker(store_kwargs):
    """Open trackers on the parametrized store (no plots unless asked); finishes leftovers."""
    from neural_dsl_tracking.tracking import ExperimentTracker

    opened = []

    def make(experiment: str = "exp", **kwargs):
        kwargs.setdefault("auto_visualize", False)
        tracker = ExperimentTracker(experiment, **{**store_kwargs, **kwargs})
        opened.append(tracker)
        return tracker

    yield make
    for tracker in opened:
        tracker.finish()


@pytest.fixture
def manager(store_kwargs):
    from neural_dsl_tracking.tracking import ExperimentManager

    m = ExperimentManager(**store_kwargs)
    yield m
    m.close()
