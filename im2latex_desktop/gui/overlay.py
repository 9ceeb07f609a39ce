"""The snipping overlay: every screen covered by its own frozen, dimmed picture; drag to select.

Each overlay paints its screen's frozen grab at exactly one image pixel per physical pixel (the
pixmap carries the screen's scale as its device pixel ratio), so what the user sees is what is
cropped.  The selection is kept in physical pixels (see ``geometry.selection_rect``) and the
crop comes from the frozen grab, not from a new screenshot.  Escape or a right click cancels.
A selection belongs to the screen the drag started on.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image
from PySide6.QtCore import QObject, QPointF, QRect, QRectF, Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QKeyEvent, QMouseEvent, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from im2latex_desktop.gui.qt_image import pil_to_qimage
from im2latex_desktop.screenshot import Capture, ScreenCapture
from im2latex_desktop.screenshot.geometry import PixelRect, logical_rect, selection_rect

MIN_SELECTION = 4          # physical pixels; anything thinner is a slip of the mouse
DIM = QColor(0, 0, 0, 120)
ACCENT = QColor(64, 156, 255)
HINT = "Drag around the formula  ·  Esc or right click cancels"


@dataclass
class SnipResult:
    image: Image.Image          # the selected pixels, exactly as frozen
    rect: PixelRect             # in the screen's own physical pixels
    global_rect: PixelRect      # on the desktop, in physical pixels
    screen_name: str
    scale: float


class ScreenOverlay(QWidget):
    """One frameless full-screen window over one screen."""

    selected = Signal(object, object)   # overlay, PixelRect
    cancelled = Signal()

    def __init__(self, capture: ScreenCapture, qscreen=None) -> None:
        flags = Qt.WindowType.FramelessWindowHint | Qt.WindowType.WindowStaysOnTopHint
        super().__init__(None, flags)
        self.capture = capture
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMouseTracking(True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setWindowTitle("im2latex snip")
        self._pixmap = QPixmap.fromImage(pil_to_qimage(capture.image))
        self._pixmap.setDevicePixelRatio(capture.scale)
        self._start: QPointF | None = None
        self._end: QPointF | None = None
        self._hover: QPointF | None = None
        if qscreen is not None:
            self.setScreen(qscreen)
        s = capture.screen
        self.setGeometry(QRect(s.x, s.y, s.width, s.height))

    # -- state ---------------------------------------------------------------------------
    @property
    def dragging(self) -> bool:
        return self._start is not None

    def selection(self) -> PixelRect | None:
        if self._start is None or self._end is None:
            return None
        bounds = (self.capture.image.width, self.capture.image.height)
        return selection_rect((self._start.x(), self._start.y()), (self._end.x(), self._end.y()), self.capture.scale, bounds)

    # -- events --------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._start = self._end = event.position()
            self.update()
        elif event.button() == Qt.MouseButton.RightButton:
            self.cancelled.emit()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self._hover = event.position()
        if self._start is not None:
            self._end = event.position()
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._start is None:
            return
        self._end = event.position()
        rect = self.selection()
        self._start = None
        self.selected.emit(self, rect)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.cancelled.emit()
        else:
            super().keyPressEvent(event)

    # -- painting ------------------------------------------------------------------------
    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._pixmap)
        scale = self.capture.scale
        rect = self.selection()
        hole = QRectF(*logical_rect(rect, scale)) if rect is not None and not rect.is_empty() else None
        dim = QPainterPath()
        dim.addRect(QRectF(self.rect()))
        if hole is not None:
            dim.addRect(hole)
            dim.setFillRule(Qt.FillRule.OddEvenFill)
        painter.fillPath(dim, DIM)
        if hole is not None:
            self._paint_border(painter, hole)
            self._paint_readout(painter, hole, rect)
        elif self._hover is not None:
            painter.setPen(QPen(QColor(255, 255, 255, 110), 0))
            painter.drawLine(QPointF(0, self._hover.y()), QPointF(self.width(), self._hover.y()))
            painter.drawLine(QPointF(self._hover.x(), 0), QPointF(self._hover.x(), self.height()))
        if not self.dragging and hole is None:
            self._paint_hint(painter)
        painter.end()

    def _paint_border(self, painter: QPainter, hole: QRectF) -> None:
        """A frame just outside the selection, so every selected pixel stays visible as it is."""
        b = max(1.0, round(self.capture.scale)) / self.capture.scale
        x, y, w, h = hole.x(), hole.y(), hole.width(), hole.height()
        for part in (QRectF(x - b, y - b, w + 2 * b, b), QRectF(x - b, y + h, w + 2 * b, b),
                     QRectF(x - b, y, b, h), QRectF(x + w, y, b, h)):
            painter.fillRect(part, ACCENT)

    def _paint_readout(self, painter: QPainter, hole: QRectF, rect: PixelRect) -> None:
        text = f"{rect.width} × {rect.height} px"
        font = QFont(self.font())
        font.setPointSizeF(max(9.0, font.pointSizeF()))
        painter.setFont(font)
        metrics = QFontMetricsF(font)
        box = QRectF(0, 0, metrics.horizontalAdvance(text) + 12, metrics.height() + 6)
        box.moveTopLeft(QPointF(hole.x(), hole.bottom() + 4))
        if box.bottom() > self.height():
            box.moveBottomLeft(QPointF(hole.x(), hole.top() - 4))
        if box.right() > self.width():
            box.moveRight(self.width() - 2)
        box.moveTop(max(0.0, box.top()))
        painter.fillRect(box, QColor(20, 20, 20, 220))
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_hint(self, painter: QPainter) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(10.0, font.pointSizeF() * 1.1))
        painter.setFont(font)
        metrics = QFontMetricsF(font)
        box = QRectF(0, 0, metrics.horizontalAdvance(HINT) + 24, metrics.height() + 12)
        box.moveCenter(QPointF(self.width() / 2, 0))
        box.moveTop(24)
        painter.fillRect(box, QColor(20, 20, 20, 200))
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, HINT)


class SnipSession(QObject):
    """Shows one overlay per captured screen and reports one outcome, then closes them all."""

    finished = Signal(object)   # SnipResult
    cancelled = Signal()
    failed = Signal(str)

    def __init__(self, capture: Capture, qscreens=(), parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.capture = capture
        by_name = {s.name(): s for s in qscreens}
        self.overlays: list[ScreenOverlay] = []
        for screen_capture in capture.screens:
            overlay = ScreenOverlay(screen_capture, by_name.get(screen_capture.screen.name))
            overlay.selected.connect(self._on_selected)
            overlay.cancelled.connect(self.cancel)
            self.overlays.append(overlay)
        self.active = False

    def start(self) -> None:
        self.active = True
        for overlay in self.overlays:
            overlay.showFullScreen()
            overlay.raise_()
        if self.overlays:
            self.overlays[0].activateWindow()
            self.overlays[0].setFocus()

    def overlay_for(self, screen_name: str) -> ScreenOverlay | None:
        return next((o for o in self.overlays if o.capture.screen.name == screen_name), None)

    @Slot()
    def cancel(self) -> None:
        if self._close():
            self.cancelled.emit()

    @Slot(object, object)
    def _on_selected(self, overlay: ScreenOverlay, rect: PixelRect | None) -> None:
        if not self._close():
            return
        if rect is None or rect.width < MIN_SELECTION or rect.height < MIN_SELECTION:
            size = f"{rect.width} × {rect.height} px" if rect is not None else "nothing"
            self.failed.emit(f"The selection was too small ({size}): drag a rectangle around the formula.")
            return
        capture = overlay.capture
        image = capture.crop(rect)
        global_rect = rect.translated(capture.monitor.left, capture.monitor.top)
        self.finished.emit(SnipResult(image, rect, global_rect, capture.screen.name, capture.scale))

    def _close(self) -> bool:
        if not self.active:
            return False
        self.active = False
        for overlay in self.overlays:
            overlay.close()
        self.overlays = []
        return True
