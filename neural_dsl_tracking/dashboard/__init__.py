"""The ``neural experiments`` dashboard: compare tracked runs in the browser (Dash).

Dash is imported only when an app is created, so importing this package stays cheap.
"""

from __future__ import annotations

from neural_dsl_tracking.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "ExperimentComparisonUI": "neural_dsl_tracking.dashboard.ui",
    "create_app": "neural_dsl_tracking.dashboard.app",
    "launch_comparison_ui": "neural_dsl_tracking.dashboard.launch",
})
