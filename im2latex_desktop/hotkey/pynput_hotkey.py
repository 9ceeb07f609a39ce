"""A global hotkey through pynput's listener thread (X11, Windows, macOS)."""

from __future__ import annotations

from typing import Callable


class PynputHotkey:
    """Calls ``callback`` (from pynput's thread) whenever ``combo`` (pynput syntax) is pressed."""

    def __init__(self, combo: str, callback: Callable[[], None]) -> None:
        from pynput import keyboard

        self._listener = keyboard.GlobalHotKeys({combo: callback})

    def start(self) -> None:
        self._listener.start()
        self._listener.wait()  # returns once the listener is ready (or has failed)

    def stop(self) -> None:
        self._listener.stop()

    @property
    def running(self) -> bool:
        return self._listener.running
