"""Optional global hotkey.  Needs pynput and an X11, Windows or macOS desktop.

Wayland lets no program see keys pressed in other windows, so there the app says how to bind
``im2latex-desktop --snip`` to a desktop shortcut instead; without pynput it says how to install it.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from im2latex_desktop.hotkey.keys import HotkeyError, to_pynput

log = logging.getLogger(__name__)

WAYLAND_HINT = (
    "Global hotkeys are not available on Wayland; bind the command “im2latex-desktop --snip” "
    "to a keyboard shortcut in your desktop's settings instead."
)
PYNPUT_HINT = "The global hotkey needs pynput: pip install pynput (or pip install 'im2latex-desktop[hotkey]')."


@dataclass
class Support:
    available: bool
    reason: str = ""


def hotkey_support(platform_name: str, environ: dict[str, str] | None = None) -> Support:
    """Can a global hotkey work here?  ``reason`` says why not, in one sentence for the user."""
    env = os.environ if environ is None else environ
    if platform_name.startswith("wayland") or env.get("XDG_SESSION_TYPE", "").lower() == "wayland":
        return Support(False, WAYLAND_HINT)
    if platform_name in ("offscreen", "minimal"):
        return Support(False, "Global hotkeys need a desktop session.")
    if sys.platform.startswith("linux") and not env.get("DISPLAY"):
        return Support(False, "Global hotkeys need an X11 display (DISPLAY is not set).")
    try:
        import pynput.keyboard  # noqa: F401  (imports the platform backend, which can fail)
    except ImportError:
        return Support(False, PYNPUT_HINT)
    except Exception as error:  # pynput's X backend raises Xlib errors when it cannot connect
        return Support(False, f"pynput cannot watch the keyboard here ({error}).")
    return Support(True)


class GlobalHotkey(QObject):
    """Emits ``triggered`` on the UI thread when the hotkey is pressed anywhere on the desktop."""

    triggered = Signal()

    def __init__(self, platform_name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.platform_name = platform_name
        self._backend = None
        self.sequence = ""

    def start(self, sequence: str) -> str | None:
        """(Re)register ``sequence``; returns ``None`` on success or a message saying why not."""
        self.stop()
        support = hotkey_support(self.platform_name)
        if not support.available:
            return support.reason
        try:
            combo = to_pynput(sequence)
        except HotkeyError as error:
            return str(error)
        from im2latex_desktop.hotkey.pynput_hotkey import PynputHotkey

        try:
            backend = PynputHotkey(combo, self.triggered.emit)
            backend.start()
        except Exception as error:  # the listener thread can fail to attach to the display
            log.warning("global hotkey failed: %s", error)
            return f"The global hotkey {sequence} could not be registered ({error})."
        self._backend = backend
        self.sequence = sequence
        return None

    def stop(self) -> None:
        if self._backend is not None:
            self._backend.stop()
            self._backend = None
            self.sequence = ""

    @property
    def active(self) -> bool:
        return self._backend is not None
