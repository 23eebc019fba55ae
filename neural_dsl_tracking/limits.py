"""Bounds of a run's integer settings: one table for ``neural check`` and the generated programs.

The run-config model of a generated program (``compiler/runconfig.py``) and the tracking
block's model take their limits from here, and the DSL's ``train`` and ``execution``
sections are checked against the same entries, so a value is refused with the same limit
wherever it is written: in the `.neural` file or as a Hydra override.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pydantic import Field

MAX_INT64 = 2**63 - 1
"""Every integer setting is a 64-bit integer, as in the DSL."""


def cpu_count() -> int:
    """The CPUs of this machine (at least 1)."""
    return os.cpu_count() or 1


def machine_memory() -> int:
    """Bytes of physical memory of this machine."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class IntBound:
    """The allowed range of one integer setting, both ends included."""

    low: int
    high: int
    why: str = ""
    """What the upper end is, when it is not a plain number (e.g. the machine's CPUs)."""

    def field(self, default: Any = ..., **kwargs: Any) -> Any:
        """A pydantic ``Field`` with these bounds."""
        return Field(default, ge=self.low, le=self.high, description=self.why or None, **kwargs)

    def problem(self, value: int | float) -> str | None:
        """None when ``value`` is in range; else what it must be (``at most 2 (the CPUs ...)``)."""
        if value < self.low:
            return f"at least {self.low}"
        if value > self.high:
            return f"at most {self.high}" + (f" ({self.why})" if self.why else "")
        return None


SEED = IntBound(0, MAX_INT64)
EPOCHS = IntBound(1, 1_000_000)
BATCH_SIZE = IntBound(1, 1_000_000)
THREADS = IntBound(1, 1024)
"""``execution.threads`` as written (a file stays valid on every machine); the program that
runs also holds it to the CPUs of its machine (``compiler/runconfig.py``)."""
SAMPLES = IntBound(2, 100_000_000)
"""``data.samples`` of the synthetic source (its total size is also held to the memory)."""
LENGTH = IntBound(1, 1_000_000)
"""``data.length``: the synthetic source's size for dynamic (None) dimensions."""
LOG_EVERY = IntBound(1, 1_000_000_000)
VISUALIZE_EVERY = IntBound(0, 1_000_000_000)
CHECKPOINT_EVERY = IntBound(0, EPOCHS.high)
SYSTEM_METRICS = IntBound(0, 86_400, "a day")
"""``tracking.system_metrics``: seconds between two samples of the machine; 0 = off."""
SIZE = IntBound(1, MAX_INT64)
"""Layer sizes and schedule steps: any positive 64-bit integer (memory decides the rest)."""

TRAIN = {"epochs": EPOCHS, "batch_size": BATCH_SIZE}
"""Bounds of the ``train`` section's integers, by key."""
EXECUTION = {"threads": THREADS}
"""Bounds of the ``execution`` section's integers, by key."""
