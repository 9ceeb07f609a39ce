"""KaTeX in headless Chromium (model.data.render_web): honest skips, colours, device scale, and
the training-sample contract shared with the TeX renderer.  Browser tests skip with the reason
when Chromium, Node.js or the npm packages of model/data/web are missing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model.data import render_web
from model.data.render_web import WebItem, WebShot, ink_box, parse_colour, render_katex
from model.data.rendering import CROP_MARGIN, RenderResult, Skip

MISSING = render_web.missing_reason()
needs_web = pytest.mark.skipif(MISSING is not None, reason=f"web renderer unavailable: {MISSING}")


def test_parse_colour():
    assert parse_colour("#1e1e1e") == (30, 30, 30)
    assert parse_colour("#fa0") == (255, 170, 0)
    with pytest.raises(ValueError):
        parse_colour("red")


def test_ink_box_against_a_coloured_background():
    image = Image.new("RGB", (50, 30), (0x1e, 0x1e, 0x1e))
    image.paste((0xd4, 0xd4, 0xd4), (10, 5, 20, 25))
    assert ink_box(image, "#1e1e1e") == (10, 5, 20, 25)
    assert ink_box(Image.new("RGB", (5, 5), (9, 9, 9)), (9, 9, 9)) is None


def test_missing_chromium_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(render_web.CHROMIUM_ENV, str(tmp_path / "no-such-browser"))
    assert render_web.find_chromium() is None
    reason = render_web.missing_reason()
    assert reason and ("Chromium" in reason or "Node.js" in reason or "npm" in reason)
    with pytest.raises(render_web.WebRendererMissing, match="install"):
        render_katex([WebItem("x")])


@needs_web
def test_training_samples_are_gray_black_on_white_cropped_and_honest():
    formulas = [r"\frac{a+b}{c}", r"\notacommand{x}", "", r"x^{2}^{3}", r"\sum_{i=1}^{n}i"]
    results = render_web.render_web(formulas, font_px=20, style=["display", "display", "display", "inline", "inline"])
    assert [type(r).__name__ for r in results] == ["RenderResult", "Skip", "Skip", "Skip", "RenderResult"]
    assert results[1].reason == "katex_error" and "notacommand" in results[1].detail
    assert results[2].reason == "empty"
    assert results[3].reason == "katex_error"   # a double superscript is an error in LaTeX too
    for r, latex in ((results[0], formulas[0]), (results[4], formulas[4])):
        assert isinstance(r, RenderResult)
        assert r.latex == latex and r.font == "katex" and r.renderer == "katex" and r.dpi == 96
        arr = np.asarray(r.image)
        assert r.image.mode == "L" and arr.min() < 60
        border = np.concatenate([arr[:CROP_MARGIN].ravel(), arr[-CROP_MARGIN:].ravel(),
                                 arr[:, :CROP_MARGIN].ravel(), arr[:, -CROP_MARGIN:].ravel()])
        assert border.min() >= 250   # cropped to the ink plus a white margin, like render_tex
    assert results[0].style == "display" and results[4].style == "inline"


@needs_web
def test_device_scale_and_colours():
    items = [WebItem(r"\int_{0}^{1}x\,dx", px=18, scale=1, color="#ffb000", background="#1a1a1a"),
             WebItem(r"\int_{0}^{1}x\,dx", px=18, scale=2, color="#ffb000", background="#1a1a1a")]
    one, two = render_katex(items)
    assert isinstance(one, WebShot) and isinstance(two, WebShot)
    box1, box2 = ink_box(one.image, "#1a1a1a"), ink_box(two.image, "#1a1a1a")
    h1, h2 = box1[3] - box1[1], box2[3] - box2[1]
    assert 1.8 < h2 / h1 < 2.2
    # at least 30 device pixels of background on every side, for the suite's sloppy margins
    assert box1[0] >= 30 and box1[1] >= 30 and one.image.width - box1[2] >= 30 and one.image.height - box1[3] >= 30
    rgb = np.asarray(one.image)
    assert tuple(rgb[0, 0]) == (0x1a, 0x1a, 0x1a)
    # the strongest ink is the text colour (anti-aliasing only blends towards the background)
    strongest = rgb.reshape(-1, 3)[np.argmax(np.abs(rgb.astype(int) - 0x1a).sum(axis=2).ravel())]
    assert np.abs(strongest.astype(int) - np.array([0xff, 0xb0, 0x00])).max() <= 8


@needs_web
def test_many_formulas_in_one_run_keep_their_order():
    formulas = [f"x_{{{i}}}" for i in range(12)]
    results = render_katex([WebItem(f, px=16) for f in formulas], page_size=5)
    assert all(isinstance(r, WebShot) for r in results)
    assert [r.item.latex for r in results] == formulas
    # wider subscripts make wider pictures: x_{10} and x_{11} are wider than x_{1}
    assert results[10].image.width > results[1].image.width
