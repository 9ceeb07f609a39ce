"""What the benchmarks that time the real command line share: one timed run of ``python -m
model.cli``, the JSON rows it (or its metrics file) writes, and saving plus printing a result."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    """``python -m model.cli ARGS`` from the repository root with its output captured, and the
    wall-clock seconds it took as a user would see them (interpreter start and imports included)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "model.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    return proc, time.perf_counter() - start


def json_rows(text: str) -> list[dict]:
    """The JSON objects of a JSON-lines text (``--json`` output, ``metrics.jsonl``); other lines skipped."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def save_result(result: dict, out: Path) -> None:
    """Write ``result`` to ``out`` and print it without the machine descriptions."""
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("machine")}, indent=1))
