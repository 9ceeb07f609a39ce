"""Model files: round trips, and a clear sentence for every way a file can be wrong."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from model.batching import pad_batch
from model.checkpoint import FORMAT_VERSION, load_model, save_bundle, save_training_checkpoint
from model.config import ModelConfig
from model.errors import CheckpointError, ModelNotFoundError
from model.network import Im2LatexModel
from model.vocab import Vocab

import numpy as np


class CreatesFile:
    """Unpickling this creates a file: proof of whether a loader ran the payload."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def parts():
    torch.manual_seed(0)
    vocab = Vocab.build([list("abcdefgh"), ["\\frac", "{", "}"]])
    config = ModelConfig(vocab_size=len(vocab), encoder_stages=2, d_model=64, nhead=4, decoder_layers=1,
                         dim_feedforward=128, dropout=0.0, max_len=32)
    model = Im2LatexModel(config).eval()
    return model, config, vocab


def _outputs(model: Im2LatexModel) -> torch.Tensor:
    rng = np.random.default_rng(0)
    images, sizes = pad_batch([(rng.random((32, 64)) > 0.7).astype(np.float32)])
    with torch.no_grad():
        return model(images, sizes, torch.tensor([[1, 5, 6, 7]]))


def test_bundle_round_trip(tmp_path, parts):
    model, config, vocab = parts
    bundle = save_bundle(tmp_path / "bundle", model, config, vocab, {"note": "test", "exact_match": 0.5})
    assert sorted(p.name for p in bundle.iterdir()) == ["config.json", "meta.json", "model.pt", "vocab.json"]
    raw = torch.load(bundle / "model.pt", weights_only=True)
    assert raw["format"] == FORMAT_VERSION and raw["state_dict"]["tok_emb.weight"].dtype == torch.float16
    loaded = load_model(bundle)
    assert loaded.config == config and loaded.vocab.tokens == vocab.tokens
    assert loaded.meta == {"note": "test", "exact_match": 0.5} and loaded.state == {}
    assert not loaded.model.training
    torch.testing.assert_close(_outputs(loaded.model), _outputs(model), atol=2e-2, rtol=1e-2)
    assert load_model(bundle / "model.pt").config == config  # the weights file names its folder
    assert not list(bundle.glob("*.tmp"))


def test_training_checkpoint_round_trip_resumes_exactly(tmp_path, parts):
    model, config, vocab = parts
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    images, sizes = pad_batch([np.ones((16, 32), np.float32)])
    model(images, sizes, torch.tensor([[1, 5, 6]])).sum().backward()
    optimizer.step()
    scheduler.step()
    path = save_training_checkpoint(tmp_path / "last.pt", model, config, vocab, optimizer=optimizer,
                                    scheduler=scheduler, step=123, meta={"epoch": 2})
    loaded = load_model(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name
    assert loaded.state["step"] == 123 and loaded.meta == {"epoch": 2}
    assert all(p.requires_grad for p in loaded.model.parameters())
    resumed = torch.optim.AdamW(loaded.model.parameters(), lr=1e-3)
    resumed.load_state_dict(loaded.state["optimizer"])
    assert resumed.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert loaded.state["scheduler"]["last_epoch"] == 1


def test_missing_model_names_the_place_and_how_to_get_one(tmp_path):
    for where in (tmp_path / "nowhere", tmp_path):  # absent path, and a folder with no model.pt
        with pytest.raises(ModelNotFoundError) as info:
            load_model(where)
        message = str(info.value)
        assert str(where) in message and "im2latex train" in message and "IM2LATEX_MODEL" in message


def test_incomplete_bundle(tmp_path, parts):
    bundle = save_bundle(tmp_path / "b", *parts, {})
    (bundle / "vocab.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete: vocab.json missing"):
        load_model(bundle)


@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_truncated_files(tmp_path, parts, keep):
    model, config, vocab = parts
    bundle = save_bundle(tmp_path / "b", model, config, vocab, {})
    train = save_training_checkpoint(tmp_path / "t.pt", model, config, vocab)
    for path in (bundle / "model.pt", train):
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
    for target in (bundle, train):
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            load_model(target)


def test_garbage_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(1000))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(path)


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_code_carrying_pickle_is_refused_and_never_runs(tmp_path, parts, writer):
    marker = tmp_path / "payload-ran"
    payload = {"format": 1, "kind": "im2latex-training-checkpoint", "evil": CreatesFile(marker)}
    path = tmp_path / "hostile.pt"
    if writer == "torch":  # the zip format torch.save writes
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))  # a bare pickle, as older tools wrote
    with pytest.raises(CheckpointError, match="refused because it contains code"):
        load_model(path)
    assert not marker.exists()
    # The payload is real: an unsafe loader would have run it.
    pickle.loads(pickle.dumps(CreatesFile(tmp_path / "proof")))
    assert (tmp_path / "proof").exists()


def test_hostile_weights_inside_a_bundle_are_refused(tmp_path, parts):
    bundle = save_bundle(tmp_path / "b", *parts, {})
    marker = tmp_path / "payload-ran"
    torch.save({"format": 1, "kind": "im2latex-bundle-weights", "state_dict": CreatesFile(marker)},
               bundle / "model.pt")
    with pytest.raises(CheckpointError, match="could run"):
        load_model(bundle)
    assert not marker.exists()


def test_weights_of_another_shape(tmp_path, parts):
    model, config, vocab = parts
    bundle = save_bundle(tmp_path / "b", model, config, vocab, {})
    data = json.loads((bundle / "config.json").read_text())
    data["dim_feedforward"] = 256
    (bundle / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="do not match the model configuration"):
        load_model(bundle)


def test_missing_weights(tmp_path, parts):
    model, config, vocab = parts
    path = save_training_checkpoint(tmp_path / "t.pt", model, config, vocab)
    payload = torch.load(path, weights_only=True)
    del payload["state_dict"]["norm.weight"]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit this network"):
        load_model(path)


def test_vocabulary_size_mismatch(tmp_path, parts):
    model, config, vocab = parts
    bundle = save_bundle(tmp_path / "b", model, config, vocab, {})
    vocab.extended(["\\gamma"]).save(bundle / "vocab.json")
    with pytest.raises(CheckpointError, match=f"vocabulary has {len(vocab) + 1} tokens"):
        load_model(bundle)
    # config and vocab agree with each other but not with the weights
    data = json.loads((bundle / "config.json").read_text())
    data["vocab_size"] = len(vocab) + 1
    (bundle / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=f"vocabulary of {len(vocab)} tokens"):
        load_model(bundle)
    with pytest.raises(CheckpointError, match="vocabulary has"):
        save_bundle(tmp_path / "c", model, config, vocab.extended(["x2"]), {})


def test_newer_format_asks_for_an_update(tmp_path, parts):
    model, config, vocab = parts
    path = save_training_checkpoint(tmp_path / "t.pt", model, config, vocab)
    payload = torch.load(path, weights_only=True)
    payload["format"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="newer than this program reads.*update im2latex"):
        load_model(path)


def test_unknown_config_key(tmp_path, parts):
    bundle = save_bundle(tmp_path / "b", *parts, {})
    data = json.loads((bundle / "config.json").read_text())
    data["wings"] = 2
    (bundle / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="configuration .* is not valid"):
        load_model(bundle)
