"""Make a clean render look like a snip of a real screen, without ever changing what it says.

A render is crisp black ink on white at print resolution; a snip is a few dozen pixels high,
anti-aliased or not, in some editor's colours, maybe dark mode, maybe JPEG-compressed.  Each
step below models one of those differences; none crops, hides or adds ink, so the label stays
valid.  Deliberately absent: UI clutter at the border (cursor, scroll bar, neighbouring text),
which would need a label of its own.

All randomness comes from the given ``numpy.random.Generator``, so one rng state always gives
the same snip.  A call takes a few milliseconds.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from ..errors import BlankImageError

Color = tuple[int, int, int]


@dataclass(frozen=True)
class ScreenTheme:
    name: str
    background: Color
    foreground: Color

    @property
    def dark(self) -> bool:
        return _luma(self.background) < _luma(self.foreground)


def _hex(value: str) -> Color:
    value = value.lstrip("#")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


def _theme(name: str, background: str, foreground: str) -> ScreenTheme:
    return ScreenTheme(name, _hex(background), _hex(foreground))


# The one list of screen palettes the augmentation draws from (background, text colour).
SCREEN_THEMES: dict[str, tuple[ScreenTheme, ...]] = {
    "light": (
        _theme("white", "#ffffff", "#000000"),
        _theme("pdf viewer", "#ffffff", "#1a1a1a"),
        _theme("github light", "#ffffff", "#24292f"),
        _theme("wikipedia", "#ffffff", "#202122"),
        _theme("notion", "#ffffff", "#37352f"),
        _theme("stack exchange", "#ffffff", "#232629"),
        _theme("light gray page", "#f5f5f5", "#111111"),
        _theme("solarized light", "#fdf6e3", "#586e75"),
        _theme("sepia reader", "#f4ecd8", "#5b4636"),
        _theme("kindle paper", "#fbf0d9", "#2b2b2b"),
        _theme("jupyter output", "#f7f7f7", "#000000"),
        _theme("slide gray", "#eeeeee", "#222222"),
    ),
    "dark": (
        _theme("vscode dark+", "#1e1e1e", "#d4d4d4"),
        _theme("monokai", "#272822", "#f8f8f2"),
        _theme("solarized dark", "#002b36", "#93a1a1"),
        _theme("dracula", "#282a36", "#f8f8f2"),
        _theme("one dark", "#282c34", "#abb2bf"),
        _theme("github dark", "#0d1117", "#c9d1d9"),
        _theme("obsidian", "#202020", "#dcddde"),
        _theme("nord", "#2e3440", "#d8dee9"),
        _theme("gruvbox dark", "#282828", "#ebdbb2"),
        _theme("discord", "#36393f", "#dcddde"),
        _theme("pure black", "#000000", "#ffffff"),
        _theme("pdf night mode", "#000000", "#cccccc"),
    ),
    "colour": (
        _theme("link blue", "#ffffff", "#0645ad"),
        _theme("red ink", "#ffffff", "#b00020"),
        _theme("green ink", "#ffffff", "#1b5e20"),
        _theme("beamer blue", "#ffffff", "#1f3f7f"),
        _theme("highlighter", "#fff59d", "#000000"),
        _theme("blue slide", "#1e3a5f", "#ffffff"),
        _theme("chalkboard", "#2f4f2f", "#f0f0f0"),
        _theme("terminal green", "#000000", "#33ff33"),
        _theme("amber terminal", "#1a1200", "#ffb000"),
        _theme("dark keyword", "#1e1e1e", "#569cd6"),
    ),
}
THEME_WEIGHTS = {"plain": 0.40, "light": 0.22, "dark": 0.22, "colour": 0.10, "random": 0.06}

GLYPH_RANGE = (5.0, 45.0)   # median glyph height on screen, in pixels; 72-dpi PDF pages go to 5
# Glyphs at or above the model's glyph height (12 px) are shrunk to it and come out looking alike,
# glyphs below it are enlarged and lose detail the more, the smaller they are: that is where
# readings fail and disagree between zoom levels (suite, step 36,171: 71 % exact at 72 dpi, whose
# glyphs are 5-10 px, against 82.5 % at 300 dpi).  So this share of draws is below it.
SMALL_GLYPH = 12.0
SMALL_GLYPH_SHARE = 0.55
MAX_MARGIN = 40
MAX_OUTPUT = (2400, 800)    # a snip larger than this is shrunk (keeps augmentation fast) ...
MAX_OUTPUT_PIXELS = 900_000  # ... and so is one with more pixels than this
MIN_CONTRAST = 70.0         # luma difference between text and background, out of 255
FADE_MIN_GLYPH = 8.0        # washed-out text only with glyphs at least this tall (pixels)
# A render made at a screen's pixel size (render.NATIVE_RENDERERS: a PDF viewer's page at 60-100 %
# zoom) already has the small glyphs' own look, which a larger render scaled down does not give:
# this share of its draws keeps its pixels, the others shrink it by up to NATIVE_SHRINK.
NATIVE_KEEP = 0.7
NATIVE_SHRINK = 0.8
# The glyph scale a training input is placed at (model.preprocess puts the ink at glyph_height x
# this), log-uniform over this range.  Inference reads each snip at 1 and 1.3, and the glyph-height
# estimate of one formula moves between zoom levels (5 % at the median, 20 % and more at 72-96
# dpi), yet the model trained at 1 alone (step 50,133) read a validation snip the same at scales
# 1 and 1.15 in only 88 % of cases (82 % of the suite's zoom snips), 0.85 reading 7 points worse.
INPUT_SCALE_RANGE = (0.85, 1.3)


def _luma(color) -> float:
    r, g, b = color
    return 0.299 * r + 0.587 * g + 0.114 * b


def median_glyph_height(gray: np.ndarray) -> float:
    """Glyph height of a clean render (uint8, black on white) in pixels, measured the way
    ``model.preprocess`` measures it, so the screen sizes drawn here are the model's units.
    Large renders are measured on a reduced copy (the estimate scales with the image)."""
    from ..preprocess import estimate_glyph_height

    factor = 1
    while gray.size > 250_000 * factor * factor and factor < 8:
        factor *= 2
    if factor > 1:
        gray = np.asarray(Image.fromarray(gray).reduce(factor))
    ink = 1.0 - gray.astype(np.float32) * np.float32(1.0 / 255.0)
    try:
        return estimate_glyph_height(ink) * factor
    except BlankImageError:
        return 0.0


# ---------------------------------------------------------------- colours


def _pick_colors(rng: np.random.Generator, fade: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Background and text colours of a screen theme; ``fade=False``: never washed out (tiny
    glyphs greyed out are unreadable to people too)."""
    kinds = list(THEME_WEIGHTS)
    kind = kinds[rng.choice(len(kinds), p=np.array(list(THEME_WEIGHTS.values())))]
    if kind == "plain":
        bg = np.full(3, rng.uniform(235, 255))
        fg = np.full(3, rng.uniform(0, 40))
    elif kind == "random":
        while True:
            bg = rng.uniform(0, 255, 3)
            fg = rng.uniform(0, 255, 3)
            if abs(_luma(bg) - _luma(fg)) >= MIN_CONTRAST + 40:
                break
    else:
        themes = SCREEN_THEMES[kind]
        theme = themes[rng.integers(len(themes))]
        bg = np.array(theme.background, dtype=np.float64)
        fg = np.array(theme.foreground, dtype=np.float64)
    # tint: every screen and colour profile shifts colours a little
    bg = np.clip(bg + rng.normal(0, 4, 3), 0, 255)
    fg = np.clip(fg + rng.normal(0, 6, 3), 0, 255)
    if rng.random() < 0.15:
        # low contrast (greyed-out text, washed-out projector), never below MIN_CONTRAST
        t = rng.uniform(0.1, 0.5)
        faded = fg + t * (bg - fg)
        if fade and abs(_luma(faded) - _luma(bg)) >= MIN_CONTRAST:
            fg = faded
    return bg.astype(np.float32), fg.astype(np.float32)


# ---------------------------------------------------------------- geometry


def _resample(rng: np.random.Generator) -> int:
    r = rng.random()
    if r < 0.05:
        return Image.Resampling.NEAREST   # aliased text (no font smoothing)
    options = (Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.HAMMING,
               Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)
    return options[rng.integers(len(options))]


def _stroke(image: Image.Image, glyph: float, rng: np.random.Generator) -> Image.Image:
    """Slightly bolder or lighter strokes (font weight, rendering engine); thinning only when
    strokes are thick enough that no stroke can vanish."""
    r = rng.random()
    if r < 0.2:
        bolder = image.filter(ImageFilter.MinFilter(3))
        return Image.blend(image, bolder, float(rng.uniform(0.3, 1.0)))
    if r < 0.3 and glyph >= 24:
        lighter = image.filter(ImageFilter.MaxFilter(3))
        return Image.blend(image, lighter, float(rng.uniform(0.2, 0.5)))
    return image


def _screen_gray(image: Image.Image, scale_x: float, scale_y: float, rng: np.random.Generator) -> Image.Image:
    """The render at screen size, still white background: mode L, or RGB for sub-pixel
    (ClearType) rendering, where each colour channel samples the glyphs a third of a pixel apart."""
    w, h = image.size
    resample = _resample(rng)
    # a sub-pixel shift, taken from the white margin of the render so no ink is cut
    ox = float(rng.uniform(0, min(1.0 / scale_x, 2.5)))
    oy = float(rng.uniform(0, min(1.0 / scale_y, 2.5)))
    out_w = max(1, int(math.floor((w - ox) * scale_x)))
    out_h = max(1, int(math.floor((h - oy) * scale_y)))
    src_w, src_h = out_w / scale_x, out_h / scale_y
    subpixel = resample != Image.Resampling.NEAREST and rng.random() < 0.12
    shifts = (-1 / 3, 0.0, 1 / 3) if subpixel else (0.0,)
    channels = []
    for s in shifts:
        x0 = min(max(ox + s / scale_x, 0.0), w - src_w)
        channels.append(image.resize((out_w, out_h), resample, box=(x0, oy, x0 + src_w, oy + src_h)))
    return Image.merge("RGB", channels) if subpixel else channels[0]


# ---------------------------------------------------------------- the pipeline


def draw_glyph_height(rng: np.random.Generator) -> float:
    """A snip's median glyph height on screen: log-uniform below and above ``SMALL_GLYPH``,
    ``SMALL_GLYPH_SHARE`` of the draws below it."""
    low, high = (GLYPH_RANGE[0], SMALL_GLYPH) if rng.random() < SMALL_GLYPH_SHARE else (SMALL_GLYPH, GLYPH_RANGE[1])
    return _log_uniform(rng, low, high)


def draw_input_scale(rng: np.random.Generator) -> float:
    """A training input's glyph scale, log-uniform over ``INPUT_SCALE_RANGE``."""
    return _log_uniform(rng, *INPUT_SCALE_RANGE)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A size between ``low`` and ``high``, each factor as likely as any other (one draw)."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def augment(image: Image.Image, rng: np.random.Generator, native: bool = False) -> Image.Image:
    """A screen-like RGB snip of a clean render (mode L, black ink on white); ``native``: the
    render is at a screen's pixel size already (see ``NATIVE_KEEP``)."""
    image = image.convert("L")
    gray = np.asarray(image)
    glyph = median_glyph_height(gray) or max(8.0, gray.shape[0] / 2)

    if native and rng.random() < NATIVE_KEEP:
        snip, target = image, glyph  # the viewer's own pixels: no resampling, no blur
    else:
        snip, target = _rescaled(image, glyph, rng, native)
    snip = _pad(snip, rng)
    if snip.mode == "L":
        snip = Image.merge("RGB", (snip, snip, snip))

    # colours and font-rendering gamma in one lookup table: coverage = (1 - v/255) ** gamma
    gamma = float(rng.uniform(0.7, 1.4)) if rng.random() < 0.5 else 1.0
    bg, fg = _pick_colors(rng, fade=target >= FADE_MIN_GLYPH)
    coverage = (1.0 - np.arange(256, dtype=np.float64) / 255.0) ** gamma
    lut = bg[:, None] + coverage[None, :] * (fg - bg)[:, None]
    snip = snip.point(np.clip(lut + 0.5, 0, 255).astype(np.uint8).ravel().tolist())

    gradient = rng.random() < 0.1
    noisy = rng.random() < 0.4
    if gradient or noisy:
        out = np.asarray(snip, dtype=np.float32)
        if gradient:
            # a faint gradient (vignetting, a shaded slide background)
            ramp = np.linspace(-1, 1, out.shape[0], dtype=np.float32)[:, None, None]
            out = out + ramp * rng.uniform(-12, 12, 3).astype(np.float32)
        if noisy:
            # luminance noise (sensor-free screens still get it from scaling and capture)
            noise = rng.standard_normal(out.shape[:2], dtype=np.float32)
            out = out + (np.float32(rng.uniform(1, 6)) * noise)[:, :, None]
        snip = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.3:
        buffer = io.BytesIO()
        snip.save(buffer, format="JPEG", quality=int(rng.integers(35, 92)),
                  subsampling=int(rng.integers(0, 3)))
        buffer.seek(0)
        snip = Image.open(buffer).convert("RGB")
    return snip


def _rescaled(image: Image.Image, glyph: float, rng: np.random.Generator, native: bool) -> tuple[Image.Image, float]:
    """The render resampled to a drawn glyph height (a native one only shrunk a little), with
    its stroke weight, sub-pixel rendering and blur drawn too; returns it and the glyph height."""
    target = glyph * rng.uniform(NATIVE_SHRINK, 1.0) if native else draw_glyph_height(rng)
    scale = target / glyph
    aspect = 1.0 + rng.uniform(-0.04, 0.04)
    sx, sy = scale * aspect, scale / aspect
    w, h = image.size
    shrink = min(1.0, MAX_OUTPUT[0] / (w * sx), MAX_OUTPUT[1] / (h * sy),
                 math.sqrt(MAX_OUTPUT_PIXELS / (w * sx * h * sy)))
    sx, sy = sx * shrink, sy * shrink

    image = _stroke(image, glyph, rng)
    snip = _screen_gray(image, sx, sy, rng)
    if rng.random() < 0.3:
        # blur: soft font smoothing, a scaled-up screenshot, a projector out of focus; less on
        # tiny glyphs, whose strokes a wide blur fades into the background (the least under 3 px)
        snip = snip.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.25, max(0.25, min(0.9, target / 12))))))
    return snip, target


def _pad(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Asymmetric blank margins: a snip is rarely tight, and never centred exactly."""
    def margin() -> int:
        return int(rng.integers(0, 5)) if rng.random() < 0.3 else int(rng.integers(0, MAX_MARGIN + 1))

    top, bottom, left, right = margin(), margin(), margin(), margin()
    w, h = image.size
    white = 255 if image.mode == "L" else (255, 255, 255)
    canvas = Image.new(image.mode, (w + left + right, h + top + bottom), white)
    canvas.paste(image, (left, top))
    return canvas
