"""`im2latex average`: the mean of several checkpoints of one model, resumable like the newest."""

from __future__ import annotations

import pytest
import torch

from model.average import average_checkpoints
from model.checkpoint import load_model, save_training_checkpoint
from model.cli import main
from model.config import ModelConfig
from model.errors import CheckpointError
from model.network import Im2LatexModel
from model.vocab import Vocab

VOCAB = Vocab.build([list("abcdefgh"), ["\\frac", "{", "}"]])
CONFIG = ModelConfig(vocab_size=len(VOCAB), encoder_stages=2, d_model=64, nhead=4, decoder_layers=1,
                     dim_feedforward=128, dropout=0.0, max_len=32)


def _checkpoint(path, seed: int, step: int, config: ModelConfig = CONFIG, vocab: Vocab = VOCAB):
    torch.manual_seed(seed)
    model = Im2LatexModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(1, 1, 32, 64), torch.tensor([[32, 64]]), torch.tensor([[1, 4, 5]])).sum().backward()
    optimizer.step()
    for module in model.modules():  # a distinct BatchNorm batch count per checkpoint
        if isinstance(module, torch.nn.BatchNorm2d):
            module.num_batches_tracked.fill_(step)
    return save_training_checkpoint(path, model, config, vocab, optimizer=optimizer, step=step,
                                    meta={"total_steps": step, "seed": seed})


def test_the_mean_of_every_weight_with_the_newest_optimizer_step_and_meta(tmp_path):
    paths = [_checkpoint(tmp_path / f"{s}.pt", seed=s, step=100 * (s + 1)) for s in (2, 0, 1)]
    out = average_checkpoints(paths, tmp_path / "average.pt")
    mean = load_model(out)
    states = [load_model(p).model.state_dict() for p in paths]
    for name, value in mean.model.state_dict().items():
        if value.is_floating_point():
            expected = sum(s[name] for s in states) / 3
            assert torch.allclose(value, expected, atol=1e-6), name
        else:
            assert torch.equal(value, states[0][name]), name  # the newest (step 300) checkpoint's
    assert mean.state["step"] == 300 and mean.meta["seed"] == 2
    assert mean.meta["averaged_steps"] == [100, 200, 300]
    newest = load_model(paths[0]).state["optimizer"]
    assert torch.equal(mean.state["optimizer"]["state"][0]["exp_avg"], newest["state"][0]["exp_avg"])


def test_checkpoints_of_other_models_are_refused(tmp_path):
    a = _checkpoint(tmp_path / "a.pt", seed=0, step=1)
    wider = ModelConfig(**{**CONFIG.to_dict(), "input": {}, "dim_feedforward": 64})
    b = _checkpoint(tmp_path / "b.pt", seed=1, step=2, config=wider)
    with pytest.raises(CheckpointError, match="another network or vocabulary"):
        average_checkpoints([a, b], tmp_path / "out.pt")
    other = Vocab.build([list("abcdefgz"), ["\\frac", "{", "}"]])
    c = _checkpoint(tmp_path / "c.pt", seed=1, step=2, vocab=other)
    with pytest.raises(CheckpointError, match="another network or vocabulary"):
        average_checkpoints([a, c], tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_command_line(tmp_path, capsys):
    a = _checkpoint(tmp_path / "a.pt", seed=0, step=1)
    b = _checkpoint(tmp_path / "b.pt", seed=1, step=2)
    assert main(["average", str(a), str(b), "--out", str(tmp_path / "m.pt")]) == 0
    assert "mean of 2 checkpoints" in capsys.readouterr().out
    assert load_model(tmp_path / "m.pt").meta["averaged_steps"] == [1, 2]
    with pytest.raises(SystemExit, match="two or more"):
        main(["average", str(a), "--out", str(tmp_path / "n.pt")])
