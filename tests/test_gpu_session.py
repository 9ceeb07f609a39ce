"""The GPU session script: pack what travels within its budget, then render + train + export."""

import json

import pytest

from model.checkpoint import load_model
from model.data.shards import ShardReader
from model.gpu_session import pack, run
from model.tokenizer import normalize
from model.train import TrainConfig, train
from model.vocab import Vocab
from tiny_model import TINY_FORMULAS, TINY_TRAIN_MODEL as TINY, write_tiny_shards
UNRENDERED = [r"a+b=c", r"x_{1}+x_{2}", r"\gamma\delta"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_tiny_shards(root, "train")
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
