"""The GPU session script: pack what travels within its budget, then render + train + export."""

import json

import pytest

from model.checkpoint import load_model
from model.config import InputSpec
from model.data.shards import ShardReader, ShardWriter
from model.gpu_session import pack, run
from model.images import load_image
from model.preprocess import preprocess
from model.train import TrainConfig, train
from model.vocab import Vocab
from model.tokenizer import normalize
from tiny_model import TINY_FORMULAS, render_formula

TINY = {"encoder_stages": 2, "d_model": 64, "nhead": 4, "decoder_layers": 1, "dim_feedforward": 128,
        "max_len": 40}
UNRENDERED = [r"a+b=c", r"x_{1}+x_{2}", r"\gamma\delta"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    spec = InputSpec()
    with ShardWriter(root / "shards", "train") as writer:
        for i, latex in enumerate(TINY_FORMULAS):
            path = render_formula(latex, root / f"{i}.png", dpi=120 + 10 * i)
            h, w = preprocess(load_image(path), spec).shape
            writer.add(path.read_bytes(), latex, "mathtext-cm", "inline", 120, "mathtext", w, h)
    (root / "corpus").mkdir()
    lines = [json.dumps({"latex": f, "source": "test"}) for f in TINY_FORMULAS + UNRENDERED]
    (root / "corpus" / "train.jsonl").write_text("\n".join(lines) + "\n")
    Vocab.build([normalize(f) for f in TINY_FORMULAS + UNRENDERED]).save(root / "corpus" / "vocab.json")
    return root


def test_pack_keeps_to_its_budgets_and_sends_only_unrendered_formulas(data_dir, tmp_path):
    whole = pack(data_dir, tmp_path / "all", shard_mib=8, formula_mib=1)
    assert whole["samples"] == len(TINY_FORMULAS)
    sent = [json.loads(l)["latex"] for l in (tmp_path / "all" / "corpus" / "train.jsonl").read_text().splitlines()]
    assert sorted(sent) == sorted(UNRENDERED)

    small = pack(data_dir, tmp_path / "small", shard_mib=3000 / 2**20, formula_mib=60 / 2**20)
    assert 0 < small["samples"] < len(TINY_FORMULAS)
    reader = ShardReader(tmp_path / "small" / "shards" / "train")
    assert len(reader) == small["samples"] and set(reader.latex) <= set(TINY_FORMULAS)
    assert small["formulas_to_render"] == 1  # each line is 38-45 bytes


def test_run_renders_trains_and_exports_a_bundle(data_dir, tmp_path):
    start = train(TrainConfig(data=str(data_dir), out=str(tmp_path / "start"), steps=1, batch_size=4, warmup=1,
                              eval_every=100, save_every=100, workers=0, model=TINY, threads=1))
    pack(data_dir, tmp_path / "pack", shard_mib=8, formula_mib=1)
    summary = run(tmp_path / "pack", tmp_path / "out", minutes=3, model=start, batch_size=4, lr=1e-3, warmup=1,
                  workers=0, render_workers=1, head_start_s=0, steps=3)
    bundle = load_model(tmp_path / "out" / "model")
    assert bundle.meta["total_steps"] == 4 and bundle.meta["trained_on"].startswith("cpu")
    assert summary["train_samples_at_end"] >= len(TINY_FORMULAS)
    assert (tmp_path / "out" / "render.log").exists() and (tmp_path / "out" / "summary.json").exists()
