"""`im2latex average`: one checkpoint whose weights are the mean of several.

The end of a training run (the low-learning-rate tail of its cosine schedule) leaves weights that
wander around a minimum; their mean usually sits nearer its centre and reads a little better
than any one of them, for no training time.  The trainer keeps its last few saves for this
(``snapshots`` in the training config) and writes their mean as ``average.pt`` when it stops;
``im2latex promote`` scores it beside the run's last and best checkpoints.

The mean covers every floating-point tensor of the model (BatchNorm statistics too); integer
buffers (BatchNorm's batch counter) come from the newest checkpoint, as do the optimizer state,
step and meta, so that training can resume from the mean: Adam's moments are statistics of the
gradients near those weights, and the mean lies among them.

    im2latex average runs/s16/snapshots/*.pt --out runs/s16/average.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .checkpoint import CheckpointError, LoadedModel, load_model, save_training_checkpoint


def _newest(loaded: list[LoadedModel]) -> LoadedModel:
    return max(loaded, key=lambda m: m.state.get("step", 0))


def average_checkpoints(paths: list[Path], out: Path) -> Path:
    """Write the mean of the training checkpoints ``paths`` to ``out``; returns ``out``.

    They must share the network's shape and vocabulary (snapshots of one run, or of runs that
    resumed one another)."""
    if len(paths) < 2:
        raise ValueError("averaging needs two or more checkpoints")
    loaded = [load_model(p) for p in paths]
    first = loaded[0]
    for path, other in zip(paths[1:], loaded[1:]):
        if other.vocab.tokens != first.vocab.tokens or other.config.to_dict() != first.config.to_dict():
            raise CheckpointError(f"{path} has another network or vocabulary than {paths[0]}; only "
                                  "checkpoints of one model can be averaged")
    newest = _newest(loaded)
    states = [m.model.state_dict() for m in loaded]
    mean = {}
    for name, tensor in newest.model.state_dict().items():
        if tensor.is_floating_point():
            mean[name] = torch.stack([s[name].float() for s in states]).mean(dim=0).to(tensor.dtype)
        else:
            mean[name] = tensor
    newest.model.load_state_dict(mean)
    steps = sorted(int(m.state.get("step", 0)) for m in loaded)
    meta = {**newest.meta, "averaged_steps": steps}
    return save_training_checkpoint(out, newest.model, newest.config, newest.vocab,
                                    optimizer=newest.state.get("optimizer"),
                                    step=int(newest.state.get("step", 0)), meta=meta)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", nargs="+", type=Path, help="training checkpoints (.pt) of one model")
    parser.add_argument("--out", type=Path, required=True, help="write the averaged checkpoint here")


def run(args: argparse.Namespace) -> int:
    if len(args.checkpoints) < 2:
        raise SystemExit("im2latex average: give two or more checkpoints to average")
    out = average_checkpoints(args.checkpoints, args.out)
    print(f"wrote the mean of {len(args.checkpoints)} checkpoints to {out}")
    return 0
