"""Copy text to the clipboard with the first handler that works here: pyperclip, then Qt."""

from __future__ import annotations

import logging
from typing import Protocol, Sequence

from im2latex_desktop.clipboard.pyperclip_handler import PyperclipHandler
from im2latex_desktop.clipboard.qt_handler import QtClipboardHandler
from model.errors import Im2LatexError

log = logging.getLogger(__name__)


class ClipboardHandler(Protocol):
    name: str

    def is_available(self) -> bool: ...

    def copy(self, text: str) -> None: ...

    def paste(self) -> str: ...


class ClipboardError(Im2LatexError):
    """No clipboard handler could take the text."""


class Clipboard:
    """Tries each available handler in order; a handler that fails once is skipped afterwards."""

    def __init__(self, handlers: Sequence[ClipboardHandler] | None = None) -> None:
        self.handlers: list[ClipboardHandler] = list(handlers) if handlers is not None else [PyperclipHandler(), QtClipboardHandler()]
        self._broken: set[str] = set()
        self.last_handler: str | None = None

    def copy(self, text: str) -> str:
        """Put ``text`` on the clipboard and return the handler's name; raises ClipboardError."""
        errors = []
        for handler in self.handlers:
            if handler.name in self._broken or not handler.is_available():
                continue
            try:
                handler.copy(text)
            except Exception as error:  # a backend program missing or crashing: try the next one
                log.warning("clipboard handler %s failed: %s", handler.name, error)
                self._broken.add(handler.name)
                errors.append(f"{handler.name}: {error}")
                continue
            self.last_handler = handler.name
            return handler.name
        raise ClipboardError("Could not copy to the clipboard" + (f" ({'; '.join(errors)})." if errors else "."))

    def paste(self) -> str:
        for handler in self.handlers:
            if handler.name in self._broken or not handler.is_available():
                continue
            try:
                return handler.paste()
            except Exception:
                continue
        return ""
