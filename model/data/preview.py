"""A picture of what the model is fed: for each sample, the clean render, the screen-like snip
made from it by ``augment``, and the preprocessed model input (ink dark, padding included).

Look at one after changing rendering, augmentation or preprocessing: a mislabeled or
unreadable sample is obvious in the grid and invisible in the loss curve.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from ..errors import BlankImageError, Im2LatexError
from .shards import ShardReader, item_rng, split_dir_of


def _label(latex: str, limit: int = 70) -> str:
    text = latex if len(latex) <= limit else latex[: limit - 1] + "…"
    return text.replace("$", r"\$")  # plain text, never parsed as mathtext


def make_preview(shards: str | Path, out: str | Path, n: int = 48, seed: int = 0, spec=None,
                 columns: int = 2) -> Path:
    """Write the preview grid of ``n`` random samples of a shard split to ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..config import InputSpec
    from ..preprocess import preprocess
    from .augment import augment

    spec = spec or InputSpec()
    reader = ShardReader(split_dir_of(shards))
    if len(reader) == 0:
        raise Im2LatexError(f"{reader.dir} holds no samples to preview")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(reader), size=min(n, len(reader)), replace=False)
    rows = math.ceil(len(picks) / columns)
    row_inches, head, foot = 1.0, 0.7, 0.2
    height = row_inches * rows + head + foot
    fig, axes = plt.subplots(rows, 3 * columns, figsize=(7.5 * columns, height), squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=foot / height, top=1 - head / height, wspace=0.06,
                        hspace=0.75)
    for ax in axes.ravel():
        ax.set_axis_off()
    for k, index in enumerate(picks.tolist()):
        record = reader.record(index)
        raw = reader.read_image(index)
        snip = augment(raw, item_rng(seed, 0, index))
        try:
            model_input = preprocess(snip, spec)
            input_title = f"model input {model_input.shape[1]}x{model_input.shape[0]}"
        except BlankImageError as exc:
            model_input = np.zeros((spec.grid, spec.grid), dtype=np.float32)
            input_title = f"blank: {exc}"
        row, col = divmod(k, columns)
        ax_raw, ax_snip, ax_in = axes[row, 3 * col: 3 * col + 3]
        ax_raw.imshow(np.asarray(raw), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax_raw.set_title(f"{_label(record['latex'])}\n{record['font']} {record['style']} {record['dpi']} dpi "
                         f"{raw.size[0]}x{raw.size[1]}", fontsize=6, loc="left", family="monospace")
        ax_snip.imshow(np.asarray(snip), interpolation="nearest")
        ax_snip.set_title(f"snip {snip.size[0]}x{snip.size[1]}", fontsize=6, loc="left")
        ax_in.imshow(model_input, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax_in.set_title(input_title, fontsize=6, loc="left")
        for ax in (ax_raw, ax_snip, ax_in):
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("#bbbbbb")
    fig.suptitle(f"{reader.dir}: raw render | augmented snip | preprocessed input (seed {seed})", fontsize=9,
                 y=1 - 0.12 / height, va="top")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shards", type=Path, required=True, help="a shard split (or a shards folder: uses train)")
    parser.add_argument("--out", type=Path, default=Path("preview.png"), help="PNG to write (default preview.png)")
    parser.add_argument("--n", type=int, default=48, help="number of samples (default 48)")
    parser.add_argument("--seed", type=int, default=0, help="which samples and augmentations (default 0)")


def run(args: argparse.Namespace) -> int:
    try:
        path = make_preview(args.shards, args.out, n=args.n, seed=args.seed)
    except Im2LatexError as exc:
        print(f"im2latex data preview: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
