"""A rendered preview of the LaTeX being edited, drawn by matplotlib's mathtext.

mathtext knows a large subset of math-mode LaTeX but not environments (``array``, ``cases``,
``aligned``) or line breaks; when it cannot draw a formula the preview says so plainly, since
the LaTeX itself may still be right for pdflatex.

Drawing happens on one background thread (matplotlib is not thread-safe, so always the same
one): importing matplotlib takes seconds and a first drawing most of one, which the window must
not wait for.  Requests are debounced while the user types, and only the newest one is drawn.
"""

from __future__ import annotations

import io
import queue
import re
import threading

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from model.errors import Im2LatexError

DEBOUNCE_MS = 250


class PreviewError(Im2LatexError):
    """mathtext cannot draw this formula."""


def _short_reason(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    reason = lines[-1] if lines else type(error).__name__
    reason = re.sub(r"^\w*Exception:\s*", "", reason)
    reason = re.sub(r"\s*\(at char \d+\), \(line:\d+, col:\d+\)$", "", reason)
    return reason if len(reason) <= 140 else reason[:137] + "…"


def render_mathtext(latex: str, color: str = "black", point_size: float = 22, device_pixel_ratio: float = 1.0) -> bytes:
    """PNG bytes of ``latex`` (math mode, no dollars); raises PreviewError when mathtext can't."""
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    text = latex.strip()
    if not text:
        raise PreviewError("There is nothing to preview.")
    if "$" in text:
        raise PreviewError("The preview cannot show a formula that contains “$”.")
    buffer = io.BytesIO()
    try:
        mathtext.math_to_image(f"${text}$", buffer, prop=FontProperties(size=point_size),
                               dpi=int(round(100 * device_pixel_ratio)), format="png", color=color)
    except Exception as error:  # pyparsing errors, unknown symbols, font lookups
        raise PreviewError(f"The preview cannot draw this (matplotlib's mathtext knows only part of LaTeX): {_short_reason(error)}") from error
    return buffer.getvalue()


class _Bridge(QObject):
    """Carries a finished drawing from the render thread to the widget, on the UI thread."""

    done = Signal(int, bytes, str)


class _Renderer:
    """The one thread that runs matplotlib; a daemon, so it never holds up quitting."""

    _instance: "_Renderer | None" = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="preview", daemon=True)
        self._thread.start()

    @classmethod
    def get(cls) -> "_Renderer":
        with cls._lock:
            if cls._instance is None:
                cls._instance = _Renderer()
            return cls._instance

    def submit(self, bridge: _Bridge | None, request: int, latex: str, ratio: float) -> None:
        self._queue.put((bridge, request, latex, ratio))

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            latest = {}
            while True:   # coalesce: per widget, only the newest request is worth drawing
                latest[id(job[0])] = job
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
            for bridge, request, latex, ratio in latest.values():
                if bridge is None:      # a warm-up: import matplotlib and draw once
                    try:
                        render_mathtext("x")
                    except Exception:
                        pass
                    continue
                try:
                    png, error = render_mathtext(latex, device_pixel_ratio=ratio), ""
                except PreviewError as failure:
                    png, error = b"", str(failure)
                except Exception as failure:  # never let the thread die
                    png, error = b"", f"The preview failed ({type(failure).__name__}: {failure})."
                try:
                    bridge.done.emit(request, png, error)
                except RuntimeError:      # the widget is gone
                    pass


def warm_up_preview() -> None:
    """Import matplotlib and draw once in the background, so the first preview is quick."""
    _Renderer.get().submit(None, 0, "", 1.0)


class PreviewWidget(QWidget):
    """Shows the rendered formula, or a note saying why it cannot be drawn."""

    rendered = Signal(bool)   # True when drawn, False when the note is shown

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image_label = QLabel()
        self.image_label.setObjectName("preview")
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumHeight(70)
        self.image_label.setStyleSheet("QLabel#preview { background: white; border: 1px solid #ccc; }")
        scroll = QScrollArea()
        scroll.setWidget(self.image_label)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setObjectName("previewNote")
        self.note.setStyleSheet("color: #a15c00;")
        self.note.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.note)
        self._latex = ""
        self._request = 0
        self._bridge = _Bridge(self)
        self._bridge.done.connect(self._on_done)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.render_now)

    def set_latex(self, latex: str, immediately: bool = False) -> None:
        self._latex = latex
        if immediately:
            self._timer.stop()
            self.render_now()
        else:
            self._timer.start()

    @property
    def pending(self) -> bool:
        return self._timer.isActive()

    def render_now(self) -> None:
        """Ask for a drawing of the current text; the answer arrives in ``_on_done``."""
        self._request += 1
        if not self._latex.strip():
            self.image_label.clear()
            self.note.hide()
            return
        _Renderer.get().submit(self._bridge, self._request, self._latex, self.devicePixelRatioF())

    def _on_done(self, request: int, png: bytes, error: str) -> None:
        if request != self._request:
            return   # the text changed meanwhile; a newer drawing is on its way
        image = QImage.fromData(png, "PNG") if png else QImage()
        if error or image.isNull():
            self.image_label.clear()
            self.note.setText(error or "The preview image could not be decoded.")
            self.note.show()
            self.rendered.emit(False)
            return
        image.setDevicePixelRatio(self.devicePixelRatioF())
        self.image_label.setPixmap(QPixmap.fromImage(image))
        self.note.hide()
        self.rendered.emit(True)
