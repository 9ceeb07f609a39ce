"""The snipping overlay on its own: exact crops at any scale, cancel, tiny selections, painting."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest

from im2latex_desktop.gui.overlay import DIM, SnipSession
from im2latex_desktop.screenshot import Capture, ScreenCapture
from im2latex_desktop.screenshot.geometry import LogicalScreen, Monitor


def make_capture(scale: float, size=(320, 200), origin=(0, 0), seed=0) -> Capture:
    screen = LogicalScreen("test", 0, 0, size[0], size[1], scale)
    width, height = round(size[0] * scale), round(size[1] * scale)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    monitor = Monitor(origin[0], origin[1], width, height, "test")
    return Capture([ScreenCapture(screen, Image.fromarray(pixels), scale, monitor)], "test")


def drag(overlay, start: QPointF, end: QPointF) -> None:
    """Send press, move and release with floating-point positions, as Qt delivers them on HiDPI."""
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    for kind, pos, buttons in ((QEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton),
                               (QEvent.Type.MouseMove, (start + end) / 2, Qt.MouseButton.LeftButton),
                               (QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)):
        event = QMouseEvent(kind, pos, overlay.mapToGlobal(pos), Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton,
                            buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(overlay, event)


@pytest.mark.parametrize("scale", [1.0, 1.25, 1.5, 2.0])
def test_drag_crops_the_frozen_pixels_exactly(qtbot, scale):
    capture = make_capture(scale, origin=(-1920, 0))
    session = SnipSession(capture)
    results = []
    session.finished.connect(results.append)
    session.start()
    overlay = session.overlays[0]
    qtbot.addWidget(overlay)
    # physical corners (37, 21) and (211, 98), given as Qt gives them: physical / scale
    drag(overlay, QPointF(211 / scale, 98 / scale), QPointF(37 / scale, 21 / scale))
    assert len(results) == 1 and not session.overlays
    result = results[0]
    assert (result.rect.left, result.rect.top, result.rect.width, result.rect.height) == (37, 21, 174, 77)
    assert result.global_rect.left == -1920 + 37
    frozen = np.asarray(capture.screens[0].image)
    assert np.array_equal(np.asarray(result.image), frozen[21:98, 37:211])


def test_escape_and_right_click_cancel(qtbot):
    for cancel in ("escape", "right"):
        session = SnipSession(make_capture(1.0))
        cancelled = []
        session.cancelled.connect(lambda: cancelled.append(True))
        session.finished.connect(lambda r: cancelled.append(False))
        session.start()
        overlay = session.overlays[0]
        qtbot.addWidget(overlay)
        if cancel == "escape":
            QTest.keyClick(overlay, Qt.Key.Key_Escape)
        else:
            QTest.mouseClick(overlay, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, QPoint(50, 50))
        assert cancelled == [True] and not session.active and not overlay.isVisible()


def test_a_click_without_dragging_is_a_too_small_selection(qtbot):
    session = SnipSession(make_capture(2.0))
    failed = []
    session.failed.connect(failed.append)
    session.start()
    overlay = session.overlays[0]
    qtbot.addWidget(overlay)
    drag(overlay, QPointF(40, 40), QPointF(41, 40.5))
    assert failed and "too small (2 × 1 px)" in failed[0]


def test_overlay_paints_the_frozen_screen_dimmed_and_the_selection_as_is(qtbot, artifacts_dir):
    capture = make_capture(1.0, size=(320, 200))
    session = SnipSession(capture)
    session.start()
    overlay = session.overlays[0]
    qtbot.addWidget(overlay)
    overlay.resize(320, 200)
    press = QPointF(100, 60)
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    QApplication.sendEvent(overlay, QMouseEvent(QEvent.Type.MouseButtonPress, press, overlay.mapToGlobal(press), Qt.MouseButton.LeftButton,
                                                Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    move = QPointF(200, 140)
    QApplication.sendEvent(overlay, QMouseEvent(QEvent.Type.MouseMove, move, overlay.mapToGlobal(move), Qt.MouseButton.NoButton,
                                                Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    shot = overlay.grab().toImage()
    shot.save(str(artifacts_dir / "overlay-offscreen.png"))
    frozen = capture.screens[0].image
    inside = QColor(shot.pixel(150, 100))
    assert inside.getRgb()[:3] == frozen.getpixel((150, 100))        # the selection is undimmed
    outside = QColor(shot.pixel(20, 180))
    expected = [round(c * (255 - DIM.alpha()) / 255) for c in frozen.getpixel((20, 180))]
    assert all(abs(a - b) <= 2 for a, b in zip(outside.getRgb()[:3], expected))  # the rest is dimmed
    session.cancel()
