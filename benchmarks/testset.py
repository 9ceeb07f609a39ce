"""Formulas from the test split, grouped by length, and the model the benchmarks time.

Lengths are counted in canonical tokens (``model.metrics.tokens_of``), the unit the issue's
buckets use: short < 10, medium 10-40, long 41-150.  Samples are picked with a fixed seed so two
runs time the same images.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from model.metrics import tokens_of  # noqa: E402

TEST_SPLIT = REPO / "data" / "shards" / "test"
BUCKETS = {"short": (1, 9), "medium": (10, 40), "long": (41, 150)}


@dataclass
class TestSample:
    name: str
    latex: str
    tokens: int
    image: Image.Image


def bucket_of(n_tokens: int) -> str | None:
    for name, (low, high) in BUCKETS.items():
        if low <= n_tokens <= high:
            return name
    return None


def bucketed_samples(split_dir: Path = TEST_SPLIT, per_bucket: int = 20, seed: int = 0) -> dict[str, list[TestSample]]:
    """Up to ``per_bucket`` random test samples of each length bucket (images decoded, mode L)."""
    from model.data.shards import ShardReader

    reader = ShardReader(split_dir)
    by_bucket: dict[str, list[int]] = {name: [] for name in BUCKETS}
    for i, latex in enumerate(reader.latex):
        name = bucket_of(len(tokens_of(latex)))
        if name:
            by_bucket[name].append(i)
    rng = random.Random(seed)
    out = {}
    for name, indices in by_bucket.items():
        chosen = sorted(rng.sample(indices, min(per_bucket, len(indices))))
        out[name] = [TestSample(reader.names[i], reader.latex[i], len(tokens_of(reader.latex[i])),
                                reader.read_image(i)) for i in chosen]
    reader.close()
    return out


def first_samples(split_dir: Path = TEST_SPLIT, count: int = 300, seed: int = 0) -> list[TestSample]:
    """``count`` random test samples of any length (for accuracy checks and throughput)."""
    from model.data.shards import ShardReader

    reader = ShardReader(split_dir)
    chosen = sorted(random.Random(seed).sample(range(len(reader)), min(count, len(reader))))
    samples = [TestSample(reader.names[i], reader.latex[i], len(tokens_of(reader.latex[i])), reader.read_image(i))
               for i in chosen]
    reader.close()
    return samples


def model_path(requested: str | None = None) -> tuple[Path | None, str]:
    """The model to time and how it was chosen: ``--model``, ``$IM2LATEX_MODEL``, the bundled
    ``resources/model``; None when none of them holds a model."""
    from model.inference import default_model_path

    candidates = []
    if requested:
        candidates.append((Path(requested), "--model"))
    if os.environ.get("IM2LATEX_MODEL"):
        candidates.append((Path(os.environ["IM2LATEX_MODEL"]), "$IM2LATEX_MODEL"))
    candidates.append((default_model_path(), "bundled model"))
    for path, how in candidates:
        if (path / "model.pt").is_file() or (path.is_file() and path.suffix == ".pt"):
            return path, how
    return None, "no model found"
