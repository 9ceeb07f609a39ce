"""A few hundred fuzzed inputs through load_image -> preprocess -> recognize: a result or one typed error.

The generator is ``benchmarks/fuzz.py`` (``make fuzz`` runs 10,000 of its cases); here a different
seed runs in CI, plus every required mode at the extreme sizes and both decompression bombs.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from model.errors import ImageError
from model.inference import Recognizer

REPO = Path(__file__).resolve().parents[1]
CI_SEED = 31337
CI_CASES = 300


def _load_fuzz():
    spec = importlib.util.spec_from_file_location("im2latex_fuzz", REPO / "benchmarks" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fuzz = _load_fuzz()


@pytest.fixture(scope="module")
def recognizer(tiny_model_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only spin on a shared machine
    recognizer = Recognizer(tiny_model_dir.bundle, "cpu", threads=1)
    recognizer.load()
    yield recognizer
    torch.set_num_threads(before)


def _failures(outcomes) -> list[str]:
    return [f"case {o.index} ({o.kind}, {o.mode}, {o.size}): {o.outcome}: {o.message}\n{o.trace}"
            for o in outcomes if o.outcome.startswith(("crash:", "bad-message:"))]


def test_cases_are_reproducible(tmp_path):
    for index in (0, 5, 17, 123):
        a, b = fuzz.make_case(CI_SEED, index, tmp_path), fuzz.make_case(CI_SEED, index, tmp_path)
        assert (a.kind, a.mode, a.size, a.carrier, a.beam) == (b.kind, b.mode, b.size, b.carrier, b.beam)
        if isinstance(a.source, bytes):
            assert a.source == b.source


def test_seeded_cases_end_in_a_result_or_one_typed_error(recognizer, tmp_path):
    outcomes = [fuzz.run_case(recognizer.recognize, case) for case in fuzz.cases(CI_SEED, CI_CASES, tmp_path)]
    assert not _failures(outcomes), "\n".join(_failures(outcomes)[:5])
    kinds = Counter(o.outcome.split(":")[0] for o in outcomes)
    assert kinds["result"] > 20 and kinds["ImageError"] > 10 and kinds["BlankImageError"] > 10, kinds
    assert {o.carrier for o in outcomes} == {"image", "bytes", "path"}
    assert set(fuzz.MODES) <= {o.mode for o in outcomes}


@pytest.mark.parametrize("mode", fuzz.MODES)
def test_every_mode_at_the_extreme_sizes(recognizer, mode):
    rng = fuzz.np.random.default_rng(0)
    for size in ((1, 1), (20000, 40), (40, 20000)):
        for content in ("formula", "all-white", "noise"):
            image = fuzz._to_mode(fuzz._content(rng, content, size), mode)
            assert image.mode == mode
            outcome = fuzz.run_case(recognizer.recognize, fuzz.Case(0, content, image, mode, size))
            assert not _failures([outcome]), _failures([outcome])


@pytest.mark.parametrize("data", [fuzz.forged_bomb(100_000, 100_000), fuzz.forged_bomb(2**31 - 1, 9000),
                                  fuzz.real_bomb()], ids=["forged", "forged-max", "real"])
def test_decompression_bombs_are_refused_before_decoding(recognizer, data):
    with pytest.raises(ImageError, match="decompression bomb"):
        recognizer.recognize(data)


def test_messages_are_sentences():
    assert fuzz.is_sentence("The snip looks blank: it has no visible contrast.")
    for bad in ("", "lowercase start.", "No full stop", "Two\nlines.", " Padded.", "Traceback (most recent call last)."):
        assert not fuzz.is_sentence(bad)
