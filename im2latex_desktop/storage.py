"""Small JSON files that survive crashes and corruption.

Writes go to a temporary file that replaces the old one, so a crash leaves either version whole;
the half-written temporary file a crash leaves behind is removed at the next read.  A file that
cannot be read is moved aside (kept for the curious, never deleted) and the caller
starts fresh and tells the user with the message returned.
"""

from __future__ import annotations

import glob
import json
import time
from pathlib import Path
from typing import Any

from model.vocab import write_json_atomic

__all__ = ["write_json_atomic", "read_json_or_quarantine", "quarantine", "remove_stale_temporaries"]


def quarantine(path: Path) -> Path:
    """Rename a damaged file to ``<name>.corrupt-<timestamp>`` and return the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    path.replace(target)
    return target


def remove_stale_temporaries(path: Path) -> int:
    """Delete what crashed writes of ``path`` left (``write_json_atomic``'s ``<name>*.tmp``); the count.

    Only the one running app writes these files, and it reads them before writing, so a
    temporary file seen here belongs to a write that never finished."""
    removed = 0
    try:
        for stale in path.parent.glob(f"{glob.escape(path.name)}*.tmp"):
            try:
                stale.unlink()
                removed += 1
            except OSError:
                pass
    except OSError:
        pass
    return removed


def read_json_or_quarantine(path: Path, what: str) -> tuple[Any | None, str | None]:
    """Return ``(data, None)``, ``(None, None)`` when the file is absent, or ``(None, message)``.

    ``what`` names the file for the user ("history", "settings").
    """
    remove_stale_temporaries(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"Could not read the {what} file {path} ({error.strerror}); starting with an empty one."
    try:
        return json.loads(raw.decode("utf-8")), None
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        moved = quarantine(path)
    except OSError as error:
        return None, f"The {what} file {path} is damaged and could not be moved aside ({error.strerror})."
    return None, f"The {what} file was damaged; it was moved to {moved} and a fresh one started."
