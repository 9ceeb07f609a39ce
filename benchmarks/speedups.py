"""Before/after of each speed-up, both sides timed in the same run on the same formulas.

Medium test formulas (10-40 tokens), greedy, one image per snip unless said otherwise:
* cached incremental decoding vs re-running the decoder over the whole prefix at each step;
* ``torch.inference_mode`` vs ``no_grad`` vs autograd left on, in the same decoding loop;
* warmed-up model vs cold: the first snip in a fresh process with and without ``warm_up()``;
* threads 1 vs 2 with passive and active OpenMP waits (fresh processes, ``OMP_WAIT_POLICY``);
* dynamic int8 Linear layers vs float32: latency and BLEU-4 on a few hundred test formulas;
* a batch whose finished items leave it (EOS per item) vs one run until its longest item ends.

An untrained model (no trained one found) has its decoding forced to the reference length, so
the timings still compare like with like; its accuracy rows are skipped.

    .venv/bin/python benchmarks/speedups.py [--model DIR] [--samples 20] [--accuracy-samples 300]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import model  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads OpenMP)
import torch  # noqa: E402

from benchmarks.latency import percentiles  # noqa: E402
from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.testset import TEST_SPLIT, TestSample, bucketed_samples, first_samples, model_path  # noqa: E402
from model.batching import pad_batch  # noqa: E402
from model.decoding import greedy_decode  # noqa: E402
from model.preprocess import preprocess  # noqa: E402
from model.vocab import BOS, EOS, PAD  # noqa: E402


class Subject:
    """The model under test: a trained bundle, or untrained weights decoded to a forced length."""

    def __init__(self, path: Path | None, int8: bool = False):
        from model.checkpoint import load_model
        from model.config import ModelConfig
        from model.inference import quantize_linear_int8
        from model.network import Im2LatexModel

        self.trained = path is not None
        if path is not None:
            loaded = load_model(path, device="cpu")
            self.model, self.config, self.vocab = loaded.model, loaded.config, loaded.vocab
        else:
            torch.manual_seed(0)
            self.config = ModelConfig(vocab_size=600)
            self.model, self.vocab = Im2LatexModel(self.config).eval(), None
        if int8:
            self.model = quantize_linear_int8(self.model)

    def inputs(self, samples: list[TestSample]) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_batch([preprocess(s.image, self.config.input) for s in samples])

    def limits(self, samples: list[TestSample]) -> tuple[int, int]:
        """(min_len, max_len): natural for a trained model, the reference length for an untrained one."""
        if self.trained:
            return 0, self.config.max_len
        n = min(max(s.tokens for s in samples), self.config.max_len - 2)
        return n, n + 2


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(variants: dict[str, Callable[[TestSample], object]], samples: list[TestSample],
                warm: int = 2) -> dict[str, dict]:
    """Each sample through every variant in turn (after ``warm`` untimed rounds): percentiles per variant."""
    for sample in samples[:warm]:
        for fn in variants.values():
            fn(sample)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for sample in samples:
        for name, fn in variants.items():
            seconds[name].append(_time(lambda: fn(sample)))
    return {name: percentiles(values) for name, values in seconds.items()}


def row(change: str, before: str, before_stats: dict, after: str, after_stats: dict, note: str = "") -> dict:
    return {"change": change, "before": before, "before_p50_ms": before_stats["p50_ms"],
            "before_p95_ms": before_stats["p95_ms"], "after": after, "after_p50_ms": after_stats["p50_ms"],
            "after_p95_ms": after_stats["p95_ms"],
            "speedup_p50": round(before_stats["p50_ms"] / max(after_stats["p50_ms"], 1e-6), 2),
            "n": after_stats["n"], "note": note}


# ----------------------------------------------------------------------------- in-process variants


def plain_greedy(model, images: torch.Tensor, sizes: torch.Tensor, min_len: int, max_len: int) -> list[list[int]]:
    """Greedy decoding of a batch with no row ever leaving it: every row runs until all have ended."""
    memory, pad_mask = model.encode(images, sizes)
    cache = model.start_decoding(memory, pad_mask)
    batch = memory.shape[0]
    tokens = torch.full((batch,), BOS, dtype=torch.long)
    done = torch.zeros(batch, dtype=torch.bool)
    out = []
    for step in range(max_len - 1):
        logits = model.decode_step(tokens, cache).float()
        logits[:, [PAD, BOS]] = float("-inf")
        if step < min_len:
            logits[:, EOS] = float("-inf")
        tokens = logits.argmax(-1)
        out.append(tokens)
        done |= tokens == EOS
        if bool(done.all()):
            break
    return torch.stack(out, 1).tolist()


def grad_modes(subject: Subject, samples: list[TestSample]) -> list[dict]:
    def variant(mode):
        def fn(sample):
            images, sizes = subject.inputs([sample])
            lo, hi = subject.limits([sample])
            ctx = {"grad": torch.enable_grad, "no_grad": torch.no_grad, "inference": torch.inference_mode}[mode]
            with ctx():
                plain_greedy(subject.model, images, sizes, lo, hi)
        return fn

    stats = interleaved({m: variant(m) for m in ("grad", "no_grad", "inference")}, samples)
    return [row("inference mode", "autograd on", stats["grad"], "torch.inference_mode", stats["inference"]),
            row("inference mode", "torch.no_grad", stats["no_grad"], "torch.inference_mode", stats["inference"])]


def caching(subject: Subject, samples: list[TestSample]) -> list[dict]:
    def variant(cached: bool):
        def fn(sample):
            images, sizes = subject.inputs([sample])
            lo, hi = subject.limits([sample])
            greedy_decode(subject.model, images, sizes, hi, min_len=lo, cached=cached)
        return fn

    stats = interleaved({"uncached": variant(False), "cached": variant(True)}, samples)
    return [row("cached incremental decoding", "whole prefix every step", stats["uncached"],
                "key/value cache", stats["cached"])]


def greedy_with_threads(subject: Subject, threads: int):
    """One timed variant: greedy decoding of a sample with ``threads`` torch threads."""
    def fn(sample):
        torch.set_num_threads(threads)
        images, sizes = subject.inputs([sample])
        lo, hi = subject.limits([sample])
        greedy_decode(subject.model, images, sizes, hi, min_len=lo)
    return fn


def threads_in_process(subject: Subject, samples: list[TestSample]) -> list[dict]:
    stats = interleaved({"1": greedy_with_threads(subject, 1), "2": greedy_with_threads(subject, 2)}, samples)
    return [row("threads (same process, interleaved)", "2 threads", stats["2"], "1 thread", stats["1"])]


def batch_early_stop(subject: Subject, samples: list[TestSample], batch: int = 16, rounds: int = 3) -> list[dict]:
    """Mixed-length batches: finished rows leave (greedy_decode) vs all rows to the end (plain_greedy)."""
    items = samples[:batch]
    images, sizes = subject.inputs(items)
    lo, hi = subject.limits(items)
    if not subject.trained:
        lo = 0  # forced lengths: let the untrained model's EOS fall where it falls in both variants
    variants = {
        "all rows": lambda: plain_greedy(subject.model, images, sizes, lo, hi),
        "rows leave": lambda: greedy_decode(subject.model, images, sizes, hi, min_len=lo),
    }
    with torch.inference_mode():
        for fn in variants.values():
            fn()
        seconds: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(rounds):
            for name, fn in variants.items():
                seconds[name].append(_time(fn) / len(items))
    stats = {k: percentiles(v) for k, v in seconds.items()}
    return [row(f"early stop per item (batch of {len(items)}, ms per image)", "batch runs to its longest item",
                stats["all rows"], "finished items leave the batch", stats["rows leave"],
                note=f"{rounds} rounds; tokens per item {min(s.tokens for s in items)}-{max(s.tokens for s in items)}")]


def int8_latency(path: Path | None, samples: list[TestSample]) -> tuple[list[dict], Subject, Subject]:
    fp32, int8 = Subject(path), Subject(path, int8=True)
    rows = []
    for threads in (1, 2):
        stats = interleaved({"fp32": greedy_with_threads(fp32, threads), "int8": greedy_with_threads(int8, threads)},
                            samples)
        rows.append(row(f"dynamic int8 Linear layers ({threads} thread{'s' if threads > 1 else ''})",
                        "float32", stats["fp32"], "int8", stats["int8"]))
    return rows, fp32, int8


def accuracy(subject: Subject, samples: list[TestSample], batch: int = 16) -> dict:
    """BLEU-4 / edit similarity / exact match of greedy decoding on ``samples`` (batched by width)."""
    from model.evaluate import report
    from model.tokenizer import detokenize

    order = sorted(range(len(samples)), key=lambda i: samples[i].image.size[0])
    predictions = [""] * len(samples)
    start = time.perf_counter()
    for k in range(0, len(order), batch):
        chunk = [samples[i] for i in order[k:k + batch]]
        images, sizes = subject.inputs(chunk)
        for i, d in zip(order[k:k + batch], greedy_decode(subject.model, images, sizes, subject.config.max_len)):
            predictions[i] = detokenize(subject.vocab.decode(d.ids))
    seconds = time.perf_counter() - start
    from model.evaluate import Sample

    rep = report([Sample(s.name, s.latex) for s in samples], predictions, [])
    overall = rep["overall"]
    return {"n": overall["n"], "bleu4": round(overall["bleu4"], 4), "edit_similarity": round(overall["edit_similarity"], 4),
            "exact_match": round(overall["exact_match"], 4), "seconds": round(seconds, 1)}


# ----------------------------------------------------------------------------- fresh processes

FIRST_SNIP_SCRIPT = r"""
import json, sys, time
from benchmarks.testset import bucketed_samples
from model.inference import Recognizer
samples = bucketed_samples(per_bucket=4)["medium"]
r = Recognizer(model_path=sys.argv[1] if sys.argv[1] != "-" else None, device="cpu", threads=int(sys.argv[3]))
r.load()
t0 = time.perf_counter()
if sys.argv[2] == "warm":
    r.warm_up()
t1 = time.perf_counter()
r.recognize(samples[0].image)
t2 = time.perf_counter()
r.recognize(samples[0].image)  # the same image again: what remains is the cost of being first
t3 = time.perf_counter()
print("FIRST " + json.dumps({"warm_up_s": t1 - t0, "first_s": t2 - t1, "second_s": t3 - t2}))
"""

POLICY_SCRIPT = r"""
import json, sys
from benchmarks.speedups import Subject, greedy_with_threads, interleaved
from benchmarks.testset import bucketed_samples
from pathlib import Path
subject = Subject(Path(sys.argv[1]) if sys.argv[1] != "-" else None)
samples = bucketed_samples(per_bucket=int(sys.argv[2]))["medium"]
variants = {"1": greedy_with_threads(subject, 1), "2": greedy_with_threads(subject, 2)}
print("POLICY " + json.dumps(interleaved(variants, samples)))
"""


def _run_tagged(script: str, args: list[str], tag: str, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1:])
    raise RuntimeError(f"no {tag} line:\n{(proc.stdout + proc.stderr)[-2000:]}")


def warm_up_rows(path: Path | None, runs: int = 2) -> list[dict]:
    arg = str(path) if path is not None else "-"
    rows = []
    for threads in (1, 2):
        cold = [_run_tagged(FIRST_SNIP_SCRIPT, [arg, "cold", str(threads)], "FIRST") for _ in range(runs)]
        warm = [_run_tagged(FIRST_SNIP_SCRIPT, [arg, "warm", str(threads)], "FIRST") for _ in range(runs)]
        first_cold = statistics.median(r["first_s"] for r in cold) * 1000
        first_warm = statistics.median(r["first_s"] for r in warm) * 1000
        warm_cost = statistics.median(r["warm_up_s"] for r in warm) * 1000
        second = statistics.median(r["second_s"] for r in cold + warm) * 1000
        rows.append({"change": f"warmed-up model ({threads} thread{'s' if threads > 1 else ''}): first snip after load",
                     "before": "cold", "before_p50_ms": round(first_cold, 1), "before_p95_ms": None,
                     "after": "warm_up() during load", "after_p50_ms": round(first_warm, 1), "after_p95_ms": None,
                     "speedup_p50": round(first_cold / max(first_warm, 1e-6), 2), "n": runs,
                     "note": f"warm-up itself {warm_cost:.0f} ms (in the background); the same snip again {second:.0f} ms"})
    return rows


def wait_policy_rows(path: Path | None, per_bucket: int) -> tuple[list[dict], dict]:
    arg = str(path) if path is not None else "-"
    results = {}
    for policy in ("PASSIVE", "ACTIVE"):
        env = dict(os.environ, OMP_WAIT_POLICY=policy)
        results[policy] = _run_tagged(POLICY_SCRIPT, [arg, str(per_bucket)], "POLICY", env)
    rows = [row("OpenMP waits, 2 threads", "ACTIVE (spinning)", results["ACTIVE"]["2"], "PASSIVE", results["PASSIVE"]["2"]),
            row("OpenMP waits, 1 thread", "ACTIVE (spinning)", results["ACTIVE"]["1"], "PASSIVE", results["PASSIVE"]["1"]),
            row("threads (PASSIVE waits)", "2 threads", results["PASSIVE"]["2"], "1 thread", results["PASSIVE"]["1"])]
    return rows, results


# ----------------------------------------------------------------------------- all of it


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_speedups(model: str | None = None, per_bucket: int = 20, accuracy_samples: int = 300,
                 split: Path = TEST_SPLIT, parts: set[str] | None = None) -> dict:
    path, how = model_path(model)
    parts = parts or {"cache", "grad", "warm", "policy", "threads", "int8", "batch"}
    samples = bucketed_samples(split, per_bucket)["medium"]
    result: dict = {"model": str(path) if path else "untrained default ModelConfig, forced lengths",
                    "model_source": how, "trained": path is not None, "formulas": "medium (10-40 tokens)",
                    "machine_before": machine_info(), "rows": []}
    subject = Subject(path)
    with _threads(1):
        if "cache" in parts:
            result["rows"] += caching(subject, samples[: max(6, per_bucket // 2)])
        if "grad" in parts:
            result["rows"] += grad_modes(subject, samples)
    if "threads" in parts:
        result["rows"] += threads_in_process(subject, samples)
    if "warm" in parts:
        result["rows"] += warm_up_rows(path)
    if "policy" in parts:
        rows, raw = wait_policy_rows(path, per_bucket)
        result["rows"] += rows
        result["wait_policy"] = raw
    if "int8" in parts:
        rows, fp32, int8 = int8_latency(path, samples)
        result["rows"] += rows
        if path is not None and accuracy_samples:
            test = first_samples(split, accuracy_samples)
            with _threads(2):
                result["int8_accuracy"] = {"float32": accuracy(fp32, test), "int8": accuracy(int8, test)}
            a = result["int8_accuracy"]
            a["bleu4_drop_points"] = round(100 * (a["float32"]["bleu4"] - a["int8"]["bleu4"]), 2)
            a["within_0_5_bleu"] = a["bleu4_drop_points"] <= 0.5
    if "batch" in parts:
        mixed = bucketed_samples(split, 6)
        items = [s for bucket in mixed.values() for s in bucket]
        with _threads(1):
            result["rows"] += batch_early_stop(subject, items)
    result["machine_after"] = machine_info()
    return result


def markdown(result: dict) -> str:
    lines = ["| change | before | p50 / p95 ms | after | p50 / p95 ms | speed-up (p50) | note |",
             "|---|---|---:|---|---:|---:|---|"]

    def ms(p50, p95):
        return f"{p50:.0f}" + (f" / {p95:.0f}" if p95 is not None else "")

    for r in result["rows"]:
        lines.append(f"| {r['change']} | {r['before']} | {ms(r['before_p50_ms'], r['before_p95_ms'])} | {r['after']} | "
                     f"{ms(r['after_p50_ms'], r['after_p95_ms'])} | {r['speedup_p50']:.2f}x | {r.get('note', '')} |")
    acc = result.get("int8_accuracy")
    if acc:
        lines += ["", "| weights | n | BLEU-4 | edit sim. | exact | seconds |", "|---|---:|---:|---:|---:|---:|"]
        for name in ("float32", "int8"):
            a = acc[name]
            lines.append(f"| {name} | {a['n']} | {a['bleu4']:.4f} | {a['edit_similarity']:.4f} | {a['exact_match']:.1%} | {a['seconds']} |")
        lines.append(f"\nint8 changes BLEU-4 by {-acc['bleu4_drop_points']:+.2f} points "
                     f"({'within' if acc['within_0_5_bleu'] else 'outside'} the 0.5-point allowance).")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--samples", type=int, default=20, help="medium formulas timed per variant")
    parser.add_argument("--accuracy-samples", type=int, default=300)
    parser.add_argument("--parts", default="", help="comma list of cache,grad,threads,warm,policy,int8,batch")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "speedups.json")
    args = parser.parse_args()
    parts = set(args.parts.split(",")) if args.parts else None
    result = run_speedups(args.model, args.samples, args.accuracy_samples, parts=parts)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
