"""`im2latex train`: a smoke run writes a loadable checkpoint, resume continues the step count."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.checkpoint import load_model
from model.tokenizer import normalize
from model.train import TrainConfig, combine_weights, generated_keep, kind_weights, lr_at, train
from model.vocab import Vocab
from tiny_model import TINY_FORMULAS, TINY_TRAIN_MODEL as TINY, write_tiny_shards


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for split in ("train", "val"):
        write_tiny_shards(root, split)
    (root / "corpus").mkdir()
    Vocab.build([normalize(f) for f in TINY_FORMULAS]).save(root / "corpus" / "vocab.json")
    return root


def test_smoke_run_then_resume(data_dir, tmp_path):
    common = dict(data=str(data_dir), batch_size=4, batch_pixels=10**7, warmup=2, log_every=2,
                  eval_every=3, eval_samples=8, save_every=100, workers=0, model=TINY, threads=1)
    first = train(TrainConfig(out=str(tmp_path / "a"), steps=6, **common))
    loaded = load_model(first)
    assert loaded.meta["total_steps"] == 6 and loaded.meta["samples_seen"] > 0
    assert loaded.model.config.d_model == 64
    assert (tmp_path / "a" / "best.pt").exists() and (tmp_path / "a" / "metrics.png").exists()
    rows = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_bleu4" in r for r in rows) and any("loss" in r for r in rows)

    second = train(TrainConfig(out=str(tmp_path / "b"), steps=4, resume=str(first), **common))
    again = load_model(second)
    assert again.meta["total_steps"] == 10
    assert again.meta["samples_seen"] > loaded.meta["samples_seen"]


def test_resume_with_a_new_peak_learning_rate_keeps_adams_moments(data_dir, tmp_path):
    """Continuing an annealed model at a lower peak must not throw away the optimizer state."""
    common = dict(data=str(data_dir), batch_size=4, batch_pixels=10**7, warmup=1, log_every=1,
                  eval_every=100, eval_samples=4, save_every=100, workers=0, model=TINY, threads=1)
    first = train(TrainConfig(out=str(tmp_path / "a"), steps=3, lr=6e-4, **common))
    second = train(TrainConfig(out=str(tmp_path / "b"), steps=2, lr=2e-4, resume=str(first), **common))
    adam = load_model(second).state["optimizer"]["state"]
    assert int(adam[0]["step"]) == 5  # 3 + 2: the moments carried over, not restarted


def test_resume_with_finer_feature_cells_keeps_the_weights(data_dir, tmp_path):
    common = dict(data=str(data_dir), batch_size=4, batch_pixels=10**7, warmup=1, log_every=1,
                  eval_every=100, eval_samples=4, save_every=100, workers=0, threads=1)
    first = train(TrainConfig(out=str(tmp_path / "a"), steps=1, model=TINY, **common))
    finer = train(TrainConfig(out=str(tmp_path / "b"), steps=1, resume=str(first),
                              model={"encoder_stride": 4}, **common))
    loaded = load_model(finer)
    assert loaded.config.encoder_stride == 4 and loaded.model.encoder.stride == 4
    assert loaded.meta["total_steps"] == 2
    with pytest.raises(ValueError, match="keeps its shape"):
        train(TrainConfig(out=str(tmp_path / "c"), steps=1, resume=str(first), model={"d_model": 32}, **common))


def test_config_file_and_flags(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"steps": 7, "lr": 0.001}))
    cfg = TrainConfig.from_sources(str(f), {"steps": 9, "lr": None})
    assert cfg.steps == 9 and cfg.lr == 0.001
    with pytest.raises(SystemExit):
        TrainConfig.from_sources(None, {"stepz": 1})


def test_generated_formulas_are_capped_to_their_share(tmp_path):
    corpus = tmp_path / "train.jsonl"
    rows = [{"latex": f"g{i}", "source": "generated"} for i in range(60)] + [
        {"latex": f"r{i}", "source": "research"} for i in range(40)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    latex = [r["latex"] for r in rows]
    keep = generated_keep(latex, corpus, 0.2)
    # expected generated share of an epoch: 60 * chance / (60 * chance + 40) = 0.2
    assert 60 * keep[0] / (60 * keep[0] + 40) == pytest.approx(0.2)
    assert (keep[60:] == 1.0).all()
    assert generated_keep(latex, corpus, 1.0) is None  # no cap
    assert generated_keep(latex, corpus, 0.7) is None  # already under it
    assert generated_keep(latex, tmp_path / "missing.jsonl", 0.2) is None


def test_rare_kinds_of_notation_are_weighted_up_by_their_largest_weight():
    latex = [r"x^{2}", r"\begin{pmatrix}a&b\\c&d\end{pmatrix}",
             r"\begin{cases}\begin{matrix}1\end{matrix}&x\\0&y\end{cases}", r"\text{if }x>0"]
    weights = {"matrix / array": 2.0, "multi-line (aligned, cases)": 3.0, "text phrases": 1.5}
    assert kind_weights(latex, weights).tolist() == [1.0, 2.0, 3.0, 1.5]
    assert kind_weights(latex, {}) is None
    with pytest.raises(SystemExit, match="unknown kinds"):
        kind_weights(latex, {"matrices": 2.0})
    with pytest.raises(SystemExit, match="from 0 to 10"):
        kind_weights(latex, {"text phrases": -1})
    # with the generated-formula cap: the product; neither: no weights at all
    assert combine_weights(np.array([0.5, 1, 1, 1]), kind_weights(latex, weights)).tolist() == [0.5, 2, 3, 1.5]
    assert combine_weights(None, None) is None


def test_long_formulas_are_weighted_by_their_length_group():
    long = " + ".join(f"x_{{{i}}}" for i in range(12))  # 12 * 4 - 1 = 47 tokens
    matrix_long = r"\begin{matrix}" + long + r"\end{matrix}"
    weights = {"long (41-150)": 1.5, "matrix / array": 2.0}
    assert kind_weights(["x", long, matrix_long], weights).tolist() == [1.0, 1.5, 2.0]
    assert kind_weights(["x", long], {"medium (10-40)": 3.0}).tolist() == [1.0, 1.0]


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(55, cfg) < lr_at(20, cfg)


def test_time_boxed_schedule_ends_low():
    cfg = TrainConfig(steps=10_000, warmup=10, lr=1.0, min_lr_ratio=0.1, max_minutes=60)
    assert lr_at(100, cfg, minutes=60) == pytest.approx(0.1)
    assert lr_at(100, cfg, minutes=30) == pytest.approx(0.55, abs=0.01)


def test_export_writes_a_bundle_the_recognizer_loads(data_dir, tmp_path):
    from model.cli import main

    ckpt = train(TrainConfig(data=str(data_dir), out=str(tmp_path / "r"), steps=2, batch_size=4, warmup=1,
                             eval_every=100, save_every=100, workers=0, model=TINY, threads=1))
    assert main(["export", str(ckpt), "--out", str(tmp_path / "bundle")]) == 0
    loaded = load_model(tmp_path / "bundle")
    assert loaded.meta["total_steps"] == 2
    assert loaded.config.input.reading_scales == (1.0,)  # the checkpoint's own: one reading
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["config.json", "meta.json", "model.pt", "vocab.json"]
    # the reading scales measured for a model go into its bundle, and the app reads at them
    assert main(["export", str(ckpt), "--out", str(tmp_path / "b2"), "--reading-scales", "1,1.3"]) == 0
    assert load_model(tmp_path / "b2").config.input.reading_scales == (1.0, 1.3)
    assert load_model(tmp_path / "b2").config.input.gpu_reading_scales is None  # the checkpoint's own: none
    assert main(["export", str(ckpt), "--out", str(tmp_path / "b5"), "--gpu-reading-scales", "1,1.3,1.15"]) == 0
    assert load_model(tmp_path / "b5").config.input.gpu_reading_scales == (1.0, 1.3, 1.15)
    with pytest.raises(SystemExit):
        main(["export", str(ckpt), "--out", str(tmp_path / "b3"), "--reading-scales", "1,big"])
    with pytest.raises(SystemExit):  # out of range: refused on the command line, not at load time
        main(["export", str(ckpt), "--out", str(tmp_path / "b4"), "--reading-scales", "1,10"])


def test_terminating_every_training_process_saves_and_exits_cleanly(data_dir, tmp_path):
    """`make train-stop` (pkill -f "im2latex train") reaches the data workers too, which share the
    trainer's command line; the trainer must still save last.pt and exit 0 (not hang at exit
    waiting for workers that ignore the signal)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "model.cli", "train", "--data", str(data_dir), "--out", str(out),
           "--steps", "100000", "--batch-size", "4", "--batch-pixels", str(10**7), "--workers", "1",
           "--log-every", "1", "--eval-every", "2", "--eval-samples", "4", "--save-every", "100000", "--threads", "1",
           "--model-config", json.dumps(TINY)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        # wait for a validation too: its loader's workers must be shut down as well
        metrics = out / "metrics.jsonl"
        while not (metrics.exists() and "val_bleu4" in metrics.read_text()) and time.time() < deadline \
                and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read().decode()
        os.killpg(proc.pid, signal.SIGTERM)  # the trainer and its data worker, like pkill -f
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output.decode()[-2000:]
    assert load_model(out / "last.pt").meta["total_steps"] >= 1


def test_a_bundle_resumes_from_the_checkpoint_it_was_exported_from(data_dir, tmp_path, monkeypatch):
    """`export` records its source checkpoint; resuming from the bundle then continues Adam's
    moments from that checkpoint while it still holds the bundled step, and starts them fresh
    once it does not (a later run overwrote it) or is gone."""
    from model.export import export_bundle
    from model.train import load_resumed

    monkeypatch.chdir(tmp_path)
    common = dict(data=str(data_dir), batch_size=4, batch_pixels=10**7, warmup=1, log_every=1,
                  eval_every=100, eval_samples=4, save_every=100, workers=0, model=TINY, threads=1)
    first = train(TrainConfig(out="a", steps=3, **common))
    bundle = export_bundle(first, "bundle")
    assert json.loads((bundle / "meta.json").read_text())["exported_from"] == "a/last.pt"  # relative: no machine path
    assert load_resumed(bundle)[0] == first
    second = train(TrainConfig(out="b", steps=2, resume=str(bundle), **common))
    assert int(load_model(second).state["optimizer"]["state"][0]["step"]) == 5  # 3 + 2: carried over

    train(TrainConfig(out="a", steps=1, **common))  # a later run wrote another step into a/last.pt
    assert load_resumed(bundle)[0] == bundle
    third = train(TrainConfig(out="c", steps=2, resume=str(bundle), **common))
    assert int(load_model(third).state["optimizer"]["state"][0]["step"]) == 2  # fresh
    assert load_model(third).meta["total_steps"] == 5  # the bundle's 3 + 2
    first.unlink()
    assert load_resumed(bundle)[0] == bundle


def test_the_last_saves_are_kept_and_their_mean_written_at_the_end(data_dir, tmp_path):
    common = dict(data=str(data_dir), batch_size=4, batch_pixels=10**7, warmup=1, log_every=1,
                  eval_every=100, eval_samples=4, workers=0, model=TINY, threads=1)
    run = tmp_path / "run"
    train(TrainConfig(out=str(run), steps=7, save_every=2, snapshots=3, **common))
    snaps = sorted(p.name for p in (run / "snapshots").iterdir())
    assert snaps == ["000004.pt", "000006.pt", "000007.pt"]  # the final save is the newest
    assert (run / "snapshots" / "000007.pt").read_bytes() == (run / "last.pt").read_bytes()
    mean = load_model(run / "average.pt")
    assert mean.meta["averaged_steps"] == [4, 6, 7] and mean.state["step"] == 7
    assert mean.meta["epoch"] == load_model(run / "last.pt").meta["epoch"]  # the newest save's
    states = [load_model(run / "snapshots" / name).model.state_dict() for name in snaps]
    name = next(n for n, v in states[0].items() if v.is_floating_point() and not torch.equal(v, states[2][n]))
    assert torch.allclose(mean.model.state_dict()[name], sum(s[name] for s in states) / 3, atol=1e-6)

    none = tmp_path / "none"
    train(TrainConfig(out=str(none), steps=2, save_every=1, snapshots=0, **common))
    assert not (none / "snapshots").exists() and not (none / "average.pt").exists()


def test_schedule_holds_the_peak_then_decays_over_the_last_share():
    cfg = TrainConfig(steps=110, warmup=10, lr=1.0, min_lr_ratio=0.1, decay_share=0.25)
    assert lr_at(10, cfg) == lr_at(60, cfg) == lr_at(85, cfg) == pytest.approx(1.0)  # up to 75 % of the run
    assert lr_at(97.5, cfg) == pytest.approx(0.55)  # halfway through the decay
    assert lr_at(110, cfg) == pytest.approx(0.1)
    timed = TrainConfig(steps=10_000, warmup=10, lr=1.0, min_lr_ratio=0.1, max_minutes=60, decay_share=0.25)
    assert lr_at(100, timed, minutes=44) == pytest.approx(1.0)
    assert lr_at(100, timed, minutes=52.5) == pytest.approx(0.55)
    whole = TrainConfig(steps=110, warmup=10, lr=1.0, min_lr_ratio=0.1)  # decay_share 1: cosine as before
    assert lr_at(60, whole) == pytest.approx(0.55)


def test_the_next_run_continues_from_where_the_decay_started(data_dir, tmp_path, monkeypatch):
    """A run with a final decay saves stable.pt where the decay starts; its checkpoints and the
    bundle exported from them name it, and resuming the bundle continues from it (Adam's
    moments included) while it is there at that step, else from the exported checkpoint."""
    from model.export import export_bundle
    from model.train import load_resumed

    monkeypatch.chdir(tmp_path)
    common = dict(data=str(data_dir), batch_size=4, batch_pixels=10**7, warmup=1, log_every=1,
                  eval_every=100, eval_samples=4, save_every=100, workers=0, model=TINY, threads=1)
    first = train(TrainConfig(out="a", steps=7, decay_share=0.5, **common))  # the peak up to half-way
    stable = load_model("a/stable.pt")
    assert stable.state["step"] == 5 and "stable_step" not in stable.meta  # (5 - 1) / (7 - 1) > 0.5
    last = load_model(first)
    assert last.meta["stable_checkpoint"] == "a/stable.pt" and last.meta["stable_step"] == 5
    assert stable.meta["epoch"] <= last.meta["epoch"]  # saved on the way: the epoch it was in
    bundle = export_bundle(first, "bundle")
    meta = json.loads((bundle / "meta.json").read_text())
    assert meta["stable_checkpoint"] == "a/stable.pt" and meta["total_steps"] == 7
    assert load_resumed(bundle)[0] == Path("a/stable.pt")
    second = train(TrainConfig(out="b", steps=3, resume=str(bundle), **common))  # cosine: no stable point
    resumed = load_model(second)
    assert resumed.meta["total_steps"] == 8  # 5 + 3: the decay's 2 steps were a side branch
    assert resumed.meta["epoch"] > last.meta["epoch"]  # but their epochs are not drawn again
    assert int(resumed.state["optimizer"]["state"][0]["step"]) == 8
    assert "stable_checkpoint" not in resumed.meta  # the resumed run's stable point is not inherited

    Path("a/stable.pt").unlink()
    assert load_resumed(bundle)[0] == first  # then the exported checkpoint, at the bundle's step
    with pytest.raises(ValueError, match="decay_share"):
        train(TrainConfig(out="c", steps=1, decay_share=0.0, **common))


def test_a_resumed_run_goes_on_to_the_next_epoch(data_dir, tmp_path, monkeypatch):
    """Each epoch draws its own order, augmentations and generated formulas, and a session's run
    ends mid-epoch: a resumed run starts the epoch after its checkpoint's (through a bundle too)
    and after any epoch a run already drew from the data folder (a run that was not bundled, or
    a restart from the same bundle), so sessions do not draw the same epoch again."""
    import shutil

    from model.export import export_bundle
    from model.train import EPOCHS_FILE, first_epoch

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    (data / EPOCHS_FILE).unlink(missing_ok=True)  # a data folder no run has drawn from
    common = dict(data=str(data), batch_size=4, batch_pixels=10**7, warmup=1, log_every=1,
                  eval_every=100, eval_samples=4, save_every=100, workers=0, model=TINY, threads=1)
    first = train(TrainConfig(out="a", steps=2, **common))
    assert load_model(first).meta["epoch"] == 0
    assert json.loads((data / EPOCHS_FILE).read_text()) == {"last_drawn": 0}
    second = train(TrainConfig(out="b", steps=2, resume=str(first), **common))
    assert load_model(second).meta["epoch"] == 1
    bundle = export_bundle(second, "bundle")
    assert json.loads((bundle / "meta.json").read_text())["epoch"] == 1
    third = train(TrainConfig(out="c", steps=2, resume=str(bundle), **common))
    assert load_model(third).meta["epoch"] == 2
    # the third run was not bundled: resuming the same bundle again must not redraw its epoch
    fourth = train(TrainConfig(out="d", steps=2, resume=str(bundle), **common))
    assert load_model(fourth).meta["epoch"] == 3
    (data / EPOCHS_FILE).unlink()  # another data folder: the checkpoint's own record decides
    (tmp_path / "b" / "last.pt").unlink()  # and the bundle alone, through its meta.json
    assert load_model(train(TrainConfig(out="e", steps=2, resume=str(bundle), **common))).meta["epoch"] == 2

    # checkpoints from before epochs were recorded: the epochs their samples make, never 0 again
    assert first_epoch({}, 100) == 0
    assert first_epoch({"samples_seen": 200}, 100) == 2
    assert first_epoch({"samples_seen": 201}, 100) == 3
    assert first_epoch({"samples_seen": 10**6, "epoch": 4}, 100) == 5
    assert first_epoch({"epoch": 4}, 100, last_drawn=7) == 8
    assert first_epoch({"epoch": 9}, 100, last_drawn=7) == 10


def test_a_data_folder_that_cannot_be_written_still_trains(data_dir, tmp_path, monkeypatch, capsys):
    import model.train as train_module

    def refuse(*_args, **_kwargs):
        raise PermissionError("read-only data folder")

    monkeypatch.setattr(train_module, "write_json_atomic", refuse)
    common = dict(data=str(data_dir), batch_size=4, batch_pixels=10**7, warmup=1, log_every=1,
                  eval_every=100, eval_samples=4, save_every=100, workers=0, model=TINY, threads=1)
    last = train(TrainConfig(out=str(tmp_path / "a"), steps=2, **common))
    assert load_model(last).meta["total_steps"] == 2
    printed = capsys.readouterr()
    assert "cannot write" in printed.out + printed.err

