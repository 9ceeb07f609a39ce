"""`make bench`: every benchmark in one run -> benchmarks/results.json, RESULTS.md, README table.

Parts (all by default): latency (per snip, by length, greedy/beam 4, 1/2 threads, GPU when
present), speedups (before/after of each speed-up), startup (model load, launch to window, to
first recognition, RSS), memory (RSS step by step), throughput (``im2latex predict`` on 200
images), train (samples/s of the real training step).  Rendering throughput is read from
``benchmarks/render_speed.json`` (``benchmarks/render_speed.py`` writes it; it needs TeX and minutes).

The model is ``--model``, else ``$IM2LATEX_MODEL``, else the bundled ``resources/model``; with
none, latency and speed-ups time untrained weights at forced lengths and the rest is skipped.

    .venv/bin/python benchmarks/run_all.py [--model DIR] [--quick] [--parts latency,startup,...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import model  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads OpenMP)
from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.report import render_summary, targets, write_reports  # noqa: E402
from benchmarks.testset import model_path  # noqa: E402

PARTS = ("latency", "speedups", "startup", "memory", "throughput", "train")
CHANGES_FILE = REPO / "benchmarks" / "changes.json"  # hand-kept log of code changes and their measured effect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--quick", action="store_true", help="few samples per figure (a smoke run)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    parser.add_argument("--note", action="append", default=[], help="a remark to print with the conditions")
    parser.add_argument("--cpu-torch-python", default=None,
                        help="a Python with a CPU-only torch build, to compare import memory with")
    parser.add_argument("--keep-others", action="store_true",
                        help="parts not run keep their figures from the existing results.json (noted in the report)")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    quick = args.quick
    path, how = model_path(args.model)
    model_arg = str(path) if path else None
    results: dict = {
        "generated": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": " ".join(["benchmarks/run_all.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "model": str(path) if path else "none (untrained weights at forced lengths)",
        "model_source": how,
        "notes": list(args.note),
        "seconds": {},
    }
    if path is not None:
        meta = path / "meta.json"
        if meta.is_file():
            results["model_meta"] = json.loads(meta.read_text())

    def timed(name: str, fn):
        print(f"[bench] {name} ...", flush=True)
        start = time.time()
        results[name] = fn()
        results["seconds"][name] = round(time.time() - start, 1)
        print(f"[bench] {name} done in {results['seconds'][name]} s", flush=True)

    if "latency" in parts:
        from benchmarks.latency import run_latency

        timed("latency", lambda: run_latency(model_arg, per_bucket=4 if quick else 20))
    if "speedups" in parts:
        from benchmarks.speedups import run_speedups

        timed("speedups", lambda: run_speedups(model_arg, per_bucket=4 if quick else 20,
                                               accuracy_samples=16 if quick else 300))
    if "startup" in parts:
        from benchmarks.startup import run_startup

        timed("startup", lambda: run_startup(model_arg, runs=1 if quick else 3))
    if "memory" in parts and path is not None:
        from benchmarks.memory import run_memory

        timed("memory", lambda: run_memory(path, args.cpu_torch_python))
    if "throughput" in parts:
        from benchmarks.throughput import run_throughput

        timed("throughput", lambda: run_throughput(model_arg, count=12 if quick else 200))
    if "train" in parts:
        from benchmarks.train_speed import run_train_speed

        timed("train_speed", lambda: run_train_speed(steps=4 if quick else 16, log_every=2 if quick else 4))
    if args.keep_others:
        _keep_other_parts(results, parts, args.out_dir / "results.json")
    results["render_speed"] = render_summary()
    if CHANGES_FILE.exists():
        results["changes"] = json.loads(CHANGES_FILE.read_text())
    profile = REPO / "benchmarks" / "profile.json"
    if profile.exists():
        results["profile"] = json.loads(profile.read_text())
    results["machine_after"] = machine_info()
    results["targets"] = targets(results)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    write_reports(results, args.out_dir, None if args.no_readme else REPO / "README.md")
    print(f"[bench] wrote {args.out_dir / 'results.json'} and {args.out_dir / 'RESULTS.md'}")
    for t in results["targets"]:
        print(f"  {t['what']}: {t['measured']} {t['unit']} (target {t['target']}) -> "
              f"{'n/a' if t['met'] is None else 'met' if t['met'] else 'NOT met'}")
    return 0


RESULT_KEYS = {"train": "train_speed"}  # part name -> its key in results.json, where they differ


def _keep_other_parts(results: dict, parts: list[str], previous_file: Path) -> None:
    """Copy the figures of the parts not run now from an earlier results.json, and say so."""
    if not previous_file.exists():
        return
    previous = json.loads(previous_file.read_text())
    kept = [p for p in PARTS if p not in parts and RESULT_KEYS.get(p, p) in previous]
    for part in kept:
        key = RESULT_KEYS.get(part, part)
        results[key] = previous[key]
        results["seconds"][key] = previous.get("seconds", {}).get(key)
    if kept:
        results["notes"].append(f"sections {', '.join(kept)}: figures kept from the run of "
                                f"{previous.get('generated', 'an earlier date')} (not re-run now)")


if __name__ == "__main__":
    sys.exit(main())
