"""System clipboard through pyperclip (xclip/xsel/wl-copy, pbcopy, the Windows API).

Preferred over Qt's clipboard because on X11 a Qt clipboard empties when the app quits, while
the helper programs pyperclip drives keep the text available.
"""

from __future__ import annotations


class PyperclipHandler:
    name = "pyperclip"

    def is_available(self) -> bool:
        """True when pyperclip is installed and found a copy mechanism on this system."""
        try:
            import pyperclip
        except ImportError:
            return False
        try:
            copy, _paste = pyperclip.determine_clipboard()
        except Exception:  # pyperclip probes platform tools; any failure means "not usable"
            return False
        return bool(copy)  # pyperclip's "no clipboard" stand-in is falsy

    def copy(self, text: str) -> None:
        import pyperclip

        pyperclip.copy(text)

    def paste(self) -> str:
        import pyperclip

        return pyperclip.paste()
