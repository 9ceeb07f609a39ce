"""Rendering throughput: formulas per second for each TeX font setup and each mathtext font.

For each font, ~200 corpus formulas go through the full render-command pipeline (render,
crop, PNG, preprocessed size) on 2 worker processes, as ``im2latex data render --workers 2``
would run them; the TeX renderer alone (one process, no PNG/preprocess) is timed too.
Writes benchmarks/render_speed.json.  Run it at low priority on a shared machine:

    nice -n 19 .venv/bin/python benchmarks/render_speed.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.data import render  # noqa: E402
from model.tokenizer import LatexSyntaxError, canonical  # noqa: E402

SHARED = [Path(os.environ.get("IM2LATEX_CORPUS", ROOT.parent / "shared" / "corpus")) / name
          for name in ("school_math.txt", "research_math.txt")]


def sample_formulas(n: int, seed: int) -> list[str]:
    """Canonical formulas from the shared lists (or generated ones when they are absent)."""
    lines: list[str] = []
    for path in SHARED:
        if path.exists():
            lines += path.read_text(encoding="utf-8").splitlines()
    rng = random.Random(seed)
    out: list[str] = []
    if lines:
        for line in rng.sample(lines, min(len(lines), 3 * n)):
            try:
                out.append(canonical(line))
            except LatexSyntaxError:
                continue
            if len(out) == n:
                break
    while len(out) < n:  # no shared corpus: simple generated formulas
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        out.append(rf"\frac{{x_{{{a}}}+{b}}}{{y^{{{a % 7}}}}}=\sum_{{i=1}}^{{{b}}}\alpha_{{i}}")
    return out


def time_font(pool, formulas: list[str], renderer: str, font: str, batch: int) -> dict:
    jobs = render.make_jobs(formulas, renderer, (font,), render.DEFAULT_STYLES, render.DEFAULT_DPIS, batch)
    start = time.perf_counter()
    results = pool.map(render.run_job, jobs, chunksize=1)
    seconds = time.perf_counter() - start
    rendered = sum(len(r.samples) for r in results)
    skipped: dict[str, int] = {}
    for r in results:
        for s in r.skips:
            skipped[s.reason] = skipped.get(s.reason, 0) + 1
    png_bytes = sum(len(s.png) for r in results for s in r.samples)
    return {"formulas": len(formulas), "rendered": rendered, "skipped": skipped, "seconds": round(seconds, 3),
            "formulas_per_s": round(len(formulas) / seconds, 1),
            "mean_png_bytes": round(png_bytes / max(1, rendered))}


def time_tex_alone(formulas: list[str], font: str, batch: int, workdir: str) -> float:
    """Formulas per second of render_tex itself (pdflatex + pdftoppm + crop), one process."""
    from model.data.render_tex import render_tex

    styles = [render.assign(f, (font,), render.DEFAULT_STYLES, render.DEFAULT_DPIS)[1] for f in formulas]
    dpis = [render.assign(f, (font,), render.DEFAULT_STYLES, render.DEFAULT_DPIS)[2] for f in formulas]
    start = time.perf_counter()
    for i in range(0, len(formulas), batch):
        render_tex(formulas[i:i + batch], font, styles[i:i + batch], dpis[i:i + batch], workdir)
    return round(len(formulas) / (time.perf_counter() - start), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="formulas per font (default 200)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100, help="formulas per pdflatex run (default 100)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "render_speed.json")
    args = parser.parse_args()

    formulas = sample_formulas(args.n, seed=0)
    report: dict = {"formulas_per_font": args.n, "workers": args.workers, "batch": args.batch,
                    "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in os.getloadavg()],
                    "tex": {}, "tex_render_only_1_process": {}, "mathtext": {}}
    parent = tempfile.mkdtemp(prefix="render-speed-")
    try:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(args.workers, initializer=render._init_worker, initargs=(parent,)) as pool:
            pool.map(render.run_job, render.make_jobs(["x"] * args.workers, "mathtext", ("cm",), ("display",),
                                                      (100,), 1))  # warm the workers (imports)
            if shutil.which("pdflatex") and shutil.which("pdftoppm"):
                from model.data.render_tex import FONTS as TEX_FONTS

                for font in TEX_FONTS:
                    report["tex"][font] = time_font(pool, formulas, "tex", font, args.batch)
                    print("tex", font, report["tex"][font], flush=True)
                render._init_worker(parent)
                for font in TEX_FONTS:
                    report["tex_render_only_1_process"][font] = time_tex_alone(formulas, font, args.batch, parent)
                print("tex render only", report["tex_render_only_1_process"], flush=True)
            from model.data.render_mathtext import FONTS as MT_FONTS

            for font in MT_FONTS:
                report["mathtext"][font] = time_font(pool, formulas, "mathtext", font, 25)
                print("mathtext", font, report["mathtext"][font], flush=True)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    for kind in ("tex", "mathtext"):
        if report[kind]:
            total = sum(v["formulas"] for v in report[kind].values())
            seconds = sum(v["seconds"] for v in report[kind].values())
            report[f"{kind}_overall_formulas_per_s"] = round(total / seconds, 1)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
