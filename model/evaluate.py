"""`im2latex evaluate`: score a model (or a prediction file) on labelled images.

Labelled images come from a rendered shard split (``--split data/shards/test``) or from a folder
holding images and a ``labels.jsonl`` (``{"image": "a.png", "latex": "...", "font": "cm"}`` per
line; ``font`` optional).  Scores are BLEU-4, edit similarity and exact match on canonical tokens
(see model.metrics), overall and by font and by length, plus seconds per image.
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

from .metrics import length_bucket, score_tokens, tokens_of
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
    """Overall, per-font and per-length scores of predictions against samples."""
    refs = [tokens_of(s.latex) for s in samples]
    hyps = [tokens_of(p) for p in predictions]
    groups: dict[str, dict[str, list[int]]] = {"font": defaultdict(list), "length": defaultdict(list)}
    for i, (s, r) in enumerate(zip(samples, refs)):
        groups["font"][s.font].append(i)
        groups["length"][length_bucket(len(r))].append(i)

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


def markdown_table(rep: dict) -> str:
    lines = ["| group | n | BLEU-4 | edit sim. | exact | s/img p50 | s/img p95 |", "|---|---:|---:|---:|---:|---:|---:|"]

    def row(name: str, s: dict) -> str:
        return (f"| {name} | {s['n']} | {s['bleu4']:.3f} | {s['edit_similarity']:.3f} | {s['exact_match']:.1%} | "
                f"{s.get('seconds_p50', float('nan')):.3f} | {s.get('seconds_p95', float('nan')):.3f} |")

    lines.append(row("**all**", rep["overall"]))
    for section in ("by_font", "by_length"):
        for name, s in rep.get(section, {}).items():
            lines.append(row(f"{section[3:]}: {name}", s))
    return "\n".join(lines)


def recognize_all(samples: list[Sample], model_path: str | None, device: str | None, beam: int,
                  threads: int | None, batch: int = 1) -> tuple[list[str], list[float]]:
    """Predictions and per-image seconds: one image at a time as a snip would come, or, with
    ``batch`` > 1, in batches of similar widths (faster; seconds are then batch time shared out)."""
    from tqdm import tqdm

    from .errors import Im2LatexError
    from .images import load_image
    from .inference import Recognizer

    recognizer = Recognizer(model_path=model_path, device=device)
    if threads:
        import torch

        torch.set_num_threads(threads)
    recognizer.load()
    images = [s.image if s.image is not None else s.key for s in samples]
    predictions, seconds = [""] * len(samples), [0.0] * len(samples)

    def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            predictions[i] = recognizer.recognize(load_image(images[i]), beam=beam).latex
        except Im2LatexError:
            predictions[i] = ""
        seconds[i] = time.perf_counter() - t0

    if batch <= 1:
        for i in tqdm(range(len(samples)), desc="evaluate", mininterval=5):
            one(i)
        return predictions, seconds
    order = sorted(range(len(samples)), key=lambda i: _width(images[i]))
    chunks = [order[k:k + batch] for k in range(0, len(order), batch)]
    for chunk in tqdm(chunks, desc="evaluate", mininterval=5):
        try:
            results = recognizer.recognize_batch([load_image(images[i]) for i in chunk], beam=beam)
        except Im2LatexError:
            for i in chunk:  # one bad image must not cost the others their answer
                one(i)
            continue
        for i, r in zip(chunk, results):
            predictions[i], seconds[i] = r.latex, r.seconds
    return predictions, seconds


def _width(image) -> int:
    return image.width if isinstance(image, Image.Image) else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--split", type=Path, help="a rendered shard split, e.g. data/shards/val")
    src.add_argument("--folder", type=Path, help="a folder of images with labels.jsonl")
    parser.add_argument("--predictions", type=Path,
                        help="score this JSONL of `im2latex predict --json` instead of running a model")
    parser.add_argument("--model", help="model bundle or checkpoint (default: the bundled model)")
    parser.add_argument("--device")
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--limit", type=int, help="evaluate the first N samples only")
    parser.add_argument("--font", help="only samples rendered in this font (e.g. cm)")
    parser.add_argument("--batch", type=int, default=1,
                        help="decode N images at once (faster; per-image seconds become shares of a batch)")
    parser.add_argument("--out", type=Path, help="write the JSON report here (and .md beside it)")


def run(args: argparse.Namespace) -> int:
    if args.folder:
        samples = list(folder_samples(args.folder))
    else:
        samples = list(shard_samples(args.split, None if args.font else args.limit))
    if args.font:
        samples = [s for s in samples if s.font == args.font]
    if args.limit is not None:
        samples = samples[: args.limit]
    if args.predictions:
        by_image = {}
        for line in args.predictions.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                by_image[Path(row["image"]).name] = row.get("latex", "")
        predictions = [by_image.get(Path(s.key).name, "") for s in samples]
        seconds: list[float] = []
    else:
        predictions, seconds = recognize_all(samples, args.model, args.device, args.beam, args.threads,
                                             args.batch)
    rep = report(samples, predictions, seconds)
    table = markdown_table(rep)
    print(table)
    if args.out:
        write_json_atomic(args.out, rep)
        args.out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    return 0
