"""Putting the app together: settings, history, recognizer worker, window, tray, hotkey, instance server."""

from __future__ import annotations

import logging
from typing import Any, Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from im2latex_desktop.clipboard import Clipboard
from im2latex_desktop.gui.main_window import MainWindow, capture_desktop
from im2latex_desktop.gui.tray import make_tray
from im2latex_desktop.history import History
from im2latex_desktop.hotkey import GlobalHotkey
from im2latex_desktop.screenshot import Capture
from im2latex_desktop.settings import SettingsStore
from im2latex_desktop.single_instance import InstanceServer
from im2latex_desktop.worker import RecognitionService, RecognizerFactory

log = logging.getLogger(__name__)


class DesktopApp:
    """Owns every long-lived part; ``start`` shows the window, then loads the model in the background."""

    def __init__(
        self,
        qapp: QApplication,
        model: str = "",
        device: str = "",
        recognizer_factory: RecognizerFactory | None = None,
        server_name: str | None = None,
        capture: Callable[[], Capture] = capture_desktop,
        clipboard: Clipboard | None = None,
        use_tray: bool = True,
        use_hotkey: bool = True,
    ) -> None:
        self.qapp = qapp
        self.settings_store = SettingsStore()
        settings = self.settings_store.load()
        self.history = History()
        self.history.load()
        self.service = RecognitionService(recognizer_factory)
        self.hotkey = GlobalHotkey(qapp.platformName()) if use_hotkey else None
        self.window = MainWindow(self.settings_store, settings, self.history, self.service, clipboard,
                                 self.hotkey, capture, model_override=model, device_override=device)
        self.server = InstanceServer(server_name)
        self.server.command_received.connect(self.handle_command)
        self.tray: Any = None
        if use_tray:
            self.tray = make_tray(self.window, self.window.start_snip, self.window.present, self.window.quit)
            self.window.tray = self.tray
            if self.tray is not None:
                qapp.setQuitOnLastWindowClosed(False)
        qapp.aboutToQuit.connect(self.shutdown)
        self._shut = False

    def listen(self) -> bool:
        """Become the instance later starts talk to; ``False`` (logged) leaves the app working alone."""
        ok = self.server.listen()
        if not ok:
            log.warning("single-instance socket unavailable; --snip from another start will open a second app")
        return ok

    def start(self, snip: bool = False) -> None:
        """Show the window (unless snipping straight away), then load the model and hotkey."""
        if not snip:
            self.window.show()
        QTimer.singleShot(0, self._after_show)
        if snip:
            QTimer.singleShot(0, self.window.start_snip)

    def _after_show(self) -> None:
        from im2latex_desktop.gui.preview import warm_up_preview

        self.window.load_model()
        self.window.register_hotkey()
        warm_up_preview()

    def handle_command(self, command: str) -> None:
        if command == "snip":
            self.window.start_snip()
        elif command == "show":
            self.window.present()

    def shutdown(self) -> None:
        if self._shut:
            return
        self._shut = True
        if self.hotkey is not None:
            self.hotkey.stop()
        self.server.close()
        self.service.shutdown()
        if self.tray is not None:
            self.tray.hide()
