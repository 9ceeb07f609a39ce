"""Which scales to read a snip at: accuracy against readings per snip for ``input.reading_scales``
and ``input.reread_below``.

The app reads a snip at its first reading scale and, when a token of that reading is less
probable than ``reread_below``, again at the model's other scales, keeping the most confident
reading (``model.inference``).  This reads every sample once at each scale, then replays that
rule (the same ``most_confident`` choice the app makes) for a range of thresholds and for
subsets of the scales, so one run shows exact match, BLEU-4, the mean number of readings per
snip and their input pixels (decoding cost grows with them) for each.  On an evaluation suite
(``--suite``) each policy also gets its exact match per style and its zoom consistency.  Pick
the bundle's ``reading_scales`` and ``reread_below`` from it.

    .venv/bin/python benchmarks/reading_policy.py --model runs/export_best --split data/shards/val --limit 300
    .venv/bin/python benchmarks/reading_policy.py --suite data/suite --scales 1,1.3,1.15,0.85,1.5 \
        --subsets 1,1.3 1,1.3,1.15 0.85,1,1.15,1.3 --out benchmarks/reading_policy_suite.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from model.batching import pad_batch  # noqa: E402
from model.checkpoint import load_model  # noqa: E402
from model.config import scales_argument  # noqa: E402
from model.decoding import Decoded, greedy_decode, most_confident, unsure  # noqa: E402
from model.evaluate import shard_samples, suite_report, suite_styles  # noqa: E402
from model.images import load_image  # noqa: E402
from model.metrics import score_tokens, tokens_of  # noqa: E402
from model.preprocess import preprocess_at_scales  # noqa: E402
from model.syntax import SyntaxRules  # noqa: E402
from model.tokenizer import detokenize  # noqa: E402

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)


@dataclass
class Policy:
    """How a snip is read: at the read scales at ``positions`` (the first one first); with a
    ``threshold`` (``reread_below``) the others only when that first reading is unsure; with
    ``first`` > 1 the first ``first`` scales together and the others only when those readings
    disagree or one was cut short (not an app setting: measured to see what it would buy)."""

    name: str
    positions: tuple[int, ...]
    threshold: float | None = None
    first: int = 1


def _listed(scales) -> str:
    return ", ".join(f"{s:g}" for s in scales)


def policies(scales: tuple[float, ...], subsets: list[tuple[float, ...]] = (),
             thresholds=THRESHOLDS) -> list[Policy]:
    """Reading once, re-reading unsure snips at every scale (each threshold), reading every scale
    of each subset (scales taken from ``scales``), reading the first two and the rest only when
    they disagree (three scales or more), and reading every scale."""
    every = tuple(range(len(scales)))
    out = [Policy(f"one reading (scale {scales[0]:g})", (0,))]
    out += [Policy(f"reread_below {t:g}", every, t) for t in thresholds] if len(scales) > 1 else []
    for subset in subsets:
        missing = [s for s in subset if s not in scales]
        if missing:
            raise SystemExit(f"subset scales {_listed(missing)} are not among the read scales {_listed(scales)}")
        out.append(Policy(f"every scale of ({_listed(subset)})", tuple(scales.index(s) for s in subset)))
    if len(scales) > 2:
        out.append(Policy(f"({_listed(scales[:2])}), the rest when they disagree", every, first=2))
    if len(scales) > 1:
        out.append(Policy(f"every scale ({_listed(scales)})", every))
    return out


def read_every_scale(model_dir: str, samples: list, scales: tuple[float, ...], batch: int = 8):
    """Each sample's greedy, well-formed readings, one per scale (the app's decoding), and the
    model's vocabulary."""
    import torch

    torch.set_num_threads(1)  # as the app reads
    loaded = load_model(model_dir, device="cpu")
    syntax = SyntaxRules(loaded.vocab)
    inputs = [preprocess_at_scales(load_image(s.image if s.image is not None else s.key), loaded.config.input, scales)
              for s in tqdm(samples, desc="preprocessing", leave=False)]
    readings: list[list[Decoded]] = [[] for _ in samples]
    with tqdm(total=len(samples) * len(scales), desc="reading", leave=False) as bar:
        for k in range(len(scales)):
            order = sorted(range(len(samples)), key=lambda i: inputs[i][k].shape[1])
            for start in range(0, len(order), batch):
                chunk = order[start:start + batch]
                images, sizes = pad_batch([inputs[i][k] for i in chunk])
                for i, decoded in zip(chunk, greedy_decode(loaded.model, images, sizes, loaded.config.max_len,
                                                           syntax=syntax)):
                    readings[i].append(decoded)
                bar.update(len(chunk))
    return readings, loaded.vocab


def replay(readings: list[list[Decoded]], threshold: float | None) -> tuple[list[Decoded], float]:
    """The app's choice per sample under ``threshold`` (None: every scale, always) and the mean
    number of readings it took."""
    chosen, count = [], 0
    for item in readings:
        if threshold is not None and not unsure(item[0], threshold):
            chosen.append(item[0])
            count += 1
        else:
            chosen.append(most_confident(item))
            count += len(item)
    return chosen, count / max(1, len(readings))


def apply(policy: Policy, readings: list[list[Decoded]], scales: tuple[float, ...]) -> tuple[list[Decoded], float, float]:
    """``replay`` of one policy: the chosen readings, readings per snip, and input pixels per
    snip relative to one reading at scale 1 (the encoder's work, and the decoder's attention,
    grow with them)."""
    subset = [[item[k] for k in policy.positions] for item in readings]
    squares = [scales[k] ** 2 for k in policy.positions]
    if policy.first > 1:
        chosen, count, pixels = [], 0, 0.0
        for item in subset:
            head = item[:policy.first]
            agree = all(d.stopped is None and d.ids == head[0].ids for d in head)
            read = head if agree else item
            chosen.append(most_confident(read))
            count += len(read)
            pixels += sum(squares[:len(read)])
        return chosen, count / max(1, len(subset)), pixels / max(1, len(subset))
    chosen, per_snip = replay(subset, policy.threshold)
    pixels = sum(squares[0] if policy.threshold is not None and not unsure(item[0], policy.threshold) else sum(squares)
                 for item in subset)
    return chosen, per_snip, pixels / max(1, len(subset))


def run(model_dir: str, split: Path, limit: int, scales: tuple[float, ...], subsets=(), thresholds=THRESHOLDS) -> dict:
    samples = list(shard_samples(split, limit))
    t0 = time.perf_counter()
    readings, vocab = read_every_scale(model_dir, samples, scales)
    refs = [tokens_of(s.latex) for s in samples]
    rows = []
    for policy in policies(scales, subsets, thresholds):
        chosen, per_snip, pixels = apply(policy, readings, scales)
        hyps = [tokens_of(detokenize(vocab.decode(d.ids))) for d in chosen]
        scores = score_tokens(refs, hyps).as_dict()
        rows.append({"policy": policy.name, "readings_per_snip": round(per_snip, 3), "pixels_per_snip": round(pixels, 3),
                     "exact_match": scores["exact_match"], "bleu4": scores["bleu4"]})
    return {"model": str(model_dir), "split": str(split), "n": len(samples), "scales": list(scales),
            "seconds": round(time.perf_counter() - t0, 1), "rows": rows}


def run_suite(model_dir: str, suite: Path, limit: int | None, scales: tuple[float, ...], subsets=(),
              thresholds=THRESHOLDS) -> dict:
    """Every policy on every style of an evaluation suite: exact match per style, zoom
    consistency and the im2latex-100k BLEU-4 (``model.evaluate.suite_report``)."""
    styles = suite_styles(suite, limit)
    samples = [s for st in styles for s in st.samples]
    t0 = time.perf_counter()
    readings, vocab = read_every_scale(model_dir, samples, scales)
    rows = []
    for policy in policies(scales, subsets, thresholds):
        chosen, per_snip, pixels = apply(policy, readings, scales)
        texts = [detokenize(vocab.decode(d.ids)) for d in chosen]
        predictions, k = {}, 0
        for st in styles:
            predictions[st.name], k = texts[k:k + len(st.samples)], k + len(st.samples)
        rep = suite_report(styles, predictions, {})
        row = {"policy": policy.name, "readings_per_snip": round(per_snip, 3), "pixels_per_snip": round(pixels, 3),
               "exact_match": {name: r["overall"]["exact_match"] for name, r in rep["styles"].items()}}
        if "zoom_consistency" in rep:
            row["zoom_consistency"] = rep["zoom_consistency"]["consistency"]
        if "im2latex_100k" in rep:
            row["im2latex_100k_bleu4"] = rep["im2latex_100k"]["bleu4"]
        rows.append(row)
    return {"model": str(model_dir), "suite": str(suite), "n": len(samples), "styles": [st.name for st in styles],
            "scales": list(scales), "seconds": round(time.perf_counter() - t0, 1), "rows": rows}


def markdown(result: dict) -> str:
    if "suite" in result:
        return _suite_markdown(result)
    lines = [f"{result['split']}, first {result['n']}, scales {result['scales']}:", "",
             "| policy | readings per snip | pixels per snip | exact | BLEU-4 |", "|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['policy']} | {r['readings_per_snip']:.2f} | {r.get('pixels_per_snip', 0):.2f} "
                     f"| {r['exact_match']:.1%} | {r['bleu4']:.3f} |")
    return "\n".join(lines)


def _suite_markdown(result: dict) -> str:
    styles = result["styles"]
    zoom, bench = "zoom" in styles, "im2latex-100k" in styles
    head = ["policy", "readings per snip", "pixels per snip"] + [f"{s} exact" for s in styles]
    head += ["zoom consistency"] * zoom + ["im2latex-100k BLEU-4"] * bench
    lines = [f"suite {result['suite']} ({result['n']} snips), scales {result['scales']}:", "",
             "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in result["rows"]:
        cells = [r["policy"], f"{r['readings_per_snip']:.2f}", f"{r['pixels_per_snip']:.2f}"]
        cells += [f"{r['exact_match'][s]:.1%}" for s in styles]
        cells += [f"{r['zoom_consistency']:.1%}"] if zoom else []
        cells += [f"{r['im2latex_100k_bleu4']:.3f}"] if bench else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "resources" / "model"))
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--split", type=Path, default=Path("data/shards/val"))
    source.add_argument("--suite", type=Path, help="an evaluation suite (im2latex data suite) instead of a split")
    parser.add_argument("--limit", type=int, default=None,
                        help="first N samples (a split: default 300) or first N per style (a suite: default all)")
    parser.add_argument("--scales", type=scales_argument, default=(1.0, 1.3),
                        help="scales every sample is read at; the first is the one read first")
    parser.add_argument("--subsets", type=scales_argument, nargs="*", default=[],
                        help="also replay reading every scale of these subsets of --scales, e.g. 1,1.3 1,1.3,1.15")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("reading_policy.json"))
    args = parser.parse_args()
    if args.suite is not None:
        result = run_suite(args.model, args.suite, args.limit, args.scales, args.subsets)
    else:
        result = run(args.model, args.split, args.limit or 300, args.scales, args.subsets)
    table = markdown(result)
    print(table)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
