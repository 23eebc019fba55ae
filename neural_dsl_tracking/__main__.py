"""``python -m neural_dsl_tracking`` runs the ``neural`` command."""

import sys

from neural_dsl_tracking.cli import main

sys.exit(main())
