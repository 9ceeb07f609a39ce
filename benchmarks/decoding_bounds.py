"""How often the decoding bounds hit on real snips, what they save, and that the loop guard spares real formulas.

Runs the first ``--samples`` validation snips through ``Recognizer.recognize`` (greedy, default
bounds: the model's token limit, ``DEFAULT_TIME_BUDGET`` and the repetition guard) and again
with the guard off, and counts per bound how many snips it stopped, the worst-case and median
seconds of each run, and the exact matches of each.  It also runs the guard over every formula
of the corpus (``<data>/corpus/*.jsonl``) to count real formulas it would cut: a false alarm.
The model is ``runs/first/best.pt`` when it exists (a model in training loops the most), else
the tiny test model.  Results: ``benchmarks/decoding_bounds.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def corpus_false_alarms(corpus_dir: Path, guard) -> dict:
    """Formulas of the corpus the guard would cut (it is checked after every token, as in decoding)."""
    from model.tokenizer import LatexSyntaxError, normalize

    checked, alarms = 0, []
    for path in sorted(corpus_dir.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    tokens = normalize(json.loads(line)["latex"])
                except (LatexSyntaxError, ValueError, KeyError):
                    continue
                checked += 1
                ids = [hash(t) for t in tokens]
                if len(ids) >= guard.min_span and _loops_anywhere(ids, guard):
                    alarms.append(json.loads(line)["latex"])
    return {"formulas_checked": checked, "false_alarms": len(alarms), "examples": alarms[:5]}


def _loops_anywhere(ids: list[int], guard) -> bool:
    """Whether ``guard`` fires on some prefix of ``ids``: a periodic run long enough, found with numpy."""
    a = np.asarray(ids)
    for n in range(1, guard.max_ngram + 1):
        if len(a) <= n:
            break
        need = n * max(guard.min_repeats, -(-guard.min_span // n))
        same = np.concatenate([[0], (a[n:] == a[:-n]).astype(np.int8), [0]])
        edges = np.diff(same)
        runs = np.where(edges == -1)[0] - np.where(edges == 1)[0]
        if runs.size and int(runs.max()) + n >= need:
            return True
    return False


def run(recognizer, reader, samples: int, **kwargs) -> dict:
    from model.tokenizer import canonical

    stops, seconds, exact, tokens, per_sample = Counter(), [], 0, [], []
    for i in range(min(samples, len(reader))):
        record = reader.record(i)
        result = recognizer.recognize(reader.read_bytes(i), **kwargs)
        stops[result.stopped or "eos"] += 1
        per_sample.append((result.stopped or "eos", result.latex))
        seconds.append(result.seconds)
        try:
            exact += canonical(result.latex) == record["latex"]
        except Exception:  # noqa: BLE001 - an unparsable reading simply does not match
            pass
        tokens.append(len(result.latex))
    seconds_a = np.array(seconds)
    return {"stopped": dict(stops.most_common()), "seconds_max": round(float(seconds_a.max()), 3),
            "seconds_median": round(float(np.median(seconds_a)), 3), "seconds_total": round(float(seconds_a.sum()), 1),
            "exact_match": exact, "mean_latex_chars": round(float(np.mean(tokens)), 1), "per_sample": per_sample}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=Path, default=REPO / "data" / "shards" / "val")
    parser.add_argument("--corpus", type=Path, default=REPO / "data" / "corpus")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "decoding_bounds.json")
    args = parser.parse_args(argv)

    import torch

    from model.data.shards import ShardReader
    from model.decoding import DEFAULT_GUARD
    from model.inference import DEFAULT_TIME_BUDGET, Recognizer

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="im2latex-bounds-") as tmp:
        model = args.model
        if model is None:
            model = REPO / "runs" / "first" / "best.pt"
            if not model.exists():
                sys.path.insert(0, str(REPO / "tests"))
                from tiny_model import train_tiny_model

                model = train_tiny_model(Path(tmp) / "tiny")
        recognizer = Recognizer(model, "cpu", threads=args.threads)
        loaded = recognizer.load()
        reader = ShardReader(args.split)
        start = time.perf_counter()
        bounded = run(recognizer, reader, args.samples)
        recognizer.guard = None  # the same snips with the loop guard off
        unguarded = run(recognizer, reader, args.samples)
        recognizer.guard = DEFAULT_GUARD
        # With the guard on, a reading may differ from the unguarded one only by a cut loop.
        changed = [{"index": i, "bounded": b, "guard_off": u[0], "guard_off_latex": u[1][:200], "latex": b_latex[:200]}
                   for i, ((b, b_latex), u) in enumerate(zip(bounded.pop("per_sample"), unguarded.pop("per_sample")))
                   if (b, b_latex) != u]
        summary = {
            "model": str(model.relative_to(REPO) if model.is_relative_to(REPO) else "tiny test model"),
            "model_meta": {k: loaded.meta.get(k) for k in ("total_steps", "best_val_exact_match", "best_val_bleu4")},
            "split": str(args.split.relative_to(REPO) if args.split.is_relative_to(REPO) else args.split),
            "samples": min(args.samples, len(reader)),
            "token_limit": loaded.config.max_len - 1,
            "time_budget_s": DEFAULT_TIME_BUDGET,
            "guard": {"max_ngram": DEFAULT_GUARD.max_ngram, "min_repeats": DEFAULT_GUARD.min_repeats,
                      "min_span": DEFAULT_GUARD.min_span},
            "bounded": bounded,
            "guard_off": unguarded,
            "changed_by_the_guard": changed,
            "threads": args.threads,
            "seconds": round(time.perf_counter() - start, 1),
        }
    if args.corpus.is_dir():
        summary["corpus_false_alarms"] = corpus_false_alarms(args.corpus, DEFAULT_GUARD)
    args.out.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
