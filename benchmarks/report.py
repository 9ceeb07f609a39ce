"""``benchmarks/results.json`` -> ``benchmarks/RESULTS.md`` and the README's performance table.

Kept apart from the measuring so the tables can be rebuilt (and tested) without re-running:
``python benchmarks/report.py`` rewrites RESULTS.md and the README block from results.json.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.machine import short_machine  # noqa: E402

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"

# (what, limit, unit, how to read it from results.json)
TARGETS = [
    ("medium formula, greedy, p50", 120.0, "ms", lambda r: _latency(r, "medium", 1, "p50_ms")),
    ("medium formula, greedy, p95", 250.0, "ms", lambda r: _latency(r, "medium", 1, "p95_ms")),
    ("launch to main window", 1.5, "s", lambda r: _get(r, "startup", "app", "launch_to_window_s")),
    ("model load (Recognizer.load, torch already imported)", 1.0, "s", lambda r: _get(r, "startup", "load", "load_s")),
    ("app idle RSS, model loaded", 600.0, "MB", lambda r: _get(r, "startup", "app", "idle_rss_mb")),
]


def _get(results: dict, *keys):
    value = results
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _latency(results: dict, bucket: str, beam: int, key: str, threads: int | None = None):
    latency = results.get("latency") or {}
    threads = threads or latency.get("app_threads")
    readings = latency.get("app_readings", 1)  # as many readings per snip as the app makes
    for row in latency.get("rows", []):
        if (row["device"] == "cpu" and row["bucket"] == bucket and row["beam"] == beam and row["threads"] == threads
                and row.get("readings", 1) == readings):
            return row[key]
    return None


def targets(results: dict) -> list[dict]:
    out = []
    for what, limit, unit, read in TARGETS:
        value = read(results)
        out.append({"what": what, "target": f"<= {limit:g} {unit}", "measured": value, "unit": unit,
                    "met": None if value is None else value <= limit})
    return out


def _fmt(value, unit: str) -> str:
    if value is None:
        return "not measured"
    return f"{value:.0f} {unit}" if unit in ("ms", "MB") else f"{value:.2f} {unit}"


def targets_table(results: dict) -> str:
    threads = (results.get("latency") or {}).get("app_threads")
    lines = ["| target | limit | measured | met |", "|---|---:|---:|:---:|"]
    for t in targets(results):
        plural = "s" if threads != 1 else ""
        what = t["what"] + (f" ({threads} thread{plural}, the app's default)" if "greedy" in t["what"] and threads else "")
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {what} | {t['target']} | {_fmt(t['measured'], t['unit'])} | {met} |")
    return "\n".join(lines)


def _latency_table(latency: dict) -> str:
    from benchmarks.latency import markdown

    return markdown(latency)


def _startup_table(startup: dict) -> str:
    load, app = startup["load"], startup["app"]
    rows = [
        ("`import torch` (fresh process)", f"{load['import_torch_s']:.2f} s"),
        ("import the model code (checkpoint, network)", f"{load['import_model_code_s']:.2f} s"),
        ("model load: `Recognizer.load()`", f"{load['load_s']:.2f} s"),
        ("warm-up (one dummy recognition, in the background)", f"{load['warm_up_s']:.2f} s"),
        ("first recognition after warm-up (long formula)", f"{load['first_recognition_s']:.2f} s"),
        ("launch -> main window shown (offscreen)", f"{app['launch_to_window_s']:.2f} s"),
        ("launch -> torch import starts (worker thread, after the window)",
         "-" if app.get("launch_to_torch_import_s") is None else f"{app['launch_to_torch_import_s']:.2f} s"),
        ("launch -> model ready (first snip answered at once)", f"{app['launch_to_model_ready_s']:.2f} s"),
        ("launch -> first result (long formula submitted when ready + idle pause)", f"{app['launch_to_first_result_s']:.2f} s"),
        ("torch imported before the window showed", "yes (bad)" if app["torch_loaded_at_show"] else "no"),
        ("thread that imported torch (Qt name)", f"{app['torch_import_thread']}"
                                       + (" (the UI thread: bad)" if app["torch_import_on_main_thread"] else "")),
        ("app idle RSS (model loaded) / PSS / anonymous",
         f"{app['idle_rss_mb']:.0f} / {app['idle_pss_mb']:.0f} / {app['idle_anonymous_mb']:.0f} MB"),
        ("app peak RSS while recognizing a long formula",
         "not measured" if app.get("recognition_peak_rss_mb") is None else f"{app['recognition_peak_rss_mb']:.0f} MB"),
    ]
    formula = startup.get("formula", {})
    lines = [f"Medians of {startup['runs']} fresh processes; long formula: {formula.get('tokens')} tokens, "
             f"{formula.get('size')} px.", "", "| what | time / size |", "|---|---:|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def _throughput_table(tp: dict) -> str:
    p, b = tp["predict"], tp["recognize_batch"]
    return "\n".join([
        "| how | images | seconds | images/s |", "|---|---:|---:|---:|",
        f"| `im2latex predict --json` (fresh process, start-up {p['start_up_s']:.1f} s included) | {p['images']} | "
        f"{p['process_s']:.1f} | {p['images_per_s']:.2f} |",
        f"| same, recognition only (steady rate) | {p['recognized']} | {p['recognition_s']:.1f} | {p['steady_images_per_s']} |",
        f"| `Recognizer.recognize_batch`, width-sorted batches of {b['batch']} | {b['images']} | {b['seconds']:.1f} | "
        f"{b['images_per_s']:.2f} |",
    ])


def _train_table(train: dict, render: dict | None) -> str:
    lines = ["| what | rate | conditions |", "|---|---:|---|"]
    if "skipped" in train:
        lines.append(f"| training | skipped | {train['skipped']} |")
    else:
        f = train["float32"]
        lines.append(f"| training step, float32 ({train['device']}) | {f['samples_per_s']:.1f} samples/s | "
                     f"{f['steps']} steps, batches of up to {f['batch_size']}, augmented real shards, windows {f['windows']} |")
        bf = train["bf16"]
        if "skipped" in bf:
            lines.append(f"| training step, bf16 autocast | skipped | {bf['skipped']} |")
        else:
            lines.append(f"| training step, bf16 autocast | {bf['samples_per_s']:.1f} samples/s | windows {bf['windows']} |")
    if render:
        for engine, fonts in render.get("engines", {}).items():
            rate = ", ".join(f"{font} {v}" for font, v in fonts.items())
            lines.append(f"| rendering ({engine}), formulas/s per font | {rate} | {render.get('conditions', '')} |")
    return "\n".join(lines)


def render_summary(path: Path = REPO / "benchmarks" / "render_speed.json") -> dict | None:
    """The rendering figures another benchmark wrote (``benchmarks/render_speed.py``), condensed."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    engines = {}
    for engine, fonts in data.items():
        if isinstance(fonts, dict) and all(isinstance(v, dict) and "formulas_per_s" in v for v in fonts.values()):
            engines[engine] = {font: v["formulas_per_s"] for font, v in fonts.items()}
    load = data.get("load_average_before")
    return {"source": str(path.relative_to(REPO)), "engines": engines,
            "conditions": f"{data.get('workers', '?')} workers on {data.get('cpus', '?')} CPUs, load {load[0] if load else '?'} "
                          f"(from {path.name})"}


def results_markdown(results: dict) -> str:
    machine = results.get("machine", {})
    parts = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`benchmarks/run_all.py`) on {results.get('generated', '?')}. "
        "Numbers from one run; figures compared with each other were taken in that same run.",
        "",
        "## Conditions",
        "",
        f"- machine: {short_machine(machine)}; load average before {machine.get('load_average')}, "
        f"after {results.get('machine_after', {}).get('load_average')}",
        f"- model: {results.get('model', '?')} ({results.get('model_source', '?')})",
    ]
    parts += [f"- note: {n}" for n in results.get("notes", [])]
    parts += ["", "## Targets", "", targets_table(results)]
    if results.get("latency"):
        lat = results["latency"]
        parts += ["", "## Snip latency", "",
                  f"Whole snip (image -> LaTeX) per test formula; {lat['per_bucket']} formulas per bucket, thread "
                  "counts interleaved image by image. Machine: " + short_machine(lat.get("machine_before", {})), "",
                  _latency_table(lat)]
    if results.get("speedups"):
        from benchmarks.speedups import markdown as speedups_markdown

        sp = results["speedups"]
        parts += ["", "## Before / after each speed-up", "",
                  f"{sp['formulas']}, greedy, each pair timed interleaved in the same run. Machine: "
                  + short_machine(sp.get("machine_before", {})), "", speedups_markdown(sp)]
    if results.get("changes"):
        parts += ["", "## Changes made, before -> after", "",
                  "| change | before | after | measured how |", "|---|---|---|---|"]
        parts += [f"| {c['change']} | {c['before']} | {c['after']} | {c['how']} |" for c in results["changes"]]
    if results.get("startup") and "skipped" not in results["startup"]:
        parts += ["", "## Start-up and memory", "", _startup_table(results["startup"])]
    if results.get("memory"):
        from benchmarks.memory import markdown as memory_markdown

        parts += ["", "## Where the memory goes", "", memory_markdown(results["memory"])]
    if results.get("throughput") and "skipped" not in results["throughput"]:
        parts += ["", "## Batch throughput", "", _throughput_table(results["throughput"])]
    if results.get("train_speed"):
        parts += ["", "## Training and data rendering", "", _train_table(results["train_speed"], results.get("render_speed"))]
    if results.get("profile"):
        parts += ["", "## Profile", ""] + [f"- {line}" for line in results["profile"]]
    return "\n".join(parts) + "\n"


def readme_block(results: dict) -> str:
    machine = results.get("machine", {})
    return "\n".join([
        README_START,
        f"Measured by `make bench` on {short_machine(machine)} ({results.get('generated', '?')}); "
        "full tables, conditions and the before/after of each speed-up: [benchmarks/RESULTS.md](benchmarks/RESULTS.md).",
        "",
        targets_table(results),
        README_END,
    ])


def update_readme(results: dict, readme: Path = REPO / "README.md") -> bool:
    """Replace the block between the bench markers; False when the README has no such block."""
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        return False
    readme.write_text(pattern.sub(lambda _: readme_block(results), text), encoding="utf-8")
    return True


def write_reports(results: dict, out_dir: Path = REPO / "benchmarks", readme: Path | None = REPO / "README.md") -> None:
    (out_dir / "RESULTS.md").write_text(results_markdown(results), encoding="utf-8")
    if readme is not None and readme.exists():
        update_readme(results, readme)


def main() -> int:
    results = json.loads((REPO / "benchmarks" / "results.json").read_text())
    write_reports(results)
    print("wrote benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
