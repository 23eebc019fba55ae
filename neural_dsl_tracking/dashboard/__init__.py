"""The ``neural experiments`` dashboard: compare tracked runs in the browser (Dash).

Dash is imported only when an app is created, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neural_dsl_tracking.dashboard.app import create_app
    from neural_dsl_tracking.dashboard.launch import launch_comparison_ui

__all__ = ["create_app", "launch_comparison_ui"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from neural_dsl_tracking.dashboard.app import create_app

        return create_app
    if name == "launch_comparison_ui":
        from neural_dsl_tracking.dashboard.launch import launch_comparison_ui

        return launch_comparison_ui
    raise AttributeError(f"module 'neural_dsl_tracking.dashboard' has no attribute {name!r}")
