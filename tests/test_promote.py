"""`im2latex promote`: the bundle is replaced by a checkpoint only when that reads better, keeps
its reading settings, and never changes vocabulary."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_model, save_bundle, save_training_checkpoint
from model.cli import main
from model.evaluate import Sample
from model.promote import candidates, promote
from model.vocab import Vocab


def _checkpoint(path: Path, tiny, broken: bool = False, vocab: Vocab | None = None) -> Path:
    """The tiny bundle's weights as a training checkpoint; ``broken``: its output layer zeroed
    (reads nothing right)."""
    loaded = load_model(tiny.bundle)
    model = loaded.model.float()
    if broken:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.startswith(("head", "out", "norm")) or "generator" in name:
                    p.zero_()
    config = replace(loaded.config, input=replace(loaded.config.input, reading_scales=(1.0, 1.3)))
    return save_training_checkpoint(path, model, config, vocab or loaded.vocab,
                                    meta={"total_steps": 77, "samples_seen": 1234})


def _samples(tiny) -> list[Sample]:
    return [Sample(str(p), f, "mathtext") for p, f in zip(tiny.images, tiny.formulas)]


def _bundle_from(checkpoint: Path, out: Path, reread_below: float | None = 0.5) -> Path:
    loaded = load_model(checkpoint)
    config = replace(loaded.config, input=replace(loaded.config.input, reading_scales=(1.0,), reread_below=reread_below,
                                                  gpu_reading_scales=(1.0, 1.2)))
    return save_bundle(out, loaded.model, config, loaded.vocab, {"total_steps": 5})


def test_a_better_checkpoint_replaces_the_bundle_and_reads_as_it_did(tiny_model_dir, tmp_path):
    good = _checkpoint(tmp_path / "run" / "last.pt", tiny_model_dir)
    bundle = _bundle_from(_checkpoint(tmp_path / "broken.pt", tiny_model_dir, broken=True), tmp_path / "bundle")
    winner, scored = promote(bundle, [good], _samples(tiny_model_dir), batch=4)
    assert winner.name == str(good) and [s.name for s in scored] == ["bundle", str(good)]
    assert scored[0].scores["exact_match"] < 0.5 and winner.scores["exact_match"] == 1.0
    config = json.loads((bundle / "config.json").read_text())
    assert config["input"]["reading_scales"] == [1.0] and config["input"]["reread_below"] == 0.5  # the bundle's
    assert config["input"]["gpu_reading_scales"] == [1.0, 1.2]
    meta = json.loads((bundle / "meta.json").read_text())
    assert meta["total_steps"] == 77 and meta["best_val_exact_match"] == 1.0 and meta["best_val_n"] == 8
    again, _ = promote(bundle, [good], _samples(tiny_model_dir), batch=4)  # a tie keeps the bundle
    assert again.name == "bundle"


def test_a_worse_checkpoint_or_a_dry_run_leaves_the_bundle_untouched(tiny_model_dir, tmp_path):
    bundle = shutil.copytree(tiny_model_dir.bundle, tmp_path / "bundle")
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    broken = _checkpoint(tmp_path / "broken.pt", tiny_model_dir, broken=True)
    winner, scored = promote(bundle, [broken], _samples(tiny_model_dir), batch=4)
    assert winner.name == "bundle" and scored[1].scores["exact_match"] < scored[0].scores["exact_match"]
    weak_bundle = _bundle_from(broken, tmp_path / "weak")
    weak_before = {p.name: p.read_bytes() for p in weak_bundle.iterdir()}
    good = _checkpoint(tmp_path / "good.pt", tiny_model_dir)
    winner, _ = promote(weak_bundle, [good], _samples(tiny_model_dir), batch=4, dry_run=True)
    assert winner.name == str(good)
    assert {p.name: p.read_bytes() for p in weak_bundle.iterdir()} == weak_before
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before


def test_another_vocabulary_is_refused(tiny_model_dir, tmp_path):
    tokens = list(load_model(tiny_model_dir.bundle).vocab.tokens)
    other = _checkpoint(tmp_path / "other.pt", tiny_model_dir, vocab=Vocab(tokens[:-1] + ["\\zeta"]))
    with pytest.raises(SystemExit, match="another vocabulary"):
        promote(tiny_model_dir.bundle, [other], _samples(tiny_model_dir))


def test_candidates_of_a_run_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(SystemExit, match="no last.pt or best.pt"):
        candidates([run])
    (run / "last.pt").write_bytes(b"x")
    (run / "best.pt").write_bytes(b"x")
    extra = tmp_path / "step.pt"
    extra.write_bytes(b"x")
    assert candidates([run, extra]) == [run / "last.pt", run / "best.pt", extra]
    with pytest.raises(SystemExit, match="does not exist"):
        candidates([tmp_path / "nope"])


def test_command_line_scores_a_shard_split_and_writes_json(tiny_model_dir, tmp_path):
    from tiny_model import write_tiny_shards

    write_tiny_shards(tmp_path / "data", "val")
    bundle = shutil.copytree(tiny_model_dir.bundle, tmp_path / "bundle")
    broken = _checkpoint(tmp_path / "broken.pt", tiny_model_dir, broken=True)
    out = tmp_path / "promote.json"
    assert main(["promote", str(broken), "--bundle", str(bundle), "--split", str(tmp_path / "data" / "shards" / "val"),
                 "--limit", "8", "--batch", "4", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["winner"] == "bundle" and not result["promoted"] and set(result["scores"]) == {"bundle", str(broken)}
