"""`im2latex evaluate`: score a model (or a prediction file) on labelled images.

Labelled images come from a rendered shard split (``--split data/shards/test``) or from a folder
holding images and a ``labels.jsonl`` (``{"image": "a.png", "latex": "...", "font": "cm"}`` per
line; ``font`` optional).  Scores are BLEU-4, edit similarity and exact match on canonical tokens
(see model.metrics), overall and by font and by length, plus seconds per image.
``--suite DIR`` scores an evaluation suite made by ``im2latex data suite``: one row per style,
zoom consistency, exact match per zoom dpi, and the im2latex-100k row beside published figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from PIL import Image

from .atomic import atomic_write
from .config import scales_argument
from .metrics import length_bucket, score_tokens, structures, tokens_of
from .vocab import write_json_atomic


@dataclass
class Sample:
    key: str                 # image path or shard record name
    latex: str               # reference
    font: str = "unknown"
    image: Image.Image | None = None  # loaded lazily for folders


def folder_samples(folder: Path) -> Iterator[Sample]:
    """Images of a folder with their labels from labels.jsonl."""
    labels = folder / "labels.jsonl"
    if not labels.exists():
        raise SystemExit(f"{folder} has no labels.jsonl (one JSON object per line: image, latex, font)")
    for line in labels.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            yield Sample(str(folder / row["image"]), row["latex"], row.get("font", "unknown"))


def shard_samples(split_dir: Path, limit: int | None) -> Iterator[Sample]:
    """Clean (not augmented) renders of a shard split, as the model would see a crisp snip."""
    from .data.shards import ShardReader

    reader = ShardReader(split_dir)
    for i, (record, image) in enumerate(reader.iter_samples()):
        if limit is not None and i >= limit:
            break
        yield Sample(record["name"], record["latex"], record.get("font", "unknown"), image)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def report(samples: list[Sample], predictions: list[str], seconds: list[float]) -> dict:
    """Overall, per-font, per-length and per-structure (matrices, multi-line blocks...; a formula
    counts in each it holds) scores of predictions against samples."""
    refs = [tokens_of(s.latex) for s in samples]
    hyps = [tokens_of(p) for p in predictions]
    groups: dict[str, dict[str, list[int]]] = {"font": defaultdict(list), "length": defaultdict(list),
                                               "structure": defaultdict(list)}
    for i, (s, r) in enumerate(zip(samples, refs)):
        groups["font"][s.font].append(i)
        groups["length"][length_bucket(len(r))].append(i)
        for kind in structures(r):
            groups["structure"][kind].append(i)

    def scores(idx: list[int]) -> dict:
        sc = score_tokens([refs[i] for i in idx], [hyps[i] for i in idx]).as_dict()
        secs = [seconds[i] for i in idx if i < len(seconds)]
        if secs:
            sc.update(seconds_mean=statistics.fmean(secs), seconds_p50=_percentile(secs, 0.5),
                      seconds_p95=_percentile(secs, 0.95))
        return sc

    out = {"overall": scores(list(range(len(samples))))}
    for name, by in groups.items():
        out[f"by_{name}"] = {k: scores(v) for k, v in sorted(by.items())}
    out["errors"] = [{"key": s.key, "reference": s.latex, "prediction": p}
                     for s, p, r, h in zip(samples, predictions, refs, hyps) if r != h][:50]
    return out


MARKDOWN_HEADER = ["| group | n | BLEU-4 | edit sim. | exact | s/img p50 | s/img p95 |",
                   "|---|---:|---:|---:|---:|---:|---:|"]


def markdown_row(name: str, s: dict) -> str:
    """One table row of scores (as made by ``report``)."""
    return (f"| {name} | {s['n']} | {s['bleu4']:.3f} | {s['edit_similarity']:.3f} | {s['exact_match']:.1%} | "
            f"{s.get('seconds_p50', float('nan')):.3f} | {s.get('seconds_p95', float('nan')):.3f} |")


def markdown_table(rep: dict) -> str:
    lines = list(MARKDOWN_HEADER)
    row = markdown_row
    lines.append(row("**all**", rep["overall"]))
    for section in ("by_font", "by_length", "by_structure"):
        for name, s in rep.get(section, {}).items():
            lines.append(row(f"{section[3:]}: {name}", s))
    return "\n".join(lines)


def recognize_all(samples: list[Sample], model_path: str | None, device: str | None, beam: int,
                  threads: int | None, batch: int = 1, well_formed: bool = True,
                  scales: tuple[float, ...] | None = None) -> tuple[list[str], list[float], list[dict]]:
    """Predictions, per-image seconds and ``im2latex predict --json`` rows (confidence and
    alternatives too; an unreadable image gets an ``error`` row): one image at a time as a snip
    would come, or, with ``batch`` > 1, in batches of similar widths (faster; seconds are then
    batch time shared out).
    ``well_formed=False`` decodes without the syntax rules, to measure what they change;
    ``scales``: the glyph scales each image is read at (None: the model's ``input.reading_scales``)."""
    from tqdm import tqdm

    from .errors import Im2LatexError
    from .images import load_image
    from .inference import Recognizer
    from .predict import json_row

    recognizer = Recognizer(model_path=model_path, device=device, scales=scales)
    recognizer.well_formed = well_formed
    if threads:
        import torch

        torch.set_num_threads(threads)
    recognizer.load()
    images = [s.image if s.image is not None else s.key for s in samples]
    predictions, seconds = [""] * len(samples), [0.0] * len(samples)
    rows: list[dict] = [{} for _ in samples]

    def keep(i: int, result) -> None:
        predictions[i], seconds[i] = result.latex, result.seconds
        rows[i] = json_row(Path(samples[i].key).name, result)

    def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            keep(i, recognizer.recognize(load_image(images[i]), beam=beam))
        except Im2LatexError as error:
            predictions[i] = ""
            rows[i] = {"image": Path(samples[i].key).name, "error": str(error)}
        seconds[i] = time.perf_counter() - t0

    if batch <= 1:
        for i in tqdm(range(len(samples)), desc="evaluate", mininterval=5):
            one(i)
        return predictions, seconds, rows
    order = sorted(range(len(samples)), key=lambda i: _width(images[i]))
    chunks = [order[k:k + batch] for k in range(0, len(order), batch)]
    for chunk in tqdm(chunks, desc="evaluate", mininterval=5):
        try:
            # each image keeps the time a snip gets alone: a batch under load must not cut readings
            budget = None if recognizer.time_budget is None else recognizer.time_budget * len(chunk)
            results = recognizer.recognize_batch([load_image(images[i]) for i in chunk], beam=beam, time_budget=budget)
        except Im2LatexError:
            for i in chunk:  # one bad image must not cost the others their answer
                one(i)
            continue
        for i, r in zip(chunk, results):
            keep(i, r)
    return predictions, seconds, rows


def _width(image) -> int:
    return image.width if isinstance(image, Image.Image) else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--split", type=Path, help="a rendered shard split, e.g. data/shards/val")
    src.add_argument("--folder", type=Path, help="a folder of images with labels.jsonl")
    src.add_argument("--suite", type=Path,
                     help="an evaluation suite (im2latex data suite): one row per style, zoom consistency, "
                          "exact match per dpi, the im2latex-100k row beside the published figures")
    parser.add_argument("--predictions", type=Path,
                        help="score this JSONL of `im2latex predict --json` instead of running a model")
    parser.add_argument("--save-predictions", type=Path,
                        help="also write every reading as `im2latex predict --json` rows (with confidence), "
                             "for --predictions later")
    parser.add_argument("--model", help="model bundle or checkpoint (default: the bundled model)")
    parser.add_argument("--device")
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--limit", type=int, help="evaluate the first N samples only")
    parser.add_argument("--font", help="only samples rendered in this font (e.g. cm)")
    parser.add_argument("--batch", type=int, default=1,
                        help="decode N images at once (faster; per-image seconds become shares of a batch)")
    parser.add_argument("--out", type=Path, help="write the JSON report here (and .md beside it)")
    parser.add_argument("--free-decoding", action="store_true",
                        help="decode without the well-formedness rules (model/syntax.py), to measure them")
    parser.add_argument("--scales", type=scales_argument,
                        help="glyph scales each image is read at, most confident wins, e.g. 1 for one "
                             "reading (default: the model's config, input.reading_scales)")


def read_predictions(path: Path) -> dict[str, str]:
    """LaTeX by image file name from a JSONL of `im2latex predict --json` (errors count as "")."""
    by_image = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            by_image[Path(row["image"]).name] = row.get("latex", "")
    return by_image


def _save_predictions(path: Path | None, rows: list[dict]) -> None:
    if path is not None:
        with atomic_write(path) as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)


def run(args: argparse.Namespace) -> int:
    if args.suite:
        return run_suite(args)
    if args.folder:
        samples = list(folder_samples(args.folder))
    else:
        samples = list(shard_samples(args.split, None if args.font else args.limit))
    if args.font:
        samples = [s for s in samples if s.font == args.font]
    if args.limit is not None:
        samples = samples[: args.limit]
    if args.predictions:
        by_image = read_predictions(args.predictions)
        predictions = [by_image.get(Path(s.key).name, "") for s in samples]
        seconds: list[float] = []
    else:
        predictions, seconds, rows = recognize_all(samples, args.model, args.device, args.beam, args.threads,
                                                   args.batch, not args.free_decoding, args.scales)
        _save_predictions(args.save_predictions, rows)
    rep = report(samples, predictions, seconds)
    table = markdown_table(rep)
    print(table)
    if args.out:
        write_json_atomic(args.out, rep)
        args.out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    return 0


# ---------------------------------------------------------------- the snip-style suite (im2latex data suite)

SUITE_STYLES = ("pdf", "zoom", "web", "hidpi", "dark", "im2latex-100k")
BENCHMARK_STYLE = "im2latex-100k"
# Published im2latex-100k test BLEU-4 (on im2markup's own tokens; ours are the project's tokens
# after normalization, so the comparison is close, not exact).
PUBLISHED_BLEU = (("starting design", 0.826), ("Deng et al. 2016 (im2markup)", 0.877))


@dataclass
class SuiteStyle:
    """The labelled snips of one suite style: samples plus their labels.jsonl rows."""

    name: str
    samples: list[Sample]
    rows: list[dict]


def suite_styles(suite_dir: Path, limit: int | None = None) -> list[SuiteStyle]:
    """Every style folder of a suite (known styles first, in their order); ``limit`` keeps the
    first N samples of each style (the first N groups for zoom, so its groups stay whole)."""
    suite_dir = Path(suite_dir)
    if not suite_dir.is_dir():
        raise SystemExit(f"{suite_dir} is not a suite folder; build one with: im2latex data suite --out {suite_dir}")
    folders = [p for p in suite_dir.iterdir() if (p / "labels.jsonl").is_file()]
    folders.sort(key=lambda p: (SUITE_STYLES.index(p.name) if p.name in SUITE_STYLES else len(SUITE_STYLES), p.name))
    if not folders:
        raise SystemExit(f"{suite_dir} holds no style folder with labels.jsonl; build it with: "
                         f"im2latex data suite --out {suite_dir}")
    out = []
    for folder in folders:
        rows = [json.loads(line) for line in (folder / "labels.jsonl").read_text(encoding="utf-8").splitlines()
                if line.strip()]
        if limit is not None:
            if folder.name == "zoom":
                keep = set(list(dict.fromkeys(r.get("group") for r in rows))[:limit])
                rows = [r for r in rows if r.get("group") in keep]
            else:
                rows = rows[:limit]
        samples = [Sample(str(folder / r["image"]), r["latex"], r.get("font", "unknown")) for r in rows]
        out.append(SuiteStyle(folder.name, samples, rows))
    return out


def zoom_consistency(readings: dict[str, list[str]], size: int = 5) -> dict:
    """Share of groups whose ``size`` readings (one per zoom level) are identical and non-empty,
    compared as canonical tokens.  Groups with fewer readings (a zoom level the renderer had to
    drop) are left out and counted as ``incomplete``."""
    whole = {g: r for g, r in readings.items() if len(r) == size}
    consistent = 0
    for group in whole.values():
        tokens = [tokens_of(r) for r in group]
        if tokens[0] and all(t == tokens[0] for t in tokens[1:]):
            consistent += 1
    return {"consistency": consistent / len(whole) if whole else 0.0, "groups": len(whole),
            "consistent": consistent, "incomplete": len(readings) - len(whole)}


def zoom_misses(groups: dict[str, list[tuple[int, list[str], list[str]]]]) -> dict:
    """Why groups are not read the same at every zoom level, to see what would raise consistency.

    ``groups`` maps a group to its (dpi, reference tokens, reading tokens) at every level.  Each
    inconsistent group falls in one case: read wrong at every level (the model cannot read
    the formula: more training), one level differs while the others agree (that level's
    scale: per-dpi counts), or otherwise; ``long`` counts those over 40 reference tokens."""
    out = {"groups": 0, "wrong_at_every_level": 0, "one_level_differs": {}, "other": 0, "long": 0}
    for levels in groups.values():
        readings = [tuple(hyp) for _, _, hyp in levels]
        if readings[0] and len(set(readings)) == 1:
            continue
        out["groups"] += 1
        out["long"] += len(levels[0][1]) > 40
        odd = [dpi for (dpi, _, _), reading in zip(levels, readings) if readings.count(reading) == 1]
        if not any(ref == hyp for _, ref, hyp in levels):
            out["wrong_at_every_level"] += 1
        elif len(odd) == 1 and len(set(readings)) == 2:
            key = str(odd[0])
            out["one_level_differs"][key] = out["one_level_differs"].get(key, 0) + 1
        else:
            out["other"] += 1
    out["one_level_differs"] = dict(sorted(out["one_level_differs"].items(), key=lambda kv: int(kv[0])))
    return out


def suite_report(styles: list[SuiteStyle], predictions: dict[str, list[str]],
                 seconds: dict[str, list[float]]) -> dict:
    """Per-style reports (``report``), zoom consistency, zoom exact match per dpi, and the
    im2latex-100k BLEU beside the published figures."""
    from .data.suite import ZOOM_DPIS

    out: dict = {"styles": {}}
    for st in styles:
        out["styles"][st.name] = report(st.samples, predictions[st.name], seconds.get(st.name, []))
    zoom = next((st for st in styles if st.name == "zoom"), None)
    if zoom is not None:
        readings: dict[str, list[str]] = defaultdict(list)
        levels: dict[str, list] = defaultdict(list)  # (dpi, reference tokens, reading tokens)
        by_dpi: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))  # references, readings
        for i, row in enumerate(zoom.rows):
            group, dpi = str(row.get("group")), int(row.get("dpi", 0))
            ref, hyp = tokens_of(zoom.samples[i].latex), tokens_of(predictions["zoom"][i])
            readings[group].append(predictions["zoom"][i])
            levels[group].append((dpi, ref, hyp))
            by_dpi[dpi][0].append(ref)
            by_dpi[dpi][1].append(hyp)
        out["zoom_consistency"] = zoom_consistency(dict(readings), len(ZOOM_DPIS))
        out["zoom_misses"] = zoom_misses({g: v for g, v in levels.items() if len(v) == len(ZOOM_DPIS)})
        out["zoom_by_dpi"] = {str(dpi): score_tokens(refs, hyps).as_dict()
                              for dpi, (refs, hyps) in sorted(by_dpi.items())}
    if BENCHMARK_STYLE in out["styles"]:
        overall = out["styles"][BENCHMARK_STYLE]["overall"]
        out["im2latex_100k"] = {"bleu4": overall["bleu4"], "n": overall["n"],
                                "published_bleu4": dict(PUBLISHED_BLEU)}
    return out


def suite_markdown(rep: dict) -> str:
    """The suite table: one row per style, then zoom consistency and dpi, then the benchmark."""
    lines = ["| style | n | BLEU-4 | edit sim. | exact | s/snip p50 | s/snip p95 |", MARKDOWN_HEADER[1]]
    for name, style_rep in rep["styles"].items():
        lines.append(markdown_row(name, style_rep["overall"]))
    zc = rep.get("zoom_consistency")
    if zc:
        lines += ["", f"Zoom consistency: {zc['consistency']:.1%} of {zc['groups']} groups read the same "
                      f"(non-empty) at every zoom level"
                  + (f" ({zc['incomplete']} incomplete groups left out)" if zc["incomplete"] else "") + "."]
    zm = rep.get("zoom_misses")
    if zm and zm["groups"]:
        odd = ", ".join(f"{dpi} dpi {n}" for dpi, n in zm["one_level_differs"].items()) or "none"
        lines += [f"Of the {zm['groups']} inconsistent groups, {zm['wrong_at_every_level']} are read wrong at every "
                  f"level, {sum(zm['one_level_differs'].values())} differ at one level only ({odd}), "
                  f"{zm['other']} otherwise; {zm['long']} are long (over 40 tokens)."]
    if rep.get("zoom_by_dpi"):
        lines += ["", "| zoom dpi | n | BLEU-4 | exact |", "|---:|---:|---:|---:|"]
        for dpi, s in rep["zoom_by_dpi"].items():
            lines.append(f"| {dpi} | {s['n']} | {s['bleu4']:.3f} | {s['exact_match']:.1%} |")
    bench = rep.get("im2latex_100k")
    if bench:
        lines += ["", "| im2latex-100k test | BLEU-4 |", "|---|---:|",
                  f"| this model (n={bench['n']}, project tokens) | {bench['bleu4']:.3f} |"]
        lines += [f"| {name} | {value:.3f} |" for name, value in bench["published_bleu4"].items()]
    return "\n".join(lines)


def run_suite(args: argparse.Namespace) -> int:
    """Score every style of a suite; print the table and write JSON (+ .md with per-style detail)."""
    styles = suite_styles(args.suite, args.limit)
    if args.font:
        for st in styles:
            keep = [i for i, s in enumerate(st.samples) if s.font == args.font]
            st.samples, st.rows = [st.samples[i] for i in keep], [st.rows[i] for i in keep]
    predictions: dict[str, list[str]] = {}
    seconds: dict[str, list[float]] = {}
    if args.predictions:
        by_image = read_predictions(args.predictions)
        for st in styles:
            predictions[st.name] = [by_image.get(Path(s.key).name, "") for s in st.samples]
    else:
        everything = [s for st in styles for s in st.samples]
        preds, secs, rows = recognize_all(everything, args.model, args.device, args.beam, args.threads, args.batch,
                                          not args.free_decoding, args.scales)
        _save_predictions(args.save_predictions, rows)
        k = 0
        for st in styles:
            predictions[st.name], seconds[st.name] = preds[k:k + len(st.samples)], secs[k:k + len(st.samples)]
            k += len(st.samples)
    rep = suite_report(styles, predictions, seconds)
    table = suite_markdown(rep)
    print(table)
    if args.out:
        write_json_atomic(args.out, rep)
        detail = [f"## {name}\n\n{markdown_table(style_rep)}" for name, style_rep in rep["styles"].items()]
        args.out.with_suffix(".md").write_text(table + "\n\n" + "\n\n".join(detail) + "\n", encoding="utf-8")
    return 0
