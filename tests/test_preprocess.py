"""Preprocessing puts any snip of a formula on the model's scale, whatever its resolution,
margins, colours, pixel mode or quality; blank snips are refused with a clear sentence.

Formulas are rendered with matplotlib mathtext on a figure (no tight bounding box, which
clips glyph edges at low dpi) with font hinting off: hinting snaps glyph outlines to the
pixel grid and changes their relative size by 3-10 % between dpi values, which would test
the renderer rather than the preprocessing.  One test keeps hinting on, with looser bounds.
"""

from __future__ import annotations

import functools
import io
import time

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from scipy import ndimage

from model.config import InputSpec
from model.errors import BlankImageError
from model.preprocess import estimate_glyph_height, ink_map, preprocess, preprocess_at_scales

SPEC = InputSpec()
FORMULA = r"$x^{2} + \frac{a+b}{\sqrt{c}} = \sum_{i=1}^{n} \alpha_i \cdot y$"
OTHER = r"$\int_0^1 f(t)\,dt = F(1) - F(0)$"

# Thresholds: measured on this renderer (max over the cases below), then some headroom.  For
# scale: the output's mean ink is ~0.05, two different formulas differ by ~0.125, the same
# input shifted by one pixel by ~0.027.  Measured: 0.075 at 60 dpi (x-height 7 px: the
# fraction bar touches the numerator, the radical's thin stroke breaks, so the glyph-height
# estimate is 4 % low, and the 2.5x upscale is blurry), 0.010 at 150 dpi, 0.001 at 400 dpi.
MAD_SAME = {60: 0.09, 150: 0.02, 400: 0.005}   # same formula, vs the 400 dpi black-on-white one
MAD_MODES = 0.01                                 # lossless mode conversions of one image
MAD_LOSSY = 0.04                                 # JPEG q30, gaussian noise, 1-bit dithering...


@functools.lru_cache(maxsize=None)
def _render_gray(latex: str, dpi: int, hinting: str = "none", size: int = 16, fontset: str = "dejavusans") -> np.ndarray:
    """uint8 black-on-white render of ``latex`` cropped to its ink."""
    with matplotlib.rc_context({"text.hinting": hinting, "mathtext.fontset": fontset}):
        fig = Figure(figsize=(5.0, 1.5))
        FigureCanvasAgg(fig)
        fig.text(0.04, 0.5, latex, fontsize=size, va="center", ha="left")
        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=dpi, format="png", facecolor="white")
    gray = np.asarray(Image.open(buffer).convert("L"))
    rows, cols = np.flatnonzero((gray < 255).any(axis=1)), np.flatnonzero((gray < 255).any(axis=0))
    return gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].copy()


STYLES = {  # (text colour, background colour)
    "light": ((0, 0, 0), (255, 255, 255)),
    "dark": ((230, 230, 230), (30, 32, 36)),
    "colour": ((170, 20, 60), (255, 240, 200)),
}


def render(latex: str = FORMULA, dpi: int = 150, margin: int = 5, style: str = "light", hinting: str = "none") -> Image.Image:
    """A snip: the formula with ``margin`` pixels of background around its ink, in ``style``."""
    gray = np.pad(_render_gray(latex, dpi, hinting), margin, constant_values=255)
    if style == "light":
        return Image.fromarray(gray, "L")
    fg, bg = (np.array(c, np.float32) for c in STYLES[style])
    ink = 1.0 - gray.astype(np.float32)[..., None] / 255.0
    return Image.fromarray((bg * (1.0 - ink) + fg * ink).round().astype(np.uint8), "RGB")


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference over the common top-left crop."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return float(np.abs(a[:h, :w] - b[:h, :w]).mean())


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return preprocess(render(FORMULA, 400), SPEC)


def check_contract(out: np.ndarray, spec: InputSpec = SPEC, solid: bool = True) -> None:
    assert out.dtype == np.float32 and out.ndim == 2
    assert out.shape[0] % spec.grid == 0 and out.shape[1] % spec.grid == 0
    assert out.shape[0] <= spec.max_height and out.shape[1] <= spec.max_width
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert out.max() > (0.9 if solid else 0.1)  # strokes are full ink, unless shrunk to fit


# ------------------------------------------------------------------ the output contract


def test_output_contract_and_margins(reference):
    check_contract(reference)
    m = SPEC.margin
    rows, cols = np.flatnonzero(reference.max(axis=1) > 0.5), np.flatnonzero(reference.max(axis=0) > 0.5)
    # Solid ink starts right at the margin (the anti-aliased edge may reach one pixel into it).
    assert rows[0] in (m - 1, m, m + 1) and cols[0] in (m - 1, m, m + 1)
    assert reference[: m - 2].max() < 0.05 and reference[:, : m - 2].max() < 0.05
    # ... and the margin is there on the right and bottom too, before the grid padding.
    assert reference[rows[-1] + m - 1:].max() < 0.05 or rows[-1] + m - 1 >= reference.shape[0]
    # The glyph size is the spec's: estimated again on the output it is spec.glyph_height.
    assert estimate_glyph_height(reference) == pytest.approx(SPEC.glyph_height, rel=0.06)


def test_other_spec_is_followed():
    spec = InputSpec(glyph_height=20.0, margin=8, grid=32, max_height=512, max_width=2048)
    out = preprocess(render(FORMULA, 150), spec)
    check_contract(out, spec)
    assert estimate_glyph_height(out) == pytest.approx(20.0, rel=0.06)
    assert out[:6].max() < 0.05 and out[:, :6].max() < 0.05


def test_scales_place_the_same_analysis_at_other_glyph_heights():
    """Inference reads a snip at several glyph scales from one analysis: each output is what
    preprocess gives with that glyph height, the first (scale 1) exactly preprocess's."""
    image = render(FORMULA, 150)
    plain, larger = preprocess_at_scales(image, SPEC, (1.0, 1.3))
    assert np.array_equal(plain, preprocess(image, SPEC))
    alone = preprocess(image, InputSpec(**{**SPEC.__dict__, "glyph_height": SPEC.glyph_height * 1.3}))
    assert np.array_equal(larger, alone)
    check_contract(larger, SPEC)
    assert estimate_glyph_height(larger) == pytest.approx(1.3 * SPEC.glyph_height, rel=0.06)


# ------------------------------------------------------------------ same formula, same input


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("margin", [5, 60])
@pytest.mark.parametrize("dpi", [60, 150, 400])
def test_same_formula_gives_nearly_the_same_input(reference, dpi, margin, style):
    out = preprocess(render(FORMULA, dpi, margin, style), SPEC)
    check_contract(out)
    assert abs(out.shape[0] - reference.shape[0]) <= SPEC.grid
    assert abs(out.shape[1] - reference.shape[1]) <= SPEC.grid
    assert mad(out, reference) <= MAD_SAME[dpi]


def test_thresholds_separate_formulas(reference):
    """The MAD bounds above mean something: another formula is far beyond them."""
    other = preprocess(render(OTHER, 400), SPEC)
    assert mad(other, reference) > 5 * MAD_SAME[150] and mad(other, reference) > 1.25 * MAD_SAME[60]
    shifted = np.zeros_like(reference)
    shifted[:, 1:] = reference[:, :-1]  # the same input, one pixel off
    assert mad(shifted, reference) > MAD_SAME[150]


def test_margins_do_not_matter_at_all():
    a = preprocess(render(FORMULA, 150, 5), SPEC)
    b = preprocess(render(FORMULA, 150, 60), SPEC)
    assert a.shape == b.shape and mad(a, b) < 1e-4


@pytest.mark.parametrize("dpi", [60, 150])
def test_hinted_renders_stay_within_one_grid_cell(dpi):
    """Real screens hint their fonts; the glyph outlines then differ a little per dpi."""
    reference = preprocess(render(FORMULA, 400, hinting="default"), SPEC)
    out = preprocess(render(FORMULA, dpi, 20, "dark", hinting="default"), SPEC)
    assert abs(out.shape[0] - reference.shape[0]) <= SPEC.grid
    assert abs(out.shape[1] - reference.shape[1]) <= SPEC.grid
    assert mad(out, reference) <= 0.12


def _thin_render(latex: str, dpi: int) -> Image.Image:
    """Computer Modern at 10 pt: hairlines under a pixel wide at screen resolutions."""
    return Image.fromarray(np.pad(_render_gray(latex, dpi, size=10, fontset="cm"), 5, constant_values=255))


@pytest.mark.parametrize("latex", [r"$a=2\sqrt{7}$", r"$\bar{x}\leq 3$"])
@pytest.mark.parametrize("dpi", [72, 96])
def test_thin_strokes_at_screen_resolution_keep_the_scale(latex, dpi):
    """A PDF viewer at 75-100 % zoom: anti-aliased hairlines fall under the stroke cut, and a
    single cut broke the a, the 2 and the radical into pieces (estimate 0.62x the 300 dpi one
    for the first formula, 0.75x for the second at 96 dpi).  Measured with hysteresis:
    within 4 %."""
    reference = estimate_glyph_height(ink_map(_thin_render(latex, 300))) / 300
    estimate = estimate_glyph_height(ink_map(_thin_render(latex, dpi))) / dpi
    assert estimate == pytest.approx(reference, rel=0.08)


# ------------------------------------------------------------------ modes and colours


def _gray_snip() -> Image.Image:
    return render(r"$\frac{a+b}{2} = x_1^2$", 150, 10)


def _modes() -> dict[str, Image.Image]:
    gray = _gray_snip()
    g = np.asarray(gray)
    alpha = 255 - g
    full = np.full_like(g, 255)
    palette_transparent = gray.convert("P")
    palette_transparent.info["transparency"] = palette_transparent.getpixel((0, 0))
    rim = np.stack([g, g, g, full], axis=-1)
    rim[:3, :, 3] = 0  # transparent rows at the top, inside the blank margin
    return {
        "L": gray, "RGB": gray.convert("RGB"), "RGBX": gray.convert("RGBX"), "CMYK": gray.convert("CMYK"),
        "YCbCr": gray.convert("YCbCr"), "HSV": gray.convert("RGB").convert("HSV"), "LAB": gray.convert("RGB").convert("LAB"),
        "P": gray.convert("RGB").convert("P"), "P transparency": palette_transparent,
        "I;16": Image.fromarray(g.astype(np.uint16) * 257), "I": Image.fromarray(g.astype(np.int32) * 1000),
        "I;16B": Image.frombytes("I;16B", gray.size, (g.astype(np.uint16) * 257).astype(">u2").tobytes()),
        "F unit": Image.fromarray(g.astype(np.float32) / 255.0), "F 0-255": Image.fromarray(g.astype(np.float32)),
        "RGBA opaque": gray.convert("RGBA"), "RGBA transparent rim": Image.fromarray(rim, "RGBA"),
        "RGBA black text on transparency": Image.fromarray(np.stack([0 * g, 0 * g, 0 * g, alpha], -1), "RGBA"),
        "RGBA white text on transparency": Image.fromarray(np.stack([full, full, full, alpha], -1), "RGBA"),
        "RGBA red text on transparency": Image.fromarray(np.stack([full * 0 + 200, 0 * g + 30, 0 * g + 30, alpha], -1), "RGBA"),
        "LA white text on transparency": Image.fromarray(np.stack([full, alpha], -1), "LA"),
        "La": gray.convert("LA").convert("La"), "PA": gray.convert("PA"),
    }


@pytest.mark.parametrize("mode", sorted(_modes()))
def test_every_mode_gives_the_same_input(mode):
    image = _modes()[mode]
    reference = preprocess(_gray_snip(), SPEC)
    out = preprocess(image, SPEC)
    check_contract(out)
    assert out.shape == reference.shape
    assert mad(out, reference) <= MAD_MODES


def test_one_bit_snips_work():
    out = preprocess(_gray_snip().convert("1"), SPEC)  # dithered, as PIL does by default
    check_contract(out)
    assert mad(out, preprocess(_gray_snip(), SPEC)) <= 2 * MAD_LOSSY


def test_16_bit_and_float_ranges_are_scaled():
    g = np.asarray(_gray_snip()).astype(np.float64) / 255.0
    for image in (Image.fromarray((g * 65535).astype(np.uint16)), Image.fromarray((g * 4000 - 2000).astype(np.float32)),
                  Image.fromarray((g * 1e6).astype(np.int32))):
        assert mad(preprocess(image, SPEC), preprocess(_gray_snip(), SPEC)) <= MAD_MODES


@pytest.mark.parametrize("style", sorted(STYLES))
def test_ink_map_is_the_same_in_every_colour_scheme(style):
    light = ink_map(render(FORMULA, 150, 10, "light"))
    other = ink_map(render(FORMULA, 150, 10, style))
    assert other.shape == light.shape and other.dtype == np.float32
    assert float(np.abs(other - light).mean()) < 0.005
    assert light.max() == pytest.approx(1.0) and light[0].max() == 0.0  # background is exactly 0


def test_low_contrast_grey_text_is_full_ink():
    gray = np.asarray(_gray_snip()).astype(np.float32) / 255.0
    faint = Image.fromarray((150 + 35 * gray).round().astype(np.uint8))  # grey 150 on grey 185
    assert mad(preprocess(faint, SPEC), preprocess(_gray_snip(), SPEC)) <= MAD_LOSSY


def test_jpeg_noise_and_gradients_are_suppressed():
    reference = preprocess(_gray_snip(), SPEC)
    rng = np.random.default_rng(0)
    g = np.asarray(_gray_snip()).astype(np.float32)
    buffer = io.BytesIO()
    render(r"$\frac{a+b}{2} = x_1^2$", 150, 10, "colour").save(buffer, "JPEG", quality=30)
    cases = {
        "jpeg q30": Image.open(buffer),
        "gaussian noise": Image.fromarray(np.clip(g + rng.normal(0, 10, g.shape), 0, 255).astype(np.uint8)),
        "gradient": Image.fromarray((g * np.linspace(0.8, 1.0, g.shape[1])[None]).astype(np.uint8)),
    }
    for name, image in cases.items():
        out = preprocess(image, SPEC)
        assert out.shape == reference.shape, name
        assert mad(out, reference) <= MAD_LOSSY, name


@pytest.mark.parametrize("latex", [r"$x$", r"$1$", r"$-$", r"$=$", r"$\cdot$", r"$\sum$", r"$\frac{1}{2}$", r"$\infty$",
                                   r"$E$", r"$E_1$", r"$\Xi$", r"$\mathbb{E}$", r"$F$"])
def test_one_symbol_formulas_work(latex):
    out = preprocess(render(latex, 150, 10), SPEC)
    check_contract(out)
    rows, cols = np.flatnonzero(out.max(axis=1) > 0.5), np.flatnonzero(out.max(axis=0) > 0.5)
    size = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1  # a minus sign is flat: its length counts
    assert 0.5 * SPEC.glyph_height <= size <= 6 * SPEC.glyph_height
    if latex in (r"$x$", r"$E$", r"$F$", r"$\mathbb{E}$"):  # one glyph: its height is the glyph height
        assert rows[-1] - rows[0] + 1 == pytest.approx(SPEC.glyph_height, abs=2)


# ------------------------------------------------------------------ crop: specks and dots


def test_far_speck_is_ignored_but_dots_are_kept():
    snip = np.asarray(render(FORMULA, 150, 10)).copy()
    clean = preprocess(Image.fromarray(snip), SPEC)
    wide = np.pad(snip, ((0, 0), (0, 200)), constant_values=255)
    wide[30:32, -20:-18] = 0  # a 2x2 speck far to the right
    out = preprocess(Image.fromarray(wide), SPEC)
    assert out.shape == clean.shape and mad(out, clean) < 1e-4
    # A trailing \ldots is small too, but close to the formula: it stays in the crop.
    with_dots = preprocess(render(r"$1, 2, 3, \ldots$", 150), SPEC)
    without = preprocess(render(r"$1, 2, 3,$", 150), SPEC)
    width = lambda a: int(np.flatnonzero(a.max(axis=0) > 0.5)[-1])  # noqa: E731
    assert width(with_dots) > width(without) + 1.5 * SPEC.glyph_height


def _ink_extent(out: np.ndarray) -> int:
    """Last output column with visible ink (the content is placed at the top-left)."""
    return int(np.flatnonzero(out.max(axis=0) > 0.1)[-1])


def test_faint_rules_at_the_edge_stay_in_the_crop():
    """A rule under a pixel thick (a leading "=" at 72 dpi) is grey everywhere, a third of full
    ink: no stroke, yet it is part of the formula, unlike a faint line far away."""
    snip = np.asarray(render(r"$x + y$", 72, 5)).copy()  # glyph height about 10 pixels
    clean = preprocess(Image.fromarray(snip), SPEC)
    mid = snip.shape[0] // 2

    def with_rule(gap: int) -> np.ndarray:
        """``gap`` blank pixels between the rule and the formula's first glyph."""
        wide = np.pad(snip, ((0, 0), (gap + 3, 0)), constant_values=255)
        wide[mid - 2, 1:8] = 170  # the two bars of "=": 7 pixels long, one row each
        wide[mid + 1, 1:8] = 170
        return preprocess(Image.fromarray(wide), SPEC)

    near = with_rule(4)
    assert _ink_extent(near) > _ink_extent(clean) + SPEC.glyph_height
    assert near[:, SPEC.margin:SPEC.margin + 4].max() > 0.2  # the bars lead the crop
    far = with_rule(300)
    assert far.shape == clean.shape and mad(far, clean) < 1e-4


# ------------------------------------------------------------------ blank snips


def _blank_cases() -> dict[str, Image.Image]:
    rng = np.random.default_rng(3)
    return {
        "white": Image.new("L", (300, 100), 255),
        "black rgb": Image.new("RGB", (300, 100), (0, 0, 0)),
        "dark theme": Image.new("RGB", (300, 100), (30, 32, 36)),
        "fully transparent": Image.new("RGBA", (300, 100), (0, 0, 0, 0)),
        "2x2": Image.new("L", (2, 2), 0),
        "3x500 strip": Image.new("L", (500, 3), 0),
        "jpeg-flat": Image.fromarray(np.clip(240 + rng.normal(0, 2, (100, 300)), 0, 255).astype(np.uint8)),
        "uniform noise": Image.fromarray(rng.integers(0, 256, (100, 300), dtype=np.uint8)),
        "colour noise": Image.fromarray(rng.integers(0, 256, (100, 300, 3), dtype=np.uint8), "RGB"),
        "salt": Image.fromarray(np.where(rng.random((100, 300)) < 0.003, 0, 255).astype(np.uint8)),
        "one hot pixel": Image.fromarray(np.pad(np.zeros((1, 1), np.uint8), 50, constant_values=255)),
    }


@pytest.mark.parametrize("name", sorted(_blank_cases()))
def test_blank_snips_are_refused_with_a_sentence(name):
    with pytest.raises(BlankImageError) as info:
        preprocess(_blank_cases()[name], SPEC)
    message = str(info.value)
    assert message.startswith("The snip looks blank: ") and message.endswith(".") and "\n" not in message


def test_min_ink_pixels_is_the_spec_s():
    dot = Image.fromarray(np.pad(np.zeros((2, 3), np.uint8), 40, constant_values=255))  # 6 ink pixels
    with pytest.raises(BlankImageError, match="only 6 ink pixels"):
        preprocess(dot, InputSpec(min_ink_pixels=10))
    check_contract(preprocess(dot, InputSpec(min_ink_pixels=4)))


def test_ink_map_of_a_blank_image_is_zero():
    blank = ink_map(Image.new("RGB", (50, 20), (200, 10, 10)))
    assert blank.shape == (20, 50) and not blank.any()


# ------------------------------------------------------------------ large inputs


def _strip(size: tuple[int, int], dpi: int) -> Image.Image:
    formula = Image.fromarray(_render_gray(FORMULA, dpi))
    canvas = Image.new("L", size, 255)
    for x in range(0, size[0], formula.width + 20):
        canvas.paste(formula, (x, max(0, (size[1] - formula.height) // 2)))
    return canvas


@pytest.mark.parametrize("size, dpi", [((10000, 300), 300), ((20000, 40), 40)])
def test_very_long_snips_are_fast_and_fit(size, dpi):
    image = _strip(size, dpi)
    start = time.perf_counter()
    out = preprocess(image, SPEC)
    elapsed = time.perf_counter() - start
    check_contract(out, solid=size[1] > 100)  # 40 px tall and 20000 wide: glyphs end up ~1 px
    assert out.shape[1] == SPEC.max_width  # shrunk to fit the width
    assert elapsed < 1.0  # about 20 ms here; generous for a shared machine


def test_small_formula_on_a_whole_screen_keeps_full_resolution():
    snip = render(FORMULA, 150, 10)
    screen = Image.new("L", (3840, 2160), 255)
    screen.paste(snip, (1700, 900))
    start = time.perf_counter()
    out = preprocess(screen, SPEC)
    assert time.perf_counter() - start < 1.0
    assert out.shape == preprocess(snip, SPEC).shape
    assert mad(out, preprocess(snip, SPEC)) < 0.01


def test_typical_snip_is_fast():
    image = render(FORMULA, 130, 20).convert("RGB")
    preprocess(image, SPEC)
    best = min(_timed(image) for _ in range(5))
    assert best < 0.015  # about 2-3 ms here (benchmarks/preprocess_speed.py); a shared CPU is noisy


def _timed(image: Image.Image, number: int = 10) -> float:
    start = time.perf_counter()
    for _ in range(number):
        preprocess(image, SPEC)
    return (time.perf_counter() - start) / number


# ------------------------------------------------------------------ the glyph-height estimator


def _ink(latex: str = FORMULA, dpi: int = 150) -> np.ndarray:
    return ink_map(render(latex, dpi, 10))


def test_estimate_is_scale_equivariant():
    ink = _ink(dpi=150)
    base = estimate_glyph_height(ink)
    gray = Image.fromarray((255 * (1 - ink)).astype(np.uint8))
    doubled = ink_map(gray.resize((gray.width * 2, gray.height * 2), Image.Resampling.BICUBIC))
    assert estimate_glyph_height(doubled) / base == pytest.approx(2.0, rel=0.03)
    # Rendered (not resized) at twice the dpi: the renderer adds its own small differences.
    assert estimate_glyph_height(_ink(dpi=300)) / base == pytest.approx(2.0, rel=0.04)


def test_estimate_ignores_margins():
    ink = _ink()
    assert estimate_glyph_height(np.pad(ink, ((30, 5), (70, 200)))) == pytest.approx(estimate_glyph_height(ink), rel=1e-6)


def test_estimate_ignores_a_long_fraction_bar():
    ink = _ink(r"$x + y = z^2 - ab$")
    base = estimate_glyph_height(ink)
    barred = np.pad(ink, ((0, 40), (20, 20)))
    barred[-25:-22, :] = 1.0  # a bar wider than the formula, 3 px thick
    assert estimate_glyph_height(barred) == pytest.approx(base, rel=0.02)


def test_estimate_ignores_big_parentheses():
    ink = _ink(r"$x + y = z^2 - ab$")
    base = estimate_glyph_height(ink)
    paren = ink_map(Image.fromarray(_render_gray(r"$($", 150, size=64)))
    h = max(ink.shape[0], paren.shape[0])
    pad = lambda a: np.pad(a, ((0, h - a.shape[0]), (4, 4)))  # noqa: E731
    wrapped = np.concatenate([pad(paren), pad(ink), pad(paren[:, ::-1])], axis=1)
    assert wrapped.shape[0] > 2 * ink.shape[0]  # the parentheses really are big
    assert estimate_glyph_height(wrapped) == pytest.approx(base, rel=0.05)


def test_estimate_ignores_the_brackets_of_a_column_vector():
    """Two tall brackets and three digits: the brackets are more than a fifth of the
    components, so the high percentile that should be a digit's height was a bracket's (the
    vector was then shrunk to a few pixels)."""
    digits = [ink_map(Image.fromarray(_render_gray(f"${d}$", 150))) for d in "391"]
    width = max(d.shape[1] for d in digits)
    column = np.concatenate([np.pad(d, ((6, 6), (0, width - d.shape[1]))) for d in digits], axis=0)
    bracket = ink_map(Image.fromarray(_render_gray(r"$[$", 150, size=64)))
    bracket = bracket[np.linspace(0, bracket.shape[0] - 1, column.shape[0]).astype(int)]  # as tall as the column
    vector = np.concatenate([bracket, np.zeros((column.shape[0], 4)), column, np.zeros((column.shape[0], 4)),
                             bracket[:, ::-1]], axis=1)
    tallest = max(d.shape[0] for d in digits)
    base = estimate_glyph_height(np.concatenate([np.pad(d, ((0, tallest - d.shape[0]), (0, 6))) for d in digits], axis=1))
    assert column.shape[0] > 3 * base  # the brackets really are big
    assert estimate_glyph_height(vector) == pytest.approx(base, rel=0.1)


def test_estimate_ignores_big_brackets_around_a_few_glyphs():
    """\\left[-\\frac{3\\pi}{2},3\\pi\\right] at 144 dpi, as the components the suite's render
    gave: brackets 58 px, digits and pi 10-16 px, a comma, a minus.  Two brackets among seven
    glyphs pulled the 80th percentile halfway up to them (to 2.2x the glyphs), and the estimate
    was the brackets' height (54 px, against 9.6 px per 100 dpi at 72 and 96 dpi)."""
    ink = np.zeros((80, 200), np.float32)
    ink[10:68, 5:12] = ink[10:68, 185:192] = 1.0  # the brackets
    x = 20
    for h, w in [(16, 10), (10, 13), (16, 10), (10, 12), (16, 10)]:  # 3, pi, 2, 3, pi
        ink[50 - h:50, x:x + w] = 1.0
        x += w + 8
    ink[50:57, x:x + 3] = 1.0  # the comma
    ink[38:40, x + 10:x + 24] = 1.0  # the minus
    assert 10.0 <= estimate_glyph_height(ink) <= 16.0


def test_estimate_is_not_a_colons_dots_next_to_tall_narrow_letters():
    """In "l:x=t" the colon's dots outnumber the wide letters (one x): the narrow l and t must
    not be taken for big delimiters around dot-sized glyphs, at any resolution."""
    for dpi in (150, 300, 450):
        assert estimate_glyph_height(_ink(r"$l:x=t$", dpi)) == pytest.approx(
            estimate_glyph_height(_ink(r"$l\ x\ t$", dpi)), rel=0.1)


def test_estimate_ignores_dots_and_commas():
    assert estimate_glyph_height(_ink(r"$a, b, \ldots, z$")) == pytest.approx(estimate_glyph_height(_ink(r"$a\ b\ z$")), rel=0.06)


def test_estimate_splits_letters_that_merged():
    ink = _ink(r"$x k x k x k$")
    base = estimate_glyph_height(ink)
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0.5), np.flatnonzero(ink.max(axis=0) > 0.5)
    merged = ink.copy()
    merged[rows[-1] - 1, cols[0]:cols[-1]] = 1.0  # a 1-pixel bridge along the baseline joins all letters
    assert ndimage.label(merged >= 0.4, structure=np.ones((3, 3)))[1] == 1
    assert estimate_glyph_height(merged) == pytest.approx(base, rel=0.08)


def test_estimate_reads_a_formula_merged_into_one_blob():
    """Bold or very low resolution can merge a whole fraction into one component."""
    ink = _ink(r"$\frac{a+b}{c+d}$")
    base = estimate_glyph_height(ink)
    labels, count = ndimage.label(ink >= 0.4, structure=np.ones((3, 3)))
    boxes = sorted(ndimage.find_objects(labels), key=lambda box: box[1].start)
    merged = ink.copy()
    letters = [b for b in boxes if (b[0].stop - b[0].start) > 3]  # not the fraction bar
    for line in ([b for b in letters if b[0].stop < ink.shape[0] / 2], [b for b in letters if b[0].start > ink.shape[0] / 2]):
        for a, b in zip(line, line[1:]):  # touching neighbours: a 1-pixel bridge between them
            row = (max(a[0].start, b[0].start) + min(a[0].stop, b[0].stop)) // 2
            merged[row, a[1].start:b[1].stop] = np.maximum(merged[row, a[1].start:b[1].stop], 1.0)
    middle = (boxes[0][1].start + boxes[-1][1].stop) // 2
    merged[:, middle] = np.where(np.arange(ink.shape[0]) > 2, np.maximum(merged[:, middle], 1.0), 0.0)
    merged[-3:, middle] = 0.0
    assert ndimage.label(merged >= 0.4, structure=np.ones((3, 3)))[1] == 1
    assert estimate_glyph_height(merged) == pytest.approx(base, rel=0.15)


def test_estimate_refuses_an_empty_map():
    with pytest.raises(BlankImageError):
        estimate_glyph_height(np.zeros((20, 30), np.float32))
