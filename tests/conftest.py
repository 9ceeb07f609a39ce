"""Shared fixtures.  ``tiny_model_dir``: a really trained (tiny) model, made once per test session;
``varied_model``: an untrained network whose batch items end at EOS after varied lengths."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so tests can `import tiny_model`

from tiny_model import TinyModel, load_tiny_info, train_tiny_model  # noqa: E402

from model.batching import pad_batch  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.decoding import greedy_decode  # noqa: E402
from model.network import Im2LatexModel  # noqa: E402
from model.vocab import EOS  # noqa: E402

VARIED_SHAPES = [(48, 192), (32, 96), (16, 192), (48, 64), (32, 160), (16, 32)]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """TinyModel(bundle, formulas, images, steps, seconds): a bundle that reads its images back exactly."""
    out_dir = tmp_path_factory.mktemp("tiny_model")
    train_tiny_model(out_dir)
    return load_tiny_info(out_dir)


class VariedModel(NamedTuple):
    model: Im2LatexModel
    arrays: list[np.ndarray]   # the batch items, unpadded
    images: torch.Tensor       # ... padded (pad_batch)
    sizes: torch.Tensor


@pytest.fixture(scope="module")
def varied_model() -> VariedModel:
    """An untrained model whose EOS logit is inflated so that the six items of a batch of random
    ink stop at EOS after at least three different lengths, none cut by the length limit (greedy,
    max_len 40, no repetition guard).  One per test module: a test may switch its mode."""
    for seed in range(20):
        torch.manual_seed(seed)
        config = ModelConfig(vocab_size=30, encoder_stages=2, d_model=64, nhead=4, decoder_layers=2,
                             dim_feedforward=128, dropout=0.0, max_len=40)
        model = Im2LatexModel(config).eval()
        with torch.no_grad():
            model.tok_emb.weight[EOS] *= 10
        rng = np.random.default_rng(seed)
        arrays = [(rng.random(shape) > 0.8).astype(np.float32) for shape in VARIED_SHAPES]
        images, sizes = pad_batch(arrays)
        decoded = greedy_decode(model, images, sizes, 40, guard=None)
        if all(d.stopped is None for d in decoded) and len({len(d.ids) for d in decoded}) >= 3:
            return VariedModel(model, arrays, images, sizes)
    pytest.fail("no seed gave varied complete outputs")
