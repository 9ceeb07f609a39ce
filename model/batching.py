"""Stack preprocessed images of different sizes into one padded batch.

Padding is 0 (background, since ink is 1.0) at the right and bottom only, so every image keeps
its content at the top-left and the network can mask out the padded cells from ``sizes``.
"""

from __future__ import annotations

import numpy as np
import torch


def pad_batch(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, 1, Hmax, Wmax) float32 zero-padded at the right/bottom, and sizes (B, 2) (h, w)."""
    if not arrays:
        raise ValueError("pad_batch needs at least one image")
    for a in arrays:
        if a.ndim != 2:
            raise ValueError(f"pad_batch expects 2-D (H, W) arrays, got shape {a.shape}")
    height = max(a.shape[0] for a in arrays)
    width = max(a.shape[1] for a in arrays)
    images = torch.zeros(len(arrays), 1, height, width, dtype=torch.float32)
    sizes = torch.empty(len(arrays), 2, dtype=torch.long)
    for i, a in enumerate(arrays):
        h, w = a.shape
        images[i, 0, :h, :w] = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        sizes[i, 0], sizes[i, 1] = h, w
    return images, sizes
