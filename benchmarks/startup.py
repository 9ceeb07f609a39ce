"""Start-up and memory: model load time, launch to window, launch to first recognition, RSS.

Each measurement is a fresh process (a user's launch), repeated and summarized by the median:
* ``load``: ``import torch`` and the model code, ``Recognizer.load()`` without warm-up, the
  warm-up itself, and the first real recognition after it;
* ``app``: ``benchmarks/app_probe.py`` runs the real app offscreen and reports launch -> main
  window shown, launch -> model ready (loaded and warmed up, so a snip is answered at once),
  launch -> first result, whether torch was imported before the window showed (it must not be)
  and in which thread, the idle RSS once the model is ready, and the peak RSS while it
  recognizes a long formula.

    .venv/bin/python benchmarks/startup.py [--model DIR] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.testset import TEST_SPLIT, bucketed_samples, model_path  # noqa: E402

LOAD_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
from model.inference import Recognizer
from PIL import Image
t2 = time.perf_counter()
r = Recognizer(model_path=sys.argv[1], device="cpu")
r.load()
t3 = time.perf_counter()
r.warm_up()
t4 = time.perf_counter()
r.recognize(Image.open(sys.argv[2]))
t5 = time.perf_counter()
rss = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")][0]
print("LOAD " + json.dumps({"import_torch_s": t1 - t0, "import_model_code_s": t2 - t1, "load_s": t3 - t2,
                            "warm_up_s": t4 - t3, "first_recognition_s": t5 - t4, "rss_kb": rss,
                            "torchvision_imported": "torchvision" in sys.modules,
                            "dynamo_imported": "torch._dynamo" in sys.modules, "int8": r.int8}))
"""


def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def _tagged_json(output: str, tag: str) -> dict:
    for line in output.splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1:])
    raise RuntimeError(f"no {tag} line in the output:\n{output[-2000:]}")


def measure_load(model: Path, image: Path, runs: int) -> dict:
    rows = []
    for _ in range(runs):
        start = time.time()
        proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(model), str(image)], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        row = _tagged_json(proc.stdout + proc.stderr, "LOAD")
        row["process_s"] = time.time() - start
        rows.append(row)
    keys = ["import_torch_s", "import_model_code_s", "load_s", "warm_up_s", "first_recognition_s", "process_s"]
    return {"runs": rows, **{k: _median(rows, k) for k in keys},
            "rss_mb": round(statistics.median(r["rss_kb"] for r in rows) / 1024),
            "torchvision_imported": rows[0]["torchvision_imported"], "dynamo_imported": rows[0]["dynamo_imported"],
            "int8": rows[0]["int8"]}


def measure_app(model: Path, image: Path, runs: int) -> dict:
    rows = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="im2latex-bench-") as tmp:
            env = dict(os.environ, QT_QPA_PLATFORM="offscreen", IM2LATEX_DATA_DIR=f"{tmp}/data",
                       IM2LATEX_CONFIG_DIR=f"{tmp}/config", IM2LATEX_RUNTIME_DIR=f"{tmp}/run")
            launch = time.time()
            proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "app_probe.py"), "--model", str(model),
                                   "--image", str(image)], cwd=REPO, env=env, capture_output=True, text=True,
                                  timeout=400)
            ev = _tagged_json(proc.stdout + proc.stderr, "PROBE")
        if "error" in ev:
            raise RuntimeError(f"the app probe failed: {ev['error']}")
        idle, recog = ev.get("memory_idle_kb", {}), ev.get("memory_recognition_kb", {})
        rows.append({
            "launch_to_window_s": ev["window_shown"] - launch,
            "launch_to_model_ready_s": ev["model_ready"] - launch,
            "launch_to_first_result_s": ev["result"] - launch,
            "interpreter_start_s": ev["probe_start"] - launch,
            "first_result_latency_s": ev["result"] - ev["submit"],
            "torch_loaded_at_show": ev["torch_loaded_at_show"],
            "torch_import_thread": ev.get("torch_import_qthread") or ev.get("torch_import_thread"),
            "launch_to_torch_import_s": ev["torch_import_at"] - launch if "torch_import_at" in ev else None,
            "torch_import_on_main_thread": ev.get("torch_import_on_main_thread"),
            "idle_rss_mb": idle.get("VmRSS", 0) / 1024,
            "idle_pss_mb": idle.get("Pss", 0) / 1024,
            "idle_anonymous_mb": idle.get("Anonymous", 0) / 1024,
            "recognition_peak_rss_mb": (recog.get("VmHWM", 0) / 1024) if ev.get("peak_reset") else None,
            "recognition_rss_mb": recog.get("VmRSS", 0) / 1024,
        })
    keys = [k for k, v in rows[0].items() if isinstance(v, float)]
    summary = {k: _median(rows, k) for k in keys}
    summary["torch_loaded_at_show"] = any(r["torch_loaded_at_show"] for r in rows)
    summary["torch_import_on_main_thread"] = any(r["torch_import_on_main_thread"] for r in rows)
    summary["torch_import_thread"] = rows[0]["torch_import_thread"]
    return {"runs": rows, **summary}


def long_formula_image(out_dir: Path, split: Path = TEST_SPLIT) -> tuple[Path, dict]:
    """A long test formula written as PNG, and what it is."""
    sample = max(bucketed_samples(split, per_bucket=10)["long"], key=lambda s: s.tokens)
    path = out_dir / "long_formula.png"
    sample.image.save(path)
    return path, {"name": sample.name, "tokens": sample.tokens, "size": list(sample.image.size)}


def run_startup(model: str | None = None, runs: int = 3) -> dict:
    path, how = model_path(model)
    if path is None:
        return {"skipped": "no trained model to load (bundle one in resources/model or pass --model)"}
    with tempfile.TemporaryDirectory(prefix="im2latex-bench-") as tmp:
        image, formula = long_formula_image(Path(tmp))
        before = machine_info()
        load = measure_load(path, image, runs)
        app = measure_app(path, image, runs)
    return {"model": str(path), "model_source": how, "formula": formula, "runs": runs, "load": load, "app": app,
            "machine_before": before, "machine_after": machine_info()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "startup.json")
    args = parser.parse_args()
    result = run_startup(args.model, args.runs)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    summary = {k: v for k, v in result.items() if k not in ("machine_before", "machine_after")}
    for part in ("load", "app"):
        if part in summary:
            summary[part] = {k: v for k, v in summary[part].items() if k != "runs"}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
