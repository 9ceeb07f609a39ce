"""Turn any snip into the model's input: an ink map at a fixed glyph size.

The recognizer is trained on clean renders but must read real snips whose scale, margins,
colours and quality differ.  So every image, for training and for inference alike, goes
through the same steps, each chosen to remove one of those differences:

1. any PIL mode becomes colour (+ alpha) in [0, 1]; very large inputs are cropped to their
   ink and reduced early, because everything after is linear in the pixel count;
2. ink = colour distance from the estimated background colour, normalized by the ink's own
   strength: black on white, white on dark, red on pink and grey on grey all become the same
   map; faint values (JPEG ringing, soft gradients) are cut relative to that strength;
3. the glyph height is estimated from the connected components (``estimate_glyph_height``)
   and the crop of the ink is rescaled so that it equals ``spec.glyph_height``;
4. ``spec.margin`` blank pixels are put around the ink and the size is padded to the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

from model.config import InputSpec
from model.errors import BlankImageError, ImageError

# Images above this many pixels are first cropped to their ink (found on a reduced copy) and,
# if still larger, reduced by an integer factor: a snip never needs more to be read.
WORK_PIXELS = 1_500_000
COARSE_PIXELS = 250_000
SMALL_PIXELS = 250_000  # below this, the whole image is analysed as it is
MIN_SIDE = 4             # fewer rows or columns than this cannot hold a formula
MIN_CONTRAST = 0.05      # strongest ink weaker than this (in full-range units): blank
STROKE_CUT = 0.4         # ink at least this strong is part of a stroke (binarization)
LINK_CUT = 0.2           # fainter ink joins a component that holds stroke ink (hysteresis)
NOISE_CUT = 0.15         # ink below this fraction of the ink strength is noise
MAX_COMPONENTS = 200     # glyph height is estimated from at most this many components
MIN_CORRELATION = 0.12   # binarized ink less correlated between neighbours: noise, not strokes
MIN_GLYPH_PIXELS = 3     # a component this short is a speck at any real scale, never a whole glyph
MIN_RULE_FILL = 0.7      # a faint rule covers at least this share of its bounding box (_faint_rules)

_EIGHT = np.ones((3, 3), dtype=bool)


# --------------------------------------------------------------------------------------------
# 1. Any PIL mode -> colour array (+ alpha), all in [0, 1]


def _canonical(image: Image.Image) -> Image.Image:
    """Return ``image`` as L, LA, RGB, RGBA (8 bit) or F (float in [0, 1])."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode == "P":
        return image.convert("RGBA" if image.has_transparency_data else "RGB")
    if mode in ("PA", "RGBa", "RGBX", "La"):
        return image.convert({"PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB", "La": "LA"}[mode])
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB")
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_scaled_float(image))
    try:
        return image.convert("RGB")
    except (ValueError, OSError):
        raise ImageError(f"Cannot read the image: its pixel mode {mode!r} is not supported.") from None


def _scaled_float(image: Image.Image) -> np.ndarray:
    """16-bit, 32-bit integer and float images to float32 in [0, 1], from their value range."""
    values = np.asarray(image).astype(np.float32, copy=False)
    if values.ndim != 2:
        values = values.reshape(image.size[1], image.size[0])
    if not np.isfinite(values).all():
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16"):
        full = 65535.0
    elif image.mode == "F" and low >= 0.0 and high <= 1.0:
        full = 1.0
    elif low >= 0.0 and high <= 255.0:
        full = 255.0
    elif low >= 0.0 and high <= 65535.0:
        full = 65535.0
    else:  # arbitrary range (e.g. signed or huge values): stretch what is there
        span = high - low
        return ((values - low) / span if span > 0 else np.zeros_like(values)).astype(np.float32)
    return np.clip(values / full, 0.0, 1.0).astype(np.float32, copy=False)


def _picture(image: Image.Image) -> np.ndarray:
    """The opaque picture of a canonical image: uint8 (L, RGB) or float32 in [0, 1].

    8-bit pictures stay uint8 so that distances are table look-ups (the common, fast path);
    transparency is folded in by ``_resolve_alpha``.
    """
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    array = np.asarray(image)
    if image.mode in ("L", "RGB"):
        return array
    scale = np.float32(1.0 / 255.0)
    if image.mode == "LA":
        return _resolve_alpha(array[..., 0], array[..., 1].astype(np.float32) * scale)
    return _resolve_alpha(array[..., :3], array[..., 3].astype(np.float32) * scale)  # RGBA


def _resolve_alpha(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten transparency onto a backdrop chosen so that the text stays visible.

    When most of the picture is opaque, the opaque part is a canvas with its own text (a
    window screenshot with transparent rounded corners): the backdrop is the canvas colour.
    When only a minority is opaque, the opaque pixels are the strokes (a formula exported on a
    transparent background): the backdrop is white or black, whichever contrasts more with
    the strokes' colour, so white text on transparency does not vanish the way it would when
    flattened onto white, and anti-aliasing carried by the colour (binary palette
    transparency) or by alpha is kept either way.
    """
    sample = alpha[:: max(1, alpha.shape[0] // 200), :: max(1, alpha.shape[1] // 200)]
    low, high = np.percentile(sample, (0.5, 99.5)) if sample.size > 400 else (sample.min(), sample.max())
    if high - low < 0.1:  # alpha carries no information
        return colour
    colour = _unit(colour)
    opaque = alpha > 0.5
    dominant = _dominant_colour(colour[opaque]) if opaque.any() else np.zeros(colour.shape[2:] or (1,), np.float32)
    if np.count_nonzero(opaque) > 0.5 * opaque.size:
        backdrop = dominant
    else:
        backdrop = np.full_like(dominant, 1.0 if float(dominant.mean()) < 0.5 else 0.0)
    if colour.ndim == 2:
        return colour * alpha + backdrop[0] * (1.0 - alpha)
    return colour * alpha[..., None] + backdrop * (1.0 - alpha[..., None])


# --------------------------------------------------------------------------------------------
# 2. Colour -> ink map


def _unit(pixels: np.ndarray) -> np.ndarray:
    """Pixels as float32 in [0, 1], whether uint8 or already float."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) * np.float32(1.0 / 255.0)
    return pixels.astype(np.float32, copy=False)


def _dominant_colour(pixels: np.ndarray) -> np.ndarray:
    """The most common colour of ``pixels`` ((N,) grey or (N, 3) colour, in [0, 1]): the mode
    of a coarse histogram, refined to the mean of the pixels near that mode (robust to noise
    and to the minority of pixels that are text)."""
    pixels = pixels.reshape(len(pixels), -1)
    if len(pixels) > 20_000:  # a strided sample estimates a mode just as well
        pixels = pixels[:: len(pixels) // 10_000]
    channels = pixels.shape[1]
    levels = 64 if channels == 1 else 16
    bins = np.minimum((pixels * levels).astype(np.int32), levels - 1)
    codes = bins[:, 0]
    for c in range(1, channels):
        codes = codes * levels + bins[:, c]
    mode = int(np.bincount(codes, minlength=levels**channels).argmax())
    centre = np.empty(channels, dtype=np.float32)
    for c in range(channels - 1, -1, -1):
        centre[c] = (mode % levels + 0.5) / levels
        mode //= levels
    tolerance = 1.5 / levels
    near = np.abs(pixels[:, 0] - centre[0]) <= tolerance
    for c in range(1, channels):  # per channel: numpy reduces slowly along a length-3 axis
        near &= np.abs(pixels[:, c] - centre[c]) <= tolerance
    chosen = pixels[near]
    return (chosen.sum(axis=0) / max(1, len(chosen))).astype(np.float32)


def _border(picture: np.ndarray) -> np.ndarray:
    """The pixels of a thin frame along the picture's edge, (N,) or (N, 3), in [0, 1]."""
    h, w = picture.shape[:2]
    t = max(1, min(3, min(h, w) // 8))
    rest = picture.shape[2:]
    parts = [picture[:t].reshape(-1, *rest), picture[-t:].reshape(-1, *rest),
             picture[t:-t, :t].reshape(-1, *rest), picture[t:-t, -t:].reshape(-1, *rest)]
    return _unit(np.concatenate(parts))


_LEVELS = np.arange(256, dtype=np.float32) / np.float32(255.0)
_BINS = 1024  # distance resolution of the histogram and of the ink look-up table
# Sum of three squared 8-bit channel differences -> distance bin: sqrt(sum / 3) / 255.
_SUM_TO_BIN = np.minimum(np.sqrt(np.arange(3 * 255**2 + 1) / 3.0) / 255.0 * (_BINS - 1) + 0.5, _BINS - 1).astype(np.int16)
_VALUES = np.arange(256, dtype=np.int32)


def _distance_bins(picture: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Colour distance from ``background`` (black vs white = 1), quantized to _BINS levels.

    For 8-bit pictures everything is integer table look-ups (squared difference per channel,
    then square root per sum), so no float copy of the picture is ever made.
    """
    top = np.float32(_BINS - 1)
    if picture.dtype == np.uint8:
        if picture.ndim == 2:
            table = (np.abs(_LEVELS - background[0]) * top + 0.5).astype(np.int16)
            return np.take(table, picture)
        level = np.round(background * 255.0).astype(np.int32)
        total = np.take(np.square(_VALUES - level[0]), picture[..., 0])
        total += np.take(np.square(_VALUES - level[1]), picture[..., 1])
        total += np.take(np.square(_VALUES - level[2]), picture[..., 2])
        return np.take(_SUM_TO_BIN, total)
    if picture.ndim == 2:
        d2 = np.square(picture - background[0])
    else:
        diff = picture - background
        d2 = np.einsum("ijk,ijk->ij", diff, diff) * np.float32(1.0 / 3.0)
    np.sqrt(d2, out=d2)
    d2 *= top
    d2 += 0.5
    return np.minimum(d2, top).astype(np.int16)


@dataclass
class _Ink:
    ink: np.ndarray       # float32 (H, W) in [0, 1], faint noise removed
    strokes: int          # number of pixels with ink >= STROKE_CUT (the binarized strokes)
    strength: float       # distance of full ink from the background, in full-range units


def _ink_from_bins(bins: np.ndarray) -> _Ink:
    """Normalize the quantized distance by the ink strength and cut faint values.

    The strength is a high percentile (90th) of the distance among ink-like pixels (those
    beyond 0.3 x a robust maximum): the colour of the stroke cores, whatever the contrast.
    Values under NOISE_CUT of it are set to 0 and the next NOISE_CUT ramp up linearly to meet
    the identity, so that stroke edges keep their anti-aliased coverage (needed for sub-pixel
    consistency across scales).  All of it is one histogram and one table look-up.
    """
    hist = np.bincount(bins.reshape(-1), minlength=_BINS)
    from_top = np.cumsum(hist[::-1])
    # The 8th largest distance, so that a few hot pixels cannot set the strength; when there
    # is less visible ink than that (a lone minus sign at low resolution) it is half of what
    # there is, so that the blank check below can say "too little ink" rather than "no contrast".
    visible = int(from_top[_BINS - 1 - int(math.ceil(MIN_CONTRAST * (_BINS - 1)))])
    k = min(8, max(1, visible // 2))
    robust_max = (_BINS - 1 - int(np.searchsorted(from_top, k))) / (_BINS - 1)
    if robust_max < MIN_CONTRAST:
        return _Ink(np.zeros(bins.shape, np.float32), 0, robust_max)
    first = int(math.ceil(0.3 * robust_max * (_BINS - 1)))
    tail = np.cumsum(hist[first:])
    strength = (first + int(np.searchsorted(tail, 0.9 * tail[-1]))) / (_BINS - 1)
    strength = max(strength, MIN_CONTRAST)
    x = np.minimum(np.arange(_BINS, dtype=np.float32) / np.float32((_BINS - 1) * strength), 1.0)
    table = np.where(x < 2 * NOISE_CUT, np.maximum(x - NOISE_CUT, 0.0) * 2.0, x).astype(np.float32)
    strokes = int(hist[table >= STROKE_CUT].sum())  # counted on the histogram: no pass over the image
    return _Ink(np.take(table, bins), strokes, strength)


def _analyse(picture: np.ndarray) -> _Ink:
    """Ink map of an opaque picture, with the background colour taken from its border.

    If more than half the picture would be ink, the border was not background (a snip cut
    through a coloured panel, or text touching every edge): the dominant colour of the whole
    picture is tried instead and the sparser result is kept.
    """
    result = _ink_from_bins(_distance_bins(picture, _dominant_colour(_border(picture))))
    if result.strokes > 0.5 * result.ink.size:
        step = max(1, int(math.sqrt(picture.shape[0] * picture.shape[1] / 10_000)))
        sample = _unit(picture[::step, ::step].reshape(-1, *picture.shape[2:]))
        other = _ink_from_bins(_distance_bins(picture, _dominant_colour(sample)))
        if 0 < other.strokes < result.strokes:
            result = other
    return result


def ink_map(image: Image.Image) -> np.ndarray:
    """Ink of ``image`` at its own resolution: float32 (H, W), 1 = full ink, 0 = background.

    Works for any PIL mode, light or dark background, coloured text and transparency.  A
    picture without visible contrast gives all zeros.
    """
    return _analyse(_picture(_canonical(image))).ink


# --------------------------------------------------------------------------------------------
# 3. Glyph height


@dataclass
class _Components:
    labels: np.ndarray    # int32 (H, W), 0 = background
    top: np.ndarray       # per component (index i = label i + 1), bounding boxes, end exclusive
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    area: np.ndarray

    @property
    def height(self) -> np.ndarray:
        return self.bottom - self.top

    @property
    def width(self) -> np.ndarray:
        return self.right - self.left


def _stroke_components(ink: np.ndarray) -> _Components:
    """Components of the strokes, binarized with hysteresis: ink >= LINK_CUT that is connected
    to ink >= STROKE_CUT.

    A single cut breaks thin strokes apart at low resolution (Computer Modern's hairlines are
    under a pixel wide at 72-96 dpi, anti-aliased to less than STROKE_CUT), so glyphs fell into
    fragments and the glyph height came out up to 2x too small; faint ink on its own (noise,
    JPEG ringing) still forms no component.
    """
    faint, count = ndimage.label(ink >= LINK_CUT, structure=_EIGHT)
    keep = np.zeros(count + 1, dtype=bool)
    keep[faint[ink >= STROKE_CUT]] = True
    keep[0] = False
    # the kept components numbered 1..n in the order labelling found them (one labelling pass)
    labels = (np.cumsum(keep) * keep).astype(np.int32)[faint]
    boxes = ndimage.find_objects(labels)
    spans = np.array([(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in boxes], dtype=np.int64).reshape(-1, 4)
    area = np.bincount(labels.reshape(-1), minlength=len(boxes) + 1)[1:]
    return _Components(labels, spans[:, 0], spans[:, 1], spans[:, 2], spans[:, 3], area)


def _row_max(flat: np.ndarray, width: int, rows: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """max(flat[row, left:right]) for many (row, left, right) at once, in one ufunc call."""
    starts = rows * width + left
    order = np.argsort(starts, kind="stable")  # keeps the unused in-between ranges short
    bounds = np.empty(2 * len(rows), dtype=np.intp)
    bounds[0::2] = starts[order]
    bounds[1::2] = (rows * width + right)[order]
    out = np.empty(len(rows), dtype=flat.dtype)
    out[order] = np.maximum.reduceat(flat, bounds)[0::2]
    return out


def _subpixel_heights(ink: np.ndarray, labels: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Heights of ``boxes`` (K x 4: top, bottom, left, right) with fractional edge rows.

    A binarized height is only known to +-1 pixel, which is 15 % of a low-resolution glyph.
    The coverage of the first and last rows of each box, and of the unlabeled fringe in the
    rows just outside, relative to the component's own stroke intensity (thin strokes never
    reach full ink; read in three inner rows), locates each edge to a fraction of a pixel, so
    the estimate stays proportional to the scale.  ``ink`` must have a blank 1-pixel frame.
    """
    height, width = ink.shape
    coverage = ink.copy()
    ramp = (coverage > 0) & (coverage < 2 * NOISE_CUT)  # undo the noise cut's ramp (_ink_from_bins)
    coverage[ramp] = NOISE_CUT + 0.5 * coverage[ramp]
    own = np.where(labels > 0, coverage, 0.0).reshape(-1)
    fringe = np.where(labels == 0, coverage, 0.0).reshape(-1)
    top, bottom, left, right = (boxes[:, i].astype(np.intp) for i in range(4))
    rows = bottom - top
    peak = np.mean([_row_max(own, width, top + (rows * q).astype(np.intp), left, right) for q in (0.25, 0.5, 0.75)], axis=0)
    peak = np.maximum(peak, STROKE_CUT)
    edge = lambda flat, r: np.minimum(_row_max(flat, width, r, left, right), peak) / peak  # noqa: E731
    outside = edge(fringe, top - 1) + edge(fringe, bottom)
    inside = edge(own, top) + np.where(rows >= 2, edge(own, bottom - 1), 0.0)
    return np.maximum(rows - 2, 0) + outside + inside


def _split_heights(comps: _Components, index: int) -> list[tuple[int, int, int, int, int]] | None:
    """Boxes of the letters inside a wide component that merged several touching glyphs.

    Letters touching at low resolution or in bold fonts join through thin bridges, or through
    a fraction bar; cutting at columns holding almost no ink of the component (bar rows left
    out) separates them again.  Returns None when the pieces all have the component's height
    (one wide glyph, or equal letters); otherwise the pieces as (top, bottom, left, right, area).
    """
    t, b, l, r = int(comps.top[index]), int(comps.bottom[index]), int(comps.left[index]), int(comps.right[index])
    own = comps.labels[t:b, l:r] == index + 1
    # A fraction bar or overline that touches the letters (low resolution) is a run of nearly
    # full rows at the bottom or top of a long component: leave it out, so the letters above
    # or below it stand alone.
    if r - l >= 2.5 * (b - t):
        full = own.sum(axis=1) >= 0.8 * (r - l)
        for rows in (slice(None), slice(None, None, -1)):  # from the top, then from the bottom
            edge = np.cumprod(full[rows]).astype(bool)
            if 0 < edge.sum() <= max(2, (b - t) // 4):
                own[rows][edge] = False
    columns = own.sum(axis=0)
    cut = columns <= max(1, int(0.12 * (b - t)))
    if not cut.any():
        return None
    pieces = []
    area = int(comps.area[index])
    edges = np.flatnonzero(np.diff(np.concatenate(([1], cut.view(np.int8), [1]))))
    for start, stop in zip(edges[::2], edges[1::2]):
        piece = own[:, start:stop]
        piece_area = int(np.count_nonzero(piece))
        if piece_area < 0.08 * area:  # a sliver of an arch or a bridge, not a letter
            continue
        rows = np.flatnonzero(piece.any(axis=1))
        pieces.append((t + int(rows[0]), t + int(rows[-1]) + 1, l + int(start), l + int(stop), piece_area))
    if len(pieces) < 2 or min(p[1] - p[0] for p in pieces) >= 0.85 * (b - t):
        return None
    return pieces


def _split_rows(comps: _Components, index: int) -> list[tuple[int, int, int, int, int]] | None:
    """Text lines inside a component that merged a whole formula (bold or very low resolution).

    The row profile of the component is cut at nearly empty rows and at nearly full rows
    (fraction bars), leaving bands such as a numerator and a denominator; their heights are
    text-line heights, which is what a glyph height is when single glyphs cannot be told apart.
    Returns None when there are fewer than two bands, or when they are not apart.
    """
    t, b, l, r = int(comps.top[index]), int(comps.bottom[index]), int(comps.left[index]), int(comps.right[index])
    own = comps.labels[t:b, l:r] == index + 1
    counts = own.sum(axis=1)
    empty = counts <= max(1, int(0.06 * (r - l)))
    cut = empty | (counts >= 0.8 * (r - l))
    edges = np.flatnonzero(np.diff(np.concatenate(([1], cut.view(np.int8), [1]))))
    bands = []
    for start, stop in zip(edges[::2], edges[1::2]):
        band = own[start:stop]
        area = int(np.count_nonzero(band))
        if area >= 0.08 * comps.area[index] and stop - start >= 0.25 * (b - t):  # a line, not a stroke
            cols = np.flatnonzero(band.any(axis=0))
            bands.append((t + int(start), t + int(stop), l + int(cols[0]), l + int(cols[-1]) + 1, area))
    if len(bands) < 2:
        return None
    # Lines are apart: between two of them some row is nearly empty.  The arms of an E are
    # full rows too, but its parts touch through the stem: it is one glyph.
    for upper, lower in zip(bands, bands[1:]):
        if not empty[upper[1] - t:lower[0] - t].any():
            return None
    return bands


def _glyph_height(ink: np.ndarray, comps: _Components) -> float:
    """See ``estimate_glyph_height``; works on precomputed components."""
    n = len(comps.area)
    if n == 0:
        raise BlankImageError("The snip looks blank: no ink strokes were found in it.")
    h = comps.height.astype(np.float64)
    w = comps.width.astype(np.float64)
    fill = comps.area / (h * w)
    # Rules: filled bars clearly wider than tall (an equals sign merged at low resolution too).
    rule = (fill >= 0.65) & ((w >= 2.5 * h) | (h <= 1) & (w >= 2)) | (fill >= 0.85) & (w >= 1.5 * h)
    candidates = np.flatnonzero(~rule)
    if candidates.size == 0:
        # Only rules (a lone minus or equals sign): a dash is about a glyph height long.
        return float(max(1.0, 0.9 * np.median(np.maximum(h, w))))
    if candidates.size > MAX_COMPONENTS:  # plenty for a robust estimate; keeps long strips fast
        candidates = candidates[np.linspace(0, candidates.size - 1, MAX_COMPONENTS).astype(np.intp)]
    boxes: list[tuple[int, int, int, int, int]] = []  # top, bottom, left, right, area
    for i in candidates:
        pieces = _split_heights(comps, int(i)) if w[i] > 1.3 * h[i] else None
        if pieces is None and candidates.size < 3:  # too few components: a merged formula?
            pieces = _split_rows(comps, int(i))
        if pieces is None:
            boxes.append((int(comps.top[i]), int(comps.bottom[i]), int(comps.left[i]), int(comps.right[i]), int(comps.area[i])))
        else:
            boxes.extend(pieces)
    table = np.array(boxes, dtype=np.int64)
    heights = _subpixel_heights(ink, comps.labels, table[:, :4])
    widths = (table[:, 3] - table[:, 2]).astype(np.float64)
    # Dots, commas, primes and specks are not glyph-sized.  The yardstick is a high percentile
    # of the heights (letters, not dots, even in "a, b, \ldots, z"), with heights capped at 3x
    # the median so that big delimiters cannot be it (nor, where they are many, at all: see
    # _big_delimiters); the criteria are relative and so the same at every scale: short
    # (dots), or small both ways (commas; subscript letters are as short but wider).  The
    # weights ramp from 0 to 1 across each threshold, so that a mark near one cannot make the
    # estimate jump between two scales.
    delimiters = _big_delimiters(heights, widths)
    reference = _capped_percentile(heights[~delimiters])
    tall = _ramp(heights / reference, 0.30, 0.40)
    big = _ramp(np.maximum(heights / (0.5 * reference), widths / (0.35 * reference)), 0.8, 1.2)
    weights = tall * big * ~delimiters
    if weights.sum() <= 0.0:
        weights = np.ones_like(heights)
    # Big delimiters, integrals and sums are not letters either; with few letters even a
    # trimmed mean would move.  Relative to the median letter they fade out from 2x to 3x.
    letter = _middle_mean(heights, weights)
    weights = weights * _ramp(3.0 - heights / letter, 0.0, 1.0)
    if weights.sum() <= 0.0:
        return float(max(1.0, letter))
    return float(max(1.0, _middle_mean(heights, weights)))


def _capped_percentile(heights: np.ndarray) -> float:
    """The 80th percentile of the heights, each capped at 3x the median."""
    return float(np.percentile(np.minimum(heights, 3.0 * np.median(heights)), 80))


def _big_delimiters(heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Tall narrow components (brackets, parentheses, bars, integral signs) over 2.5x the
    height of the other glyphs, where they would set the yardstick (its 80th percentile over
    2x the other glyphs): a column vector has more of them than digits above the 80th
    percentile (two brackets, three digits), and two \\left[ \\right] around a few glyphs
    pull it halfway up; the estimate was then the brackets' height, and the formula was shrunk
    to a few pixels.  Elsewhere (the yardstick is a glyph's height) none: the fading below
    handles them.  Brackets come in pairs around at least as many glyphs, so more of them than
    other glyphs is no vector."""
    narrow = widths <= 0.5 * heights
    # the other glyphs, without specks (anti-aliasing fragments are many at low resolution)
    others = heights[~narrow & (heights >= max(MIN_GLYPH_PIXELS, 0.1 * heights.max()))]
    if others.size == 0:
        return np.zeros_like(narrow)
    # their typical height, without dots (a colon, an i's dot): no letter is under half the tallest
    typical = np.median(others[others >= 0.5 * others.max()])
    if _capped_percentile(heights) <= 2.0 * typical:
        return np.zeros_like(narrow)
    delimiters = narrow & (heights > 2.5 * typical)
    # more "delimiters" than other glyphs: the others are dots (the i's in "i(t)"), not letters
    return delimiters if delimiters.sum() <= others.size else np.zeros_like(narrow)


def _ramp(x: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip((x - low) / (high - low), 0.0, 1.0)


def _middle_mean(values: np.ndarray, weights: np.ndarray) -> float:
    """Weighted mean of the middle half of ``values`` (an interquartile mean).

    As robust as the median to outliers on either side (big delimiters, stray marks), but
    continuous in the values and the weights: a formula's heights form two groups (x-height
    letters; ascenders, digits and capitals) and a plain median jumps from one group to the
    other when one glyph changes.
    """
    order = np.argsort(values)
    values, weights = values[order], weights[order]
    upper = np.cumsum(weights)
    lower = upper - weights
    total = upper[-1]
    overlap = np.clip(np.minimum(upper, 0.75 * total) - np.maximum(lower, 0.25 * total), 0.0, None)
    return float((values * overlap).sum() / overlap.sum())


def estimate_glyph_height(ink: np.ndarray) -> float:
    """Typical glyph height in pixels of an ink map (float (H, W) in [0, 1], 1 = ink).

    The estimate is a median-like statistic of the heights of the connected components of
    the binarized ink (8-connected; ink >= STROKE_CUT, grown by hysteresis through fainter
    ink >= LINK_CUT so that hairlines do not break glyphs apart at screen resolutions), after
    leaving out what is not glyph-like:

    * flat filled rules (fraction bars, minus and equals signs, overlines): their height is a
      stroke width, not a glyph height, and a formula can have many;
    * dots, commas, primes and specks: shorter than ~0.35 x a high percentile of the heights,
      or shorter than half of it and narrow (they can outnumber the letters, as in
      ``a, b, \\ldots, z``, so the yardstick is the 80th percentile, not the median);
    * big delimiters, sums and integrals: taller than ~2.5 x the typical letter.

    Each weight ramps from 0 to 1 across its threshold, so that a mark near one cannot make
    the estimate jump.  Components much wider than tall are split at near-empty columns, so
    letters that merged at low resolution, in a bold font or through a fraction bar count
    one by one again; when there are fewer than three components, each is also cut into
    text lines by its row profile (a whole fraction merged into one blob gives a numerator
    and a denominator line).  Heights are measured to a fraction of a pixel from the anti-aliased
    coverage of the edge rows.  The statistic is the weighted interquartile mean (the mean
    of the middle half): robust like the median, but it does not jump between the x-height
    letters and the ascender letters when one glyph changes.

    Why it is robust: every criterion is relative (ratios of the components' own sizes), so
    the estimate is scale-equivariant: doubling the image doubles it.  Margins contain no
    components, so they cannot change it.  A few big delimiters, sums or integrals, however
    large, are faded out and trimmed.  Fraction bars are excluded explicitly and never
    counted.  Measured on renders of 15 formulas at 60-400 dpi (hinting off) it agrees with
    the 400 dpi value within 0.3 % on average at 150 dpi (1.7 % at worst), 0.7 % at 100 dpi
    and 3 % at 60 dpi (14 % at worst: thin strokes break apart there).
    Raises BlankImageError when there is no ink.
    """
    ink = np.asarray(ink, dtype=np.float32)
    if ink.ndim != 2:
        raise ValueError(f"expected a 2-D ink map, got shape {ink.shape}")
    framed, _, _ = _framed(ink)
    return _glyph_height(framed, _stroke_components(framed))


def _framed(ink: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The ink's bounding box (ink > 0) with a blank 1-pixel frame, and its (top, left) offset.

    Everything after this works on the box only, which is much smaller than a snip with
    generous margins; the frame keeps the rows around every component inside the array.
    """
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return np.zeros((3, 3), dtype=np.float32), 0, 0
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    framed = np.zeros((bottom - top + 2, right - left + 2), dtype=np.float32)
    framed[1:-1, 1:-1] = ink[top:bottom, left:right]
    return framed, top - 1, left - 1


# --------------------------------------------------------------------------------------------
# Preprocessing


def _working_image(image: Image.Image, spec: InputSpec) -> Image.Image:
    """Canonical image, cropped to its ink and reduced when large (both cheap in PIL).

    Everything after this is linear in the pixel count, so large inputs are first looked at
    on a reduced copy: the ink's bounding box crops the snip (a whole-screen snip holding a
    small formula keeps its full resolution), and when the content is so long or tall that the
    output must be shrunk to fit spec.max_width / max_height anyway, the image is reduced to
    twice the output resolution; finer detail would be averaged away at the end regardless.
    """
    work = _canonical(image)
    w, h = work.size
    if w * h <= SMALL_PIXELS:
        return work
    k = max(1, math.ceil(math.sqrt(w * h / COARSE_PIXELS)))
    coarse = _analyse(_picture(work.reduce(k) if k > 1 else work)).ink > 0
    rows, cols = np.flatnonzero(coarse.any(axis=1)), np.flatnonzero(coarse.any(axis=0))
    reduce_by = 1
    if rows.size:
        pad = 4
        box = (max(0, (int(cols[0]) - pad) * k), max(0, (int(rows[0]) - pad) * k),
               min(w, (int(cols[-1]) + 1 + pad) * k), min(h, (int(rows[-1]) + 1 + pad) * k))
        if box != (0, 0, w, h):
            work = work.crop(box)
            w, h = work.size
        content_w, content_h = (int(cols[-1]) + 1 - int(cols[0])) * k, (int(rows[-1]) + 1 - int(rows[0])) * k
        fit = min((spec.max_width - 2 * spec.margin) / content_w, (spec.max_height - 2 * spec.margin) / content_h)
        reduce_by = max(1, int(0.5 / fit))
    reduce_by = max(reduce_by, math.ceil(math.sqrt(w * h / WORK_PIXELS)))
    if reduce_by > 1:
        work = work.reduce(min(reduce_by, max(1, min(w, h) // (2 * MIN_SIDE))))
    return work


def _correlation(mask: np.ndarray) -> float:
    """Largest lag-1 autocorrelation of the binarized ink along rows or columns.

    For a binary map with ink fraction p, uncorrelated noise changes value between neighbours
    with probability 2p(1-p) (correlation 0); strokes change far less often (correlation near
    1 along the stroke).  Counting changes on the boolean map is cheap.
    """
    p = np.count_nonzero(mask) / mask.size
    expected = 2.0 * p * (1.0 - p)
    if expected <= 0.0:
        return 0.0
    across = np.count_nonzero(mask[:, 1:] != mask[:, :-1]) / max(1, mask.shape[0] * (mask.shape[1] - 1))
    down = np.count_nonzero(mask[1:] != mask[:-1]) / max(1, (mask.shape[0] - 1) * mask.shape[1])
    return 1.0 - min(across, down) / expected


def _faint_rules(ink: np.ndarray, comps: _Components, glyph: float) -> np.ndarray:
    """Boxes (top, bottom, left, right; one row each) of thin straight lines too faint to be strokes.

    A rule thinner than a pixel (an equals or minus sign, a bar, a vertical bar at 72-96 dpi)
    is anti-aliased over one or two rows to less than STROKE_CUT everywhere, so it forms no
    stroke component; at the edge of a formula it fell outside the content box and was cut
    away (a leading "=" vanished at 72 dpi).  Faint ink at most two pixels thick, at least
    0.4 glyph heights (and MIN_GLYPH_PIXELS) long and filling its box is such a rule;
    scattered noise is not.
    """
    faint, count = ndimage.label((ink >= LINK_CUT) & (comps.labels == 0), structure=_EIGHT)
    if count == 0:
        return np.zeros((0, 4), dtype=np.int64)
    boxes = np.array([(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in ndimage.find_objects(faint)],
                     dtype=np.int64)
    area = np.bincount(faint.reshape(-1), minlength=count + 1)[1:]
    h, w = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    thin, long = np.minimum(h, w), np.maximum(h, w)
    rule = (thin <= 2) & (long >= max(MIN_GLYPH_PIXELS, 0.4 * glyph)) & (area >= MIN_RULE_FILL * h * w)
    return boxes[rule]


def _content_box(comps: _Components, glyph: float, rules: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """Bounding box (top, bottom, left, right) of the ink, leaving out isolated specks.

    A speck is a component far smaller than a glyph (both sides < 0.3 glyph heights) that
    lies more than one glyph height away from the rest; specks close to the ink are kept, and
    kept specks extend the box, so dots of ``\\ldots`` or a final period are never lost.
    ``rules`` (``_faint_rules``) join the box on the same terms as specks.
    """
    h, w = comps.height, comps.width
    tiny = (h < 0.3 * glyph) & (w < 0.3 * glyph)
    if tiny.all():
        tiny[:] = False
    inside = ~tiny
    top, bottom = comps.top[inside].min(), comps.bottom[inside].max()
    left, right = comps.left[inside].min(), comps.right[inside].max()
    pending = np.stack([comps.top[tiny], comps.bottom[tiny], comps.left[tiny], comps.right[tiny]], axis=1)
    if rules is not None and len(rules):
        pending = np.concatenate([pending, rules.reshape(-1, 4)])
    reach = glyph
    while len(pending):
        near = ((pending[:, 1] >= top - reach) & (pending[:, 0] <= bottom + reach)
                & (pending[:, 3] >= left - reach) & (pending[:, 2] <= right + reach))
        if not near.any():
            break
        added = pending[near]
        top, bottom = min(top, added[:, 0].min()), max(bottom, added[:, 1].max())
        left, right = min(left, added[:, 2].min()), max(right, added[:, 3].max())
        pending = pending[~near]
    return int(top), int(bottom), int(left), int(right)


def preprocess(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """The model input for ``image``: float32 (H, W) in [0, 1], ink 1, background 0.

    The ink is cropped, rescaled so that its typical glyph height (``estimate_glyph_height``)
    is ``spec.glyph_height``,
    placed at the top-left with ``spec.margin`` blank pixels around it, shrunk if needed to fit
    ``spec.max_height`` x ``spec.max_width``, and padded with 0 to multiples of ``spec.grid``.
    Raises BlankImageError when there is nothing to read.
    """
    return preprocess_at_scales(image, spec, (1.0,))[0]


def preprocess_at_scales(image: Image.Image, spec: InputSpec, scales: Sequence[float]) -> list[np.ndarray]:
    """``preprocess`` with the glyph height ``spec.glyph_height * s`` for each ``s`` of ``scales``:
    the image is analysed once and placed once per scale (inference reads a snip at two sizes)."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"preprocess expects a PIL image, got {type(image).__name__}")
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise BlankImageError(f"The snip looks blank: at {width}x{height} pixels it is too small to hold a formula.")
    work = _working_image(image, spec)
    result = _analyse(_picture(work))
    if result.strength < MIN_CONTRAST:
        raise BlankImageError("The snip looks blank: it has no visible contrast.")
    ink_pixels = result.strokes
    if ink_pixels < spec.min_ink_pixels:
        raise BlankImageError(f"The snip looks blank: it has only {ink_pixels} ink pixel{'s' if ink_pixels != 1 else ''}.")
    ink, _, _ = _framed(result.ink)
    mask = ink >= STROKE_CUT
    if _correlation(mask) < MIN_CORRELATION:
        raise BlankImageError("The snip looks blank: it holds only noise, no strokes.")
    comps = _stroke_components(ink)
    glyph = _glyph_height(ink, comps)
    box = _subpixel_box(ink, _content_box(comps, glyph, _faint_rules(ink, comps, glyph)))
    return [_place(ink, box, glyph, replace(spec, glyph_height=spec.glyph_height * s)) for s in scales]


def _subpixel_box(ink: np.ndarray, box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """The content box with each edge moved to the anti-aliased edge of the ink.

    The outermost row or column inside the box is covered only in part, and the one outside
    may be covered a little: their coverage places the edge within a pixel, so that a formula
    lands on the same output pixels whatever the input resolution.  ``ink`` has a blank frame.
    """
    top, bottom, left, right = box
    def cover(values: np.ndarray, outside: bool) -> float:
        value = float(values.max())
        if outside and 0.0 < value < 2 * NOISE_CUT:
            value = NOISE_CUT + 0.5 * value  # undo the noise cut's ramp
        return min(1.0, value)
    rows, cols = ink[top:bottom], ink[:, left:right]
    return (top + 1 - cover(cols[top], False) - cover(cols[top - 1], True),
            bottom - 1 + cover(cols[bottom - 1], False) + cover(cols[bottom], True),
            left + 1 - cover(rows[:, left], False) - cover(rows[:, left - 1], True),
            right - 1 + cover(rows[:, right - 1], False) + cover(rows[:, right], True))


def _place(ink: np.ndarray, box: tuple[float, float, float, float], glyph: float, spec: InputSpec) -> np.ndarray:
    """Rescale the boxed ink to the target glyph height, add margins, pad to the grid."""
    top, bottom, left, right = box
    content_h, content_w = max(bottom - top, 1e-3), max(right - left, 1e-3)
    margin, grid = int(spec.margin), max(1, int(spec.grid))
    max_h = max(grid, (int(spec.max_height) // grid) * grid)
    max_w = max(grid, (int(spec.max_width) // grid) * grid)
    scale = float(spec.glyph_height) / glyph
    room_h, room_w = max(1, max_h - 2 * margin), max(1, max_w - 2 * margin)
    scale = min(scale, room_h / content_h, room_w / content_w)
    out_h = min(max_h, max(1, round(content_h * scale)) + 2 * margin)
    out_w = min(max_w, max(1, round(content_w * scale)) + 2 * margin)
    if scale < 0.5:
        # Shrink by an integer factor first (box average, exact and cheap), so that the margin
        # in source pixels, and with it the region below, stays small.
        k = int(0.5 / scale)
        ink = np.asarray(Image.fromarray(ink).reduce(k), dtype=np.float32)
        top, bottom, left, right, scale = top / k, bottom / k, left / k, right / k, scale * k
    # Source region: the content box widened by the margin (in source pixels), zero-padded
    # where it leaves the image, so that PIL resamples exactly that (sub-pixel) region.
    reach = int(math.ceil(margin / scale)) + 2
    y0, x0 = int(math.floor(top)) - reach, int(math.floor(left)) - reach
    y1 = y0 + int(math.ceil(out_h / scale)) + 2 * reach + 2
    x1 = x0 + int(math.ceil(out_w / scale)) + 2 * reach + 2
    region = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    sy0, sx0 = max(0, y0), max(0, x0)
    sy1, sx1 = min(ink.shape[0], y1), min(ink.shape[1], x1)
    region[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = ink[sy0:sy1, sx0:sx1]
    bx, by = (left - x0) - margin / scale, (top - y0) - margin / scale
    source_box = (bx, by, bx + out_w / scale, by + out_h / scale)
    resample = Image.Resampling.BOX if scale < 1.0 else Image.Resampling.BICUBIC
    resized = Image.fromarray(region).resize((out_w, out_h), resample, box=source_box)
    content = np.asarray(resized, dtype=np.float32)
    padded_h, padded_w = -(-out_h // grid) * grid, -(-out_w // grid) * grid
    out = np.zeros((padded_h, padded_w), dtype=np.float32)
    out[:out_h, :out_w] = np.clip(content, 0.0, 1.0)
    return out
