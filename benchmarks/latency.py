"""Snip latency: one test-split formula image in, LaTeX out, through ``Recognizer.recognize``.

Per length bucket (short < 10 tokens, medium 10-40, long 41-150), greedy and beam 4, on the CPU
with 1 and 2 threads (and the GPU when there is one): p50 and p95 over the bucket's images.  A
model that reads each snip at several glyph scales (``input.reading_scales``) is also timed
reading once (greedy), and one that reads the other scales only for unsure snips
(``input.reread_below``: readings "1-2") also reading every scale always, so the table shows
what the extra readings cost; so do a few larger scale sets (``MORE_SCALES``, greedy, 1 thread),
whose accuracy ``benchmarks/reading_policy.py`` measures.  A
figure is the whole snip as the app sees it: image conversion, preprocessing, encoding and
decoding.  The thread counts are interleaved image by image, so load on a shared machine falls
on all of them alike.

Without a trained model (none bundled, none given) the default network with untrained weights
is timed, its decoding forced to each formula's reference length (an untrained model's EOS
falls at random), and the result says so.

    .venv/bin/python benchmarks/latency.py [--model DIR] [--per-bucket 20] [--threads 1,2] [--beams 1,4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import model  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads OpenMP)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.testset import TEST_SPLIT, TestSample, bucketed_samples, model_path  # noqa: E402
from model.metrics import tokens_of  # noqa: E402

UNTRAINED_VOCAB = 600  # about the size of the corpus vocabulary

Snip = Callable[[TestSample, int], str]  # (sample, beam) -> LaTeX
# Larger sets of reading scales timed beside the model's own (greedy, 1 thread): what reading
# each snip three or five times would cost (benchmarks/reading_policy.py: what it would buy).
MORE_SCALES = ((1.0, 1.3, 1.15), (1.0, 1.3, 1.15, 0.85, 1.5))


def percentiles(seconds: list[float]) -> dict:
    """p50/p95/mean in milliseconds (numpy's linear interpolation), and how many."""
    values = np.array(seconds) * 1000.0
    return {"n": len(seconds), "p50_ms": round(float(np.percentile(values, 50)), 1),
            "p95_ms": round(float(np.percentile(values, 95)), 1), "mean_ms": round(float(values.mean()), 1)}


def recognizer_snip(recognizer) -> Snip:
    return lambda sample, beam: recognizer.recognize(sample.image, beam=beam).latex


def untrained_snip(seed: int = 0) -> tuple[Snip, object]:
    """The default network with random weights, decoding forced to the reference length."""
    from model.batching import pad_batch
    from model.config import ModelConfig
    from model.decoding import beam_search, greedy_decode
    from model.network import Im2LatexModel
    from model.preprocess import preprocess

    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=UNTRAINED_VOCAB)
    model = Im2LatexModel(config).eval()

    def snip(sample: TestSample, beam: int) -> str:
        images, sizes = pad_batch([preprocess(sample.image.convert("RGB"), config.input)])
        n = min(sample.tokens, config.max_len - 2)
        if beam == 1:
            greedy_decode(model, images, sizes, n + 2, min_len=n)
        else:
            beam_search(model, images, sizes, beam, n + 2, min_len=n)
        return ""

    return snip, model


def time_bucket(snip: Snip, samples: list[TestSample], beam: int, threads: list[int] | None) -> dict:
    """Each image once per thread count, thread counts interleaved; {threads: [seconds]} and outputs."""
    keys = threads or [0]
    seconds: dict[int, list[float]] = {t: [] for t in keys}
    out_tokens: list[int] = []
    for sample in samples:
        for t in keys:
            if t:
                torch.set_num_threads(t)
            start = time.perf_counter()
            latex = snip(sample, beam)
            seconds[t].append(time.perf_counter() - start)
        out_tokens.append(len(tokens_of(latex)) if latex else sample.tokens)
    return {"seconds": seconds, "out_tokens": out_tokens}


def warm_up(snip: Snip, samples: dict[str, list[TestSample]], threads: list[int] | None, beams: list[int]) -> None:
    """One image of every bucket per setting, so no first call pays for lazy set-up."""
    for t in threads or [0]:
        if t:
            torch.set_num_threads(t)
        for beam in beams:
            for bucket in samples.values():
                if bucket:
                    snip(bucket[0], beam)


def measure(snip: Snip, samples: dict[str, list[TestSample]], device: str, threads: list[int] | None,
            beams: list[int]) -> list[dict]:
    """Rows {device, threads, beam, bucket, n, p50_ms, p95_ms, mean_ms, ref_tokens, out_tokens}."""
    warm_up(snip, samples, threads, beams)
    rows = []
    for beam in beams:
        for bucket, items in samples.items():
            if not items:
                continue
            timed = time_bucket(snip, items, beam, threads)
            for t, secs in timed["seconds"].items():
                rows.append({"device": device, "threads": t or None, "beam": beam, "bucket": bucket,
                             **percentiles(secs),
                             "ref_tokens_mean": round(statistics.fmean(s.tokens for s in items), 1),
                             "out_tokens_mean": round(statistics.fmean(timed["out_tokens"]), 1)})
    return rows


def run_latency(model: str | None = None, per_bucket: int = 20, threads: list[int] = (1, 2),
                beams: list[int] = (1, 4), split: Path = TEST_SPLIT, more_scales=MORE_SCALES) -> dict:
    """The whole latency table as a dict (what ``results.json`` holds under "latency")."""
    from model.inference import Recognizer, default_threads

    path, how = model_path(model)
    samples = bucketed_samples(split, per_bucket)
    result: dict = {"split": str(split), "per_bucket": per_bucket, "app_threads": default_threads(),
                    "machine_before": machine_info()}
    if path is not None:
        recognizer = Recognizer(model_path=path, device="cpu")
        recognizer.load()
        snip = recognizer_snip(recognizer)
        result.update(model=str(path), model_source=how, trained=True, int8=recognizer.int8)
    else:
        snip, _ = untrained_snip()
        result.update(model=f"untrained default ModelConfig (vocab {UNTRAINED_VOCAB}), decoding forced "
                            "to the reference length", model_source=how, trained=False, int8=False)
    rows = measure(snip, samples, "cpu", list(threads), list(beams))
    scales = recognizer.scales if path is not None else (1.0,)
    adaptive = path is not None and len(scales) > 1 and recognizer.load().config.input.reread_below is not None
    readings = f"1-{len(scales)}" if adaptive else len(scales)
    result["app_readings"] = readings  # the targets are read on these rows
    for row in rows:
        row["readings"] = readings
    # explicit scales, each one read, always (greedy): (readings label, scales, thread counts)
    others = ([(1, (1.0,), threads)] if len(scales) > 1 else []) + ([(len(scales), scales, threads)] if adaptive else [])
    others += [(f"{len(fixed)} ({', '.join(f'{s:g}' for s in fixed)})", tuple(fixed), [1])
               for fixed in (more_scales if path is not None else ()) if tuple(fixed) != tuple(scales)]
    for label, fixed, counts in others:
        other = Recognizer(model_path=path, device="cpu", scales=fixed)
        other.load()
        rows += [{**row, "readings": label}
                 for row in measure(recognizer_snip(other), samples, "cpu", list(counts), [1])]
    if torch.cuda.is_available() and path is not None:
        gpu = Recognizer(model_path=path, device="cuda")
        gpu.load()
        rows += measure(recognizer_snip(gpu), samples, "cuda", None, list(beams))
    result["rows"] = rows
    result["machine_after"] = machine_info()
    return result


def markdown(result: dict) -> str:
    lines = ["| device | threads | decoding | readings | formulas | n | p50 ms | p95 ms | tokens out (ref) |",
             "|---|---:|---|---:|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        decoding = "greedy" if r["beam"] == 1 else f"beam {r['beam']}"
        lines.append(f"| {r['device']} | {r['threads'] or '-'} | {decoding} | {r.get('readings', 1)} | {r['bucket']} | {r['n']} | "
                     f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['out_tokens_mean']:.0f} ({r['ref_tokens_mean']:.0f}) |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--per-bucket", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--beams", default="1,4")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "latency.json")
    args = parser.parse_args()
    result = run_latency(args.model, args.per_bucket, [int(t) for t in args.threads.split(",")],
                         [int(b) for b in args.beams.split(",")])
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(result["model"])
    print(markdown(result))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
