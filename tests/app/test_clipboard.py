"""Clipboard: pyperclip first, Qt when pyperclip has no backend or fails."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QGuiApplication

from im2latex_desktop.clipboard import Clipboard, ClipboardError
from im2latex_desktop.clipboard.pyperclip_handler import PyperclipHandler
from im2latex_desktop.clipboard.qt_handler import QtClipboardHandler


class Failing:
    name = "failing"

    def __init__(self):
        self.calls = 0

    def is_available(self):
        return True

    def copy(self, text):
        self.calls += 1
        raise RuntimeError("xclip crashed")

    def paste(self):
        raise RuntimeError("no")


def test_without_a_display_pyperclip_has_no_backend_and_qt_takes_over(qapp):
    assert not PyperclipHandler().is_available()
    clipboard = Clipboard()
    assert clipboard.copy("$x$") == "qt"
    assert QGuiApplication.clipboard().text() == "$x$"
    assert clipboard.paste() == "$x$"


def test_a_failing_handler_is_skipped_from_then_on(qapp):
    failing = Failing()
    clipboard = Clipboard([failing, QtClipboardHandler()])
    assert clipboard.copy("a") == "qt"
    assert clipboard.copy("b") == "qt"
    assert failing.calls == 1 and QGuiApplication.clipboard().text() == "b"


def test_nothing_works_gives_a_clear_error():
    with pytest.raises(ClipboardError, match="xclip crashed"):
        Clipboard([Failing()]).copy("a")
