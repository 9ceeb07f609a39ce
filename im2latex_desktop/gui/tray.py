"""The tray icon (where the desktop has a tray): Snip / Show / Quit."""

from __future__ import annotations

from typing import Callable

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from im2latex_desktop.gui.icons import app_icon


def tray_available() -> bool:
    return QSystemTrayIcon.isSystemTrayAvailable()


def make_tray(parent: QWidget, on_snip: Callable[[], None], on_show: Callable[[], None], on_quit: Callable[[], None]) -> QSystemTrayIcon | None:
    """A visible tray icon with its menu, or ``None`` when this desktop has no tray."""
    if not tray_available():
        return None
    tray = QSystemTrayIcon(app_icon(), parent)
    tray.setToolTip("im2latex: snip a formula")
    menu = QMenu(parent)
    for label, callback in (("Snip", on_snip), ("Show", on_show), ("Quit", on_quit)):
        action = QAction(label, menu)
        action.triggered.connect(callback)
        menu.addAction(action)
    tray.setContextMenu(menu)
    tray.activated.connect(lambda reason: on_snip() if reason == QSystemTrayIcon.ActivationReason.Trigger else None)
    tray.show()
    return tray
