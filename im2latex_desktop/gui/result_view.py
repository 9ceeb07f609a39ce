"""The result: the snip, its LaTeX (editable), a rendered preview, confidence, alternatives, copy buttons."""

from __future__ import annotations

from typing import Sequence

from PIL import Image
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QPixmap
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from im2latex_desktop.formats import FORMATS, format_latex
from im2latex_desktop.gui.preview import PreviewWidget
from im2latex_desktop.gui.qt_image import pil_to_qimage

COPY_LABELS = {"raw": "Copy LaTeX", "inline": "Copy $…$", "display": "Copy \\[…\\]", "equation": "Copy equation"}
EMPTY_TEXT = "Snip a formula (Ctrl+N), paste an image (Ctrl+V), open a file (Ctrl+O) or drop one here."


def snip_pixmap(image: Image.Image, ratio: float, min_height: int = 48, max_size: tuple[int, int] = (620, 150)) -> QPixmap:
    """The snip for display: one snip pixel per logical pixel, enlarged when tiny, shrunk when huge."""
    pixmap = QPixmap.fromImage(pil_to_qimage(image))
    factor = min(min_height / image.height, 3.0) if image.height < min_height else 1.0
    factor = min(factor, max_size[0] / image.width, max_size[1] / image.height)
    size = (max(1, round(image.width * factor * ratio)), max(1, round(image.height * factor * ratio)))
    if size != (image.width, image.height):
        pixmap = pixmap.scaled(*size, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def confidence_text(confidence: float) -> str:
    return f"Confidence: {confidence * 100:.0f}%"


class ResultView(QWidget):
    copy_requested = Signal(str, str)   # format, formatted text
    latex_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.snip_label = QLabel(EMPTY_TEXT)
        self.snip_label.setObjectName("snip")
        self.snip_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.snip_label.setWordWrap(True)
        self.snip_label.setMinimumHeight(90)
        self.snip_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.snip_label.setStyleSheet("QLabel#snip { background: white; color: #555; border: 1px solid #ccc; padding: 6px; }")

        self.latex_edit = QPlainTextEdit()
        self.latex_edit.setObjectName("latex")
        self.latex_edit.setPlaceholderText("The recognized LaTeX appears here; edit it as you like.")
        self.latex_edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.latex_edit.setFixedHeight(self.latex_edit.fontMetrics().lineSpacing() * 4 + 12)
        self.latex_edit.textChanged.connect(self._on_text_changed)

        self.preview = PreviewWidget()
        self.confidence_label = QLabel("")
        self.status_label = QLabel("")
        self.status_label.setStyleSheet("color: #666;")

        self.alternatives = QListWidget()
        self.alternatives.setObjectName("alternatives")
        self.alternatives.itemClicked.connect(self._on_alternative)
        self.alternatives.itemActivated.connect(self._on_alternative)
        self.alternatives_box = QGroupBox("Alternatives (click to use)")
        box_layout = QVBoxLayout(self.alternatives_box)
        box_layout.setContentsMargins(6, 4, 6, 6)
        box_layout.addWidget(self.alternatives)
        self.alternatives_box.hide()

        self.copy_buttons: dict[str, QPushButton] = {}
        buttons = QHBoxLayout()
        for fmt in FORMATS:
            button = QPushButton(COPY_LABELS[fmt])
            button.setObjectName(f"copy_{fmt}")
            button.clicked.connect(lambda _=False, f=fmt: self.request_copy(f))
            buttons.addWidget(button)
            self.copy_buttons[fmt] = button
        buttons.addStretch(1)

        info = QHBoxLayout()
        info.addWidget(self.confidence_label)
        info.addStretch(1)
        info.addWidget(self.status_label)

        layout = QVBoxLayout(self)
        layout.addWidget(self.snip_label)
        layout.addLayout(info)
        layout.addWidget(QLabel("LaTeX:"))
        layout.addWidget(self.latex_edit)
        layout.addLayout(buttons)
        layout.addWidget(QLabel("Preview:"))
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.alternatives_box)
        self.set_default_format("raw")
        self._set_copy_enabled(False)

    # -- content -------------------------------------------------------------------------
    def show_image(self, image: Image.Image | None) -> None:
        if image is None:
            self.snip_label.setPixmap(QPixmap())
            self.snip_label.setText(EMPTY_TEXT)
            return
        self.snip_label.setPixmap(snip_pixmap(image, self.devicePixelRatioF()))

    def show_pending(self, image: Image.Image | None, message: str = "Recognizing…") -> None:
        self.show_image(image)
        self.status_label.setText(message)

    def show_result(
        self,
        image: Image.Image | None,
        latex: str,
        confidence: float,
        alternatives: Sequence[tuple[str, float]] = (),
        status: str = "",
    ) -> None:
        if image is not None:
            self.show_image(image)
        self.latex_edit.blockSignals(True)
        self.latex_edit.setPlainText(latex)
        self.latex_edit.blockSignals(False)
        self.preview.set_latex(latex, immediately=True)
        self.confidence_label.setText(confidence_text(confidence))
        self.status_label.setText(status)
        self.alternatives.clear()
        others = sorted(((a, c) for a, c in alternatives if a != latex), key=lambda pair: -pair[1])
        choices = [(latex, confidence)] + others
        for text, conf in choices:
            item = QListWidgetItem(f"{conf * 100:3.0f}%   {text}")
            item.setData(Qt.ItemDataRole.UserRole, text)
            item.setToolTip(text)
            self.alternatives.addItem(item)
        rows = min(len(choices), 5)
        self.alternatives.setFixedHeight(self.alternatives.sizeHintForRow(0) * rows + 2 * self.alternatives.frameWidth() + 4)
        self.alternatives_box.setVisible(len(choices) > 1)
        self._set_copy_enabled(bool(latex.strip()))

    def show_message(self, message: str) -> None:
        self.status_label.setText(message)

    def latex(self) -> str:
        return self.latex_edit.toPlainText().strip()

    def formatted(self, fmt: str) -> str:
        return format_latex(self.latex(), fmt)

    def set_default_format(self, fmt: str) -> None:
        for name, button in self.copy_buttons.items():
            button.setDefault(name == fmt)
            font = button.font()
            font.setBold(name == fmt)
            button.setFont(font)

    def request_copy(self, fmt: str) -> None:
        if self.latex():
            self.copy_requested.emit(fmt, self.formatted(fmt))

    # -- internals -----------------------------------------------------------------------
    def _set_copy_enabled(self, enabled: bool) -> None:
        for button in self.copy_buttons.values():
            button.setEnabled(enabled)

    def _on_text_changed(self) -> None:
        text = self.latex_edit.toPlainText()
        self.preview.set_latex(text)
        self._set_copy_enabled(bool(text.strip()))
        self.latex_changed.emit(text)

    def _on_alternative(self, item: QListWidgetItem) -> None:
        self.latex_edit.setPlainText(item.data(Qt.ItemDataRole.UserRole))
