"""Qt's own clipboard: always there once a QGuiApplication exists."""

from __future__ import annotations


class QtClipboardHandler:
    name = "qt"

    def is_available(self) -> bool:
        from PySide6.QtGui import QGuiApplication

        return QGuiApplication.instance() is not None

    def copy(self, text: str) -> None:
        from PySide6.QtGui import QGuiApplication

        QGuiApplication.clipboard().setText(text)

    def paste(self) -> str:
        from PySide6.QtGui import QGuiApplication

        return QGuiApplication.clipboard().text()
