"""Render formulas with matplotlib's mathtext, for machines without TeX (e.g. a GPU box).

mathtext draws a subset of LaTeX.  A formula is only drawn when every construct in it has an
exact mathtext counterpart; anything else (environments, alignment, ``\\big`` delimiters, a
glyph the font lacks, a parse error) is skipped with a reason, never drawn approximately under
the original label.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..tokenizer import detokenize, tokenize
from .rendering import RenderResult, Skip, crop_to_ink, per_formula, single_line, to_image

FONTS = ("cm", "stix", "stixsans", "dejavuserif", "dejavusans")
FONT_SIZE_PT = 12.0  # the same nominal size as the TeX renders (article, 12pt)

# Constructs mathtext cannot draw at all: skipped before parsing, with a clear reason.
UNSUPPORTED = {
    "&": "alignment", "\\\\": "line break", "\\big": "\\big delimiter", "\\Big": "\\Big delimiter",
    "\\bigg": "\\bigg delimiter", "\\Bigg": "\\Bigg delimiter", "\\operatorname*": "\\operatorname*",
    "\\boxed": "\\boxed", "\\xrightarrow": "\\xrightarrow", "\\xleftarrow": "\\xleftarrow",
    "\\overbrace": "\\overbrace", "\\underbrace": "\\underbrace", "\\cfrac": "\\cfrac",
    "\\tag": "\\tag",
}
# Exact rewrites: the same drawing under another name mathtext knows.
REWRITES = {"\\lVert": "\\Vert", "\\rVert": "\\Vert", "\\stackrel": "\\overset"}
# mathtext's \not strikes the wrong glyph; the negations it has as symbols are exact.
NEGATIONS = {"=": "\\neq", "\\in": "\\notin", "\\equiv": "\\nequiv", "<": "\\nless", ">": "\\ngtr",
             "\\leq": "\\nleq", "\\geq": "\\ngeq", "\\subset": "\\nsubset", "\\supset": "\\nsupset",
             "\\subseteq": "\\nsubseteq", "\\supseteq": "\\nsupseteq", "\\sim": "\\nsim",
             "\\mid": "\\nmid", "\\parallel": "\\nparallel", "\\cong": "\\ncong"}
# Commands a fontset draws wrongly (STIX \mathsf is slanted; stixsans \boldsymbol is not bold).
FONT_UNSUPPORTED = {"stix": {"\\mathsf"}, "stixsans": {"\\mathsf", "\\boldsymbol"}}


class _Recorder(logging.Handler):
    """Collects mathtext's warnings (a missing glyph is drawn as a dummy box)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _recording() -> Iterator[_Recorder]:
    logger = logging.getLogger("matplotlib.mathtext")
    recorder = _Recorder()
    logger.addHandler(recorder)
    old_propagate = logger.propagate
    logger.propagate = False
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)
        logger.propagate = old_propagate


def to_mathtext(latex: str, style: str = "display", font: str = "cm") -> tuple[str | None, str]:
    """The mathtext string for a formula, or (None, reason) when mathtext cannot draw it exactly."""
    tokens = tokenize(single_line(latex))
    out: list[str] = []
    not_drawn = FONT_UNSUPPORTED.get(font, set())
    for k, tok in enumerate(tokens):
        if tok.startswith(("\\begin{", "\\end{")):
            return None, f"environment {tok}"
        if tok in UNSUPPORTED:
            return None, UNSUPPORTED[tok]
        if tok in not_drawn:
            return None, f"{tok} in the {font} fontset"
        if tok == "\\not":
            following = tokens[k + 1] if k + 1 < len(tokens) else ""
            if following not in NEGATIONS:
                return None, f"\\not{following}"
            continue
        if k > 0 and tokens[k - 1] == "\\not":
            tok = NEGATIONS[tok]
        if tok == "$":
            return None, "a dollar sign"
        if style == "display" and tok == "\\frac":
            tok = "\\dfrac"  # a display-style fraction, as \displaystyle does in TeX
        out.append(REWRITES.get(tok, tok))
    if not out:
        return None, "the formula is blank"
    return f"${detokenize(out)}$", ""


def render_mathtext(formulas: list[str], font: str = "cm", style: str | Sequence[str] = "display",
                    dpi: int | Sequence[int] = 200, workdir: str | Path | None = None) -> list[RenderResult | Skip]:
    """Render each formula with mathtext; one result per formula, in order.  ``style`` and
    ``dpi`` are one value or one per formula; ``workdir`` is unused (both renderers are
    called alike)."""
    if font not in FONTS:
        raise ValueError(f"unknown mathtext font {font!r}; choose one of {', '.join(FONTS)}")
    styles, dpis = per_formula(formulas, style, dpi)
    from matplotlib.font_manager import FontProperties
    from matplotlib.mathtext import MathTextParser

    parser = MathTextParser("agg")
    prop = FontProperties(size=FONT_SIZE_PT, math_fontfamily=font)
    results: list[RenderResult | Skip] = []
    for latex, style, dpi in zip(formulas, styles, dpis):
        text, reason = to_mathtext(latex, style, font)
        if text is None:
            results.append(Skip(latex, "unsupported", reason))
            continue
        with _recording() as recorder:
            try:
                parsed = parser.parse(text, dpi=dpi, prop=prop)
            except (ValueError, KeyError, IndexError, RuntimeError) as exc:
                message = " ".join(str(exc).split())[:200] or type(exc).__name__
                results.append(Skip(latex, "mathtext_error", message))
                continue
        if recorder.messages:
            results.append(Skip(latex, "missing_glyph", recorder.messages[0][:200]))
            continue
        coverage = np.asarray(parsed.image, dtype=np.uint8)
        cropped = crop_to_ink(255 - coverage)
        if cropped is None:
            results.append(Skip(latex, "empty", "mathtext drew no ink"))
            continue
        results.append(RenderResult(latex, to_image(cropped), font, style, dpi, "mathtext"))
    return results
