"""Shards on disk (write, read, resume, damage) and the training Dataset with its sampler."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from model.batching import pad_batch
from model.config import InputSpec
from model.data.render_mathtext import render_mathtext
import model.preprocess as preprocess_module
from model.data import augment as augment_module
from model.data.shards import (AUGMENT_ATTEMPTS, BucketBatchSampler, FormulaDataset, ShardError, ShardReader,
                               ShardWriter, reindex_sizes, size_matches, verify_shards)
from model.preprocess import preprocess
from model.tokenizer import normalize
from model.vocab import BOS, EOS, Vocab


def _png(seed: int, width: int = 60) -> bytes:
    """A small black-on-white picture, different for every seed."""
    image = Image.new("L", (width, 24), 255)
    ImageDraw.Draw(image).text((2, 4), f"s{seed}", fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write(writer: ShardWriter, start: int, count: int) -> None:
    for i in range(start, start + count):
        writer.add(_png(i), f"x_{{{i}}}", "cm", "display", 100, "tex", 32 + 16 * (i % 5), 32)


def test_round_trip_with_several_shards(tmp_path):
    with ShardWriter(tmp_path, "train", max_shard_bytes=4096) as writer:
        _write(writer, 0, 12)
        writer.add_skip(r"\bad", "compile_error", "Undefined control sequence.")
        writer.add_skip(r"\slow", "timeout", "pdflatex ran longer than 40 s")
    split = tmp_path / "train"
    tars = sorted(split.glob("shard-*.tar"))
    assert len(tars) > 2 and all(t.stat().st_size <= 4096 + 1024 for t in tars)
    reader = ShardReader(split)
    assert len(reader) == 12
    for i in range(12):
        assert reader.read_bytes(i) == _png(i)
        record = reader.record(i)
        assert record["latex"] == f"x_{{{i}}}" and record["width"] == 32 + 16 * (i % 5)
        assert reader.read_image(i).mode == "L"
    # plain tar tools read the shards too, and the index offsets point at the member data
    with tarfile.open(tars[0]) as tar:
        members = tar.getmembers()
        assert members[0].name == reader.record(0)["name"] and members[0].offset_data == reader.record(0)["offset"]
    manifest = json.loads((split / "manifest.json").read_text())
    assert manifest["samples"] == 12 and manifest["skipped"] == {"compile_error": 1, "timeout": 1}
    report = verify_shards(split)
    assert report.samples == 12 and report.shards == len(tars)
    # reopened: a compile error stays done, a timeout is tried again
    with ShardWriter(tmp_path, "train") as again:
        assert r"\bad" in again.done and r"\slow" not in again.done
        assert again.samples == 12 and dict(again.skipped) == {"compile_error": 1}
    assert verify_shards(split).skipped == {"compile_error": 1}


def test_only_one_writer_at_a_time(tmp_path):
    first = ShardWriter(tmp_path, "train")
    with pytest.raises(ShardError, match="another render is writing"):
        ShardWriter(tmp_path, "train")
    first.close()
    ShardWriter(tmp_path, "train").close()


def test_resume_after_a_crash_drops_the_torn_tail(tmp_path):
    writer = ShardWriter(tmp_path, "train")
    _write(writer, 0, 5)
    writer.flush()
    split = tmp_path / "train"
    # the crash: half a PNG appended to the tar, half an index line, no close()
    writer._tar.write(b"\0" * 512 + _png(99)[:40])
    writer._tar.flush()
    writer._index.write(b'{"name": "train-00000005.png", "off')
    writer._index.flush()
    writer._lock.close()  # the process died: the OS releases its lock
    del writer
    with pytest.raises(ShardError, match="incomplete"):
        verify_shards(split)
    assert len(ShardReader(split)) == 5  # readers already ignore the torn line

    resumed = ShardWriter(tmp_path, "train")
    assert resumed.samples == 5 and resumed.done == {f"x_{{{i}}}" for i in range(5)}
    _write(resumed, 5, 3)
    resumed.close()
    reader = ShardReader(split)
    assert len(reader) == 8 and [reader.read_bytes(i) for i in range(8)] == [_png(i) for i in range(8)]
    assert len({reader.record(i)["name"] for i in range(8)}) == 8
    assert verify_shards(split).samples == 8


def test_resume_when_the_index_is_ahead_of_the_tar(tmp_path):
    with ShardWriter(tmp_path, "train") as writer:
        _write(writer, 0, 4)
    tar = tmp_path / "train" / "shard-00000.tar"
    last = ShardReader(tmp_path / "train").record(3)
    with open(tar, "r+b") as f:  # the data of the last sample never reached the disk
        f.truncate(last["offset"] + 10)
    resumed = ShardWriter(tmp_path, "train")
    assert resumed.samples == 3 and "x_{3}" not in resumed.done
    _write(resumed, 3, 1)
    resumed.close()
    assert verify_shards(tmp_path / "train").samples == 4


def test_damaged_shards_are_reported_clearly(tmp_path):
    with ShardWriter(tmp_path, "train", max_shard_bytes=4096) as writer:
        _write(writer, 0, 10)
    split = tmp_path / "train"
    reader = ShardReader(split)
    first = reader.record(1)
    with open(split / first["shard"], "r+b") as f:  # overwrite the PNG signature of sample 1
        f.seek(first["offset"])
        f.write(b"GARBAGE!")
    with pytest.raises(ShardError, match=r"sample train-00000001\.png.*not a PNG"):
        verify_shards(split)
    with pytest.raises(ShardError, match="not a readable PNG"):
        ShardReader(split).read_image(1)

    # an offset beyond the end of its tar
    index = split / "shard-00001.jsonl"
    lines = index.read_text().splitlines()
    record = json.loads(lines[0])
    record["offset"] = 10**9
    index.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    report = verify_shards(split, raise_on_error=False)
    assert any("beyond the end of the tar" in p for p in report.problems)

    # a tar without its index
    (split / "shard-00002.jsonl").unlink()
    with pytest.raises(ShardError, match=r"shard-00002\.tar has no index"):
        verify_shards(split)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ShardError, match="holds no shards"):
        ShardReader(empty)


def test_reindex_stores_the_sizes_preprocessing_gives_now(tmp_path):
    spec = InputSpec()
    renders = render_mathtext(FORMULAS[:5], "cm", "display", 150)
    with ShardWriter(tmp_path, "train", max_shard_bytes=6000) as writer:  # several shards
        for k, r in enumerate(renders):
            buffer = io.BytesIO()
            r.image.save(buffer, format="PNG")
            stale = (16, 16) if k % 2 else preprocess(r.image, spec).shape  # as an older preprocessing gave
            writer.add(buffer.getvalue(), r.latex, r.font, r.style, r.dpi, r.renderer, stale[1], stale[0])
    split = tmp_path / "train"
    assert len(list(split.glob("shard-*.jsonl"))) > 1
    assert reindex_sizes(split) == (5, 2)
    reader = ShardReader(split)
    for i, r in enumerate(renders):
        assert (reader.heights[i], reader.widths[i]) == preprocess(r.image, spec).shape
        assert reader.latex[i] == r.latex
    assert verify_shards(split).samples == 5 and not verify_shards(split).problems
    assert reindex_sizes(split) == (5, 0)
    with ShardWriter(tmp_path, "train"):  # a render writing to the split
        with pytest.raises(ShardError, match="reindex after it has finished"):
            reindex_sizes(split)


# ---------------------------------------------------------------- Dataset and sampler

FORMULAS = [r"x^{2}", r"\frac{a}{b}+c", r"\alpha+\beta=\gamma", r"\sum_{i=1}^{n}i^{2}=\frac{n(n+1)(2n+1)}{6}",
            r"e^{i\pi}", r"\sqrt{x+1}", r"a_{1},a_{2},\ldots,a_{n}", r"f(x)=\int_{0}^{x}g(t)dt",
            r"\mathbb{R}^{n}", r"x\in A\cup B", r"\lim_{n\to\infty}\frac{1}{n}=0", r"y=mx+b"]


@pytest.fixture(scope="module")
def shard_split(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    spec = InputSpec()
    with ShardWriter(out, "train") as writer:
        for font in ("cm", "dejavusans"):
            for r in render_mathtext(FORMULAS, font, "display", 150):
                array = preprocess(r.image, spec)
                buffer = io.BytesIO()
                r.image.save(buffer, format="PNG")
                writer.add(buffer.getvalue(), r.latex, r.font, r.style, r.dpi,
                           r.renderer, array.shape[1], array.shape[0])
    return out / "train"


@pytest.fixture(scope="module")
def vocab():
    return Vocab.build([normalize(f) for f in FORMULAS])


def test_dataset_items_are_model_inputs_and_token_ids(shard_split, vocab):
    spec = InputSpec()
    clean = FormulaDataset(shard_split, vocab, spec, augment=False, seed=0)
    assert len(clean) == 2 * len(FORMULAS)
    array, ids = clean[3]
    assert array.dtype == np.float32 and array.ndim == 2 and array.shape[0] % spec.grid == 0
    assert array.shape == (clean.heights[3], clean.widths[3])  # the stored size is the clean input's size
    assert ids[0] == BOS and ids[-1] == EOS and ids[1:-1] == [vocab.index[t] for t in normalize(FORMULAS[3])]
    assert array.max() > 0.9 and array[:, -1].max() == 0.0  # ink 1, blank border

    noisy = FormulaDataset(shard_split, vocab, spec, augment=True, seed=0)
    a1, ids1 = noisy[(3, 0)]
    a2, _ = noisy[(3, 0)]
    a3, _ = noisy[(3, 1)]
    assert ids1 == ids and np.array_equal(a1, a2)  # same (seed, epoch, index): same sample
    assert a1.shape != a3.shape or not np.array_equal(a1, a3)  # another epoch: another augmentation
    noisy.set_epoch(1)
    assert np.array_equal(noisy[3][0], a3)


def test_augmented_items_keep_about_the_clean_input_size(shard_split, vocab):
    """The sampler buckets by the stored (clean) sizes, so no augmented item may be much bigger."""
    spec = InputSpec()
    dataset = FormulaDataset(shard_split, vocab, spec, augment=True, seed=0)
    for epoch in range(3):
        for i in range(len(dataset)):
            array, _ = dataset[(i, epoch)]
            assert size_matches(array.shape, (dataset.heights[i], dataset.widths[i]), spec.grid)
    assert size_matches((48, 336), (32, 224), 16) and not size_matches((256, 688), (32, 64), 16)
    assert not size_matches((32, 96), (32, 224), 16)  # far too small is a misjudged scale too


def test_augmented_items_place_their_glyphs_at_drawn_scales(shard_split, vocab, monkeypatch):
    """Inference reads at glyph scales 1 and 1.3, and zoom levels move the glyph-height estimate:
    training inputs are placed across INPUT_SCALE_RANGE, not at the model's glyph height alone."""
    spec = InputSpec()
    heights = []
    real_preprocess = preprocess_module.preprocess

    def recording(image, input_spec):
        heights.append(input_spec.glyph_height)
        return real_preprocess(image, input_spec)

    monkeypatch.setattr(preprocess_module, "preprocess", recording)
    dataset = FormulaDataset(shard_split, vocab, spec, augment=True, seed=0)
    for epoch in range(40):
        dataset[(3, epoch)]
    low, high = augment_module.INPUT_SCALE_RANGE
    scales = np.array(heights) / spec.glyph_height
    assert scales.min() >= low and scales.max() <= high
    assert (scales < 0.95).sum() >= 5 and (scales > 1.15).sum() >= 5  # both sides of 1, often
    heights.clear()
    FormulaDataset(shard_split, vocab, spec, augment=False)[3]
    assert heights == [spec.glyph_height]  # a clean (validation) input is placed at the model's own


def _misjudged_scale(monkeypatch, bad_attempts: int) -> list[int]:
    """Make augmentation blow the model input up 4x on its first ``bad_attempts`` draws (as when
    preprocessing misreads the glyph size of a faint, blurred snip); returns the draws made."""
    draws: list[int] = []
    real_augment = augment_module.augment

    def fake_augment(image, rng, native=False):
        draws.append(len(draws))
        return real_augment(image, rng, native)

    real_preprocess = preprocess_module.preprocess

    def fake_preprocess(image, spec):
        array = real_preprocess(image, spec)
        if len(draws) <= bad_attempts and image.mode == "RGB":
            return np.zeros((array.shape[0] * 4, array.shape[1] * 4), dtype=np.float32)
        return array

    monkeypatch.setattr(augment_module, "augment", fake_augment)
    monkeypatch.setattr(preprocess_module, "preprocess", fake_preprocess)
    return draws


def test_a_misjudged_augmentation_is_drawn_again(shard_split, vocab, monkeypatch):
    spec = InputSpec()
    draws = _misjudged_scale(monkeypatch, bad_attempts=1)
    array, _ = FormulaDataset(shard_split, vocab, spec, augment=True, seed=0)[(3, 0)]
    assert len(draws) == 2
    clean, _ = FormulaDataset(shard_split, vocab, spec, augment=False)[3]
    assert size_matches(array.shape, clean.shape, spec.grid) and not np.array_equal(array, clean)


def test_the_clean_render_serves_when_every_draw_is_misjudged(shard_split, vocab, monkeypatch):
    spec = InputSpec()
    draws = _misjudged_scale(monkeypatch, bad_attempts=AUGMENT_ATTEMPTS)
    array, ids = FormulaDataset(shard_split, vocab, spec, augment=True, seed=0)[(3, 0)]
    assert len(draws) == AUGMENT_ATTEMPTS
    clean, clean_ids = FormulaDataset(shard_split, vocab, spec, augment=False)[3]
    assert np.array_equal(array, clean) and ids == clean_ids


def test_sampler_buckets_by_width_deterministically(shard_split):
    rng = np.random.default_rng(0)
    widths = rng.integers(2, 64, 500) * 16
    sampler = BucketBatchSampler(widths, batch_size=16, shuffle=True, seed=3, with_epoch=False)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert max(len(b) for b in batches) == 16
    spread = np.mean([np.ptp(widths[b]) for b in batches])
    random_spread = np.mean([np.ptp(widths[rng.choice(500, 16, replace=False)]) for _ in range(50)])
    assert spread < 0.1 * random_spread  # similar widths in a batch
    assert list(BucketBatchSampler(widths, batch_size=16, shuffle=True, seed=3, with_epoch=False)) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches  # a new epoch mixes differently

    heights = rng.integers(2, 8, 500) * 16
    budget = BucketBatchSampler(widths, max_pixels=64 * 16 * 300, heights=heights, seed=1, with_epoch=False)
    for b in budget:
        assert len(b) == 1 or len(b) * widths[b].max() * heights[b].max() <= 64 * 16 * 300
    # heights come first: padding to the tallest item wastes little
    padded = sum(len(b) * widths[b].max() * heights[b].max() for b in budget)
    assert padded < 1.3 * (widths * heights).sum()
    assert np.mean([np.ptp(heights[b]) for b in budget]) < 0.1 * np.ptp(heights)
    ranks = [list(BucketBatchSampler(widths, batch_size=8, seed=1, rank=r, world=2, with_epoch=False)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1])
    assert not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}


def test_sampler_keeps_each_sample_with_its_chance_anew_every_epoch():
    widths = np.full(2000, 64)
    keep = np.where(np.arange(2000) < 1000, 0.25, 1.0)  # the first half is a plentiful kind
    sampler = BucketBatchSampler(widths, batch_size=16, seed=2, with_epoch=False, keep=keep)
    first = [i for b in sampler for i in b]
    assert set(range(1000, 2000)) <= set(first)  # chance 1: always in
    assert 180 <= sum(i < 1000 for i in first) <= 320
    assert [i for b in BucketBatchSampler(widths, batch_size=16, seed=2, with_epoch=False, keep=keep)
            for i in b] == first  # reproducible for (seed, epoch) ...
    sampler.set_epoch(1)
    assert {i for b in sampler for i in b if i < 1000} != {i for i in first if i < 1000}  # ... and drawn anew
    with pytest.raises(ValueError):
        BucketBatchSampler(widths, batch_size=16, keep=keep[:10])


def test_sampler_repeats_a_rare_kind_with_its_own_augmentation_per_copy(shard_split, vocab):
    widths = np.full(2000, 64)
    keep = np.where(np.arange(2000) < 100, 2.5, 1.0)  # the first 100 are a rare kind, weighted 2.5
    sampler = BucketBatchSampler(widths, batch_size=16, seed=3, keep=keep)
    keys = [k for b in sampler for k in b]
    counts = np.bincount([k[0] for k in keys], minlength=2000)
    assert (counts[100:] == 1).all()
    assert set(counts[:100]) <= {2, 3} and 220 <= counts[:100].sum() <= 280
    assert len(set(keys)) == len(keys)  # each copy has its own key ...
    assert {k[2] for k in keys if len(k) == 3} == {1, 2} and all(k[1] == 0 for k in keys)
    with pytest.raises(ValueError):
        BucketBatchSampler(widths, batch_size=16, keep=np.full(2000, -1.0))
    # ... and so its own augmentation; the first copy looks as an unrepeated sample does
    dataset = FormulaDataset(shard_split, vocab, InputSpec(), augment=True, seed=5)
    first, again, copy = dataset[(0, 0)][0], dataset[(0, 0, 0)][0], dataset[(0, 0, 1)][0]
    assert np.array_equal(first, again)
    assert first.shape != copy.shape or not np.array_equal(first, copy)


def test_dataloader_with_persistent_workers_gives_bucketed_tensors(shard_split, vocab):
    spec = InputSpec()
    dataset = FormulaDataset(shard_split, vocab, spec, augment=True, seed=5)
    # no shuffling: both epochs see the same batches, so only augmentation can tell them apart
    sampler = BucketBatchSampler(dataset.widths, batch_size=4, shuffle=False, seed=5)

    def collate(batch):
        images, sizes = pad_batch([b[0] for b in batch])
        return images, sizes, [b[1] for b in batch]

    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=1,
                                         persistent_workers=True)
    seen = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        for images, sizes, ids in loader:
            assert images.dim() == 4 and images.shape[1] == 1 and images.shape[0] == len(ids) <= 4
            assert (sizes[:, 1] <= images.shape[3]).all() and (sizes[:, 0] <= images.shape[2]).all()
            seen.append(images.sum().item())
    assert len(seen) == 2 * len(sampler)
    first, second = seen[: len(seen) // 2], seen[len(seen) // 2:]
    assert all(a != b for a, b in zip(first, second))  # a persistent worker still sees the new epoch
