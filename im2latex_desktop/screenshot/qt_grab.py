"""Fallback capture through Qt (``QScreen.grabWindow(0)``) where mss cannot reach the display."""

from __future__ import annotations

from PIL import Image


def grab_qt_screens(screens) -> list[Image.Image | None]:
    """One picture per ``QScreen`` in physical pixels; ``None`` where Qt returned nothing."""
    from im2latex_desktop.gui.qt_image import qimage_to_pil

    pictures: list[Image.Image | None] = []
    for screen in screens:
        pixmap = screen.grabWindow(0)
        pictures.append(None if pixmap.isNull() else qimage_to_pil(pixmap.toImage()))
    return pictures
