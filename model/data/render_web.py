"""Render formulas the way web pages show them: KaTeX in headless Chromium.

Why a browser: KaTeX's HTML output is laid out with CSS and its own web fonts, and what a
user snips from a web page is that layout, anti-aliased by the browser at the screen's device
scale factor.  The work is done by ``web/render_katex.js`` (npm ``katex`` + ``playwright-core``,
driving Debian's ``chromium``; no browser is downloaded): KaTeX typesets in Node with
``throwOnError`` and ``strict: "error"``, so a formula KaTeX cannot draw, or would draw
differently from LaTeX, comes back as a ``Skip`` and never as an image with a wrong label.
Many formulas share one page load and one full-page screenshot, out of which each formula's
element (its box plus 40 CSS px of its background) is cut.  Chromium gets a fresh profile (``--user-data-dir``) made by
playwright for each run, and the flags in the script keep it off the network.

Two entry points: :func:`render_katex` returns the raw element screenshots in the requested
colours (the evaluation suite crops and labels them), and :func:`render_web` returns
``RenderResult``s like the TeX renderer (8-bit gray, black on white, cropped to the ink) for
training shards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import Im2LatexError
from .rendering import RenderResult, Skip, crop_to_ink, single_line, to_image

WEB_DIR = Path(__file__).resolve().parent / "web"
SCRIPT = WEB_DIR / "render_katex.js"
CHROMIUM_ENV = "IM2LATEX_CHROMIUM"
PAD_CSS_PX = 40  # background around each formula in the screenshot (see render_katex.js)
# Debian's /usr/bin/chromium is a wrapper script; the binary behind it is started directly.
_CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = ("install Chromium and Node.js (sudo apt-get install chromium nodejs npm), then run "
                f"`npm ci` in {WEB_DIR}")


class WebRendererMissing(Im2LatexError):
    """Chromium, Node.js or the npm packages of model/data/web are not installed."""


class WebRenderError(Im2LatexError):
    """The browser renderer failed as a whole (crash, timeout, fonts not loaded)."""


@dataclass
class WebItem:
    """One formula to draw: CSS font size, display or inline math, device scale, colours."""

    latex: str
    px: float = 18.0
    display: bool = True
    scale: int = 1
    color: str = "#000000"
    background: str = "#ffffff"


@dataclass
class WebShot:
    """The screenshot of one formula's element (RGB): the formula with (PAD_CSS_PX - 2) * scale
    pixels of its background around it."""

    item: WebItem
    image: Image.Image


def find_chromium() -> str | None:
    """``$IM2LATEX_CHROMIUM``, else the first Chromium found on this machine."""
    env = os.environ.get(CHROMIUM_ENV)
    if env:
        return env if Path(env).exists() else None
    for name in _CHROMIUM_CANDIDATES:
        found = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if found:
            return found
    return None


def missing_reason() -> str | None:
    """Why the web renderer cannot run here, or None when it can (for tests to skip on)."""
    if shutil.which("node") is None:
        return f"Node.js is not installed; {INSTALL_HINT}"
    for package in ("katex", "playwright-core"):
        if not (WEB_DIR / "node_modules" / package / "package.json").exists():
            return f"the npm package {package} is not installed in {WEB_DIR}; run `npm ci` there"
    if find_chromium() is None:
        return (f"Chromium is not installed (or ${CHROMIUM_ENV} names no file); "
                "install it with: sudo apt-get install chromium")
    return None


def check_web() -> None:
    """Raise WebRendererMissing with the install command when something is missing."""
    reason = missing_reason()
    if reason:
        raise WebRendererMissing(reason)


def render_katex(items: Sequence[WebItem], page_size: int = 40, timeout: float | None = None) -> list[WebShot | Skip]:
    """Screenshot each formula as KaTeX draws it in Chromium; one result per item, in order.

    ``timeout`` bounds the whole run (default: 60 s plus 1 s per formula).  A formula KaTeX
    rejects is a ``Skip("katex_error", message)``; an empty drawing is ``Skip("empty")``.
    """
    check_web()
    if not items:
        return []
    results: list[WebShot | Skip | None] = [None] * len(items)
    todo = []
    for i, item in enumerate(items):
        if not item.latex.strip():
            results[i] = Skip(item.latex, "empty", "the formula is blank")
        elif item.scale < 1 or item.px <= 0:
            raise ValueError("device scale must be >= 1 and the font size positive")
        else:
            todo.append(i)
    with tempfile.TemporaryDirectory(prefix="katex-") as out_dir:
        request = {
            "executable": find_chromium(), "outDir": out_dir, "pageSize": page_size, "timeoutMs": 60000,
            "items": [{"latex": single_line(items[i].latex), "px": items[i].px, "display": items[i].display,
                       "scale": items[i].scale, "color": items[i].color, "background": items[i].background}
                      for i in todo],
        }
        limit = timeout if timeout is not None else 60.0 + 1.0 * len(todo)
        env = {**os.environ, "HOME": out_dir}  # nothing lands in the user's own profile folders
        try:
            done = subprocess.run(["node", str(SCRIPT)], input=json.dumps(request), capture_output=True,
                                  text=True, cwd=WEB_DIR, timeout=limit, env=env)
        except subprocess.TimeoutExpired as exc:
            raise WebRenderError(f"the KaTeX renderer ran longer than {limit:.0f} s") from exc
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        fatal = next((line["fatal"] for line in lines if "fatal" in line), None)
        if fatal or done.returncode != 0:
            message = (fatal or done.stderr.strip() or f"exit code {done.returncode}").splitlines()[0]
            raise WebRenderError(f"the KaTeX renderer failed: {message}")
        for line in lines:
            if "error" in line:
                i = todo[int(line["i"])]
                results[i] = Skip(items[i].latex, "katex_error", line["error"])
            elif "page" in line:
                with Image.open(line["page"]) as page:
                    page = page.convert("RGB")
                for entry in line["items"]:
                    i = todo[int(entry["i"])]
                    results[i] = WebShot(items[i], _cut(page, entry["rect"], items[i].scale))
    for i, r in enumerate(results):
        if r is None:
            results[i] = Skip(items[i].latex, "render_failed", "the browser returned no picture for this formula")
        elif isinstance(r, WebShot) and ink_box(r.image, r.item.background) is None:
            results[i] = Skip(items[i].latex, "empty", "the drawing has no ink")
    return results  # type: ignore[return-value]


def _cut(page: Image.Image, rect: Sequence[float], scale: int) -> Image.Image:
    """One formula's element box (CSS px) out of a full-page screenshot (device px), 2 CSS px
    inside its edges: a box at fractional coordinates has edge pixels shared with the page."""
    x, y, w, h = (float(v) * scale for v in rect)
    inset = 2 * scale
    box = (int(np.ceil(x)) + inset, int(np.ceil(y)) + inset, int(np.floor(x + w)) - inset, int(np.floor(y + h)) - inset)
    return page.crop(box)


def parse_colour(colour: str) -> tuple[int, int, int]:
    """``#rrggbb`` (or ``#rgb``) as an RGB tuple."""
    c = colour.lstrip("#")
    if len(c) == 3:
        c = "".join(ch * 2 for ch in c)
    if len(c) != 6:
        raise ValueError(f"not a #rrggbb colour: {colour!r}")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def ink_box(image: Image.Image, background: str | tuple[int, int, int], threshold: int = 24
            ) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the pixels that differ from the background; None if none."""
    bg = np.array(parse_colour(background) if isinstance(background, str) else background, dtype=np.int16)
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    ink = np.abs(rgb - bg).max(axis=2) > threshold
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(ink.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def render_web(formulas: Sequence[str], font_px: float | Sequence[float] = 18.0,
               style: str | Sequence[str] = "display", scale: int = 1,
               timeout: float | None = None) -> list[RenderResult | Skip]:
    """KaTeX renders as training samples: 8-bit gray, black on white, cropped to the ink.

    Same contract as ``render_tex``: one ``RenderResult`` or ``Skip`` per formula, in order.
    ``dpi`` of a result is 96 times the device scale (CSS pixels are 1/96 inch).
    """
    sizes = [float(font_px)] * len(formulas) if isinstance(font_px, (int, float)) else [float(p) for p in font_px]
    styles = [style] * len(formulas) if isinstance(style, str) else list(style)
    if len(sizes) != len(formulas) or len(styles) != len(formulas):
        raise ValueError("give one font size and one style, or one per formula")
    if any(s not in ("display", "inline") for s in styles):
        raise ValueError("style must be display or inline")
    items = [WebItem(f, px, st == "display", scale) for f, px, st in zip(formulas, sizes, styles)]
    out: list[RenderResult | Skip] = []
    for item, shot in zip(items, render_katex(items, timeout=timeout)):
        if isinstance(shot, Skip):
            out.append(shot)
            continue
        cropped = crop_to_ink(np.asarray(shot.image.convert("L")))
        if cropped is None:
            out.append(Skip(item.latex, "empty", "the drawing has no ink"))
        else:
            out.append(RenderResult(item.latex, to_image(cropped), "katex", "display" if item.display else "inline",
                                    96 * scale, "katex"))
    return out
