"""Train on a lent GPU machine within one time-boxed command (the project's `device` tool).

That machine has PyTorch, numpy, pillow, matplotlib and tqdm, but no TeX and no network; a call
takes at most 64 MiB of working tree, runs at most 10 minutes, and brings back files of at most
16 MiB.  So a GPU session is two steps:

* here, ``python -m model.gpu_session pack`` (``make gpu-pack``): a random sample of the rendered
  training shards (the pdflatex and KaTeX looks, which that machine cannot draw) and a slice of
  the corpus formulas not rendered yet, within a size budget, into ``artifacts/gpu/``
  (git-ignored: name it in the call's ``carry``);
* there, ``python3 -m model.gpu_session run --out $OUT``: draws those formulas with matplotlib's
  mathtext in the background (their shards join the training set at each epoch), resumes training
  from the bundled model on the GPU (bf16 autocast, time-boxed cosine schedule), and writes the
  result to ``$OUT/model`` as a bundle (fp16 weights, ~12.5 MB) with the run's metrics.

Back here, ``im2latex evaluate --model <files_at>/model ...`` decides whether it replaces
``resources/model``.  No validation runs there (its metrics need nltk and rapidfuzz).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACK = REPO / "artifacts" / "gpu"
MiB = 1 << 20


# ---------------------------------------------------------------- here: pack what travels


def pack(data: Path, out: Path, shard_mib: float, formula_mib: float, seed: int = 0) -> dict:
    """Sampled training shards and not-yet-rendered formulas, each within its byte budget."""
    from .data.shards import ShardReader, ShardWriter

    if out.exists():
        shutil.rmtree(out)
    reader = ShardReader(data / "shards" / "train")
    order = list(range(len(reader)))
    random.Random(seed).shuffle(order)
    budget, used, kept = int(shard_mib * MiB), 0, 0
    with ShardWriter(out / "shards", "train") as writer:
        for i in order:
            size = int(reader.size[i]) + 1024  # the PNG, its tar header and padding, its index line
            if used + size > budget:
                break
            r = reader.record(i)
            writer.add(reader.read_bytes(i), r["latex"], r["font"], r["style"], r["dpi"], r["renderer"],
                       r["width"], r["height"])
            used, kept = used + size, kept + 1
    rendered = set(reader.latex)
    reader.close()

    lines = [line for line in (data / "corpus" / "train.jsonl").read_text().splitlines()
             if line.strip() and json.loads(line)["latex"] not in rendered]
    random.Random(seed + 1).shuffle(lines)
    budget, used, chosen = int(formula_mib * MiB), 0, []
    for line in lines:
        size = len(line.encode()) + 1
        if used + size > budget:
            break
        chosen.append(line)
        used += size
    (out / "corpus").mkdir(parents=True)
    (out / "corpus" / "train.jsonl").write_text("\n".join(chosen) + "\n")

    summary = {"samples": kept, "of_samples": len(order), "formulas_to_render": len(chosen),
               "of_unrendered": len(lines), "bytes": _tree_bytes(out)}
    (out / "pack.json").write_text(json.dumps(summary, indent=1))
    return summary


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _tracked_bytes() -> int:
    """What the working tree itself sends with every call (tracked files)."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    return sum((REPO / n).stat().st_size for n in names.decode().split("\0") if n and (REPO / n).is_file())


# ---------------------------------------------------------------- there: render, train, export


def run(pack_dir: Path, out: Path, minutes: float, model: Path, batch_size: int, lr: float, warmup: int,
        workers: int, render_workers: int, head_start_s: float, steps: int = 10 ** 7) -> dict:
    """Mathtext rendering in the background, time-boxed training in the foreground, then export."""
    import torch

    from .export import export_bundle
    from .train import TrainConfig, train

    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="im2latex-gpu-"))
    shutil.copytree(pack_dir / "shards", work / "shards")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (no GPU: a dry run)"
    print(f"device: {device}; torch {torch.__version__}; resuming {model}", flush=True)

    render_log = (out / "render.log").open("w")
    renderer = subprocess.Popen(
        [sys.executable, "-m", "model.cli", "data", "render", "--corpus", str(pack_dir / "corpus"),
         "--out", str(work / "shards"), "--split", "train", "--renderer", "mathtext",
         "--workers", str(render_workers), "--quiet"],
        cwd=REPO, stdout=render_log, stderr=subprocess.STDOUT)
    time.sleep(head_start_s)  # a first batch of mathtext samples is in before the first epoch ends

    reserve_min = 0.75  # stopping the renderer, saving, exporting
    train_minutes = max(0.5, minutes - (time.time() - started) / 60 - reserve_min)
    cfg = TrainConfig(data=str(work), out=str(work / "run"), resume=str(model), steps=steps,
                      max_minutes=train_minutes, batch_size=batch_size, batch_pixels=batch_size * 64 * 320,
                      lr=lr, warmup=warmup, workers=workers, eval_every=10 ** 9, save_every=10 ** 9,
                      log_every=50)
    try:
        checkpoint = train(cfg)
    finally:
        renderer.terminate()
        try:
            renderer.wait(timeout=20)
        except subprocess.TimeoutExpired:
            renderer.kill()
        render_log.close()

    export_bundle(checkpoint, out / "model", {"trained_on": device})
    for name in ("metrics.jsonl", "metrics.png", "train_config.json"):
        if (work / "run" / name).exists():
            shutil.copy(work / "run" / name, out / name)
    log = work / "run" / "metrics.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    losses = [r for r in rows if "loss" in r]
    manifest = json.loads((work / "shards" / "train" / "manifest.json").read_text())
    summary = {"device": device, "train_minutes": round(train_minutes, 2), "steps": losses[-1]["step"] if losses else 0,
               "total_steps": losses[-1]["total_step"] if losses else None,
               "last_loss": losses[-1]["loss"] if losses else None,
               "samples_per_s": [round(r["samples_per_s"]) for r in losses[-5:]],
               "train_samples_at_end": manifest.get("samples"), "wall_minutes": round((time.time() - started) / 60, 2)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return summary


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="here: write artifacts/gpu/ for the call's carry")
    p.add_argument("--data", type=Path, default=REPO / "data")
    p.add_argument("--out", type=Path, default=PACK)
    p.add_argument("--shard-mib", type=float, default=30.0, help="rendered samples to send (MiB)")
    p.add_argument("--formula-mib", type=float, default=10.0, help="formulas to render there (MiB)")
    r = sub.add_parser("run", help="there: render, train on the GPU, export to --out")
    r.add_argument("--pack", type=Path, default=PACK)
    r.add_argument("--out", type=Path, required=True, help="where the bundle and metrics go ($OUT)")
    r.add_argument("--minutes", type=float, default=8.5, help="the whole command, export included")
    r.add_argument("--model", type=Path, default=REPO / "resources" / "model", help="bundle or checkpoint to resume")
    r.add_argument("--batch-size", type=int, default=128)
    r.add_argument("--lr", type=float, default=6e-4)
    r.add_argument("--warmup", type=int, default=200)
    r.add_argument("--workers", type=int, default=9, help="DataLoader workers (augmentation)")
    r.add_argument("--render-workers", type=int, default=3, help="mathtext rendering processes")
    r.add_argument("--head-start", type=float, default=45.0, help="seconds of rendering before training")
    r.add_argument("--steps", type=int, default=10 ** 7, help="stop after this many steps (for dry runs)")
    args = parser.parse_args(argv)
    if args.command == "pack":
        summary = pack(args.data, args.out, args.shard_mib, args.formula_mib)
        tree = _tracked_bytes()
        summary["working_tree_bytes"] = tree
        print(json.dumps(summary, indent=1))
        total = (tree + summary["bytes"]) / MiB
        print(f"a call carrying {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out} "
              f"sends about {total:.1f} MiB (limit 64)")
        return 0 if total < 64 else 1
    summary = run(args.pack, args.out, args.minutes, args.model, args.batch_size, args.lr, args.warmup,
                  args.workers, args.render_workers, args.head_start, args.steps)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
