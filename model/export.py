"""`im2latex export`: turn a training checkpoint into the bundle the app loads (fp16 weights,
config, vocabulary, meta), e.g. to replace ``resources/model`` with a better model."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from .checkpoint import load_model, save_bundle
from .config import InputSpec, scales_argument

# What the bundle's meta.json keeps from the training meta (the rest is resumable state).
KEEP = ("total_steps", "samples_seen", "train_hours", "device", "bf16", "epoch",
        "stable_checkpoint", "stable_step")  # where the run's constant-rate phase ended: see model/train.py


def export_bundle(checkpoint: str | Path, out_dir: str | Path, extra: dict | None = None,
                  reading_scales: tuple[float, ...] | None = None, reread_below: float | None = None,
                  read_like: InputSpec | None = None, gpu_reading_scales: tuple[float, ...] | None = None) -> Path:
    """``reading_scales``: the glyph scales the app reads each snip at with this model (None:
    the checkpoint's own); pick them by evaluating with ``im2latex evaluate --scales``.
    ``reread_below``: read at the other scales only when a token of the first reading is less
    probable than this (None: the checkpoint's own setting).  ``gpu_reading_scales``: the scales
    read on a GPU (None: the checkpoint's own).  ``read_like``: take all three from this spec
    instead (a bundle's, ``None`` values included), so a successor reads as it did."""
    loaded = load_model(checkpoint, device="cpu")
    meta = {k: loaded.meta[k] for k in KEEP if k in loaded.meta}
    meta.update({k: v for k, v in loaded.meta.items() if k.startswith("best_val_")})
    if loaded.state.get("optimizer"):
        # where its optimizer state lives: `im2latex train --resume BUNDLE` continues from there
        meta["exported_from"] = portable_path(Path(checkpoint))
    meta.update(extra or {})
    config = loaded.config
    if read_like is not None:
        config = replace(config, input=replace(config.input, reading_scales=read_like.reading_scales,
                                               reread_below=read_like.reread_below,
                                               gpu_reading_scales=read_like.gpu_reading_scales))
    if reading_scales is not None:
        config = replace(config, input=replace(config.input, reading_scales=reading_scales))
    if reread_below is not None:
        config = replace(config, input=replace(config.input, reread_below=reread_below))
    if gpu_reading_scales is not None:
        config = replace(config, input=replace(config.input, gpu_reading_scales=gpu_reading_scales))
    return save_bundle(out_dir, loaded.model, config, loaded.vocab, meta)


def portable_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (a run folder of this
    checkout: no machine's absolute path in a committed bundle), else absolute."""
    absolute = path.resolve()
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return os.fspath(absolute)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="training checkpoint (.pt) or bundle folder")
    parser.add_argument("--out", required=True, help="bundle folder to write, e.g. resources/model")
    parser.add_argument("--reading-scales", type=scales_argument,
                        help="glyph scales the app reads each snip at, e.g. 1,1.3 (default: the checkpoint's)")
    parser.add_argument("--reread-below", type=float, metavar="PROBABILITY",
                        help="read at the other scales only when a token of the first reading is less "
                             "probable than this, e.g. 0.6 (default: the checkpoint's; without it every "
                             "scale is read)")
    parser.add_argument("--gpu-reading-scales", type=scales_argument,
                        help="glyph scales read on a GPU, where a snip's readings decode side by side, "
                             "e.g. 1,1.3,1.15,0.85,1.5 (default: the checkpoint's; without any, the CPU's)")


def run(args: argparse.Namespace) -> int:
    path = export_bundle(args.checkpoint, args.out, reading_scales=args.reading_scales,
                         reread_below=args.reread_below, gpu_reading_scales=args.gpu_reading_scales)
    print(f"wrote {path}")
    return 0
