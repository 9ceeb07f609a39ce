"""A rendered preview of the LaTeX being edited, drawn by matplotlib's mathtext.

mathtext knows a large subset of math-mode LaTeX but not environments (``array``, ``cases``,
``aligned``) or line breaks; when it cannot draw a formula the preview says so plainly, since
the LaTeX itself may still be right for pdflatex.  matplotlib is imported on first use (after
the window is up), and re-rendering is debounced while the user types.
"""

from __future__ import annotations

import io
import re

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPixmap
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


def render_mathtext(latex: str, color: QColor | str = "black", point_size: float = 22, device_pixel_ratio: float = 1.0) -> QImage:
    """Draw ``latex`` (math mode, no dollars) as an image; raises PreviewError when mathtext can't."""
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    text = latex.strip()
    if not text:
        raise PreviewError("There is nothing to preview.")
    if "$" in text:
        raise PreviewError("The preview cannot show a formula that contains “$”.")
    name = color.name() if isinstance(color, QColor) else color
    buffer = io.BytesIO()
    try:
        mathtext.math_to_image(f"${text}$", buffer, prop=FontProperties(size=point_size),
                               dpi=int(round(100 * device_pixel_ratio)), format="png", color=name)
    except Exception as error:  # pyparsing errors, unknown symbols, font lookups
        raise PreviewError(f"The preview cannot draw this (matplotlib's mathtext knows only part of LaTeX): {_short_reason(error)}") from error
    image = QImage.fromData(buffer.getvalue(), "PNG")
    if image.isNull():
        raise PreviewError("The preview image could not be decoded.")
    image.setDevicePixelRatio(device_pixel_ratio)
    return image


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
        if not self._latex.strip():
            self.image_label.clear()
            self.note.hide()
            return
        try:
            image = render_mathtext(self._latex, "black", device_pixel_ratio=self.devicePixelRatioF())
        except PreviewError as error:
            self.image_label.clear()
            self.note.setText(str(error))
            self.note.show()
            self.rendered.emit(False)
            return
        self.image_label.setPixmap(QPixmap.fromImage(image))
        self.note.hide()
        self.rendered.emit(True)
