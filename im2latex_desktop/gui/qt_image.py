"""Lossless conversion between PIL images and Qt images (pixels copied exactly)."""

from __future__ import annotations

from PIL import Image
from PySide6.QtGui import QImage


def pil_to_qimage(image: Image.Image) -> QImage:
    """An RGB(A) copy of ``image`` as a QImage that owns its pixels."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    fmt = QImage.Format.Format_RGBA8888 if image.mode == "RGBA" else QImage.Format.Format_RGB888
    channels = 4 if image.mode == "RGBA" else 3
    data = image.tobytes()
    qimage = QImage(data, image.width, image.height, image.width * channels, fmt)
    return qimage.copy()  # detach from ``data``, which Python may free


def qimage_to_pil(qimage: QImage) -> Image.Image:
    """A QImage (any format) as a PIL image: RGB, or RGBA when it has an alpha channel."""
    has_alpha = qimage.hasAlphaChannel()
    fmt = QImage.Format.Format_RGBA8888 if has_alpha else QImage.Format.Format_RGB888
    converted = qimage.convertToFormat(fmt)
    width, height = converted.width(), converted.height()
    channels = 4 if has_alpha else 3
    stride = converted.bytesPerLine()
    raw = bytes(converted.constBits())[: stride * height]
    return Image.frombytes("RGBA" if has_alpha else "RGB", (width, height), raw, "raw", "RGBA" if has_alpha else "RGB", stride)
