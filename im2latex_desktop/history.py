"""Every recognized formula, kept in the user data folder: ``history.json`` plus PNG thumbnails.

The JSON file is rewritten atomically on each change; a damaged file is moved aside and a fresh
history started (``History.message`` tells the user).  Entries whose fields are wrong are
skipped one by one rather than losing the whole history.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from im2latex_desktop import paths
from im2latex_desktop.storage import read_json_or_quarantine, write_json_atomic

FORMAT_VERSION = 1
THUMBNAIL_SIZE = (360, 120)
MAX_ENTRIES = 1000


@dataclass
class Entry:
    id: str
    created: float        # seconds since the epoch
    latex: str
    confidence: float
    source: str = "snip"  # snip, paste, file or drop
    thumbnail: str = ""   # file name inside the thumbnails folder; "" when none
    stopped: str = ""     # "" when complete; else the bound that cut the reading short (Recognition.stopped)

    @classmethod
    def from_dict(cls, data: object) -> "Entry | None":
        if not isinstance(data, dict):
            return None
        try:
            entry = cls(
                id=str(data["id"]),
                created=float(data["created"]),
                latex=str(data["latex"]),
                confidence=float(data.get("confidence", 0.0)),
                source=str(data.get("source", "snip")),
                thumbnail=str(data.get("thumbnail", "")),
                stopped=str(data.get("stopped") or ""),
            )
        except (KeyError, TypeError, ValueError):
            return None
        if "/" in entry.thumbnail or "\\" in entry.thumbnail or entry.thumbnail.startswith("."):
            entry.thumbnail = ""  # never follow a path out of our folder
        return entry


class History:
    """Newest first.  Not thread-safe: used from the UI thread only."""

    def __init__(self, directory: Path | None = None, max_entries: int = MAX_ENTRIES) -> None:
        self.directory = directory or paths.data_dir()
        self.path = self.directory / "history.json"
        self.thumbnail_dir = self.directory / "thumbnails"
        self.max_entries = max_entries
        self.entries: list[Entry] = []
        self.message: str | None = None

    def load(self) -> list[Entry]:
        data, self.message = read_json_or_quarantine(self.path, "history")
        self.entries = []
        if data is None:
            return self.entries
        items = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(items, list):
            self.message = f"The history file {self.path} has no list of entries; starting a fresh history."
            self.entries = []
            return self.entries
        parsed = [Entry.from_dict(item) for item in items]
        self.entries = [e for e in parsed if e is not None]
        skipped = len(parsed) - len(self.entries)
        if skipped:
            self.message = f"{skipped} damaged history entr{'y was' if skipped == 1 else 'ies were'} skipped."
        self.entries.sort(key=lambda e: e.created, reverse=True)
        return self.entries

    def add(self, latex: str, confidence: float, image: Image.Image | None = None, source: str = "snip",
            stopped: str | None = None) -> Entry:
        entry = Entry(id=uuid.uuid4().hex, created=time.time(), latex=latex, confidence=confidence, source=source,
                      stopped=stopped or "")
        if image is not None:
            entry.thumbnail = self._save_thumbnail(entry.id, image)
        self.entries.insert(0, entry)
        for old in self.entries[self.max_entries:]:
            self._remove_thumbnail(old)
        del self.entries[self.max_entries:]
        self.save()
        return entry

    def get(self, entry_id: str) -> Entry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def update_latex(self, entry_id: str, latex: str) -> None:
        """Keep the user's corrections: the edited LaTeX replaces the recognized one."""
        entry = self.get(entry_id)
        if entry is not None and entry.latex != latex:
            entry.latex = latex
            self.save()

    def delete(self, entry_id: str) -> None:
        entry = self.get(entry_id)
        if entry is None:
            return
        self.entries.remove(entry)
        self._remove_thumbnail(entry)
        self.save()

    def clear(self) -> None:
        for entry in self.entries:
            self._remove_thumbnail(entry)
        self.entries = []
        self.save()

    def thumbnail_path(self, entry: Entry) -> Path | None:
        if not entry.thumbnail:
            return None
        path = self.thumbnail_dir / entry.thumbnail
        return path if path.is_file() else None

    def save(self) -> None:
        data = {"version": FORMAT_VERSION, "entries": [dataclasses.asdict(e) for e in self.entries]}
        write_json_atomic(self.path, data)

    def _save_thumbnail(self, entry_id: str, image: Image.Image) -> str:
        thumb = image.convert("RGB")
        thumb.thumbnail(THUMBNAIL_SIZE)
        name = f"{entry_id}.png"
        try:
            self.thumbnail_dir.mkdir(parents=True, exist_ok=True)
            thumb.save(self.thumbnail_dir / name, format="PNG")
        except OSError:
            return ""  # a history entry without a picture is still worth keeping
        return name

    def _remove_thumbnail(self, entry: Entry) -> None:
        if entry.thumbnail:
            (self.thumbnail_dir / entry.thumbnail).unlink(missing_ok=True)
