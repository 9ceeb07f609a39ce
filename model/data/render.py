"""Render corpus formulas into training shards, in parallel, resumably.

Each formula gets its font, style and resolution from a hash of its text, so the mix is
balanced and the same formula always looks the same on every run.  Four renderers: pdflatex
(``tex``, the PDF look), pdflatex rasterized at screen resolution (``tex-screen``, 60-96 dpi:
a PDF viewer's page at 60-100 % zoom, used in training at its own scale, see
``augment.augment``), matplotlib's ``mathtext`` (no TeX needed) and ``katex`` (web pages:
KaTeX in headless Chromium, where the "dpi" is 96 times the device scale factor, so 96 is an
ordinary screen and 192 a HiDPI one, and the CSS font size is drawn from 16-22 px).  The same
formula may be drawn by several renderers into one split; each renderer resumes on its own.  Formulas with the same
(font, style, dpi) are typeset together in batches (one pdflatex run per batch, see
``render_tex``), batches are spread over worker processes, and the main process appends the
results to the shards as they come in.  Interrupt it at any time: running it again skips
what is already rendered or known to fail.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BlankImageError, Im2LatexError
from .shards import ShardWriter

SPLITS = ("train", "val", "test")
DEFAULT_DPIS = (100, 150, 200, 300)
# KaTeX: device scale 1 and 2.  tex-screen: pages rasterized by the viewer at screen resolution,
# whose small glyphs come out unlike a larger render scaled down (the suite's 72-dpi level read
# 72.5 % exact, the same formulas at 300 dpi box-filtered down to 72 dpi 77 %)
DEFAULT_DPIS_BY_RENDERER = {"katex": (96, 192), "tex-screen": (60, 72, 84, 96)}
WEB_FONT_PX = (16, 17, 18, 19, 20, 21, 22)          # CSS font sizes of web pages
DEFAULT_STYLES = ("display", "inline")
RENDERERS = ("tex", "tex-screen", "mathtext", "katex")
TEX_RENDERERS = ("tex", "tex-screen")  # typeset by pdflatex
NATIVE_RENDERERS = ("tex-screen",)  # renders made at the pixel size a screen shows


class CorpusError(Im2LatexError):
    """The corpus to render is missing or unreadable."""


def renderer_fonts(renderer: str) -> tuple[str, ...]:
    if renderer in TEX_RENDERERS:
        from .render_tex import FONTS

        return tuple(FONTS)
    if renderer == "mathtext":
        from .render_mathtext import FONTS

        return tuple(FONTS)
    if renderer == "katex":
        return ("katex",)
    raise ValueError(f"unknown renderer {renderer!r}; choose {', '.join(RENDERERS)}")


def default_dpis(renderer: str) -> tuple[int, ...]:
    return DEFAULT_DPIS_BY_RENDERER.get(renderer, DEFAULT_DPIS)


def web_font_px(latex: str) -> int:
    """The CSS font size a formula gets in KaTeX renders (from its hash, like ``assign``)."""
    h = int.from_bytes(hashlib.sha256(b"px:" + latex.encode("utf-8")).digest()[:4], "big")
    return WEB_FONT_PX[h % len(WEB_FONT_PX)]


def assign(latex: str, fonts: tuple[str, ...], styles: tuple[str, ...], dpis: tuple[int, ...]) -> tuple[str, str, int]:
    """The (font, style, dpi) of a formula: drawn from its hash, uniform over each list."""
    h = int.from_bytes(hashlib.sha256(latex.encode("utf-8")).digest()[:8], "big")
    font = fonts[h % len(fonts)]
    h //= len(fonts)
    style = styles[h % len(styles)]
    h //= len(styles)
    return font, style, dpis[h % len(dpis)]


def read_corpus(path: Path, split: str) -> list[str]:
    """Formulas of one split: ``<corpus>/<split>.jsonl`` (``{"latex": ...}`` per line), or a
    .jsonl/.txt file given directly (a .txt file holds one formula per line)."""
    file = path / f"{split}.jsonl" if path.is_dir() else path
    if not file.exists():
        raise CorpusError(f"{file} does not exist; build the corpus first (im2latex data corpus)")
    formulas = []
    with open(file, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if file.suffix == ".jsonl":
                try:
                    formulas.append(str(json.loads(line)["latex"]))
                except (ValueError, KeyError, TypeError):
                    raise CorpusError(f"{file} line {number} is not a corpus record with a \"latex\" field") from None
            else:
                formulas.append(line)
    return list(dict.fromkeys(formulas))  # unique, in corpus order


# ---------------------------------------------------------------- work done in the workers


@dataclass
class Job:
    """One batch: formulas sharing a font (styles and resolutions vary per formula)."""

    formulas: list[str]
    font: str
    styles: list[str]
    dpis: list[int]
    renderer: str


@dataclass
class Rendered:
    latex: str
    png: bytes
    style: str
    dpi: int
    width: int    # of the preprocessed clean image
    height: int


@dataclass
class Refused:
    latex: str
    reason: str
    detail: str
    style: str
    dpi: int


@dataclass
class JobResult:
    job: Job
    samples: list[Rendered] = field(default_factory=list)
    skips: list[Refused] = field(default_factory=list)


_WORKDIR: str | None = None


def _init_worker(parent: str) -> None:
    global _WORKDIR
    _WORKDIR = tempfile.mkdtemp(prefix=f"worker-{os.getpid()}-", dir=parent)


def encode_png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def run_job(job: Job) -> JobResult:
    """Render one batch and prepare what the shards store (PNG bytes, preprocessed size)."""
    from ..config import InputSpec
    from ..preprocess import preprocess

    if job.renderer in TEX_RENDERERS:
        from .render_tex import render_tex

        results = render_tex(job.formulas, job.font, job.styles, job.dpis, _WORKDIR)
    elif job.renderer == "katex":
        results = _render_katex_job(job)
    else:
        from .render_mathtext import render_mathtext

        results = render_mathtext(job.formulas, job.font, job.styles, job.dpis)
    spec = InputSpec()
    out = JobResult(job)
    for r, style, dpi in zip(results, job.styles, job.dpis):
        if not hasattr(r, "image"):
            out.skips.append(Refused(r.latex, r.reason, r.detail, style, dpi))
            continue
        try:
            array = preprocess(r.image, spec)
        except BlankImageError as exc:
            out.skips.append(Refused(r.latex, "blank", str(exc), style, dpi))
            continue
        out.samples.append(Rendered(r.latex, encode_png(r.image), style, dpi, int(array.shape[1]),
                                    int(array.shape[0])))
    return out


def _render_katex_job(job: Job) -> list:
    """KaTeX renders of one batch, one browser run per device scale, back in the batch's order."""
    from .rendering import Skip
    from .render_web import WebRenderError, render_web

    results: list = [None] * len(job.formulas)
    for dpi in sorted(set(job.dpis)):
        if dpi % 96:
            raise ValueError(f"KaTeX renders take dpis that are multiples of 96 (device scales), not {dpi}")
        idx = [i for i, d in enumerate(job.dpis) if d == dpi]
        formulas = [job.formulas[i] for i in idx]
        try:
            drawn = render_web(formulas, font_px=[web_font_px(f) for f in formulas],
                               style=[job.styles[i] for i in idx], scale=dpi // 96)
        except WebRenderError as exc:  # the browser failed as a whole: a resumed render tries again
            drawn = [Skip(f, "render_failed", str(exc)) for f in formulas]
        for i, r in zip(idx, drawn):
            results[i] = r
    return results


# ---------------------------------------------------------------- the driver


@dataclass
class RenderSummary:
    split: str
    rendered: int = 0
    skipped: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    already_done: int = 0
    total_samples: int = 0

    @property
    def processed(self) -> int:
        return self.rendered + sum(self.skipped.values())

    def text(self) -> str:
        rate = self.processed / self.seconds if self.seconds > 0 else 0.0
        skipped = ", ".join(f"{k} {v}" for k, v in self.skipped.most_common()) or "none"
        return (f"{self.split}: rendered {self.rendered}, skipped {sum(self.skipped.values())} ({skipped}), "
                f"{self.already_done} done before; {self.seconds:.1f} s, {rate:.1f} formulas/s; "
                f"{self.total_samples} samples in the split")


def make_jobs(formulas: list[str], renderer: str, fonts: tuple[str, ...], styles: tuple[str, ...],
              dpis: tuple[int, ...], batch_size: int) -> list[Job]:
    """Batches of formulas sharing a font, interleaved across fonts so that any prefix of the
    work (an interrupted run) already holds a balanced mix."""
    groups: dict[str, list[tuple[str, str, int]]] = {}
    for latex in formulas:
        font, style, dpi = assign(latex, fonts, styles, dpis)
        groups.setdefault(font, []).append((latex, style, dpi))
    queues = []
    for font, items in sorted(groups.items()):
        chunks = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
        queues.append([Job([c[0] for c in chunk], font, [c[1] for c in chunk], [c[2] for c in chunk], renderer)
                       for chunk in chunks])
    jobs = []
    for round_ in range(max((len(q) for q in queues), default=0)):
        jobs.extend(q[round_] for q in queues if round_ < len(q))
    return jobs


def render_split(corpus: Path, out: Path, split: str, renderer: str = "tex", fonts: tuple[str, ...] | None = None,
                 styles: tuple[str, ...] = DEFAULT_STYLES, dpis: tuple[int, ...] | None = None,
                 limit: int | None = None, workers: int = 1, batch_size: int = 100,
                 progress: bool = True, start: int = 0) -> RenderSummary:
    """Render formulas ``start`` to ``start + limit`` of one split into ``out/<split>/``
    (a later range gives another renderer formulas the first one has not drawn)."""
    dpis = tuple(dpis) if dpis else default_dpis(renderer)
    fonts = tuple(fonts) if fonts else renderer_fonts(renderer)
    known = renderer_fonts(renderer)
    unknown = [f for f in fonts if f not in known]
    if unknown:
        raise ValueError(f"unknown {renderer} font(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if renderer in TEX_RENDERERS:
        from .render_tex import probe_fonts

        probe_fonts(fonts)
    elif renderer == "katex":
        from .render_web import check_web

        check_web()
    formulas = read_corpus(corpus, split)[max(0, start):]
    if limit is not None:
        formulas = formulas[:limit]
    summary = RenderSummary(split)
    start = time.time()
    writer = ShardWriter(out, split)
    parent = tempfile.mkdtemp(prefix="im2latex-render-")
    pool = None
    try:
        done = writer.done_by_renderer[renderer]
        pending = [f for f in formulas if f not in done]
        summary.already_done = len(formulas) - len(pending)
        jobs = make_jobs(pending, renderer, fonts, tuple(styles), tuple(dpis), batch_size)
        from tqdm import tqdm

        bar = tqdm(total=len(pending), desc=f"render {split}", unit="formula", disable=not progress,
                   dynamic_ncols=True, mininterval=2)
        if workers > 1 and len(jobs) > 1:
            pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(parent,))
            results = pool.imap(run_job, jobs)
        else:
            _init_worker(parent)
            results = map(run_job, jobs)
        for result in results:
            job = result.job
            for r in result.samples:
                writer.add(r.png, r.latex, job.font, r.style, r.dpi, job.renderer, r.width, r.height)
            for r in result.skips:
                writer.add_skip(r.latex, r.reason, r.detail, font=job.font, style=r.style, dpi=r.dpi,
                                renderer=job.renderer)
                summary.skipped[r.reason] += 1
            summary.rendered += len(result.samples)
            writer.flush()
            bar.update(len(job.formulas))
            bar.set_postfix(rendered=summary.rendered, skipped=sum(summary.skipped.values()), refresh=False)
        bar.close()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        writer.close()
        shutil.rmtree(parent, ignore_errors=True)
        summary.seconds = time.time() - start
        summary.total_samples = writer.samples
    return summary


# ---------------------------------------------------------------- command line


def _csv(kind):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(x.strip()) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    return parse


def add_render_options(parser: argparse.ArgumentParser) -> None:
    """The rendering options (shared with ``im2latex data build``)."""
    parser.add_argument("--renderer", choices=RENDERERS, default="tex",
                        help="pdflatex (best), pdflatex at screen resolution (tex-screen: 60-96 dpi, "
                             "used at its own scale), matplotlib mathtext (no TeX needed) or katex (web "
                             "pages: KaTeX in headless Chromium); default tex")
    parser.add_argument("--fonts", type=_csv(str), default=None,
                        help="comma-separated font setups (tex: cm,lmodern,times,palatino,sans; "
                             "mathtext: cm,stix,stixsans,dejavuserif,dejavusans; katex: katex); default all")
    parser.add_argument("--dpis", type=_csv(int), default=None,
                        help="default 100,150,200,300; for tex-screen 60,72,84,96; for katex 96,192 "
                             "(device scale 1 and 2)")
    parser.add_argument("--styles", type=_csv(str), default=DEFAULT_STYLES, help="default display,inline")
    parser.add_argument("--limit", type=int, default=None, help="render only the first N formulas of each split")
    parser.add_argument("--start", type=int, default=0,
                        help="skip the first N formulas of each split (default 0), e.g. to give KaTeX "
                             "formulas that pdflatex has not drawn")
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="worker processes (default: CPU count, at most 4)")
    parser.add_argument("--batch-size", type=int, default=100, help="formulas per pdflatex run (default 100)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, required=True,
                        help="corpus folder with train/val/test.jsonl (or one .jsonl/.txt file)")
    parser.add_argument("--out", type=Path, required=True, help="shards folder (split folders go inside)")
    parser.add_argument("--split", choices=(*SPLITS, "all"), default="all", help="default all")
    add_render_options(parser)


def render_splits(args: argparse.Namespace, corpus: Path, out: Path, splits: tuple[str, ...]) -> int:
    for style in args.styles:
        if style not in DEFAULT_STYLES:
            print(f"im2latex data render: unknown style {style!r}; choose display or inline", file=sys.stderr)
            return 2
    try:
        for split in splits:
            summary = render_split(corpus, out, split, args.renderer, args.fonts, args.styles, args.dpis,
                                   args.limit, args.workers, args.batch_size, progress=not args.quiet,
                                   start=getattr(args, "start", 0))
            print(summary.text(), flush=True)
    except (Im2LatexError, ValueError) as exc:
        print(f"im2latex data render: {exc}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    if args.corpus.is_file() and args.split == "all":
        print("im2latex data render: a single corpus file needs --split (train, val or test)", file=sys.stderr)
        return 2
    splits = SPLITS if args.split == "all" else (args.split,)
    return render_splits(args, args.corpus, args.out, splits)
