"""Well-formed decoding: the syntax rules never forbid a canonical formula, always forbid what
breaks nesting, and greedy decoding and beam search with them emit only well-formed readings."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from model.batching import pad_batch
from model.config import ModelConfig
from model.decoding import STOPPED_CONFIDENCE, RepetitionGuard, beam_search, greedy_decode
from model.resources import bundled_model_dir
from model.syntax import SyntaxRules, SyntaxState, follow, well_formed
from model.tokenizer import normalize
from model.vocab import BOS, EOS, SPECIALS, Vocab

TOKENS = ["x", "y", "2", "{", "}", "^", "_", "\\frac", "\\sqrt", "[", "]", "\\left", "\\right", "(", ")",
          "\\begin{matrix}", "\\end{matrix}", "\\begin{pmatrix}", "\\end{pmatrix}", "&", "\\\\", "+", "."]
VOCAB = Vocab(SPECIALS + TOKENS)
RULES = SyntaxRules(VOCAB)


def ids(*tokens: str) -> list[int]:
    return [VOCAB.index[t] for t in tokens]


def bundled_vocab() -> Vocab:
    return Vocab(json.loads((bundled_model_dir() / "vocab.json").read_text())["tokens"])


# ----------------------------------------------------------------------------- the rules


CANONICAL = [
    r"\frac{a}{b}", r"\sqrt[3]{x+1}", r"\sqrt{\frac{1}{2}}", r"x_{i}^{2}", r"\left(\frac{a}{b}\right)^{2}",
    r"\left\{x\right.", r"\begin{pmatrix}a&b\\c&d\end{pmatrix}", r"\begin{array}{cc}1&2\end{array}",
    r"\text{if } x>0", r"\mathrm{d}x", r"\left[0,1\right)", r"[0,1)", r"\overset{!}{=}",
    r"\int_{0}^{\infty}e^{-x^{2}}\,dx", r"\begin{cases}x&x>0\\-x&\text{else}\end{cases}",
    r"\sqrt[n]{\left|x\right|}", r"\underbrace{a+b}_{c}", r"\operatorname{Tr}(A)", r"f'(x)",
    r"\begin{aligned}a&=b\\c&=\left(d\right)\end{aligned}",
]


@pytest.mark.parametrize("latex", CANONICAL)
def test_rules_allow_every_canonical_formula(latex):
    vocab = bundled_vocab()
    tokens = normalize(latex)
    assert vocab.covers(tokens)
    assert well_formed(SyntaxRules(vocab), vocab.encode(tokens)[1:-1])


@pytest.mark.parametrize("tokens", [
    ("x", "^", "{", "2"),                      # brace left open
    ("x", "}"),                                # closes nothing
    ("\\left", "(", "x", "}"),                 # \left closed by a brace
    ("{", "\\left", "(", "}", "\\right", ")"),  # brace closed inside \left..\right
    ("\\frac", "{", "x", "}"),                 # second argument missing
    ("\\frac", "x", "y"),                      # arguments not braced
    ("x", "^"),                                # script without argument
    ("\\begin{matrix}", "x", "\\end{pmatrix}"),  # wrong environment closed
    ("\\begin{matrix}", "x"),                  # environment left open
    ("\\left", "(", "x", "\\right"),           # \right without its delimiter
    ("\\left", "}", "x", "\\right", ")"),      # a closer as \left's delimiter
])
def test_rules_reject_broken_nesting(tokens):
    assert not well_formed(RULES, ids(*tokens))


def test_what_may_come_next():
    state = follow(RULES, ids("\\frac", "{", "x", "}"))
    assert RULES.allowed(state) == ids("{")                      # the second argument, nothing else
    state = follow(RULES, ids("\\sqrt"))
    assert sorted(RULES.allowed(state)) == sorted(ids("{", "["))  # an optional index may come first
    state = follow(RULES, ids("\\left", "(", "x"))
    banned = RULES.banned(state)
    assert VOCAB.index["}"] in banned and EOS in banned and VOCAB.index["\\right"] not in banned
    state = follow(RULES, ids("x", "+", "y"))
    assert RULES.complete(state) and EOS not in RULES.banned(state)
    assert RULES.allowed(SyntaxState()) is None


def test_cost_counts_the_fewest_tokens_that_end_the_reading():
    cases = {
        (): [],
        ("x", "+"): [],
        ("\\frac", "{", "x"): ["}", "{", "}"],
        ("\\left", "(", "x", "^"): ["{", "}", "\\right", ")"],
        ("\\left",): ["(", "\\right", ")"],
        ("\\sqrt", "[", "2"): ["]", "{", "}"],
        ("\\begin{matrix}", "{", "x"): ["}", "\\end{matrix}"],
    }
    for prefix, ending in cases.items():
        state = follow(RULES, ids(*prefix))
        assert RULES.cost(state) == len(ending), prefix
        assert well_formed(RULES, ids(*prefix, *ending))
        closing = RULES.closing(state)  # one such ending (a blank delimiter where one is due)
        assert len(closing) == len(ending) and well_formed(RULES, ids(*prefix) + closing), prefix
    assert RULES.closing(follow(RULES, ids("\\left", "(", "x", "^"))) == ids("{", "}", "\\right", ".")
    assert RULES.closing(follow(RULES, ids("\\begin{pmatrix}", "\\frac", "{", "\\sqrt"))) == \
        ids("{", "}", "}", "{", "}", "\\end{pmatrix}")


def test_budget_leaves_only_what_still_fits_before_the_limit():
    state = follow(RULES, ids("x", "^", "{", "2"))   # cost 1: "}"
    logp = torch.zeros(1, len(VOCAB))
    assert RULES.budget(logp.clone(), [state], remaining=20) == [False]  # far from the limit: nothing banned
    tight = torch.zeros(1, len(VOCAB))
    tight[0, VOCAB.index["\\frac"]] = 5.0  # the model wants to open more
    pressed = RULES.budget(tight, [state], remaining=2)  # room for one plain token, then "}"
    assert pressed == [True]
    allowed = {t for t in range(len(VOCAB)) if tight[0, t] > float("-inf")}
    assert VOCAB.index["x"] in allowed and VOCAB.index["}"] in allowed
    assert not allowed & set(ids("{", "\\frac", "\\left", "^", "\\begin{matrix}"))
    closing = torch.zeros(1, len(VOCAB))
    RULES.budget(closing, [state], remaining=1)  # exactly the cost: only closers (and EOS) survive
    assert {t for t in range(len(VOCAB)) if closing[0, t] > float("-inf")} <= {VOCAB.index["}"], EOS, *RULES.closers}
    optional = follow(RULES, ids("\\sqrt", "[", "2"))  # "]" closes it, though it is plain elsewhere
    closing = torch.zeros(1, len(VOCAB))
    RULES.budget(closing, [optional], remaining=RULES.cost(optional))
    assert closing[0, VOCAB.index["]"]] == 0.0


def test_a_plain_bracket_is_free_but_closes_an_optional_argument():
    assert well_formed(RULES, ids("[", "x", ")"))                # an interval [x)
    state = follow(RULES, ids("\\sqrt", "[", "2"))
    assert state.stack[-1].closer == VOCAB.index["]"]
    assert RULES.allowed(follow(RULES, ids("\\sqrt", "[", "2", "]"))) == ids("{")


def test_mask_only_touches_forbidden_tokens():
    logp = torch.log_softmax(torch.randn(2, len(VOCAB)), dim=-1)
    states = [follow(RULES, ids("{", "x")), follow(RULES, ids("\\frac"))]
    masked = RULES.mask(logp.clone(), states)
    banned = set(RULES.banned(states[0]))
    for t in range(len(VOCAB)):
        assert (masked[0, t] == float("-inf")) == (t in banned)
        assert (masked[1, t] == float("-inf")) == (t != VOCAB.index["{"])
    assert masked[1, VOCAB.index["{"]] == logp[1, VOCAB.index["{"]]  # kept probabilities are the model's


def test_rules_without_braces_in_the_vocabulary_owe_nothing():
    rules = SyntaxRules(Vocab(SPECIALS + ["x", "^", "\\frac"]))
    assert rules.allowed(follow(rules, [5, 4])) is None


# ----------------------------------------------------------------------------- decoding with them


@dataclass
class _Cache:
    rows: int

    def select(self, index: torch.Tensor) -> "_Cache":
        return _Cache(len(index))


class PreferenceModel(torch.nn.Module):
    """The next token depends only on the previous one: ``script[prev]`` lists the candidates,
    most probable first; every other token is far less likely."""

    def __init__(self, script: dict[str, list[str]]):
        super().__init__()
        self.config = ModelConfig(vocab_size=len(VOCAB), max_len=40)
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.table = torch.full((len(VOCAB), len(VOCAB)), -20.0)
        for prev, ranked in script.items():
            row = BOS if prev == "<bos>" else VOCAB.index[prev]
            for rank, tok in enumerate(ranked):
                self.table[row, EOS if tok == "<eos>" else VOCAB.index[tok]] = 8.0 - 2 * rank

    def encode(self, images, sizes):
        return torch.zeros(len(images), 1, 4), torch.zeros(len(images), 1, dtype=torch.bool)

    def start_decoding(self, memory, pad_mask):
        return _Cache(len(memory))

    def decode_step(self, tokens, cache):
        return self.table[tokens].clone()


def _decode(script, beam: int = 1, syntax=RULES):
    model = PreferenceModel(script)
    images, sizes = pad_batch([np.ones((16, 16), np.float32)])
    if beam == 1:
        return greedy_decode(model, images, sizes, 40, syntax=syntax)[0]
    return beam_search(model, images, sizes, beam, 40, syntax=syntax)[0]


SCRIPTS = {
    "ends with a brace open": ({"<bos>": ["x"], "x": ["^"], "^": ["{"], "{": ["2"], "2": ["<eos>", "}"],
                                "}": ["<eos>"]}, ("x", "^", "{", "2", "}")),
    "closes \\left with a brace": ({"<bos>": ["\\left"], "\\left": ["("], "(": ["x"], "x": ["}", "\\right"],
                                   "\\right": [")"], ")": ["<eos>"]}, ("\\left", "(", "x", "\\right", ")")),
    "forgets the second argument": ({"<bos>": ["\\frac"], "\\frac": ["{"], "{": ["x", "y"],
                                     "x": ["}"], "}": ["<eos>", "{"], "y": ["}"]},
                                    ("\\frac", "{", "x", "}", "{", "x", "}")),
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_greedy_with_rules_emits_the_best_well_formed_reading(name):
    script, expected = SCRIPTS[name]
    free = _decode(script, syntax=None)
    assert not well_formed(RULES, free.ids)          # the model alone breaks the formula ...
    ruled = _decode(script)
    assert ruled.ids == ids(*expected)               # ... the rules take its best allowed token
    assert ruled.stopped is None and well_formed(RULES, ruled.ids)


@pytest.mark.parametrize("name", SCRIPTS)
def test_beam_with_rules_keeps_only_well_formed_readings(name):
    script, expected = SCRIPTS[name]
    result = _decode(script, beam=3)
    assert result.ids == ids(*expected)
    assert result.stopped is None
    for alt, confidence in result.alternatives:  # each ended well formed, or was cut by a bound
        assert well_formed(RULES, alt) or confidence <= STOPPED_CONFIDENCE


def test_a_well_formed_reading_is_unchanged_by_the_rules():
    script = {"<bos>": ["x"], "x": ["^"], "^": ["{"], "{": ["2"], "2": ["}"], "}": ["<eos>"]}
    free, ruled = _decode(script, syntax=None), _decode(script)
    assert free.ids == ruled.ids == ids("x", "^", "{", "2", "}")
    assert free.confidence == pytest.approx(ruled.confidence)


def test_random_model_with_rules_always_ends_well_formed(varied_model):
    """An untrained network of the same vocabulary size: whatever it prefers, a reading that ends
    at EOS is well formed, and readings that were well formed anyway are unchanged."""
    vocab = Vocab(SPECIALS + TOKENS + [f"t{i}" for i in range(varied_model.model.config.vocab_size - len(VOCAB))])
    rules = SyntaxRules(vocab)
    free = greedy_decode(varied_model.model, varied_model.images, varied_model.sizes, 40, guard=None)
    ruled = greedy_decode(varied_model.model, varied_model.images, varied_model.sizes, 40, guard=None,
                          syntax=rules)
    for f, r in zip(free, ruled):
        if r.stopped is None:
            assert well_formed(rules, r.ids)
        if f.stopped is None and well_formed(rules, f.ids):
            assert f.ids == r.ids


LOOPS = {
    "opens scripts forever": {"<bos>": ["x"], "x": ["^"], "^": ["{"], "{": ["x"]},
    "nests \\left forever": {"<bos>": ["\\left"], "\\left": ["("], "(": ["\\frac"], "\\frac": ["{"],
                              "{": ["\\left"], "\\right": [")"]},
    "nests roots with an index": {"<bos>": ["\\sqrt"], "\\sqrt": ["["], "[": ["\\sqrt"], "]": ["{"]},
}


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_a_reading_the_repetition_guard_cuts_is_closed(search):
    """A model that loops inside a group: the guard cuts the loop back, and the reading it leaves,
    which would end with the group open, is closed after it, so that its LaTeX compiles (beam
    search with a beam of 1, which keeps the loop; wider beams find this model an EOS ending)."""
    script = {"<bos>": ["\\frac"], "\\frac": ["{"], "{": ["x"], "x": ["+"], "+": ["x"]}
    model = PreferenceModel(script)
    images, sizes = pad_batch([np.ones((16, 16), np.float32)])
    guard = RepetitionGuard(min_span=12)  # the default waits for 48 tokens, past this model's limit
    decode = (lambda **kw: greedy_decode(model, images, sizes, 40, guard=guard, **kw)[0]) if search == "greedy" else \
        (lambda **kw: beam_search(model, images, sizes, 1, 40, guard=guard, **kw)[0])
    raw = decode()
    assert raw.stopped == "repetition" and not well_formed(RULES, raw.ids)
    closed = decode(syntax=RULES)
    assert closed.stopped == "repetition" and well_formed(RULES, closed.ids)
    assert closed.ids[-3:] == ids("}", "{", "}") and closed.confidence <= STOPPED_CONFIDENCE


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("name", LOOPS)
def test_a_reading_that_reaches_the_limit_closes_what_it_opened(name, beam):
    """A model that never closes anything: without the budget the reading is cut mid-group and
    does not compile; with it the reading closes every group before the limit, ends, and is
    marked cut short by the length limit."""
    model = PreferenceModel(LOOPS[name])
    images, sizes = pad_batch([np.ones((16, 16), np.float32)])
    decode = (lambda **kw: greedy_decode(model, images, sizes, 40, guard=None, **kw)[0]) if beam == 1 else \
        (lambda **kw: beam_search(model, images, sizes, beam, 40, guard=None, **kw)[0])
    assert not well_formed(RULES, decode().ids)
    result = decode(syntax=RULES)
    assert well_formed(RULES, result.ids) and len(result.ids) <= 39  # 39 steps
    assert result.stopped == "length" and result.confidence <= STOPPED_CONFIDENCE
    assert len(result.ids) > 30  # it kept reading until the limit forced it to close


def test_near_the_limit_every_reading_of_a_random_model_is_well_formed(varied_model):
    """An untrained network under a tight limit: every reading ends well formed, cut or not."""
    vocab = Vocab(SPECIALS + TOKENS + [f"t{i}" for i in range(varied_model.model.config.vocab_size - len(VOCAB))])
    rules = SyntaxRules(vocab)
    for max_len in (6, 12, 24):
        for result in greedy_decode(varied_model.model, varied_model.images, varied_model.sizes, max_len,
                                    guard=None, syntax=rules) + \
                beam_search(varied_model.model, varied_model.images, varied_model.sizes, 2, max_len,
                            guard=None, syntax=rules):
            assert well_formed(rules, result.ids) and len(result.ids) <= max_len - 1
