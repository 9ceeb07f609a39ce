"""The snip-style evaluation suite: builder (every style, labels that round-trip), the zoom
consistency metric, and `im2latex evaluate --suite` scoring."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model import evaluate
from model.data import suite
from model.data.render_web import missing_reason
from model.tokenizer import canonical

HAS_TEX = shutil.which("pdflatex") is not None and shutil.which("pdftoppm") is not None
needs_tex = pytest.mark.skipif(not HAS_TEX, reason="pdflatex/pdftoppm not installed")
WEB_MISSING = missing_reason()
needs_web = pytest.mark.skipif(WEB_MISSING is not None, reason=f"web renderer unavailable: {WEB_MISSING}")

FORMULAS = [r"\frac{a+b}{c}", r"x^{2}+y^{2}=z^{2}", r"\sum_{i=1}^{n}i"]
BAD = r"\notacommand{x}"   # neither pdflatex nor KaTeX can draw it


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "labels.jsonl").read_text().splitlines() if line.strip()]


def _check_labels(out: Path, style: str, formulas: list[str]) -> list[dict]:
    """Every label names an existing image of this style, its latex is a requested formula, parses,
    and evaluate's own readers (--folder and --suite) see the same samples."""
    rows = _rows(out / style)
    assert rows, f"{style} is empty"
    for row in rows:
        assert set(row) >= {"image", "latex", "style", "group", "dpi"}
        assert row["style"] == style
        assert row["latex"] in formulas
        assert canonical(row["latex"])
        with Image.open(out / style / row["image"]) as im:
            assert im.width > 10 and im.height > 5
    folder = list(evaluate.folder_samples(out / style))
    assert [s.latex for s in folder] == [r["latex"] for r in rows]
    assert len({r["image"] for r in rows}) == len(rows)
    return rows


# ---------------------------------------------------------------- image helpers (no renderer)


def test_sloppy_crop_keeps_the_requested_margin_around_the_ink():
    page = np.full((60, 80), 255, np.uint8)
    page[20:30, 10:50] = 0
    out = suite.sloppy_crop(Image.fromarray(page), 255, [4, 7, 30, 25])  # left, top, right, bottom
    assert out.size == (40 + 4 + 30, 10 + 7 + 25)  # extended with white where the page ends
    arr = np.asarray(out)
    assert (arr[7:17, 4:44] == 0).all() and arr[:7].min() == 255 and arr[:, 44:].min() == 255
    assert suite.sloppy_crop(Image.new("L", (10, 10), 255), 255, [5] * 4) is None


def test_recolour_maps_white_to_background_and_black_to_text():
    gray = Image.fromarray(np.array([[0, 255, 128]], np.uint8))
    rgb = np.asarray(suite.recolour(gray, "#ffb000", "#1a1a1a"))
    assert tuple(rgb[0, 0]) == (0xFF, 0xB0, 0x00)
    assert tuple(rgb[0, 1]) == (0x1A, 0x1A, 0x1A)
    assert 0x1A < rgb[0, 2, 0] < 0xFF


def test_im2markup_prepare_pads_buckets_and_halves():
    page = np.full((300, 500), 255, np.uint8)
    page[100:140, 50:350] = 0   # 300 x 40 ink -> 316 x 56 padded -> bucket 320 x 80 -> 160 x 40
    out = suite.im2markup_prepare(Image.fromarray(page))
    assert out.size == (160, 40)
    arr = np.asarray(out)
    assert arr[:3].min() > 200 and arr[5:20, 5:150].max() < 60  # 8 px pad became 4 px


def test_select_formulas_is_seeded_and_leaves_out_training_and_unparsable_formulas():
    candidates = ["a+b", "x^{2}", r"\frac{1}{2}", "{x", "y_{1}", "x^2"]
    train = {"a+b"}
    chosen, left = suite.select_formulas(candidates, 10, 0, train)
    assert "a+b" not in chosen and "{x" not in chosen
    assert left == {"in_train": 1, "tokenizer": 1}
    assert sum(1 for c in chosen if canonical(c) == "x^{2}") == 1   # x^2 and x^{2} are one formula
    assert suite.select_formulas(candidates, 2, 0, train)[0] == suite.select_formulas(candidates, 2, 0, train)[0]


def test_unknown_style_and_missing_formulas_are_clear_errors(tmp_path):
    with pytest.raises(suite.SuiteError, match="unknown suite style"):
        suite.build_suite(tmp_path, FORMULAS, [], ["print"])
    with pytest.raises(suite.SuiteError, match="im2latex-100k"):
        suite.build_suite(tmp_path, FORMULAS, [], ["im2latex-100k"])


# ---------------------------------------------------------------- the builder


@pytest.mark.tex
@needs_tex
def test_tex_styles_write_labels_that_round_trip(tmp_path):
    benchmark = [r"\alpha _ { 1 } + \beta", r"\frac { 1 } { 2 }"]
    manifest = suite.build_suite(tmp_path, FORMULAS + [BAD], benchmark, ["pdf", "zoom", "im2latex-100k"],
                                 seed=3, log=lambda _: None)
    for style in ("pdf", "zoom"):
        rows = _check_labels(tmp_path, style, FORMULAS)
        assert BAD not in {r["latex"] for r in rows}
        dropped = _rows_of(tmp_path / style / "dropped.jsonl")
        assert {d["latex"] for d in dropped} == {BAD} and dropped[0]["reason"] == "compile_error"
    pdf = _rows(tmp_path / "pdf")
    assert all(96 <= r["dpi"] <= 144 and all(4 <= m <= 30 for m in r["margins"]) for r in pdf)
    zoom = _rows(tmp_path / "zoom")
    groups: dict[str, list[int]] = {}
    for r in zoom:
        groups.setdefault(r["group"], []).append(r["dpi"])
    assert len(groups) == 3 and all(sorted(d) == list(suite.ZOOM_DPIS) for d in groups.values())
    heights = {r["dpi"]: Image.open(tmp_path / "zoom" / r["image"]).height for r in zoom if r["group"] == "f0000"}
    assert heights[300] > 2 * heights[96]
    _check_labels(tmp_path, "im2latex-100k", benchmark)
    assert manifest["styles"]["zoom"] == {"samples": 15, "groups": 3, "dropped": {"compile_error": 5},
                                          "seconds": manifest["styles"]["zoom"]["seconds"]}
    assert json.loads((tmp_path / "manifest.json").read_text())["styles"].keys() == {"pdf", "zoom", "im2latex-100k"}
    # the same seed draws the same suite
    again = tmp_path / "again"
    suite.build_suite(again, FORMULAS, [], ["pdf"], seed=3, log=lambda _: None)
    assert _rows(again / "pdf") == pdf


def _rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@needs_web
@pytest.mark.tex
@needs_tex
def test_web_styles_write_labels_that_round_trip(tmp_path):
    suite.build_suite(tmp_path, FORMULAS + [BAD], [], ["web", "hidpi", "dark"], seed=1, log=lambda _: None)
    web = _check_labels(tmp_path, "web", FORMULAS)
    hidpi = _check_labels(tmp_path, "hidpi", FORMULAS)
    dark = _check_labels(tmp_path, "dark", FORMULAS)
    for style in ("web", "hidpi"):
        dropped = _rows_of(tmp_path / style / "dropped.jsonl")
        assert [d["reason"] for d in dropped] == ["katex_error"] and "notacommand" in dropped[0]["detail"]
    assert all(r["dpi"] == 96 and 16 <= r["px"] <= 22 for r in web)
    assert all(r["dpi"] == 192 and r["scale"] == 2 for r in hidpi)
    # a HiDPI snip of the same formula has about twice the pixels per glyph
    w = {r["group"]: r for r in web}
    for r in hidpi:
        a = Image.open(tmp_path / "web" / w[r["group"]]["image"])
        b = Image.open(tmp_path / "hidpi" / r["image"])
        ink_a = suite.sloppy_crop(a, 255, [0] * 4).height / w[r["group"]]["px"]
        ink_b = suite.sloppy_crop(b, 255, [0] * 4).height / r["px"]
        assert 1.8 < ink_b / ink_a < 2.2
    themes = {name: bg for name, _, bg in suite.DARK_THEMES + suite.TINTED_THEMES}
    for r in dark:
        with Image.open(tmp_path / "dark" / r["image"]) as im:
            corner = im.convert("RGB").getpixel((0, 0))
        expected = tuple(int(themes[r["theme"]][k:k + 2], 16) for k in (1, 3, 5))
        assert max(abs(a - b) for a, b in zip(corner, expected)) <= 2, (r, corner)


# ---------------------------------------------------------------- scoring


def test_zoom_consistency_on_a_hand_made_example():
    readings = {
        "same": [r"\frac{a}{b}"] * 5,
        "respelled": ["x^2", "x^{2}", "x^{2}", "x^{ 2 }", "x^2"],   # one answer, spelled five ways
        "one_off": ["a+b"] * 4 + ["a-b"],
        "all_empty": [""] * 5,
        "short": ["y"] * 4,                                         # a zoom level was dropped
    }
    zc = evaluate.zoom_consistency(readings, 5)
    assert zc == {"consistency": 0.5, "groups": 4, "consistent": 2, "incomplete": 1}
    assert evaluate.zoom_consistency({}, 5)["consistency"] == 0.0


def test_why_zoom_groups_are_inconsistent():
    t = str.split
    dpis = (72, 96, 144, 200, 300)
    long = t("x " * 41)

    def group(ref, *readings):
        return [(dpi, t(ref), t(r)) for dpi, r in zip(dpis, readings)]

    groups = {
        "consistent": group("a + b", *["a + b"] * 5),
        "small_only": group("a + b", "a - b", *["a + b"] * 4),
        "large_only": group("a + b", *["a + b"] * 4, "a"),
        "agree_wrongly_but_one": group("a + b", "a + b", *["a - b"] * 4),   # the odd one out is right
        "never_right": group("a + b", "a", "a", "b", "b", "a - b"),
        "mixed": group("a + b", "a + b", "a", "a", "a + b", "b"),
        "long_mixed": [(dpi, long, long if dpi > 96 else ["x"]) for dpi in dpis],
        "empty": group("a", "", "", "", "", ""),
    }
    misses = evaluate.zoom_misses(groups)
    assert misses == {"groups": 7, "wrong_at_every_level": 2, "one_level_differs": {"72": 2, "300": 1},
                      "other": 2, "long": 1}


def _hand_made_suite(root: Path, images: list[Path], formulas: list[str]) -> None:
    """pdf: each image once; zoom: each image at five 'dpis'; im2latex-100k: each image once."""
    for style in ("pdf", "zoom", "im2latex-100k"):
        (root / style).mkdir(parents=True)
    with open(root / "pdf" / "labels.jsonl", "w") as pdf, open(root / "zoom" / "labels.jsonl", "w") as zoom, \
            open(root / "im2latex-100k" / "labels.jsonl", "w") as bench:
        for i, (image, latex) in enumerate(zip(images, formulas)):
            shutil.copy(image, root / "pdf" / f"pdf-{i}.png")
            pdf.write(json.dumps({"image": f"pdf-{i}.png", "latex": latex, "style": "pdf", "group": f"f{i}",
                                  "dpi": 120, "font": "cm"}) + "\n")
            shutil.copy(image, root / "im2latex-100k" / f"k-{i}.png")
            bench.write(json.dumps({"image": f"k-{i}.png", "latex": latex, "style": "im2latex-100k",
                                    "group": f"k{i}", "dpi": 100}) + "\n")
            for dpi in suite.ZOOM_DPIS:
                name = f"zoom-{i}-{dpi}.png"
                shutil.copy(image, root / "zoom" / name)
                zoom.write(json.dumps({"image": name, "latex": latex, "style": "zoom", "group": f"f{i}",
                                       "dpi": dpi}) + "\n")


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    argv = []
    for key, value in kw.items():
        argv += [f"--{key}", str(value)]
    return parser.parse_args(argv)


def test_suite_scoring_from_a_prediction_file(tmp_path, capsys):
    formulas = ["a+b+c+d", r"\frac{1}{2}+x", "x^{2}+y^{2}"]
    images = []
    for i in range(3):
        path = tmp_path / f"src{i}.png"
        Image.new("L", (40, 20), 255).save(path)
        images.append(path)
    root = tmp_path / "suite"
    _hand_made_suite(root, images, formulas)
    with open(tmp_path / "pred.jsonl", "w") as f:
        for i, latex in enumerate(formulas):
            f.write(json.dumps({"image": f"/elsewhere/pdf-{i}.png", "latex": latex if i else "a-b"}) + "\n")
            f.write(json.dumps({"image": f"k-{i}.png", "latex": latex}) + "\n")
            for dpi in suite.ZOOM_DPIS:   # group 2 misreads the smallest zoom level
                wrong = i == 2 and dpi == 72
                reading = ("x+y" if wrong else "x^2+y^2") if i == 2 else latex   # x^2 = x^{2} once normalized
                f.write(json.dumps({"image": f"zoom-{i}-{dpi}.png", "latex": reading}) + "\n")
        f.write(json.dumps({"image": "zoom-9-72.png", "error": "unreadable"}) + "\n")
    out = tmp_path / "report.json"
    assert evaluate.run(_args(suite=root, predictions=tmp_path / "pred.jsonl", out=out)) == 0
    rep = json.loads(out.read_text())
    assert list(rep["styles"]) == ["pdf", "zoom", "im2latex-100k"]
    assert rep["styles"]["pdf"]["overall"]["exact_match"] == pytest.approx(2 / 3)
    assert rep["styles"]["zoom"]["overall"]["n"] == 15
    assert rep["styles"]["zoom"]["overall"]["exact_match"] == pytest.approx(14 / 15)
    assert rep["zoom_consistency"] == {"consistency": pytest.approx(2 / 3), "groups": 3, "consistent": 2,
                                       "incomplete": 0}
    assert rep["zoom_by_dpi"]["72"]["exact_match"] == pytest.approx(2 / 3)
    assert rep["zoom_by_dpi"]["300"]["exact_match"] == 1.0
    assert rep["im2latex_100k"]["bleu4"] == pytest.approx(1.0)
    assert rep["im2latex_100k"]["published_bleu4"] == {"starting design": 0.826, "Deng et al. 2016 (im2markup)": 0.877}
    printed = capsys.readouterr().out
    assert "| pdf | 3 |" in printed and "Zoom consistency: 66.7% of 3 groups" in printed
    assert rep["zoom_misses"] == {"groups": 1, "wrong_at_every_level": 0, "one_level_differs": {"72": 1},
                                  "other": 0, "long": 0}
    assert "Of the 1 inconsistent groups, 0 are read wrong at every level, 1 differ at one level only " \
           "(72 dpi 1)" in printed
    assert "| starting design | 0.826 |" in printed
    md = out.with_suffix(".md").read_text()
    assert md.startswith("| style |") and "## zoom" in md


def test_missing_suite_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="im2latex data suite"):
        evaluate.run(_args(suite=tmp_path / "nope", predictions=tmp_path / "p.jsonl"))


@pytest.mark.slow
def test_suite_scoring_with_the_tiny_model(tmp_path, tiny_model_dir):
    root = tmp_path / "suite"
    _hand_made_suite(root, tiny_model_dir.images[:2], tiny_model_dir.formulas[:2])
    out = tmp_path / "report.json"
    assert evaluate.run(_args(suite=root, model=tiny_model_dir.bundle, device="cpu", out=out)) == 0
    rep = json.loads(out.read_text())
    pdf = rep["styles"]["pdf"]["overall"]
    assert pdf["exact_match"] == 1.0 and pdf["seconds_p95"] >= pdf["seconds_p50"] > 0
    assert rep["zoom_consistency"]["consistency"] == 1.0 and rep["zoom_consistency"]["groups"] == 2
    assert rep["im2latex_100k"]["bleu4"] == pytest.approx(1.0)
