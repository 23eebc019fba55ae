"""Numbers as people read them in tables: durations and byte sizes."""

from __future__ import annotations


def duration(seconds: float | None, missing: str = "—") -> str:
    """``1h 02m 03s``, ``1m 15s`` or ``4.2s``; ``missing`` when unknown."""
    if seconds is None:
        return missing
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{seconds:.1f}s"


def file_size(size: float) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 MiB``, ``1.1 GiB``."""
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
