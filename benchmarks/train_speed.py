"""Training samples per second on this machine: a short run of the real ``im2latex train``.

Runs the training command itself (real shards from ``data/shards/train``, augmentation, the
project's ``train.json`` batch settings) for a few steps into a temporary folder, and reads the
trainer's own ``samples_per_s`` from its ``metrics.jsonl``, skipping the first logging window
(start-up, first batches).  float32 always; bf16 autocast only where the CPU has native bf16
(AVX512-BF16 or AMX), since elsewhere it is emulated and about 100x slower, so it is skipped
with that reason.  On a GPU both run on the GPU.

    .venv/bin/python benchmarks/train_speed.py [--steps 16] [--log-every 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import model  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads OpenMP)
from benchmarks.machine import machine_info, native_bf16  # noqa: E402
from benchmarks.timing import json_rows, run_cli, save_result  # noqa: E402


def _train(data: Path, out: Path, steps: int, log_every: int, amp: str, threads: int) -> dict:
    settings = json.loads((REPO / "train.json").read_text()) if (REPO / "train.json").exists() else {}
    settings.update(data=str(data), out=str(out), steps=steps, log_every=log_every, eval_every=10 ** 9,
                    save_every=10 ** 9, amp=amp, threads=threads, max_minutes=0)
    config = out / "bench_train.json"
    out.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(settings))
    proc, wall = run_cli(["train", "--config", str(config)], timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"training run failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    rows = json_rows((out / "metrics.jsonl").read_text())
    rates = [r["samples_per_s"] for r in rows if "samples_per_s" in r]
    steady = rates[1:] or rates
    return {"amp": amp, "steps": steps, "threads": threads, "windows": [round(r, 2) for r in rates],
            "samples_per_s": round(statistics.median(steady), 2), "process_s": round(wall, 1),
            "batch_size": settings.get("batch_size"), "batch_pixels": settings.get("batch_pixels")}


def run_train_speed(data: Path = REPO / "data", steps: int = 16, log_every: int = 4, threads: int = 0) -> dict:
    import torch

    if not (data / "shards" / "train").exists():
        return {"skipped": f"no training shards in {data / 'shards' / 'train'}"}
    result: dict = {"data": str(data / "shards" / "train"), "machine_before": machine_info()}
    gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="im2latex-train-bench-") as tmp:
        result["float32"] = _train(data, Path(tmp) / "fp32", steps, log_every, "off", threads)
        if (gpu and torch.cuda.is_bf16_supported()) or (not gpu and native_bf16()):
            result["bf16"] = _train(data, Path(tmp) / "bf16", steps, log_every, "auto", threads)
        else:
            result["bf16"] = {"skipped": "this CPU has no native bf16 (AVX512-BF16/AMX); emulated bf16 "
                                         f"autocast is about 100x slower (CPU capability "
                                         f"{torch.backends.cpu.get_cpu_capability()})"}
    result["device"] = "cuda" if gpu else "cpu"
    result["machine_after"] = machine_info()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--log-every", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default (all cores)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "train_speed.json")
    args = parser.parse_args()
    result = run_train_speed(args.data, args.steps, args.log_every, args.threads)
    save_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
