"""`im2latex export`: turn a training checkpoint into the bundle the app loads (fp16 weights,
config, vocabulary, meta), e.g. to replace ``resources/model`` with a better model."""

from __future__ import annotations

import argparse
from pathlib import Path

from .checkpoint import load_model, save_bundle

# What the bundle's meta.json keeps from the training meta (the rest is resumable state).
KEEP = ("total_steps", "samples_seen", "train_hours", "device", "bf16")


def export_bundle(checkpoint: str | Path, out_dir: str | Path, extra: dict | None = None) -> Path:
    loaded = load_model(checkpoint, device="cpu")
    meta = {k: loaded.meta[k] for k in KEEP if k in loaded.meta}
    meta.update({k: v for k, v in loaded.meta.items() if k.startswith("best_val_")})
    meta.update(extra or {})
    return save_bundle(out_dir, loaded.model, loaded.config, loaded.vocab, meta)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="training checkpoint (.pt) or bundle folder")
    parser.add_argument("--out", required=True, help="bundle folder to write, e.g. resources/model")


def run(args: argparse.Namespace) -> int:
    path = export_bundle(args.checkpoint, args.out)
    print(f"wrote {path}")
    return 0
