"""Snip-to-LaTeX latency of one medium formula: greedy decoding on the CPU with 2 threads.

Uses the bundled model when there is one (``$IM2LATEX_MODEL`` or resources/model/), else the
default ModelConfig with untrained weights, which is fine for timing.  Decoding is forced to a
fixed number of tokens (EOS is forbidden until then), so an untrained model's random EOS does
not make the numbers meaningless and runs are comparable between models.  Prints a summary and
writes benchmarks/latency.json.

    .venv/bin/python benchmarks/latency.py [--runs 30] [--tokens 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from model.batching import pad_batch  # noqa: E402
from model.checkpoint import load_model  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.decoding import greedy_decode  # noqa: E402
from model.errors import Im2LatexError  # noqa: E402
from model.inference import default_model_path  # noqa: E402
from model.network import Im2LatexModel, count_parameters  # noqa: E402
from model.preprocess import preprocess  # noqa: E402

FORMULA = r"\frac{-b\pm\sqrt{b^{2}-4ac}}{2a}=x_{1,2}"
UNTRAINED_VOCAB = 600  # about the size of the corpus vocabulary


def render(latex: str, dpi: int = 200) -> Image.Image:
    """The formula drawn with matplotlib mathtext, black on white, as a screen snip would be."""
    from matplotlib import mathtext

    buffer = io.BytesIO()
    mathtext.math_to_image(f"${latex}$", buffer, dpi=dpi, format="png", color="black")
    buffer.seek(0)
    rgba = Image.open(buffer).convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def pick_model() -> tuple[Im2LatexModel, ModelConfig, str, bool]:
    path = default_model_path()
    try:
        loaded = load_model(path, device="cpu")
        return loaded.model, loaded.config, str(path), True
    except Im2LatexError as error:
        print(f"no trained model ({error}); timing untrained default weights", file=sys.stderr)
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=UNTRAINED_VOCAB)
    return Im2LatexModel(config).eval(), config, f"untrained default ModelConfig (vocab {UNTRAINED_VOCAB})", False


def measure(model: Im2LatexModel, config: ModelConfig, image: Image.Image, tokens: int, threads: int,
            runs: int) -> dict:
    """Median/p95 of preprocess + encode + a fixed-length greedy decode, with ``threads`` threads."""
    torch.set_num_threads(threads)
    max_len = min(tokens + 1, config.max_len)

    def once() -> tuple[float, float, float]:
        t0 = time.perf_counter()
        images, sizes = pad_batch([preprocess(image, config.input)])
        t1 = time.perf_counter()
        with torch.inference_mode():
            model.encode(images, sizes)
        t2 = time.perf_counter()
        decoded = greedy_decode(model, images, sizes, max_len, min_len=tokens)  # encodes again
        t3 = time.perf_counter()
        assert len(decoded[0].ids) == max_len - 1, "decoding did not run to the fixed length"
        return t1 - t0, t2 - t1, t3 - t2

    for _ in range(3):  # warm-up: allocator, oneDNN kernels, lazy imports
        once()
    prep, enc, total = [], [], []
    for _ in range(runs):
        p, e, d = once()
        prep.append(p)
        enc.append(e)
        total.append(p + d)  # preprocess + the encode and decoding inside greedy_decode
    median = statistics.median(total)
    return {
        "threads": threads,
        "runs": runs,
        "median_s": round(median, 4),
        "p95_s": round(percentile(total, 95), 4),
        "min_s": round(min(total), 4),
        "preprocess_median_s": round(statistics.median(prep), 4),
        "encode_median_s": round(statistics.median(enc), 4),
        "decode_median_s": round(median - statistics.median(prep) - statistics.median(enc), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=30, help="decode exactly this many tokens")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "latency.json")
    args = parser.parse_args()

    load_before = os.getloadavg()  # other work on the machine shows up in the numbers
    model, config, model_name, trained = pick_model()
    image = render(FORMULA)
    array = preprocess(image, config.input)
    main_run = measure(model, config, image, args.tokens, args.threads, args.runs)
    result = {
        "model": model_name,
        "trained": trained,
        "parameters": count_parameters(model),
        "formula": FORMULA,
        "snip_size": list(image.size),
        "input_size": list(array.shape),
        "tokens": args.tokens,
        **main_run,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "note": ("untrained weights, decoding forced to a fixed length; " if not trained else "")
                + "measured on a machine that may be shared; compare medians, not single runs",
    }
    if args.threads != 1:  # on a busy machine a single thread can beat several spinning ones
        result["one_thread"] = measure(model, config, image, args.tokens, 1, args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"{model_name}: {result['parameters']:,} parameters, input {array.shape[0]}x{array.shape[1]}, "
          f"{args.tokens} tokens")
    for run in [main_run] + ([result["one_thread"]] if "one_thread" in result else []):
        print(f"{run['threads']} thread(s): median {run['median_s'] * 1000:.1f} ms, p95 {run['p95_s'] * 1000:.1f} ms "
              f"(preprocess {run['preprocess_median_s'] * 1000:.1f} ms, encode {run['encode_median_s'] * 1000:.1f} ms, "
              f"decode {run['decode_median_s'] * 1000:.1f} ms)")
    if not trained:
        print("note: untrained weights (no model bundle found); timing only, the output is noise")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
