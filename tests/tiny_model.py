"""A tiny model trained in seconds, so tests can check the whole pipeline against real weights.

``train_tiny_model`` renders a handful of formulas with matplotlib's mathtext (black on white
PNGs), runs them through the real ``model.preprocess``, builds a vocabulary from them, overfits
a small network on them until greedy decoding reads every one back exactly, and saves a bundle
with the real ``model.checkpoint.save_bundle``.  The app's tests use it through the
``tiny_model_dir`` fixture in ``conftest.py``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from model.batching import pad_batch
from model.checkpoint import save_bundle
from model.config import InputSpec, ModelConfig
from model.data.shards import ShardWriter
from model.decoding import greedy_decode
from model.images import load_image
from model.network import Im2LatexModel, count_parameters
from model.preprocess import preprocess
from model.tokenizer import canonical, detokenize, normalize
from model.vocab import PAD, Vocab

TINY_FORMULAS = [
    r"x^{2}+y^{2}=z^{2}",
    r"\frac{a+b}{c}",
    r"\sqrt{x+1}",
    r"\alpha\beta",
    r"e^{i\pi}+1=0",
    r"\sum_{i=1}^{n}i^{2}",
    r"f(x)=\sin x",
    r"a_{n+1}-a_{n}",
]


@dataclass
class TinyModel:
    bundle: Path              # the model folder, loadable by Recognizer(model_path=bundle)
    formulas: list[str]       # canonical LaTeX of each image, in order
    images: list[Path]        # the rendered PNGs (black ink on white)
    steps: int                # training steps it took
    seconds: float            # training time


def tiny_config(vocab_size: int) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, encoder_stages=2, d_model=64, nhead=4, decoder_layers=1,
                       dim_feedforward=128, dropout=0.0, max_len=40)


def render_formula(latex: str, path: Path, dpi: int = 150) -> Path:
    """Draw ``latex`` with matplotlib mathtext as a black-on-white grayscale PNG."""
    from matplotlib import mathtext
    from PIL import Image

    mathtext.math_to_image(f"${latex}$", str(path), dpi=dpi, format="png", color="black")
    with Image.open(path) as image:
        rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    Image.alpha_composite(white, rgba).convert("L").save(path)
    return path


# ModelConfig overrides for `im2latex train` smoke runs on the tiny shards: seconds per run.
TINY_TRAIN_MODEL = {"encoder_stages": 2, "d_model": 64, "nhead": 4, "decoder_layers": 1, "dim_feedforward": 128,
                    "max_len": 40}


def write_tiny_shards(root: Path, split: str) -> None:
    """TINY_FORMULAS drawn with mathtext into ``root/shards/<split>``, laid out as `im2latex data
    render` writes them (the PNGs themselves are left in ``root``)."""
    spec = InputSpec()
    with ShardWriter(root / "shards", split) as writer:
        for i, latex in enumerate(TINY_FORMULAS):
            path = render_formula(latex, root / f"{split}{i}.png", dpi=120 + 10 * i)
            h, w = preprocess(load_image(path), spec).shape
            writer.add(path.read_bytes(), latex, "mathtext-cm", "inline", 120, "mathtext", w, h)


def _reads_back(model: Im2LatexModel, images, sizes, vocab: Vocab, formulas: list[str]) -> bool:
    decoded = greedy_decode(model, images, sizes, model.config.max_len)
    return all(detokenize(vocab.decode(d.ids)) == f for d, f in zip(decoded, formulas))


def train_tiny_model(out_dir: str | Path, formulas: list[str] = TINY_FORMULAS, steps: int = 600,
                     seed: int = 0) -> Path:
    """Render, train until every formula reads back exactly (at most ``steps``), save a bundle.

    Returns the bundle folder ``out_dir/bundle``; the images are ``out_dir/images/NN.png`` and
    ``out_dir/tiny.json`` lists formulas, images, steps and seconds.
    """
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    formulas = [canonical(f) for f in formulas]
    paths = [render_formula(f, image_dir / f"{i:02d}.png") for i, f in enumerate(formulas)]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tests share small machines; one core keeps this predictable
    try:
        start = time.perf_counter()
        torch.manual_seed(seed)
        token_lists = [normalize(f) for f in formulas]
        vocab = Vocab.build(token_lists)
        config = tiny_config(len(vocab))
        arrays = [preprocess(load_image(p), config.input) for p in paths]
        images, sizes = pad_batch(arrays)
        encoded = [vocab.encode(t) for t in token_lists]
        target = torch.full((len(encoded), max(map(len, encoded))), PAD, dtype=torch.long)
        for i, ids in enumerate(encoded):
            target[i, : len(ids)] = torch.tensor(ids)

        model = Im2LatexModel(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        done = 0
        for step in range(1, steps + 1):
            model.train()
            logits = model(images, sizes, target[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target[:, 1:].reshape(-1),
                                   ignore_index=PAD)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done = step
            if loss.item() < 0.05 and step % 20 == 0 and _reads_back(model, images, sizes, vocab, formulas):
                break
        model.eval()
        seconds = time.perf_counter() - start
        meta = {"trained_on": "tests/tiny_model.py", "steps": done, "final_loss": round(loss.item(), 5),
                "parameters": count_parameters(model), "seed": seed}
        bundle = save_bundle(out_dir / "bundle", model, config, vocab, meta)
    finally:
        torch.set_num_threads(threads)
    info = {"formulas": formulas, "images": [str(p) for p in paths], "steps": done, "seconds": seconds}
    (out_dir / "tiny.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    return bundle


def load_tiny_info(out_dir: str | Path) -> TinyModel:
    """The TinyModel record of a folder ``train_tiny_model`` wrote."""
    out_dir = Path(out_dir)
    info = json.loads((out_dir / "tiny.json").read_text(encoding="utf-8"))
    return TinyModel(out_dir / "bundle", info["formulas"], [Path(p) for p in info["images"]],
                     info["steps"], info["seconds"])
