"""Recognizer and `im2latex predict`, on the tiny trained model."""

from __future__ import annotations

import io
import json
import shutil
import threading

import pytest
import torch
from PIL import Image

from model import inference
from model.cli import main
from model.batching import pad_batch
from model.config import InputSpec
from model.errors import BlankImageError, ImageError, ModelNotFoundError
from model.inference import (GPU_FALLBACK_WARNING, Alternative, DeviceError, Recognition, Recognizer,
                             choose_device, default_model_path)


@pytest.fixture(scope="module")
def recognizer(tiny_model_dir):
    return Recognizer(model_path=tiny_model_dir.bundle, device="cpu")


def test_loads_lazily_and_reads_a_formula(tiny_model_dir):
    r = Recognizer(model_path=tiny_model_dir.bundle, device="cpu")
    assert not r.is_loaded and r.device == "cpu"
    result = r.recognize(tiny_model_dir.images[0])
    assert r.is_loaded
    assert isinstance(result, Recognition)
    assert result.latex == tiny_model_dir.formulas[0]
    assert 0.5 < result.confidence <= 1.0 and result.seconds > 0 and result.device == "cpu"
    assert result.alternatives == [] and result.warning is None
    assert r.meta["trained_on"] == "tests/tiny_model.py"


def test_accepts_paths_bytes_and_pil_images(recognizer, tiny_model_dir):
    path = tiny_model_dir.images[1]
    expected = tiny_model_dir.formulas[1]
    with Image.open(path) as image:
        pil = image.convert("RGB")
    assert recognizer.recognize(str(path)).latex == expected
    assert recognizer.recognize(path.read_bytes()).latex == expected
    assert recognizer.recognize(pil).latex == expected


def test_batch_equals_one_by_one(recognizer, tiny_model_dir):
    batch = recognizer.recognize_batch(tiny_model_dir.images)
    single = [recognizer.recognize(p) for p in tiny_model_dir.images]
    assert [r.latex for r in batch] == [r.latex for r in single] == tiny_model_dir.formulas
    for a, b in zip(batch, single):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
    assert recognizer.recognize_batch([]) == []


def test_reading_at_two_scales_keeps_the_more_confident_reading(tiny_model_dir):
    """Each image read at glyph scales 1 and 1.3 in one batch: the result is whichever
    single-scale reading is more confident, and the other (when it differs) an alternative."""
    both = Recognizer(model_path=tiny_model_dir.bundle, device="cpu", scales=(1.0, 1.3))
    assert both.scales == (1.0, 1.3)
    one = Recognizer(model_path=tiny_model_dir.bundle, device="cpu", scales=(1.0,))
    larger = Recognizer(model_path=tiny_model_dir.bundle, device="cpu", scales=(1.3,))
    images = tiny_model_dir.images
    results = both.recognize_batch(images)
    differ = 0
    for result, a, b in zip(results, one.recognize_batch(images), larger.recognize_batch(images)):
        best, other = (a, b) if a.confidence >= b.confidence else (b, a)
        assert result.latex == best.latex
        assert result.confidence == pytest.approx(best.confidence, abs=1e-4)
        if other.latex != best.latex:
            differ += 1
            assert result.alternatives[0].latex == other.latex
    assert differ, "the tiny model should misread some image at the larger scale (else this tests little)"
    single = [both.recognize(p) for p in images]
    assert [r.latex for r in single] == [r.latex for r in results]


def test_reading_scales_come_from_the_model_and_are_checked(recognizer, tiny_model_dir, tmp_path):
    assert recognizer.scales == (1.0,)  # the tiny model's config lists none: one reading
    for bad in [(), (0.0,), (1.0, 10.0)]:
        with pytest.raises(ValueError):
            Recognizer(model_path=tiny_model_dir.bundle, scales=bad)
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_model_dir.bundle, bundle)
    config = json.loads((bundle / "config.json").read_text())
    config["input"]["reading_scales"] = [1.0, 1.3]
    (bundle / "config.json").write_text(json.dumps(config))
    assert Recognizer(model_path=bundle, device="cpu").scales == (1.0, 1.3)


def test_a_gpu_reads_at_the_models_gpu_scales(tiny_model_dir, tmp_path):
    """``input.gpu_reading_scales`` apply on CUDA and MPS only; the CPU (also after a GPU ran out of
    memory) and a model that lists none read at ``reading_scales``; given scales win everywhere."""
    from model.config import scales_on

    spec = InputSpec(reading_scales=(1.0, 1.3), gpu_reading_scales=[1.0, 1.3, 1.15])  # JSON gives a list
    assert spec.gpu_reading_scales == (1.0, 1.3, 1.15)
    assert [scales_on(spec, d) for d in ("cpu", "cuda", "cuda:1", "mps")] == [(1.0, 1.3)] + [(1.0, 1.3, 1.15)] * 3
    assert scales_on(InputSpec(reading_scales=(1.0, 1.3)), "cuda") == (1.0, 1.3)
    with pytest.raises(ValueError):
        InputSpec(gpu_reading_scales=(1.0, 9.0))
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_model_dir.bundle, bundle)
    config = json.loads((bundle / "config.json").read_text())
    config["input"]["gpu_reading_scales"] = [1.0, 1.3, 1.15]
    (bundle / "config.json").write_text(json.dumps(config))
    reader = Recognizer(model_path=bundle, device="cpu")
    assert reader.scales == (1.0,)
    reader._device = "cuda"  # as a CUDA machine would pick; nothing is decoded here
    assert reader.scales == (1.0, 1.3, 1.15)
    assert Recognizer(model_path=bundle, device="cpu", scales=(1.0,)).scales == (1.0,)
    reader._move_to_cpu = lambda: setattr(reader, "_device", "cpu")  # an out-of-memory fallback
    reader._move_to_cpu()
    assert reader.scales == (1.0,)


def test_unsure_snips_alone_are_read_again(tiny_model_dir, tmp_path):
    """With ``input.reread_below`` a first reading whose every token is at least that probable is
    the answer as it is; only the others are read at the other scale, and those keep the more
    confident of the two readings.  The second batch holds just the unsure snips."""
    images = tiny_model_dir.images
    first = Recognizer(model_path=tiny_model_dir.bundle, device="cpu", scales=(1.0,))
    one = first.recognize_batch(images)
    larger = Recognizer(model_path=tiny_model_dir.bundle, device="cpu", scales=(1.3,)).recognize_batch(images)
    weakest = [first._decode(*pad_batch(first.prepare(image)), 1)[0].weakest for image in images]
    ordered = sorted(weakest)
    half = len(ordered) // 2  # about half the snips are unsure; no snip sits on the threshold
    threshold = (ordered[half - 1] + ordered[half]) / 2
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_model_dir.bundle, bundle)
    config = json.loads((bundle / "config.json").read_text())
    config["input"].update(reading_scales=[1.0, 1.3], reread_below=threshold)
    (bundle / "config.json").write_text(json.dumps(config))
    adaptive = Recognizer(model_path=bundle, device="cpu")
    adaptive.load()
    batches = []
    decode = adaptive._decode
    adaptive._decode = lambda images, sizes, beam: batches.append(len(images)) or decode(images, sizes, beam)
    results = adaptive.recognize_batch(images)
    unsure = [i for i, w in enumerate(weakest) if w < threshold]
    assert 0 < len(unsure) < len(images)
    assert batches == [len(images), len(unsure)]
    for i, (result, a, b) in enumerate(zip(results, one, larger)):
        expected = a if i not in unsure or a.confidence >= b.confidence else b
        assert result.latex == expected.latex
        assert result.confidence == pytest.approx(expected.confidence, abs=1e-4)
        if i not in unsure:
            assert result.alternatives == a.alternatives  # never read at the other scale
    with pytest.raises(ValueError):
        InputSpec(reading_scales=(1.0, 1.3), reread_below=1.5)


def test_beam_search_gives_the_answer_and_alternatives(recognizer, tiny_model_dir):
    results = recognizer.recognize_batch(tiny_model_dir.images, beam=3)
    assert [r.latex for r in results] == tiny_model_dir.formulas
    assert any(r.alternatives for r in results)
    for r in results:
        assert all(isinstance(a, Alternative) and a.latex != r.latex for a in r.alternatives)
        assert len(r.alternatives) <= 2


def test_safe_from_several_threads(recognizer, tiny_model_dir):
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = recognizer.recognize(tiny_model_dir.images[i % len(tiny_model_dir.images)]).latex
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(results[i] == tiny_model_dir.formulas[i % len(tiny_model_dir.formulas)] for i in range(8))


def test_bad_images_raise_clear_errors(recognizer):
    with pytest.raises(BlankImageError):
        recognizer.recognize(Image.new("L", (200, 60), 255))
    with pytest.raises(ImageError):
        recognizer.recognize(b"this is not a png")


def test_warm_up_option(tiny_model_dir):
    r = Recognizer(model_path=tiny_model_dir.bundle, device="cpu", warmup=True, threads=1)
    r.load()
    assert r.is_loaded
    assert r.recognize(tiny_model_dir.images[2]).latex == tiny_model_dir.formulas[2]


def test_gpu_out_of_memory_falls_back_to_cpu_and_stays_there(tiny_model_dir, monkeypatch):
    r = Recognizer(model_path=tiny_model_dir.bundle, device="cpu")
    r.load()
    r._device = "cuda"  # pretend the model was on a GPU that is now full
    real_decode = Recognizer._decode
    calls = []

    def decode(self, images, sizes, beam):
        calls.append(self.device)
        if self.device != "cpu":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_decode(self, images, sizes, beam)

    monkeypatch.setattr(Recognizer, "_decode", decode)
    first = r.recognize(tiny_model_dir.images[0])
    assert first.latex == tiny_model_dir.formulas[0]
    assert first.warning == GPU_FALLBACK_WARNING and first.device == "cpu" and r.device == "cpu"
    second = r.recognize(tiny_model_dir.images[1])
    assert second.warning is None and second.device == "cpu"
    assert calls == ["cuda", "cpu", "cpu"]


def test_other_errors_are_not_mistaken_for_out_of_memory(tiny_model_dir, monkeypatch):
    r = Recognizer(model_path=tiny_model_dir.bundle, device="cpu")
    r.load()
    r._device = "cuda"
    monkeypatch.setattr(Recognizer, "_decode", lambda self, *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        r.recognize(tiny_model_dir.images[0])
    assert r._device == "cuda"


def test_missing_model(tmp_path):
    r = Recognizer(model_path=tmp_path / "no-model", device="cpu")
    with pytest.raises(ModelNotFoundError, match="im2latex train"):
        r.recognize(Image.new("L", (10, 10), 255))


def test_default_model_path(monkeypatch, tmp_path):
    monkeypatch.setenv("IM2LATEX_MODEL", str(tmp_path / "m"))
    assert default_model_path() == tmp_path / "m"
    monkeypatch.delenv("IM2LATEX_MODEL")
    assert default_model_path().parts[-2:] == ("resources", "model")
    assert Recognizer().model_path == default_model_path()


def test_device_choice():
    assert choose_device("cpu") == "cpu"
    assert choose_device(None) in ("cuda", "mps", "cpu")
    with pytest.raises(DeviceError, match="Unknown device"):
        choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            choose_device("cuda")
    with pytest.raises(DeviceError):
        Recognizer(device="quantum").device


# ------------------------------------------------------------------ im2latex predict (in process)


def _blank_png(path):
    Image.new("L", (120, 40), 255).save(path)
    return path


def test_predict_json_reports_each_image_and_fails_with_1(tiny_model_dir, tmp_path, capsys):
    blank = _blank_png(tmp_path / "blank.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(tiny_model_dir.images[0].read_bytes()[:60])
    good = str(tiny_model_dir.images[3])
    code = main(["predict", "--json", "--device", "cpu", "--model", str(tiny_model_dir.bundle),
                 str(blank), good, str(broken), str(tmp_path / "missing.png")])
    assert code == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["image"] for row in rows] == [str(blank), good, str(broken), str(tmp_path / "missing.png")]
    assert "error" in rows[0] and "latex" not in rows[0]
    assert rows[1]["latex"] == tiny_model_dir.formulas[3]
    assert set(rows[1]) == {"image", "latex", "confidence", "seconds"}
    assert 0 < rows[1]["confidence"] <= 1 and rows[1]["seconds"] > 0
    assert "truncated or corrupt" in rows[2]["error"] and "does not exist" in rows[3]["error"]


def test_predict_plain_prints_latex_and_errors_to_stderr(tiny_model_dir, tmp_path, capsys):
    blank = _blank_png(tmp_path / "blank.png")
    images = [str(p) for p in tiny_model_dir.images[:2]]
    code = main(["predict", "--model", str(tiny_model_dir.bundle), "--device", "cpu", images[0], str(blank),
                 images[1]])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.splitlines() == tiny_model_dir.formulas[:2]
    assert str(blank) in captured.err and captured.err.count("\n") == 1
    assert main(["predict", "--model", str(tiny_model_dir.bundle), "--device", "cpu", "--beam", "2",
                 *images]) == 0
    assert capsys.readouterr().out.splitlines() == tiny_model_dir.formulas[:2]


def test_predict_without_a_model_exits_2_with_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IM2LATEX_MODEL", str(tmp_path / "nothing-here"))
    code = main(["predict", _blank_png(tmp_path / "x.png").as_posix()])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert str(tmp_path / "nothing-here") in captured.err and "im2latex train" in captured.err
    assert captured.err.count("\n") == 1


def test_predict_with_a_broken_model_exits_2(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"garbage" * 10)
    assert main(["predict", "--model", str(bad), str(_blank_png(tmp_path / "x.png"))]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def test_cli_version_and_subcommands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and "im2latex" in capsys.readouterr().out
    assert main([]) == 2  # no subcommand: help, and a usage error code
    assert "predict" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_predict_on_a_missing_gpu_exits_2(tiny_model_dir, capsys):
    assert main(["predict", "--device", "cuda", "--model", str(tiny_model_dir.bundle),
                 str(tiny_model_dir.images[0])]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_predict_batches_give_the_one_by_one_results_in_order(tiny_model_dir, tmp_path, capsys):
    blank = str(_blank_png(tmp_path / "blank.png"))
    images = [str(p) for p in tiny_model_dir.images]
    files = [images[0], blank, *images[1:], images[0]]
    common = ["predict", "--json", "--device", "cpu", "--model", str(tiny_model_dir.bundle)]
    assert main(common + ["--batch", "1", *files]) == 1
    alone = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(common + ["--batch", "3", *files]) == 1  # windows of 12: several, sorted by size inside
    batched = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"] for r in batched] == files
    assert [r.get("latex") for r in batched] == [r.get("latex") for r in alone]
    assert [r.get("latex") for r in batched] == [tiny_model_dir.formulas[0], None, *tiny_model_dir.formulas[1:],
                                                 tiny_model_dir.formulas[0]]
    for a, b in zip(alone, batched):
        assert ("error" in a) == ("error" in b)
        if "confidence" in a:
            assert a["confidence"] == pytest.approx(b["confidence"], abs=2e-4)
    assert main(common + ["--batch", "0", *files]) == 2
