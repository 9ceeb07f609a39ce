"""The main window: triggers (snip, paste, open, drop), the result, history, status, settings.

Everything slow happens elsewhere: the model in the recognition worker, the screen grab once
per snip.  Errors are shown in the banner above the result, never raised out of a slot.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from PIL import Image
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QProgressBar,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from im2latex_desktop.checks import describe_device, snip_problem, stopped_note
from im2latex_desktop.clipboard import Clipboard, ClipboardError
from im2latex_desktop.formats import FORMATS, format_latex
from im2latex_desktop.gui.banner import MessageBanner
from im2latex_desktop.gui.history_panel import HistoryPanel
from im2latex_desktop.gui.icons import app_icon, icon
from im2latex_desktop.gui.overlay import SnipResult, SnipSession
from im2latex_desktop.gui.qt_image import qimage_to_pil
from im2latex_desktop.gui.result_view import ResultView
from im2latex_desktop.history import History
from im2latex_desktop.screenshot import Capture, CaptureError, capture_screens
from im2latex_desktop.screenshot.geometry import LogicalScreen
from im2latex_desktop.settings import Settings, SettingsStore
from im2latex_desktop.worker import Job, RecognitionService
from model.errors import Im2LatexError

log = logging.getLogger(__name__)

SNIP_SHORTCUT = "Ctrl+N"
HIDE_DELAY_MS = 250           # lets the compositor take our window off the screen before the grab
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp);;All files (*)"


def logical_screens() -> list[LogicalScreen]:
    """Qt's screens as plain geometry records."""
    result = []
    for screen in QGuiApplication.screens():
        geo = screen.geometry()
        result.append(LogicalScreen(screen.name(), geo.x(), geo.y(), geo.width(), geo.height(), screen.devicePixelRatio()))
    return result


def capture_desktop() -> Capture:
    """Freeze all screens with the best backend available here (see ``screenshot``)."""
    from im2latex_desktop.screenshot.qt_grab import grab_qt_screens

    return capture_screens(logical_screens(), QGuiApplication.platformName(),
                           qt_grabber=lambda: grab_qt_screens(QGuiApplication.screens()))


class MainWindow(QMainWindow):
    # For tests and the tray: what happened, after it happened.
    overlay_shown = Signal(object)    # SnipSession
    result_shown = Signal(object)     # Recognition
    error_shown = Signal(str)
    copied = Signal(str)

    def __init__(
        self,
        settings_store: SettingsStore,
        settings: Settings,
        history: History,
        service: RecognitionService,
        clipboard: Clipboard | None = None,
        hotkey: Any = None,
        capture: Callable[[], Capture] = capture_desktop,
        model_override: str = "",
        device_override: str = "",
    ) -> None:
        super().__init__()
        self.settings_store = settings_store
        self.settings = settings
        self.history = history
        self.service = service
        self.clipboard = clipboard or Clipboard()
        self.hotkey = hotkey
        self.hotkey_message = ""
        self.capture = capture
        self.model_override = model_override
        self.device_override = device_override
        self.session: SnipSession | None = None
        self.current_entry_id: str | None = None
        self.last_recognition: Any = None
        self.tray = None
        self._quitting = False
        self._restore_after_snip = False

        self.setWindowTitle("im2latex")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(860, 560)

        self.banner = MessageBanner()
        self.result_view = ResultView()
        self.result_view.latex_edit.setAcceptDrops(False)   # dropped files go to the window
        self.result_view.copy_requested.connect(self._on_copy_requested)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addWidget(self.banner)
        layout.addWidget(self.result_view, 1)
        self.setCentralWidget(central)

        self.history_panel = HistoryPanel()
        self.history_panel.copy_requested.connect(self.copy_history_entry)
        self.history_panel.open_requested.connect(self.open_history_entry)
        self.history_panel.delete_requested.connect(self.delete_history_entry)
        self.history_dock = QDockWidget("History", self)
        self.history_dock.setObjectName("history_dock")
        self.history_dock.setWidget(self.history_panel)
        self.history_panel.setMinimumWidth(240)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.history_dock)

        self._build_actions()
        self._build_status_bar()
        self.result_view.set_default_format(settings.default_format)

        service.model_loading.connect(self._on_model_loading)
        service.model_ready.connect(self._on_model_ready)
        service.model_warning.connect(lambda message: self.show_error(message, "warning"))
        service.model_failed.connect(self._on_model_failed)
        service.result_ready.connect(self._on_result)
        service.job_failed.connect(self._on_job_failed)
        service.job_dropped.connect(lambda job: self.statusBar().showMessage("An older snip was skipped for the newer one.", 4000))
        service.busy_changed.connect(self._on_busy)
        if hotkey is not None:
            hotkey.triggered.connect(self.start_snip)

        self.refresh_history()
        if history.message:
            self.show_error(history.message, "warning")
        if settings_store.message:
            self.show_error(settings_store.message, "warning")

    # -- construction --------------------------------------------------------------------
    def _build_actions(self) -> None:
        toolbar = QToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setMovable(False)
        self.addToolBar(toolbar)

        def action(text: str, icon_name: str, shortcut, slot, tip: str) -> QAction:
            act = QAction(icon(icon_name), text, self)
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
                act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.setToolTip(f"{tip} ({QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)})" if shortcut is not None else tip)
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        self.snip_action = action("Snip", "snip", SNIP_SHORTCUT, self.start_snip, "Select a formula on the screen")
        self.paste_action = action("Paste", "paste", QKeySequence.StandardKey.Paste, self.paste_image, "Recognize the image on the clipboard")
        self.open_action = action("Open…", "open", QKeySequence.StandardKey.Open, self.open_file, "Recognize an image file")
        self.settings_action = action("Settings", "settings", "Ctrl+,", self.open_settings, "Hotkey, format, device, beam width")
        self.quit_action = action("Quit", "quit", QKeySequence.StandardKey.Quit, self.quit, "Quit im2latex")
        history_toggle = self.history_dock.toggleViewAction()
        history_toggle.setShortcut(QKeySequence("Ctrl+H"))
        history_toggle.setIcon(icon("history"))
        for act in (self.snip_action, self.paste_action, self.open_action, history_toggle, self.settings_action):
            toolbar.addAction(act)
        toolbar.widgetForAction(self.snip_action).setObjectName("snip_button")

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(120)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.device_label = QLabel("Device: –")
        self.time_label = QLabel("")
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.time_label)
        bar.addPermanentWidget(self.device_label)

    # -- model ---------------------------------------------------------------------------
    def load_model(self) -> None:
        """Start loading in the background (call after the window is shown)."""
        model = self.model_override or self.settings.model_path
        device = self.device_override or self.settings.device
        self.service.load(model, device)

    def _on_model_loading(self, message: str) -> None:
        self.progress.show()
        self.statusBar().showMessage(message)

    def _on_model_ready(self, device: str) -> None:
        if not self.service.busy:
            self.progress.hide()
        self.device_label.setText(f"Device: {describe_device(device)}")
        self.statusBar().showMessage(f"Model ready on {describe_device(device)}.", 5000)
        if self.banner.tag == "model":
            self.banner.hide()

    def _on_model_failed(self, message: str) -> None:
        self.progress.hide()
        self.device_label.setText("Device: no model")
        self.statusBar().showMessage("The model could not be loaded.")
        self.show_error(message, "error", tag="model")

    def _on_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy or self.service.state == "loading")

    # -- triggers ------------------------------------------------------------------------
    def start_snip(self) -> None:
        """Hide the window, freeze all screens, and show the overlays."""
        if self.session is not None and self.session.active:
            for overlay in self.session.overlays:
                overlay.raise_()
            return
        self._restore_after_snip = self.isVisible() and not self.isMinimized()
        if self._restore_after_snip:
            self.hide()
            QTimer.singleShot(HIDE_DELAY_MS, self._begin_capture)
        else:
            QTimer.singleShot(0, self._begin_capture)

    def _begin_capture(self) -> None:
        try:
            capture = self.capture()
        except CaptureError as error:
            self.present()
            self.show_error(str(error), "error", [("Paste image", self.paste_image), ("Open file…", self.open_file)])
            return
        except Exception as error:  # a backend bug must not take the app down
            log.exception("capture failed")
            self.present()
            self.show_error(f"The screen could not be captured ({error}); paste or open an image instead.", "error",
                            [("Paste image", self.paste_image), ("Open file…", self.open_file)])
            return
        self.session = SnipSession(capture, QGuiApplication.screens(), self)
        self.session.finished.connect(self._on_snip)
        self.session.cancelled.connect(self._on_snip_cancelled)
        self.session.failed.connect(self._on_snip_failed)
        self.session.start()
        self.overlay_shown.emit(self.session)

    def _after_snip(self) -> None:
        if self._restore_after_snip:
            self.present()

    def _on_snip(self, result: SnipResult) -> None:
        self.present()
        self.recognize_image(result.image, "snip")

    def _on_snip_cancelled(self) -> None:
        self._after_snip()
        self.statusBar().showMessage("Snip cancelled.", 3000)

    def _on_snip_failed(self, message: str) -> None:
        self.present()
        self.show_error(message, "warning")

    def paste_image(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime is not None and mime.hasImage():
            qimage = QGuiApplication.clipboard().image()
            if not qimage.isNull():
                self.recognize_image(qimage_to_pil(qimage), "paste")
                return
        if mime is not None and mime.hasUrls():
            files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if files:
                self.open_path(files[0], "paste")
                return
        self.show_error("The clipboard holds no image: copy a picture of a formula first (or snip one).", "warning")

    def open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an image of a formula", "", IMAGE_FILTER)
        if path:
            self.open_path(path, "file")

    def open_path(self, path: str | Path, source: str = "file") -> None:
        from model.images import load_image

        try:
            image = load_image(Path(path))
        except Im2LatexError as error:
            self.show_error(str(error), "error")
            return
        self.recognize_image(image, source)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if mime.hasImage() or (mime.hasUrls() and any(u.isLocalFile() for u in mime.urls())):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        if mime.hasUrls():
            files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if files:
                event.acceptProposedAction()
                self.open_path(files[0], "drop")
                return
        if mime.hasImage():
            image = mime.imageData()
            if image is not None and not image.isNull():
                event.acceptProposedAction()
                self.recognize_image(qimage_to_pil(image), "drop")
                return
        event.ignore()

    # -- recognition ---------------------------------------------------------------------
    def recognize_image(self, image: Image.Image, source: str = "snip") -> Job | None:
        problem = snip_problem(image)
        if problem is not None:
            self.result_view.show_image(image)
            self.show_error(problem, "warning")
            return None
        if self.banner.tag != "model":
            self.banner.hide()
        self.result_view.show_pending(image, "Waiting for the model…" if self.service.state == "loading" else "Recognizing…")
        self.statusBar().showMessage("Recognizing…")
        return self.service.submit(image, beam=self.settings.beam_width, source=source)

    def _on_result(self, job: Job, recognition: Any, messages: list[str]) -> None:
        alternatives = [(a.latex, a.confidence) for a in recognition.alternatives]
        seconds = f"{recognition.seconds:.2f} s"
        device = describe_device(recognition.device)
        self.device_label.setText(f"Device: {device}")
        self.time_label.setText(f"Time: {seconds}")
        warning = getattr(recognition, "warning", None)
        stopped = getattr(recognition, "stopped", None)
        notes = [m for m in [stopped_note(stopped), warning, *messages] if m]
        entry = self.history.add(recognition.latex, recognition.confidence, job.image, job.source, stopped)
        self.current_entry_id = entry.id
        self.refresh_history()
        self.history_panel.select(entry.id)
        self.result_view.show_result(job.image, recognition.latex, recognition.confidence, alternatives,
                                     f"Recognized in {seconds} on {device}" + (" (cut short)" if stopped else ""))
        if notes:
            self.show_error(" ".join(dict.fromkeys(notes)), "warning", tag="stopped" if stopped else "")
        elif self.banner.tag != "model":
            self.banner.hide()
        self.last_recognition = recognition
        message = f"Recognized in {seconds} on {device}."
        if self.settings.auto_copy and recognition.latex.strip():
            fmt = self.settings.default_format
            if self.copy_text(format_latex(recognition.latex, fmt)):
                message += f" Copied as {FORMATS[fmt]}."
        self.statusBar().showMessage(message, 8000)
        self.result_shown.emit(recognition)

    def _on_job_failed(self, job: Job, message: str) -> None:
        self.result_view.show_message("")
        self.statusBar().showMessage("Recognition failed.", 5000)
        self.show_error(message, "error")

    # -- copying and history -------------------------------------------------------------
    def copy_text(self, text: str) -> bool:
        try:
            self.clipboard.copy(text)
        except ClipboardError as error:
            self.show_error(str(error), "error")
            return False
        self.copied.emit(text)
        return True

    def _on_copy_requested(self, fmt: str, text: str) -> None:
        if self.copy_text(text):
            self.statusBar().showMessage(f"Copied as {FORMATS[fmt]}.", 3000)
            if self.current_entry_id:
                self.history.update_latex(self.current_entry_id, self.result_view.latex())
                self.refresh_history()

    def refresh_history(self) -> None:
        self.history_panel.set_entries(self.history.entries, self.history.thumbnail_path)

    def copy_history_entry(self, entry_id: str) -> None:
        entry = self.history.get(entry_id)
        if entry is not None and self.copy_text(format_latex(entry.latex, self.settings.default_format)):
            self.statusBar().showMessage(f"Copied as {FORMATS[self.settings.default_format]}.", 3000)

    def open_history_entry(self, entry_id: str) -> None:
        entry = self.history.get(entry_id)
        if entry is None:
            return
        path = self.history.thumbnail_path(entry)
        image = None
        if path is not None:
            try:
                with Image.open(path) as im:
                    image = im.convert("RGB")
            except OSError:
                image = None
        self.current_entry_id = entry.id
        self.result_view.show_image(image)
        self.result_view.show_result(None, entry.latex, entry.confidence, (), "From the history")
        note = stopped_note(entry.stopped)
        if note:
            self.show_error(note, "warning", tag="stopped")
        elif self.banner.tag == "stopped":
            self.banner.hide()

    def delete_history_entry(self, entry_id: str) -> None:
        self.history.delete(entry_id)
        if self.current_entry_id == entry_id:
            self.current_entry_id = None
        self.refresh_history()

    # -- settings ------------------------------------------------------------------------
    def open_settings(self) -> None:
        from im2latex_desktop.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self.hotkey_message, self)
        if dialog.exec():
            self.apply_settings(dialog.settings())

    def apply_settings(self, new: Settings) -> None:
        old, self.settings = self.settings, replace(new)
        try:
            self.settings_store.save(new)
        except OSError as error:
            self.show_error(f"The settings could not be saved ({error.strerror or error}).", "error")
        self.result_view.set_default_format(new.default_format)
        if (new.hotkey, new.hotkey_enabled) != (old.hotkey, old.hotkey_enabled):
            self.register_hotkey()
        model_changed = (new.model_path, new.device) != (old.model_path, old.device)
        if model_changed and not (self.model_override and self.device_override):
            self.load_model()

    def register_hotkey(self) -> None:
        if self.hotkey is None:
            return
        if not self.settings.hotkey_enabled or not self.settings.hotkey:
            self.hotkey.stop()
            self.hotkey_message = ""
            return
        message = self.hotkey.start(self.settings.hotkey)
        self.hotkey_message = message or ""
        if message:
            self.statusBar().showMessage(message, 10000)
        else:
            self.statusBar().showMessage(f"Global hotkey: {self.settings.hotkey}", 4000)

    # -- messages and lifetime -----------------------------------------------------------
    def show_error(self, message: str, level: str = "error", actions=(), tag: str = "") -> None:
        self.banner.show_message(message, level, actions, tag)
        self.error_shown.emit(message)

    def present(self) -> None:
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    def quit(self) -> None:
        self._quitting = True
        self.close()
        QApplication.quit()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.tray is not None and self.settings.close_to_tray and not self._quitting:
            self.hide()
            event.ignore()
            return
        event.accept()
        if self.tray is not None:   # with a tray Qt does not quit on the last window by itself
            QApplication.quit()
