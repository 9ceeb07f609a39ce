"""How long ``model.preprocess.preprocess`` takes per image, for small, medium and large snips.

It runs for every training sample in the data loader, so it must stay in the low
milliseconds.  The inputs are synthetic screenshots (RGB, a matplotlib-rendered formula on a
white or dark background); the machine is shared, so the best of several repeats is the
number to compare (the median is reported too).

    .venv/bin/python benchmarks/preprocess_speed.py [--repeats 7] [--out benchmarks/preprocess_speed.json]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from matplotlib import mathtext
from matplotlib.font_manager import FontProperties
from PIL import Image

from model.config import InputSpec
from model.preprocess import preprocess

FORMULA = r"$x^{2} + \frac{a+b}{\sqrt{c}} = \sum_{i=1}^{n} \alpha_i \cdot y$"


def _render(dpi: int) -> Image.Image:
    buffer = io.BytesIO()
    mathtext.math_to_image(FORMULA, buffer, prop=FontProperties(size=16), dpi=dpi, format="png")
    return Image.open(buffer).convert("RGB")


def _snip(size: tuple[int, int], dpi: int, dark: bool = False) -> Image.Image:
    """A ``size`` screenshot with the formula rendered at ``dpi`` near its top-left corner."""
    formula = _render(dpi)
    if dark:
        formula = Image.eval(formula, lambda v: 255 - v)
    canvas = Image.new("RGB", size, (0, 0, 0) if dark else (255, 255, 255))
    canvas.paste(formula.crop((0, 0, min(formula.width, size[0] - 10), min(formula.height, size[1] - 10))), (10, 10))
    return canvas


def _long_strip(size: tuple[int, int], dpi: int) -> Image.Image:
    """A very wide strip: the formula repeated along it."""
    formula = _render(dpi)
    canvas = Image.new("RGB", size, "white")
    for x in range(0, size[0], formula.width + 20):
        canvas.paste(formula, (x, max(0, (size[1] - formula.height) // 2)))
    return canvas


CASES = {
    "small 400x120": lambda: _snip((400, 120), 130),
    "small dark 400x120": lambda: _snip((400, 120), 130, dark=True),
    "medium 1200x360": lambda: _snip((1200, 360), 400),
    "large 10000x300": lambda: _long_strip((10000, 300), 300),
    "large 20000x40": lambda: _long_strip((20000, 40), 40),
    "screen 3840x2160, small formula": lambda: _snip((3840, 2160), 150),
}


def measure(image: Image.Image, spec: InputSpec, repeats: int) -> dict:
    preprocess(image, spec)  # warm up
    start = time.perf_counter()
    preprocess(image, spec)
    once = time.perf_counter() - start
    number = max(1, min(200, int(0.3 / max(once, 1e-6))))  # about 0.3 s per repeat
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(number):
            preprocess(image, spec)
        times.append((time.perf_counter() - start) / number * 1000.0)
        cpu.append((time.process_time() - start_cpu) / number * 1000.0)
    out = preprocess(image, spec)
    return {"input": list(image.size), "output": list(out.shape), "best_ms": round(min(times), 3),
            "median_ms": round(statistics.median(times), 3), "best_cpu_ms": round(min(cpu), 3),
            "calls_per_repeat": number}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    spec = InputSpec()
    results = {}
    for name, make in CASES.items():
        results[name] = measure(make(), spec, args.repeats)
        r = results[name]
        print(f"{name:34s} -> {str(tuple(r['output'])):12s} best {r['best_ms']:8.3f} ms  median {r['median_ms']:8.3f} ms  cpu {r['best_cpu_ms']:8.3f} ms")
    report = {"machine": f"{platform.processor() or platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
              "numpy": np.__version__, "note": "ms per image; best wall-clock and best process-CPU time of the repeats (the CPU is shared with other jobs)", "cases": results}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
