"""``ExperimentComparisonUI``: the comparison dashboard as the original API's users start it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from neural_dsl_tracking.dashboard.security import Credentials
    from neural_dsl_tracking.tracking import ExperimentManager


class ExperimentComparisonUI:
    """The dashboard of one store: ``ExperimentComparisonUI(base_dir=...).run(port=8052)``
    (or ``ExperimentComparisonUI(manager)``), served by :func:`launch_comparison_ui`."""

    def __init__(self, manager: ExperimentManager | None = None, port: int = 8052, *,
                 base_dir: str | Path = "neural_experiments", store: str | None = None) -> None:
        if manager is not None:
            base_dir, store = manager.base_dir, manager.store_location
        self.base_dir, self.store, self.port = Path(base_dir), store, port

    def run(self, debug: bool = False, host: str = "127.0.0.1", port: int | None = None, *,
            auth: str | Credentials | None = None, no_auth: bool = False) -> int:
        """Serve until Ctrl-C (port: ``port``, else the one given when created); returns 0.

        A ``host`` other than loopback needs ``auth`` ("USER:PASSWORD") or ``no_auth=True``,
        as for ``launch_comparison_ui``. ``debug`` changes nothing: the interactive debugger,
        which runs code sent by the browser, is never turned on."""
        from neural_dsl_tracking.dashboard.launch import launch_comparison_ui

        return launch_comparison_ui(self.base_dir, self.store, self.port if port is None else port,
                                    host, auth=auth, no_auth=no_auth)
