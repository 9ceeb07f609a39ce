"""Rendering: real LaTeX in batches, mathtext, and the resumable render command."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest

from model.data import render, render_tex
from model.data.render_mathtext import FONTS as MATHTEXT_FONTS
from model.data.render_mathtext import render_mathtext, to_mathtext
from model.data.render_tex import FONTS as TEX_FONTS
from model.data.render_tex import _parse_log, tex_source
from model.data.render_web import missing_reason as render_web_missing
from model.data.rendering import CROP_MARGIN, RenderResult, Skip
from model.config import InputSpec
from model.data.shards import FormulaDataset, ShardReader, verify_shards
from model.tokenizer import normalize
from model.vocab import Vocab
from model.errors import TexNotFoundError

needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("pdftoppm") is None,
                               reason="pdflatex/pdftoppm not installed")

GOOD = [r"x^{2}+y^{2}=z^{2}", r"\frac{a+b}{c}", r"\sum_{i=1}^{n}i", r"\sqrt{\alpha}\mathbb{R}"]


def assert_sane(result, latex: str) -> np.ndarray:
    """A real render of ``latex``: the label is the formula, the image is ink cropped with a margin."""
    assert isinstance(result, RenderResult), result
    assert result.latex == latex
    assert result.image.mode == "L"
    gray = np.asarray(result.image)
    ink = gray < 128
    assert ink.sum() > 20, "blank render"
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    # cropped to the ink: a small white margin on every side, no more
    assert 1 <= rows[0] <= 6 and 1 <= gray.shape[0] - 1 - rows[-1] <= 6
    assert 1 <= cols[0] <= 6 and 1 <= gray.shape[1] - 1 - cols[-1] <= 6
    assert gray.max() == 255 and gray.min() < 60  # black on white
    return gray


# ---------------------------------------------------------------- TeX


@needs_tex
@pytest.mark.tex
@pytest.mark.parametrize("font", list(TEX_FONTS))
def test_every_tex_font_renders_labelled_images(tmp_path, font):
    results = render_tex.render_tex(GOOD, font, "display", 150, tmp_path)
    grays = [assert_sane(r, latex) for r, latex in zip(results, GOOD)]
    assert len({g.shape for g in grays}) == len(grays)  # four different formulas, four different pictures
    assert list(tmp_path.iterdir()) == []  # scratch files are removed


@needs_tex
@pytest.mark.tex
def test_failing_formulas_are_skipped_and_neighbours_keep_their_labels(tmp_path):
    batch = [GOOD[0], r"\undefinedmacro{x}", GOOD[1], r"\frac{a}{b", GOOD[2], "", r"\phantom{x}", GOOD[3],
             r"\begin{pmatrix}a&b\\c&d\end{pmatrix}"]
    results = render_tex.render_tex(batch, "cm", "display", 120, tmp_path)
    kinds = [r.reason if isinstance(r, Skip) else "ok" for r in results]
    assert kinds == ["ok", "compile_error", "ok", "compile_error", "ok", "empty", "empty", "ok", "ok"]
    assert "Undefined control sequence" in results[1].detail
    # each survivor is exactly the picture of its own formula rendered alone
    for latex, result in zip(batch, results):
        if isinstance(result, RenderResult):
            alone = render_tex.render_tex([latex], "cm", "display", 120, tmp_path)[0]
            assert np.array_equal(np.asarray(alone.image), np.asarray(result.image)), latex


@needs_tex
@pytest.mark.tex
def test_a_formula_that_never_ends_times_out_alone(tmp_path):
    batch = ["x", r"\loop\iftrue\repeat", "y"]
    results = render_tex.render_tex(batch, "cm", "inline", 100, tmp_path, timeout=3)
    assert [r.reason if isinstance(r, Skip) else "ok" for r in results] == ["ok", "timeout", "ok"]


@needs_tex
@pytest.mark.tex
def test_styles_and_resolutions_vary_per_formula(tmp_path):
    latex = r"\sum_{i=1}^{n}\frac{1}{i}"
    results = render_tex.render_tex([latex] * 3, "lmodern", ["display", "inline", "display"], [100, 100, 200], tmp_path)
    display, inline, sharp = (np.asarray(r.image) for r in results)
    assert display.shape[0] > inline.shape[0] * 1.2  # limits above and below, a big fraction
    margins = 2 * CROP_MARGIN
    assert abs((sharp.shape[0] - margins) / (display.shape[0] - margins) - 2) < 0.1
    assert [r.dpi for r in results] == [100, 100, 200]


@needs_tex
@pytest.mark.tex
def test_spellings_the_normal_form_merges_draw_alike(tmp_path):
    """The tokenizer treats these as one formula because they look the same: pdflatex agrees,
    pixel for pixel (a bare group, plain-height \\left...\\right pairs; where a pair would
    take a thin space from its neighbour, as after f, the normal form ignores it like \\,)."""
    from model.tokenizer import canonical

    typed = [r"f(x)=\left(4-x^{2}\right)+1", r"I=\left\{i\mid x\in Z_{i}\right\}", r"\left|{1-s_{k}}\right|",
             r"\left\lfloor x/2\right\rfloor", r"a=\left[\left(b+c\right)\right]", r"a\ast b^{\ast}", r"f^{\prime\prime}(x)",
             r"\begin{pmatrix}1&0\\0&{-1}\end{pmatrix}", r"\frac{{a-}}{b}", r"{-1}", r"\begin{array}{c}{-\sin x}\\{y}\end{array}",
             r"e'_{1}+X''_{ij}", r"\ell_{\text{0}}=\text{12}", r"\left<v,w\right>", r"\begin{aligned}a&=b&&\\&=c&&\end{aligned}",
             r"a,\quad\quad b", r"n=\sum_{d\mid n}\phi(d)", r"P(\text{choose~}i)", r"m//n\text{; }",
             r"\begin{array}{rrrr}a&b&c\\d&e&f\end{array}", r"\mathcal{G}\mathcal{P}(m)+\mathrm{T}\mathrm{o}\mathbf{A}\mathbf{V}",
             r"x\in{[0,1]}\cup{[2,3]},{|y|}"]
    normal = [canonical(t) for t in typed]
    assert all(n != t for n, t in zip(normal[-11:], typed[-11:]))
    assert all("\\left" not in n and "\\ast" not in n and "\\prime" not in n and "{-" not in n for n in normal)
    images = render_tex.render_tex(typed + normal, font="cm", style="inline", dpi=200, workdir=tmp_path)
    for a, b in zip(images[:len(typed)], images[len(typed):]):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image)), (a.latex, b.latex)
    # math's point (Computer Modern math italic) and text's (roman) are one design: at most a few
    # grey levels apart at the edges, never a pixel of shape; so are a final comma's
    for formula, bound in ((r"x=2.5\text{.}", 16), (r"y=0\text{,}", 24)):
        a, b = render_tex.render_tex([formula, canonical(formula)], font="cm", dpi=200, workdir=tmp_path)
        assert np.abs(np.asarray(a.image, dtype=int) - np.asarray(b.image, dtype=int)).max() <= bound


def test_missing_pdflatex_names_the_install_command(monkeypatch):
    monkeypatch.setattr(render_tex.shutil, "which", lambda name: None)
    with pytest.raises(TexNotFoundError, match="apt-get install texlive-latex-base"):
        render_tex.render_tex(["x"], "cm", "display", 100)


def test_text_mode_characters_are_spelled_so_every_font_draws_them():
    assert tex_source(r"a<b") == r"a<b"  # math mode: untouched
    assert tex_source(r"\text{if a<b}") == r"\text{if a\textless{}b}"
    assert tex_source("x\n+ y") == "x + y"


def test_log_reading_maps_errors_warnings_and_pages_to_formulas():
    log = "\n".join([
        "IMLTX:B:0", "IMLTX:S", "IMLTX:E:0",
        "IMLTX:B:1", "! Undefined control sequence.", "l.15 ...\\foo", "IMLTX:S", "IMLTX:E:1",
        "IMLTX:B:2", "Overfull \\hbox (3.0pt too wide) detected at line 16", "IMLTX:S", "IMLTX:E:2",
        "IMLTX:B:3", "! File ended while scanning use of \\frac.",
    ])
    run = _parse_log(log)
    assert run.page_owner == [0, 1, 2]
    assert set(run.errors) == {1, 3} and "Undefined" in run.errors[1] and "l.15" in run.errors[1]
    assert run.warnings == {2: "overfull"}
    assert run.current == 3 and run.ended == {0, 1, 2}
    assert _parse_log("! LaTeX Error: File `nofont.sty' not found.\n").preamble_error


# ---------------------------------------------------------------- mathtext


@pytest.mark.parametrize("font", list(MATHTEXT_FONTS))
def test_every_mathtext_font_renders_labelled_images(font):
    results = render_mathtext(GOOD, font, "display", 150)
    grays = [assert_sane(r, latex) for r, latex in zip(results, GOOD)]
    assert len({g.shape for g in grays}) == len(grays)
    assert all(r.renderer == "mathtext" for r in results)


def test_mathtext_skips_what_it_cannot_draw_exactly():
    batch = [r"\begin{pmatrix}a\end{pmatrix}", r"\big(x\big)", r"\undefinedmacro", r"a\not\approx b", "x"]
    kinds = [r.reason if isinstance(r, Skip) else "ok" for r in render_mathtext(batch, "cm", "inline", 100)]
    assert kinds == ["unsupported", "unsupported", "mathtext_error", "unsupported", "ok"]
    # exact rewrites only: \not= is \neq, a display fraction is \dfrac
    assert to_mathtext(r"a\not=b", "inline") == (r"$a\neq b$", "")
    assert to_mathtext(r"\frac{1}{2}", "display")[0] == r"$\dfrac{1}{2}$"
    assert to_mathtext(r"\mathsf{A}", "inline", "stix")[0] is None  # STIX draws it slanted


def test_mathtext_neighbours_keep_their_labels():
    batch = [GOOD[0], r"\undefinedmacro", GOOD[1]]
    together = render_mathtext(batch, "stix", "inline", 120)
    for latex, result in zip(batch, together):
        if isinstance(result, RenderResult):
            alone = render_mathtext([latex], "stix", "inline", 120)[0]
            assert np.array_equal(np.asarray(alone.image), np.asarray(result.image))


# ---------------------------------------------------------------- the render command


def _corpus(tmp_path, formulas):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split, part in (("train", formulas), ("val", formulas[:3]), ("test", formulas[3:6])):
        with open(corpus / f"{split}.jsonl", "w") as f:
            for latex in part:
                f.write(json.dumps({"latex": latex, "source": "generated"}) + "\n")
    return corpus


FORMULAS = [f"x_{{{i}}}+\\frac{{{i}}}{{y}}" for i in range(14)] + [r"\begin{cases}a\end{cases}", r"\alpha^{2}"]


def _run(corpus, out, *extra):
    parser = argparse.ArgumentParser()
    render.add_arguments(parser)
    return render.run(parser.parse_args(["--corpus", str(corpus), "--out", str(out), "--quiet", *extra]))


def test_assignment_is_deterministic_and_balanced():
    fonts, styles, dpis = ("a", "b", "c"), ("display", "inline"), (100, 200)
    picks = [render.assign(f"x^{{{i}}}", fonts, styles, dpis) for i in range(3000)]
    assert picks == [render.assign(f"x^{{{i}}}", fonts, styles, dpis) for i in range(3000)]
    for axis, values in ((0, fonts), (1, styles), (2, dpis)):
        counts = [sum(p[axis] == v for p in picks) for v in values]
        assert min(counts) > 0.8 * 3000 / len(values)


def test_render_command_with_mathtext_writes_shards_and_resumes(tmp_path, capsys):
    corpus = _corpus(tmp_path, FORMULAS)
    out = tmp_path / "shards"
    assert _run(corpus, out, "--renderer", "mathtext", "--split", "train", "--workers", "1", "--limit", "10") == 0
    assert "rendered 10, skipped 0" in capsys.readouterr().out
    assert _run(corpus, out, "--renderer", "mathtext", "--split", "all", "--workers", "1") == 0
    text = capsys.readouterr().out
    assert "train: rendered 5, skipped 1 (unsupported 1), 10 done before" in text
    assert "val: rendered 3" in text and "test: rendered 3" in text
    report = verify_shards(out / "train")
    assert report.samples == 15 and report.skipped == {"unsupported": 1}
    reader = ShardReader(out / "train")
    assert sorted(reader.latex) == sorted(f for f in FORMULAS if "cases" not in f)
    for i in range(len(reader)):
        record = reader.record(i)
        assert record["renderer"] == "mathtext" and record["font"] in MATHTEXT_FONTS
        assert record["width"] % 16 == 0 and record["height"] % 16 == 0
        font, style, dpi = render.assign(record["latex"], MATHTEXT_FONTS, render.DEFAULT_STYLES, render.DEFAULT_DPIS)
        assert (record["font"], record["style"], record["dpi"]) == (font, style, dpi)
    # nothing left to do: a third run renders nothing
    assert _run(corpus, out, "--renderer", "mathtext", "--split", "train", "--workers", "1") == 0
    assert "rendered 0, skipped 0 (none), 16 done before" in capsys.readouterr().out


@needs_tex
@pytest.mark.tex
def test_render_command_with_tex_in_two_workers(tmp_path, capsys):
    corpus = _corpus(tmp_path, FORMULAS + [r"\undefinedmacro"])
    out = tmp_path / "shards"
    assert _run(corpus, out, "--split", "train", "--workers", "2", "--fonts", "cm,times", "--dpis", "100") == 0
    assert "rendered 16, skipped 1 (compile_error 1)" in capsys.readouterr().out
    reader = ShardReader(out / "train")
    assert {reader.record(i)["font"] for i in range(len(reader))} == {"cm", "times"}
    verify_shards(out / "train")


@needs_tex
@pytest.mark.tex
def test_screen_resolution_renders_join_the_split_and_are_augmented_at_their_own_size(tmp_path, capsys):
    corpus = _corpus(tmp_path, FORMULAS)
    out = tmp_path / "shards"
    assert _run(corpus, out, "--split", "train", "--workers", "1", "--fonts", "cm", "--limit", "6") == 0
    assert _run(corpus, out, "--split", "train", "--workers", "1", "--fonts", "cm", "--limit", "6",
                "--renderer", "tex-screen") == 0
    assert "rendered 6, skipped 0" in capsys.readouterr().out.splitlines()[-1]
    reader = ShardReader(out / "train")
    screen = [i for i in range(len(reader)) if reader.record(i)["renderer"] == "tex-screen"]
    assert len(screen) == 6 and len(reader) == 12
    assert {reader.record(i)["dpi"] for i in screen} <= set(render.DEFAULT_DPIS_BY_RENDERER["tex-screen"])
    # the same formula at screen resolution is drawn smaller than its print-resolution render
    by_latex = {reader.record(i)["latex"]: reader.read_image(i).size for i in range(len(reader)) if i not in screen}
    for i in screen:
        assert reader.read_image(i).size[1] < by_latex[reader.latex[i]][1]
    dataset = FormulaDataset(out / "train", Vocab.build(normalize(t) for t in reader.latex), InputSpec(), augment=True)
    assert [i for i in range(len(reader)) if dataset.native[i]] == screen
    dataset[screen[0]]  # an augmented native sample reads


def test_render_command_reports_bad_input(tmp_path, capsys):
    assert _run(tmp_path / "nowhere", tmp_path / "out", "--renderer", "mathtext", "--split", "train") == 1
    assert "does not exist" in capsys.readouterr().err
    corpus = _corpus(tmp_path, FORMULAS)
    assert _run(corpus, tmp_path / "out", "--renderer", "mathtext", "--fonts", "comic") == 1
    assert "unknown mathtext font" in capsys.readouterr().err


@pytest.mark.skipif(render_web_missing() is not None, reason=f"web renderer unavailable: {render_web_missing()}")
def test_katex_renders_join_a_split_beside_another_renderer_and_resume_on_their_own(tmp_path, capsys):
    corpus = _corpus(tmp_path, FORMULAS)
    out = tmp_path / "shards"
    assert _run(corpus, out, "--renderer", "mathtext", "--split", "train", "--workers", "1", "--limit", "4") == 0
    capsys.readouterr()
    # KaTeX draws formulas 2..7: two of them mathtext drew already, which does not stop KaTeX
    assert _run(corpus, out, "--renderer", "katex", "--split", "train", "--workers", "1",
                "--start", "2", "--limit", "6") == 0
    assert "rendered 6, skipped 0 (none), 0 done before" in capsys.readouterr().out
    reader = ShardReader(out / "train")
    katex = [reader.record(i) for i in range(len(reader)) if reader.record(i)["renderer"] == "katex"]
    train = render.read_corpus(corpus, "train")
    assert sorted(r["latex"] for r in katex) == sorted(train[2:8])
    for r in katex:
        assert r["font"] == "katex" and r["dpi"] in (96, 192) and r["width"] % 16 == 0
        assert (r["style"], r["dpi"]) == render.assign(r["latex"], ("katex",), render.DEFAULT_STYLES, (96, 192))[1:]
    assert {r["dpi"] for r in katex} == {96, 192}, "both device scales in six formulas (hash-drawn)"
    assert len(reader) == 4 + 6
    verify_shards(out / "train")
    assert _run(corpus, out, "--renderer", "katex", "--split", "train", "--workers", "1",
                "--start", "2", "--limit", "6") == 0
    assert "rendered 0, skipped 0 (none), 6 done before" in capsys.readouterr().out


def test_web_font_sizes_are_hash_drawn_over_the_web_range():
    sizes = [render.web_font_px(f"x_{{{i}}}") for i in range(700)]
    assert set(sizes) == set(render.WEB_FONT_PX)
    assert render.web_font_px("a+b") == render.web_font_px("a+b")
