"""The comparison dashboard's standalone launcher, where the original API's users run it:
``python neural_dsl_tracking/tracking/comparison_ui.py [--base-dir DIR | --store URL]
[--port N] [--host H]``, the same as ``python -m neural_dsl_tracking.dashboard``.

An entry point: the dashboard (a later stage than tracking) is imported only when it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROG = "python neural_dsl_tracking/tracking/comparison_ui.py"


def main(argv: list[str] | None = None) -> int:
    """Serve the dashboard with the options in ``argv`` until Ctrl-C; returns the exit code."""
    from neural_dsl_tracking.dashboard.__main__ import main as serve

    return serve(argv, prog=PROG)


if __name__ == "__main__":
    if not __package__:  # run as a file: its own folder (store.py, db.py...) would shadow modules
        sys.path[0] = str(Path(__file__).resolve().parents[2])
    sys.exit(main())
