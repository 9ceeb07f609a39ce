"""Render the app icon (``resources/icons/im2latex.svg``) to PNGs in the freedesktop sizes.

Desktops that ignore SVG icons (and small panel sizes, where a hand-checked raster looks better)
need ``hicolor/<N>x<N>/apps/im2latex-desktop.png``.  The PNGs are committed, so neither a wheel
build nor an install needs Qt's SVG module; rerun this after changing the SVG:

    .venv/bin/python packaging/render_icons.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "resources" / "icons" / "im2latex.svg"
HICOLOR = REPO / "resources" / "icons" / "hicolor"
SIZES = (16, 32, 48, 64, 128, 256)
ICON_NAME = "im2latex-desktop"


def png_path(size: int, root: Path = HICOLOR) -> Path:
    return root / f"{size}x{size}" / "apps" / f"{ICON_NAME}.png"


def render(svg: Path, size: int, out: Path) -> Path:
    """Draw ``svg`` on a transparent ``size`` x ``size`` canvas with Qt's SVG renderer."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (fonts need it)
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not a valid SVG file.")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(out), "PNG"):
        raise OSError(f"could not write {out}")
    return out


def main() -> int:
    for size in SIZES:
        print(render(SOURCE, size, png_path(size)).relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
