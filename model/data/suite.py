"""`im2latex data suite`: the snip-style evaluation suite, rendered the way users meet formulas.

Clean renders of the model's own test split say little about real snips.  The suite takes
held-out formulas only (the corpus test or validation split, checked against train.jsonl) and
draws each of them as a user would snip it:

- ``pdf``: pdflatex, Computer Modern, rasterized at 96-144 dpi, cropped with a sloppy margin of
  4-30 px (drawn per side and per sample);
- ``zoom``: the same formulas at 72, 96, 144, 200 and 300 dpi, one group per formula (same
  margins in every group, so only the zoom changes);
- ``web``: KaTeX in headless Chromium, 16-22 px CSS, device scale factor 1;
- ``hidpi``: the same snips (mode, CSS size, margins) at device scale factor 2;
- ``dark``: light text on dark page colours and coloured text on tinted backgrounds; half the
  formulas (seeded draw) are KaTeX pages styled with CSS colours, the other half pdflatex
  renders recoloured the way PDF viewers' dark modes do (background + coverage x (text -
  background), per channel);
- ``im2latex-100k``: a seeded sample of the benchmark's test formulas, rendered as the original
  benchmark did (pdflatex, article 12pt, display math, 200 dpi), then prepared as Deng et al.'s
  im2markup scripts did: crop to the ink, pad 8 px, paste top-left into the smallest of their
  size buckets, downsample by 2 (Lanczos).  Our pdflatex preamble loads amssymb, bm and mathrsfs
  besides amsmath; the benchmark's formulas compile with amsmath alone, so that changes nothing
  drawn.  The label is the formula as rendered (token spacing removed inside text-mode
  arguments, see shared_lists.despace).

A formula a renderer cannot draw is dropped from that style (listed in its ``dropped.jsonl``),
never kept with a wrong label.  Layout: ``<out>/<style>/`` holds PNGs and ``labels.jsonl``
(``{"image", "latex", "style", "group", "dpi", ...}``), so ``im2latex evaluate --folder`` works on
each style and ``im2latex evaluate --suite <out>`` scores them all; ``<out>/manifest.json``
records counts, drops and timings.  Image names are unique across styles.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from ..errors import Im2LatexError
from ..tokenizer import LatexSyntaxError, canonical
from ..vocab import write_json_atomic
from .rendering import Skip

STYLES = ("pdf", "zoom", "web", "hidpi", "dark", "im2latex-100k")
WEB_STYLES = ("web", "hidpi", "dark")
ZOOM_DPIS = (72, 96, 144, 200, 300)
PDF_DPI_RANGE = (96, 144)
WEB_PX_RANGE = (16, 22)
MARGIN_RANGE = (4, 30)
DISPLAY_SHARE = 0.6   # the rest is inline math (text style: smaller fractions, limits beside)
# (name, text colour, background colour)
DARK_THEMES = (
    ("vscode-dark", "#d4d4d4", "#1e1e1e"), ("github-dark", "#e6edf3", "#0d1117"),
    ("solarized-dark", "#93a1a1", "#002b36"), ("dracula", "#f8f8f2", "#282a36"),
    ("nord", "#d8dee9", "#2e3440"), ("white-on-black", "#ffffff", "#000000"),
    ("one-dark", "#abb2bf", "#282c34"), ("amber-terminal", "#ffb000", "#1a1a1a"),
)
TINTED_THEMES = (
    ("solarized-light", "#657b83", "#fdf6e3"), ("sepia", "#5b4636", "#f4ecd8"),
    ("blue-note", "#0b3d91", "#e8f1fb"), ("red-warning", "#9b1c1c", "#fdecea"),
    ("green-tip", "#1e5631", "#e6f4ea"), ("purple-callout", "#4a148c", "#f3e5f5"),
    ("yellow-highlight", "#1a1a1a", "#fff59d"), ("link-blue", "#0645ad", "#ffffff"),
)
# im2markup's preprocessing (scripts/preprocessing/preprocess_images.py defaults)
IM2MARKUP_PAD = 8
IM2MARKUP_DOWNSAMPLE = 2
IM2MARKUP_BUCKETS = ((240, 100), (320, 80), (400, 80), (400, 100), (480, 80), (480, 100), (560, 80),
                     (560, 100), (640, 80), (640, 100), (720, 80), (720, 100), (720, 120), (720, 200),
                     (800, 100), (800, 320), (1000, 200), (1000, 400), (1200, 200), (1600, 200),
                     (1600, 1600))
IM2LATEX_RENDER_DPI = 200


class SuiteError(Im2LatexError):
    """The suite cannot be built as asked (no formulas, unknown style, missing renderer)."""


@dataclass
class SuiteSample:
    """One labelled snip of the suite."""

    name: str
    image: Image.Image
    latex: str
    style: str
    group: str
    dpi: int
    meta: dict = field(default_factory=dict)   # font, mode, theme, px, scale, margins, renderer

    def label(self) -> dict:
        return {"image": self.name, "latex": self.latex, "style": self.style, "group": self.group,
                "dpi": self.dpi, **self.meta}


@dataclass
class StyleResult:
    samples: list[SuiteSample] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)   # {"latex", "group", "reason", "detail"}
    seconds: float = 0.0

    def drop(self, skip: Skip, group: str, **extra) -> None:
        self.dropped.append({"latex": skip.latex, "group": group, "reason": skip.reason,
                             "detail": skip.detail[:300], **extra})


# ---------------------------------------------------------------- image helpers


def _rgb(colour: str) -> tuple[int, int, int]:
    from .render_web import parse_colour

    return parse_colour(colour)


def sloppy_crop(image: Image.Image, background: tuple[int, int, int] | int,
                margins: Sequence[int]) -> Image.Image | None:
    """The ink's bounding box plus ``margins`` (left, top, right, bottom) pixels of background,
    as a hand-dragged snip would be; None when there is no ink.  Where the image is too small
    for a margin it is extended with the background colour."""
    from .render_web import ink_box

    rgb_bg = (background,) * 3 if isinstance(background, int) else tuple(background)
    box = ink_box(image, rgb_bg)  # type: ignore[arg-type]
    if box is None:
        return None
    left, top, right, bottom = box
    ml, mt, mr, mb = (int(m) for m in margins)
    fill = background if image.mode == "L" else rgb_bg
    if image.mode == "L" and not isinstance(background, int):
        fill = int(round(sum(rgb_bg) / 3))
    out = Image.new(image.mode, (right - left + ml + mr, bottom - top + mt + mb), fill)
    src = (max(0, left - ml), max(0, top - mt), min(image.width, right + mr), min(image.height, bottom + mb))
    out.paste(image.crop(src), (src[0] - (left - ml), src[1] - (top - mt)))
    return out


def recolour(gray: Image.Image, text: str, background: str) -> Image.Image:
    """A black-on-white render recoloured as a PDF viewer's dark or tinted mode draws it:
    white becomes the background, black the text colour, grays blend linearly."""
    coverage = 1.0 - np.asarray(gray.convert("L"), dtype=np.float32)[..., None] / 255.0
    fg = np.array(_rgb(text), dtype=np.float32)
    bg = np.array(_rgb(background), dtype=np.float32)
    rgb = bg + coverage * (fg - bg)
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), mode="RGB")


def im2markup_prepare(gray: Image.Image) -> Image.Image | None:
    """Crop, pad, bucket and downsample a render as im2markup's preprocess_images.py does."""
    array = np.asarray(gray.convert("L"))
    rows = np.flatnonzero((array < 255).any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero((array < 255).any(axis=0))
    cropped = gray.convert("L").crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
    width, height = cropped.width + 2 * IM2MARKUP_PAD, cropped.height + 2 * IM2MARKUP_PAD
    size = next(((w, h) for w, h in IM2MARKUP_BUCKETS if width <= w and height <= h), (width, height))
    canvas = Image.new("L", size, 255)
    canvas.paste(cropped, (IM2MARKUP_PAD, IM2MARKUP_PAD))
    small = (max(1, size[0] // IM2MARKUP_DOWNSAMPLE), max(1, size[1] // IM2MARKUP_DOWNSAMPLE))
    return canvas.resize(small, Image.LANCZOS)


def _margins(rng: np.random.Generator, scale: int = 1) -> list[int]:
    return [int(m) * scale for m in rng.integers(MARGIN_RANGE[0], MARGIN_RANGE[1] + 1, size=4)]


def _mode(rng: np.random.Generator) -> str:
    return "display" if rng.random() < DISPLAY_SHARE else "inline"


def _group(i: int) -> str:
    return f"f{i:04d}"


# ---------------------------------------------------------------- the styles


def _tex(formulas: list[str], modes: list[str], dpis: list[int], workdir: Path | None) -> list:
    from .render_tex import render_tex

    return render_tex(formulas, "cm", modes, dpis, workdir) if formulas else []


def build_pdf(formulas: list[str], rng: np.random.Generator, workdir: Path | None = None) -> StyleResult:
    """pdflatex at a random 96-144 dpi with a sloppy margin."""
    out = StyleResult()
    plans = [(_mode(rng), int(rng.integers(PDF_DPI_RANGE[0], PDF_DPI_RANGE[1] + 1)), _margins(rng))
             for _ in formulas]
    results = _tex(formulas, [p[0] for p in plans], [p[1] for p in plans], workdir)
    for i, (r, (mode, dpi, margins)) in enumerate(zip(results, plans)):
        if isinstance(r, Skip):
            out.drop(r, _group(i))
            continue
        image = sloppy_crop(r.image, 255, margins)
        if image is None:
            out.drop(Skip(r.latex, "empty", "no ink"), _group(i))
            continue
        out.samples.append(SuiteSample(f"pdf-{i:04d}.png", image, r.latex, "pdf", _group(i), dpi,
                                       {"font": "cm", "mode": mode, "margins": margins, "renderer": "tex"}))
    return out


def build_zoom(formulas: list[str], rng: np.random.Generator, workdir: Path | None = None) -> StyleResult:
    """Each formula at every zoom level, the same margins within a group."""
    out = StyleResult()
    plans = [(_mode(rng), _margins(rng)) for _ in formulas]
    jobs = [(i, dpi) for i in range(len(formulas)) for dpi in ZOOM_DPIS]
    results = _tex([formulas[i] for i, _ in jobs], [plans[i][0] for i, _ in jobs], [d for _, d in jobs], workdir)
    for (i, dpi), r in zip(jobs, results):
        mode, margins = plans[i]
        if isinstance(r, Skip):
            out.drop(r, _group(i), dpi=dpi)
            continue
        image = sloppy_crop(r.image, 255, margins)
        if image is None:
            out.drop(Skip(r.latex, "empty", "no ink"), _group(i), dpi=dpi)
            continue
        out.samples.append(SuiteSample(f"zoom-{i:04d}-{dpi}.png", image, r.latex, "zoom", _group(i), dpi,
                                       {"font": "cm", "mode": mode, "margins": margins, "renderer": "tex"}))
    return out


def _web_samples(style: str, formulas: list[str], indices: list[int], plans: list[dict],
                 out: StyleResult) -> None:
    """Render ``plans`` (one per index) with KaTeX and keep the sloppy crops."""
    from .render_web import WebItem, render_katex

    items = [WebItem(formulas[i], p["px"], p["mode"] == "display", p["scale"], p.get("color", "#000000"),
                     p.get("background", "#ffffff")) for i, p in zip(indices, plans)]
    for i, p, shot in zip(indices, plans, render_katex(items)):
        if isinstance(shot, Skip):
            out.drop(shot, _group(i))
            continue
        image = sloppy_crop(shot.image, _rgb(p.get("background", "#ffffff")), p["margins"])
        if image is None:
            out.drop(Skip(formulas[i], "empty", "no ink"), _group(i))
            continue
        if style in ("web", "hidpi"):
            image = image.convert("L")  # black on white: store it as the gray screenshot it is
        meta = {"font": "katex", "mode": p["mode"], "px": p["px"], "scale": p["scale"], "margins": p["margins"],
                "renderer": "katex"}
        if "theme" in p:
            meta["theme"] = p["theme"]
        out.samples.append(SuiteSample(f"{style}-{i:04d}.png", image, formulas[i], style, _group(i),
                                       96 * p["scale"], meta))


def build_web(formulas: list[str], rng: np.random.Generator, scale: int = 1) -> StyleResult:
    """KaTeX in Chromium at 16-22 CSS px and the given device scale factor."""
    out = StyleResult()
    plans = [{"mode": _mode(rng), "px": int(rng.integers(WEB_PX_RANGE[0], WEB_PX_RANGE[1] + 1)), "scale": scale,
              "margins": _margins(rng, scale)} for _ in formulas]
    _web_samples("web" if scale == 1 else "hidpi", formulas, list(range(len(formulas))), plans, out)
    return out


def build_dark(formulas: list[str], rng: np.random.Generator, workdir: Path | None = None) -> StyleResult:
    """Dark and tinted themes: KaTeX with CSS colours, or pdflatex renders recoloured."""
    out = StyleResult()
    themes = DARK_THEMES + TINTED_THEMES
    plans = []
    for _ in formulas:
        name, text, background = themes[int(rng.integers(len(themes)))]
        plans.append({"theme": name, "color": text, "background": background, "mode": _mode(rng),
                      "renderer": "katex" if rng.random() < 0.5 else "tex", "margins": _margins(rng),
                      "px": int(rng.integers(WEB_PX_RANGE[0], WEB_PX_RANGE[1] + 1)), "scale": 1,
                      "dpi": int(rng.integers(PDF_DPI_RANGE[0], PDF_DPI_RANGE[1] + 1))})
    web = [i for i, p in enumerate(plans) if p["renderer"] == "katex"]
    tex = [i for i, p in enumerate(plans) if p["renderer"] == "tex"]
    if web:
        _web_samples("dark", formulas, web, [plans[i] for i in web], out)
    results = _tex([formulas[i] for i in tex], [plans[i]["mode"] for i in tex], [plans[i]["dpi"] for i in tex], workdir)
    for i, r in zip(tex, results):
        p = plans[i]
        if isinstance(r, Skip):
            out.drop(r, _group(i))
            continue
        image = sloppy_crop(recolour(r.image, p["color"], p["background"]), _rgb(p["background"]), p["margins"])
        if image is None:
            out.drop(Skip(r.latex, "empty", "no ink"), _group(i))
            continue
        out.samples.append(SuiteSample(f"dark-{i:04d}.png", image, r.latex, "dark", _group(i), p["dpi"],
                                       {"font": "cm", "mode": p["mode"], "theme": p["theme"],
                                        "margins": p["margins"], "renderer": "tex-recoloured"}))
    out.samples.sort(key=lambda s: s.name)
    return out


def build_im2latex100k(formulas: list[str], workdir: Path | None = None) -> StyleResult:
    """The benchmark's test formulas as the benchmark rendered and preprocessed them."""
    out = StyleResult()
    results = _tex(formulas, ["display"] * len(formulas), [IM2LATEX_RENDER_DPI] * len(formulas), workdir)
    for i, r in enumerate(results):
        group = f"k{i:04d}"
        if isinstance(r, Skip):
            out.drop(r, group)
            continue
        image = im2markup_prepare(r.image)
        if image is None:
            out.drop(Skip(r.latex, "empty", "no ink"), group)
            continue
        out.samples.append(SuiteSample(f"im2latex-100k-{i:04d}.png", image, r.latex, "im2latex-100k", group,
                                       IM2LATEX_RENDER_DPI // IM2MARKUP_DOWNSAMPLE,
                                       {"font": "cm", "mode": "display", "renderer": "tex-im2markup"}))
    return out


# ---------------------------------------------------------------- formulas


def _canonical_or_none(latex: str) -> str | None:
    try:
        return canonical(latex)
    except LatexSyntaxError:
        return None


def training_formulas(corpus_dir: Path) -> set[str]:
    """The canonical training formulas, to keep them out of the suite (empty if no train.jsonl)."""
    path = Path(corpus_dir) / "train.jsonl"
    if not path.exists():
        return set()
    with open(path, encoding="utf-8") as f:
        return {json.loads(line)["latex"] for line in f if line.strip()}


def select_formulas(candidates: Sequence[str], n: int, seed: int, train: set[str]) -> tuple[list[str], dict]:
    """A seeded sample of ``n`` held-out formulas that parse and are not training formulas."""
    rng = np.random.default_rng([seed, 7919])
    order = rng.permutation(len(candidates))
    chosen: list[str] = []
    seen: set[str] = set()
    left_out = {"in_train": 0, "tokenizer": 0}
    for k in order:
        latex = candidates[int(k)]
        canon = _canonical_or_none(latex)
        if canon is None:
            left_out["tokenizer"] += 1
            continue
        if canon in train or latex in train:
            left_out["in_train"] += 1
            continue
        if canon in seen:
            continue
        seen.add(canon)
        chosen.append(latex)
        if len(chosen) >= n:
            break
    return chosen, left_out


# ---------------------------------------------------------------- the build


def write_style(out: Path, style: str, result: StyleResult) -> dict:
    """Replace ``<out>/<style>/`` with the samples, labels.jsonl and dropped.jsonl."""
    folder = out / style
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with open(folder / "labels.jsonl", "w", encoding="utf-8") as labels:
        for s in result.samples:
            s.image.save(folder / s.name, format="PNG", compress_level=6)
            labels.write(json.dumps(s.label(), ensure_ascii=False) + "\n")
    with open(folder / "dropped.jsonl", "w", encoding="utf-8") as dropped:
        for d in result.dropped:
            dropped.write(json.dumps(d, ensure_ascii=False) + "\n")
    reasons: dict[str, int] = {}
    for d in result.dropped:
        reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
    return {"samples": len(result.samples), "groups": len({s.group for s in result.samples}),
            "dropped": reasons, "seconds": round(result.seconds, 1)}


def build_suite(out: str | Path, formulas: list[str], benchmark: list[str], styles: Sequence[str] = STYLES,
                seed: int = 0, workdir: str | Path | None = None,
                log: Callable[[str], None] = print) -> dict:
    """Render ``formulas`` in every style of ``styles`` (``benchmark`` for im2latex-100k) into
    ``out``; returns the manifest (also written to ``<out>/manifest.json``)."""
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise SuiteError(f"unknown suite style {unknown[0]!r}; choose from {', '.join(STYLES)}")
    if any(s in WEB_STYLES for s in styles):
        from .render_web import check_web

        check_web()
    if any(s != "im2latex-100k" for s in styles) and not formulas:
        raise SuiteError("no held-out formulas to build the suite from")
    if "im2latex-100k" in styles and not benchmark:
        raise SuiteError("no im2latex-100k formulas to build that style from")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(workdir) if workdir is not None else None
    builders: dict[str, Callable[[np.random.Generator], StyleResult]] = {
        "pdf": lambda rng: build_pdf(formulas, rng, work),
        "zoom": lambda rng: build_zoom(formulas, rng, work),
        "web": lambda rng: build_web(formulas, rng, 1),
        # the web draws (mode, size, margins) again: hidpi differs from web by the scale alone
        "hidpi": lambda rng: build_web(formulas, np.random.default_rng([seed, STYLES.index("web")]), 2),
        "dark": lambda rng: build_dark(formulas, rng, work),
        "im2latex-100k": lambda rng: build_im2latex100k(benchmark, work),
    }
    manifest: dict = {"seed": seed, "formulas": len(formulas), "benchmark_formulas": len(benchmark),
                      "zoom_dpis": list(ZOOM_DPIS), "styles": {}}
    old = out / "manifest.json"
    if old.exists():
        try:
            manifest["styles"] = {k: v for k, v in json.loads(old.read_text()).get("styles", {}).items()
                                  if k not in styles and (out / k / "labels.jsonl").exists()}
        except (ValueError, AttributeError):
            pass
    started = time.perf_counter()
    for style in STYLES:
        if style not in styles:
            continue
        t0 = time.perf_counter()
        result = builders[style](np.random.default_rng([seed, STYLES.index(style)]))
        result.seconds = time.perf_counter() - t0
        manifest["styles"][style] = write_style(out, style, result)
        info = manifest["styles"][style]
        dropped = ", ".join(f"{k} {v}" for k, v in info["dropped"].items()) or "none"
        log(f"{style}: {info['samples']} snips, dropped {sum(info['dropped'].values())} ({dropped}), "
            f"{info['seconds']:.1f} s")
    manifest["seconds"] = round(time.perf_counter() - started, 1)
    if any(s in WEB_STYLES for s in styles):
        package = Path(__file__).resolve().parent / "web" / "node_modules" / "katex" / "package.json"
        manifest["katex"] = json.loads(package.read_text())["version"] if package.exists() else None
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="suite folder, e.g. data/suite")
    parser.add_argument("--n", type=int, default=200, help="formulas per style (default 200)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"),
                        help="corpus folder with the held-out split and train.jsonl (default data/corpus)")
    parser.add_argument("--split", choices=("test", "val"), default="test", help="held-out split (default test)")
    parser.add_argument("--shared", type=Path, default=None,
                        help="shared formula lists with im2latex100k/ (default ../shared/corpus or $IM2LATEX_CORPUS)")
    parser.add_argument("--styles", default=",".join(STYLES),
                        help=f"comma-separated styles to (re)build (default all: {','.join(STYLES)})")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from .render import read_corpus
    from .shared_lists import default_corpus_dir, im2latex100k_formulas

    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    if args.n < 1:
        print("im2latex data suite: --n must be at least 1.", file=sys.stderr)
        return 2
    unknown = [s for s in styles if s not in STYLES]
    if unknown or not styles:
        print(f"im2latex data suite: unknown style {unknown[0] if unknown else '(none)'!r}; choose from "
              f"{', '.join(STYLES)}.", file=sys.stderr)
        return 2
    try:
        train = training_formulas(args.corpus)
        formulas: list[str] = []
        if any(s != "im2latex-100k" for s in styles):
            formulas, left = select_formulas(read_corpus(args.corpus, args.split), args.n, args.seed, train)
            print(f"{len(formulas)} {args.split} formulas (left out: {left['in_train']} also in train, "
                  f"{left['tokenizer']} unparsable)", flush=True)
        benchmark: list[str] = []
        if "im2latex-100k" in styles:
            shared = args.shared or default_corpus_dir()
            benchmark, left = select_formulas(im2latex100k_formulas(shared, "test"), args.n, args.seed, train)
            print(f"{len(benchmark)} im2latex-100k test formulas (left out: {left['in_train']} also in train, "
                  f"{left['tokenizer']} unparsable)", flush=True)
        manifest = build_suite(args.out, formulas, benchmark, styles, args.seed,
                               log=lambda line: print(line, flush=True))
    except Im2LatexError as exc:
        print(f"im2latex data suite: {exc}", file=sys.stderr)
        return 1
    total = sum(v["samples"] for v in manifest["styles"].values())
    print(f"suite: {total} snips in {args.out} ({manifest['seconds']:.0f} s)")
    return 0
