"""Which snips to read twice: accuracy against readings per snip for ``input.reread_below``.

The app reads a snip at its first reading scale and, when a token of that reading is less
probable than ``reread_below``, again at the model's other scales, keeping the most confident
reading (``model.inference``).  This reads every sample once at each scale, then replays that
rule for a range of thresholds (the same ``most_confident`` choice the app makes), so one run
shows exact match, BLEU-4 and the mean number of readings per snip for each, beside reading once
and reading at every scale.  Pick the bundle's ``reread_below`` from it.

    .venv/bin/python benchmarks/reading_policy.py --model runs/export_best --split data/shards/val --limit 300
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from model.batching import pad_batch  # noqa: E402
from model.checkpoint import load_model  # noqa: E402
from model.config import scales_argument  # noqa: E402
from model.decoding import Decoded, greedy_decode, most_confident, unsure  # noqa: E402
from model.evaluate import shard_samples  # noqa: E402
from model.images import load_image  # noqa: E402
from model.metrics import score_tokens, tokens_of  # noqa: E402
from model.preprocess import preprocess_at_scales  # noqa: E402
from model.syntax import SyntaxRules  # noqa: E402
from model.tokenizer import detokenize  # noqa: E402

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)


def read_every_scale(model_dir: str, samples: list, scales: tuple[float, ...], batch: int = 8):
    """Each sample's greedy, well-formed readings, one per scale (the app's decoding), and the
    model's vocabulary."""
    import torch

    torch.set_num_threads(1)  # as the app reads
    loaded = load_model(model_dir, device="cpu")
    syntax = SyntaxRules(loaded.vocab)
    inputs = [preprocess_at_scales(load_image(s.image if s.image is not None else s.key), loaded.config.input, scales)
              for s in samples]
    readings: list[list[Decoded]] = [[] for _ in samples]
    for k in range(len(scales)):
        order = sorted(range(len(samples)), key=lambda i: inputs[i][k].shape[1])
        for start in range(0, len(order), batch):
            chunk = order[start:start + batch]
            images, sizes = pad_batch([inputs[i][k] for i in chunk])
            for i, decoded in zip(chunk, greedy_decode(loaded.model, images, sizes, loaded.config.max_len, syntax=syntax)):
                readings[i].append(decoded)
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


def run(model_dir: str, split: Path, limit: int, scales: tuple[float, ...], thresholds=THRESHOLDS) -> dict:
    samples = list(shard_samples(split, limit))
    t0 = time.perf_counter()
    readings, vocab = read_every_scale(model_dir, samples, scales)
    refs = [tokens_of(s.latex) for s in samples]

    def row(name: str, chosen: list[Decoded], per_snip: float) -> dict:
        hyps = [tokens_of(detokenize(vocab.decode(d.ids))) for d in chosen]
        scores = score_tokens(refs, hyps).as_dict()
        return {"policy": name, "readings_per_snip": round(per_snip, 3), "exact_match": scores["exact_match"],
                "bleu4": scores["bleu4"]}

    rows = [row(f"one reading (scale {scales[0]:g})", [r[0] for r in readings], 1.0)]
    rows += [row(f"reread_below {t:g}", *replay(readings, t)) for t in thresholds]
    rows.append(row(f"every scale ({', '.join(f'{s:g}' for s in scales)})", *replay(readings, None)))
    return {"model": str(model_dir), "split": str(split), "n": len(samples), "scales": list(scales),
            "seconds": round(time.perf_counter() - t0, 1), "rows": rows}


def markdown(result: dict) -> str:
    lines = [f"{result['split']}, first {result['n']}, scales {result['scales']}:", "",
             "| policy | readings per snip | exact | BLEU-4 |", "|---|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['policy']} | {r['readings_per_snip']:.2f} | {r['exact_match']:.1%} | {r['bleu4']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "resources" / "model"))
    parser.add_argument("--split", type=Path, default=Path("data/shards/val"))
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--scales", type=scales_argument, default=(1.0, 1.3))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("reading_policy.json"))
    args = parser.parse_args()
    result = run(args.model, args.split, args.limit, args.scales)
    print(markdown(result))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
