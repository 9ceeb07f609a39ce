"""Bounded decoding: loops stop early and say so, the time budget holds, normal results do not change."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from model.batching import pad_batch
from model.checkpoint import save_bundle
from model.config import ModelConfig
from model.decoding import (DEFAULT_GUARD, STOPPED_CONFIDENCE, RepetitionGuard, beam_search,
                            greedy_decode)
from model.inference import Recognizer
from model.network import Im2LatexModel
from model.tokenizer import normalize
from model.vocab import BOS, EOS, Vocab

# ----------------------------------------------------------------------------- a scripted model
# Each image carries a program number in its first pixel; the model's next token depends only on
# the program and the previous token, so a loop of any period can be scripted exactly.
VOCAB = 64
NORMAL, LOOP1, LOOP3, LONG_CYCLE = 0, 1, 2, 3
# (moves, where any other token leads): off the script a program falls back into its own pattern.
PROGRAMS = {
    NORMAL: ({BOS: 6, 6: 7, 7: 8, 8: EOS}, EOS),
    LOOP1: ({BOS: 5}, 5),
    LOOP3: ({BOS: 6, 6: 9, 9: 10, 10: 11, 11: 9}, 9),
    LONG_CYCLE: ({BOS: 4, **{4 + i: 4 + (i + 1) % 40 for i in range(40)}}, 4),  # period 40: no short n-gram
}


@dataclass
class _Cache:
    program: torch.Tensor
    length: int = 0

    def select(self, index: torch.Tensor) -> "_Cache":
        return _Cache(self.program.index_select(0, index), self.length)


class ScriptedModel(torch.nn.Module):
    def __init__(self, max_len: int = 200, delay: float = 0.0):
        super().__init__()
        self.config = ModelConfig(vocab_size=VOCAB, max_len=max_len)
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.delay = delay
        table = torch.empty((len(PROGRAMS), VOCAB), dtype=torch.long)
        for program, (moves, otherwise) in PROGRAMS.items():
            table[program] = otherwise
            for token, nxt in moves.items():
                table[program, token] = nxt
        self.table = table

    def encode(self, images, sizes):
        program = images[:, 0, 0, 0].round().long()
        return program[:, None, None].float().expand(-1, 1, 4), torch.zeros(len(program), 1, dtype=torch.bool)

    def start_decoding(self, memory, pad_mask):
        return _Cache(memory[:, 0, 0].long())

    def decode_step(self, tokens, cache):
        if self.delay:
            time.sleep(self.delay)
        cache.length += 1
        nxt = self.table[cache.program, tokens]
        logits = torch.zeros(len(tokens), VOCAB)
        logits[:, EOS] = -30.0  # EOS only where the script says so
        logits[torch.arange(len(tokens)), nxt] = 8.0
        return logits


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: these models are tiny, and extra threads only spin on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def programs(*numbers: int):
    arrays = []
    for n in numbers:
        a = np.zeros((16, 16), np.float32)
        a[0, 0] = n
        arrays.append(a)
    return pad_batch(arrays)


# ----------------------------------------------------------------------------- the guard itself


def test_guard_finds_loops_of_any_short_period_and_keeps_one_copy():
    guard = RepetitionGuard(max_ngram=10, min_repeats=4, min_span=30)
    assert guard.cut([5] * 29) is None and guard.cut([5] * 30) == [5]
    prefix = [7, 8, 9]
    assert guard.cut(prefix + [4, 5, 6] * 10) == prefix + [4, 5, 6]
    assert guard.cut(prefix + [4, 5, 6] * 9) is None          # 27 tokens: not yet
    ten = list(range(20, 30))
    assert guard.cut(ten * 3) is None and guard.cut(ten * 4) == ten  # long n-grams need 4 copies
    assert guard.cut(list(range(20, 31)) * 5) is None         # an 11-gram is past max_ngram
    assert DEFAULT_GUARD.cut([5] * (DEFAULT_GUARD.min_span - 1)) is None
    assert DEFAULT_GUARD.cut([3, 4] + [5] * DEFAULT_GUARD.min_span) == [3, 4, 5]


@pytest.mark.parametrize("latex", [
    r"\int\int\int\int_{V}f\,dx\,dy\,dz\,dt",
    r"\begin{pmatrix}0&0&0&0&0&0\\0&0&0&0&0&0\\0&0&0&0&0&0\\0&0&0&0&0&0\end{pmatrix}",
    r"x_{1}+x_{2}+x_{3}+x_{4}+x_{5}+x_{6}+x_{7}+x_{8}+x_{9}",
    r"\int_{0}^{1}\int_{0}^{1}\int_{0}^{1}\int_{0}^{1}f\,dx",
    r"\mathbf{q}=\left[\begin{array}{c}\frac{1}{5}\\\frac{1}{5}\\\frac{1}{5}\\\frac{1}{5}\\\frac{1}{5}\\\end{array}\right]",
    r"\begin{smallmatrix}u&0&0&0&0\\0&0&0&0&0\\0&0&0&0&0\\0&0&0&0&0\\0&0&0&0&0\end{smallmatrix}",
    r"0.000110011001100110011001100110011001100110011\ldots",
    r"a\quad b\quad c\quad d\quad e\quad f\quad g\quad h",
    r"1111111111111",
    r"((((((((x))))))))",
])
def test_guard_leaves_real_formulas_alone(latex):
    tokens = normalize(latex)
    mapping = {t: i + 4 for i, t in enumerate(dict.fromkeys(tokens))}
    ids = [mapping[t] for t in tokens]
    for end in range(1, len(ids) + 1):  # checked at every step, as decoding does
        assert DEFAULT_GUARD.cut(ids[:end]) is None, latex


# ----------------------------------------------------------------------------- loops stop early


def test_scripted_loops_stop_early_with_the_reason_and_a_low_confidence():
    model = ScriptedModel(max_len=200)
    images, sizes = programs(NORMAL, LOOP1, LOOP3, LONG_CYCLE)
    normal, loop1, loop3, cycle = greedy_decode(model, images, sizes, 200)
    assert (normal.ids, normal.stopped) == ([6, 7, 8], None) and normal.confidence > 0.9
    assert (loop1.ids, loop1.stopped) == ([5], "repetition")
    assert (loop3.ids, loop3.stopped) == ([6, 9, 10, 11], "repetition")
    for d in (loop1, loop3):
        assert d.confidence <= STOPPED_CONFIDENCE
    assert cycle.stopped == "length" and len(cycle.ids) == 199 and cycle.confidence <= STOPPED_CONFIDENCE


def test_loop_stops_after_the_guard_span_not_at_the_length_limit():
    model = ScriptedModel(max_len=200)
    calls = []
    step = model.decode_step
    model.decode_step = lambda tokens, cache: (calls.append(1), step(tokens, cache))[1]
    greedy_decode(model, *programs(LOOP1), 200)
    assert len(calls) == DEFAULT_GUARD.min_span  # 48 steps instead of 199


def test_beam_search_bounds_loops_too():
    model = ScriptedModel(max_len=200)
    images, sizes = programs(NORMAL, LOOP1, LOOP3, LONG_CYCLE)
    greedy = greedy_decode(model, images, sizes, 200)
    assert [(d.ids, d.stopped) for d in beam_search(model, images, sizes, 1, 200)] == \
        [(d.ids, d.stopped) for d in greedy]
    wide = beam_search(model, images, sizes, 3, 200)
    assert (wide[0].ids, wide[0].stopped) == ([6, 7, 8], None)
    for d in wide[1:]:
        assert d.stopped is not None and d.confidence <= STOPPED_CONFIDENCE
    assert wide[1].stopped == "repetition"


def test_a_real_network_forced_into_a_loop_stops_early():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=20, encoder_stages=2, d_model=32, nhead=4, decoder_layers=1,
                         dim_feedforward=64, dropout=0.0, max_len=80)
    model = Im2LatexModel(config).eval()
    with torch.no_grad():  # the output ignores the input and always favours token 5
        model.tok_emb.weight[5] *= 10
        model.norm.weight.zero_()
        model.norm.bias.copy_(model.tok_emb.weight[5])
    images, sizes = pad_batch([np.ones((32, 64), np.float32)])
    looped = greedy_decode(model, images, sizes, 80)[0]
    assert (looped.ids, looped.stopped) == ([5], "repetition") and looped.confidence <= STOPPED_CONFIDENCE
    unguarded = greedy_decode(model, images, sizes, 80, guard=None)[0]
    assert unguarded.ids == [5] * 79 and unguarded.stopped == "length"


# ----------------------------------------------------------------------------- the time budget


@pytest.mark.parametrize("beam", [1, 3])
def test_time_budget_is_honoured(beam):
    delay, budget = 0.01, 0.25
    model = ScriptedModel(max_len=2000, delay=delay)
    images, sizes = programs(LONG_CYCLE)
    start = time.perf_counter()
    if beam == 1:
        result = greedy_decode(model, images, sizes, 2000, time_budget=budget)[0]
    else:
        result = beam_search(model, images, sizes, beam, 2000, time_budget=budget)[0]
    elapsed = time.perf_counter() - start
    assert result.stopped == "time" and result.confidence <= STOPPED_CONFIDENCE
    assert 0 < len(result.ids) <= budget / delay + 1
    assert elapsed < budget + 0.2  # at most one step past it, plus a busy machine's slack


def test_time_budget_must_be_positive():
    model = ScriptedModel()
    with pytest.raises(ValueError, match="time_budget"):
        greedy_decode(model, *programs(NORMAL), 20, time_budget=0)


# ----------------------------------------------------------------------------- nothing else changes


def test_normal_decoding_is_unchanged_by_the_bounds(varied_model):
    model, _, images, sizes = varied_model
    plain = greedy_decode(model, images, sizes, 40, guard=None)
    bounded = greedy_decode(model, images, sizes, 40, guard=DEFAULT_GUARD, time_budget=60.0)
    complete = [i for i, d in enumerate(plain) if d.stopped is None]
    assert len(complete) >= 3
    for i in complete:
        assert (bounded[i].ids, bounded[i].confidence, bounded[i].stopped) == (plain[i].ids, plain[i].confidence, None)
    plain_beam = beam_search(model, images, sizes, 3, 40, guard=None)
    bounded_beam = beam_search(model, images, sizes, 3, 40, time_budget=60.0)
    for i, (b, p) in enumerate(zip(bounded_beam, plain_beam)):
        if p.stopped is None:
            assert (b.ids, b.confidence, b.alternatives, b.stopped) == (p.ids, p.confidence, p.alternatives, None)


def test_a_looping_neighbour_does_not_change_a_normal_item():
    model = ScriptedModel(max_len=200)
    together = greedy_decode(model, *programs(LOOP1, NORMAL, LOOP3), 200)
    alone = greedy_decode(model, *programs(NORMAL), 200, guard=None)[0]
    assert (together[1].ids, together[1].confidence, together[1].stopped) == (alone.ids, alone.confidence, None)


# ----------------------------------------------------------------------------- through the Recognizer


@pytest.fixture(scope="module")
def looping_bundle(tmp_path_factory):
    """A real bundle whose network always says token 5: the worst case, a model stuck in a loop."""
    torch.manual_seed(0)
    vocab = Vocab.build([list("abcdefgh")])
    config = ModelConfig(vocab_size=len(vocab), encoder_stages=2, d_model=32, nhead=4, decoder_layers=1,
                         dim_feedforward=64, dropout=0.0, max_len=200)
    model = Im2LatexModel(config).eval()
    with torch.no_grad():
        model.tok_emb.weight[5] *= 10
        model.norm.weight.zero_()
        model.norm.bias.copy_(model.tok_emb.weight[5])
    return save_bundle(tmp_path_factory.mktemp("looping") / "bundle", model, config, vocab, {})


def _snip() -> Image.Image:
    image = Image.new("L", (120, 40), 255)
    ImageDraw.Draw(image).text((8, 10), "x + y", fill=0)
    return image


def test_recognizer_reports_the_bound_that_stopped_it(looping_bundle):
    recognizer = Recognizer(looping_bundle, "cpu")
    looped = recognizer.recognize(_snip())
    assert looped.stopped == "repetition" and looped.confidence <= STOPPED_CONFIDENCE
    assert looped.latex == Vocab.build([list("abcdefgh")]).decode([5])[0]
    short = Recognizer(looping_bundle, "cpu", max_tokens=8, time_budget=None).recognize(_snip())
    assert short.stopped == "length" and len(normalize(short.latex)) == 8
    timed = recognizer.recognize(_snip(), time_budget=1e-6)   # one decoder step always runs
    assert timed.stopped == "time" and timed.latex
    unbounded = Recognizer(looping_bundle, "cpu", time_budget=None).recognize(_snip(), time_budget=math.inf)
    assert unbounded.stopped == "repetition"
