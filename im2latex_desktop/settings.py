"""User settings, saved as JSON in the config folder.

Each value is checked on load: a wrong or missing value takes its default (and the user is told
which), so a hand-edited file never stops the app from starting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

from im2latex_desktop import paths
from im2latex_desktop.formats import FORMATS
from im2latex_desktop.storage import read_json_or_quarantine, write_json_atomic

DEVICES = ("auto", "cpu", "cuda")
MAX_BEAM = 10


@dataclass
class Settings:
    hotkey: str = "Ctrl+Alt+M"       # global hotkey (Qt key-sequence text); "" turns it off
    hotkey_enabled: bool = True
    default_format: str = "raw"      # one of formats.FORMATS: what auto-copy puts on the clipboard
    auto_copy: bool = True
    device: str = "auto"             # auto, cpu or cuda
    beam_width: int = 3              # 1 = greedy; more gives alternatives to pick from
    model_path: str = ""             # empty: the bundled/default model
    close_to_tray: bool = True       # with a tray icon, closing the window keeps the app running

    def validated(self) -> tuple["Settings", list[str]]:
        """Return a copy with every bad value replaced by its default, and the names replaced."""
        default = Settings()
        good = dataclasses.replace(self)
        bad: list[str] = []
        for field in fields(Settings):
            value = getattr(self, field.name)
            if not _valid(field.name, value, type(getattr(default, field.name))):
                setattr(good, field.name, getattr(default, field.name))
                bad.append(field.name)
        return good, bad


def _valid(name: str, value: object, kind: type) -> bool:
    if type(value) is not kind:  # bool is an int subclass: be exact
        return False
    if name == "default_format":
        return value in FORMATS
    if name == "device":
        return value in DEVICES
    if name == "beam_width":
        return 1 <= value <= MAX_BEAM
    if name == "hotkey":
        return len(value) < 64
    return True


class SettingsStore:
    """Loads and saves :class:`Settings`; ``message`` says what was wrong with the file, if anything."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.config_dir() / "settings.json"
        self.message: str | None = None

    def load(self) -> Settings:
        data, self.message = read_json_or_quarantine(self.path, "settings")
        if data is None:
            return Settings()
        if not isinstance(data, dict):
            self.message = f"The settings file {self.path} does not hold settings; using the defaults."
            return Settings()
        known = {f.name for f in fields(Settings)}
        raw = Settings()
        for key, value in data.items():
            if key in known:
                setattr(raw, key, value)
        settings, bad = raw.validated()
        if bad:
            self.message = f"Some settings were invalid and were reset to their defaults: {', '.join(bad)}."
        return settings

    def save(self, settings: Settings) -> None:
        write_json_atomic(self.path, dataclasses.asdict(settings))
