"""Where the app's resident memory goes: RSS after each import/load step, in one fresh process.

Steps, cumulative: Python, Qt (a QApplication), matplotlib's mathtext (the preview), torch,
the model code, the model loaded and warmed up as the app does it (``Recognizer(warmup=True)``,
whose ``load`` ends with ``model.memory.release_unused_memory``: heap trimmed, the CUDA
libraries' clean pages unmapped on the CPU), one recognition.  Also noted: whether
torchvision or torch._dynamo got imported (neither should: they cost ~210 MB).  With ``--cpu-torch-python`` (a Python whose torch is a CPU-only build) the RSS of
``import torch`` there is added, to show what the CUDA build's libraries cost on a CPU machine.

    .venv/bin/python benchmarks/memory.py --model DIR [--cpu-torch-python /path/to/python]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

STEPS_SCRIPT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
def rss():
    return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")][0] / 1024
steps = [("python", rss(), 0.0)]
def step(name, fn):
    t = time.perf_counter(); fn(); steps.append((name, rss(), time.perf_counter() - t))
def qt():
    global app
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
step("Qt (QApplication)", qt)
step("matplotlib mathtext (preview)", lambda: __import__("matplotlib.mathtext"))
import model  # OMP_WAIT_POLICY before torch
step("torch", lambda: __import__("torch"))
step("model code (model.inference)", lambda: __import__("model.inference"))
def load():
    global r
    from model.inference import Recognizer
    r = Recognizer(model_path=sys.argv[1], device="cpu", warmup=True); r.load()
step("Recognizer.load() + warm-up, then memory released", load)
def recognize():
    from PIL import Image, ImageDraw
    canvas = Image.new("L", (400, 60), 255)
    ImageDraw.Draw(canvas).text((10, 20), "x^2 + y_1 = z", fill=0)
    r.recognize(canvas)
step("one recognition", recognize)
steps.append(("(torchvision / torch._dynamo imported: %s / %s)" % ("torchvision" in sys.modules, "torch._dynamo" in sys.modules), rss(), 0.0))
print("STEPS " + json.dumps([{"step": n, "rss_mb": round(m), "seconds": round(s, 2)} for n, m, s in steps]))
"""

TORCH_ONLY = r"""
import json, time
t = time.perf_counter()
import torch
s = time.perf_counter() - t
rss = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")][0] / 1024
print("TORCH " + json.dumps({"torch": torch.__version__, "rss_mb": round(rss), "import_s": round(s, 2)}))
"""


def _tagged(command: list[str], tag: str, env: dict | None = None) -> object:
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1:])
    raise RuntimeError(f"no {tag} line:\n{(proc.stdout + proc.stderr)[-2000:]}")


def run_memory(model_dir: Path, cpu_torch_python: str | None = None) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result: dict = {"steps": _tagged([sys.executable, "-c", STEPS_SCRIPT, str(model_dir), str(REPO)], "STEPS", env)}
    result["this_torch"] = _tagged([sys.executable, "-c", TORCH_ONLY], "TORCH")
    if cpu_torch_python:
        result["cpu_only_torch"] = _tagged([cpu_torch_python, "-c", TORCH_ONLY], "TORCH")
    return result


def markdown(result: dict) -> str:
    lines = ["| step (cumulative, one process) | RSS MB | + MB | seconds |", "|---|---:|---:|---:|"]
    previous = 0
    for s in result["steps"]:
        lines.append(f"| {s['step']} | {s['rss_mb']} | {s['rss_mb'] - previous:+d} | {s['seconds']:.2f} |")
        previous = s["rss_mb"]
    t = result["this_torch"]
    lines += ["", "| `import torch` alone | RSS MB | seconds |", "|---|---:|---:|",
              f"| torch {t['torch']} (this install) | {t['rss_mb']} | {t['import_s']:.2f} |"]
    if "cpu_only_torch" in result:
        c = result["cpu_only_torch"]
        lines.append(f"| torch {c['torch']} (a CPU-only build) | {c['rss_mb']} | {c['import_s']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    from benchmarks.testset import model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--cpu-torch-python", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "memory.json")
    args = parser.parse_args()
    path, _ = model_path(args.model)
    if path is None:
        print("no model to load; pass --model", file=sys.stderr)
        return 2
    result = run_memory(path, args.cpu_torch_python)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
