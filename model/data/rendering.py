"""What a renderer returns, shared by the TeX and the mathtext renderer.

A renderer never hands back an image whose label might be wrong: every formula comes back
either as a ``RenderResult`` (the exact formula it was asked for, drawn) or as a ``Skip`` with a
short machine-readable reason, so the render command can count what was lost and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

INK_THRESHOLD = 250   # a gray value below this is ink (anti-aliased edges included)
CROP_MARGIN = 3       # white pixels kept around the ink of a raw render


@dataclass
class RenderResult:
    latex: str            # the formula exactly as given (the label)
    image: Image.Image    # 8-bit grayscale ("L"), black ink on white, cropped to the ink
    font: str
    style: str
    dpi: int
    renderer: str


@dataclass
class Skip:
    latex: str
    reason: str           # short key counted in summaries: compile_error, empty, timeout, ...
    detail: str = ""      # the TeX/mathtext message, for a person reading skipped.jsonl


STYLES = ("display", "inline")


def per_formula(formulas: list[str], style, dpi) -> tuple[list[str], list[int]]:
    """One style and one dpi per formula, from single values or per-formula sequences; both
    renderers take their options this way."""
    styles = [style] * len(formulas) if isinstance(style, str) else list(style)
    dpis = [int(dpi)] * len(formulas) if isinstance(dpi, (int, np.integer)) else [int(d) for d in dpi]
    if len(styles) != len(formulas) or len(dpis) != len(formulas):
        raise ValueError("give one style and one dpi, or one per formula")
    for st in set(styles):
        if st not in STYLES:
            raise ValueError(f"unknown style {st!r}; choose one of {', '.join(STYLES)}")
    return styles, dpis


def crop_to_ink(gray: np.ndarray, margin: int = CROP_MARGIN) -> np.ndarray | None:
    """The ink's bounding box plus ``margin`` white pixels; None when there is no ink.

    ``gray`` is uint8 with white = 255.  The margin is padded with white when the ink
    touches the page edge, so every raw render has the same clean border.
    """
    ink = gray < INK_THRESHOLD
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(ink.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box = gray[top:bottom, left:right]
    return np.pad(box, margin, mode="constant", constant_values=255)


def to_image(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(gray, dtype=np.uint8), mode="L")


def single_line(latex: str) -> str:
    """Formulas go one per line into a TeX file; a newline inside one is just a space."""
    return " ".join(latex.split())
