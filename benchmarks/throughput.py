"""Batch throughput: ``im2latex predict`` on 200 test images, and ``recognize_batch`` for comparison.

``predict`` is timed as a user runs it (a fresh process: torch import and model load included),
and its steady rate is read from the per-image seconds it prints with ``--json``.  The
in-process ``Recognizer.recognize_batch`` figure (width-sorted batches) shows what decoding many
images at once would give the command.

    .venv/bin/python benchmarks/throughput.py [--model DIR] [--images 200] [--batch 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import model  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads OpenMP)
from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.testset import TEST_SPLIT, first_samples, model_path  # noqa: E402
from benchmarks.timing import json_rows, run_cli, save_result  # noqa: E402


def predict_command(model_dir: Path, files: list[Path], threads: int | None) -> dict:
    command = ["predict", "--json", "--device", "cpu", "--model", str(model_dir)]
    if threads:
        command += ["--threads", str(threads)]
    proc, wall = run_cli(command + [str(f) for f in files], timeout=3600)
    rows = json_rows(proc.stdout)
    ok = [r for r in rows if "latex" in r]
    busy = sum(r["seconds"] for r in ok)
    return {"images": len(files), "recognized": len(ok), "failed": len(rows) - len(ok), "exit_code": proc.returncode,
            "threads": threads, "process_s": round(wall, 2), "images_per_s": round(len(files) / wall, 2),
            "recognition_s": round(busy, 2), "steady_images_per_s": round(len(ok) / busy, 2) if busy else None,
            "start_up_s": round(wall - busy, 2)}


def recognize_batches(model_dir: Path, images: list, batch: int, threads: int | None) -> dict:
    from model.inference import Recognizer

    recognizer = Recognizer(model_path=model_dir, device="cpu", threads=threads, warmup=True)
    recognizer.load()
    order = sorted(range(len(images)), key=lambda i: images[i].size[0])
    start = time.perf_counter()
    for k in range(0, len(order), batch):
        recognizer.recognize_batch([images[i] for i in order[k:k + batch]])
    seconds = time.perf_counter() - start
    return {"images": len(images), "batch": batch, "threads": threads, "seconds": round(seconds, 2),
            "images_per_s": round(len(images) / seconds, 2)}


def run_throughput(model_arg: str | None = None, count: int = 200, batch: int = 16, threads: int | None = None,
                   split: Path = TEST_SPLIT) -> dict:
    path, how = model_path(model_arg)
    if path is None:
        return {"skipped": "no trained model (bundle one in resources/model or pass --model)"}
    samples = first_samples(split, count, seed=1)
    result: dict = {"model": str(path), "model_source": how, "machine_before": machine_info()}
    with tempfile.TemporaryDirectory(prefix="im2latex-predict-bench-") as tmp:
        files = []
        for i, s in enumerate(samples):
            files.append(Path(tmp) / f"{i:04d}.png")
            s.image.save(files[-1])
        result["predict"] = predict_command(path, files, threads)
    result["recognize_batch"] = recognize_batches(path, [s.image for s in samples], batch, threads)
    result["machine_after"] = machine_info()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "throughput.json")
    args = parser.parse_args()
    result = run_throughput(args.model, args.images, args.batch, args.threads)
    save_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
