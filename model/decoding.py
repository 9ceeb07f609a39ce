"""Turn images into token ids: greedy decoding and beam search over the decoder's key/value cache.

Both take a batch; each item stops on its own at EOS and its rows leave the batch, so a short
formula does not pay for a long neighbour.  ``max_len`` counts the BOS position like
``ModelConfig.max_len`` (at most ``max_len - 1`` tokens are emitted, EOS included) and is capped
at the model's own limit.  Returned ids hold neither BOS nor EOS.  Confidence is the mean
probability of the emitted tokens (EOS included when reached): cheap, and in [0, 1].

``cached=False`` re-runs the decoder over the whole prefix at every step: slow, kept as the
reference the cached path is tested against.

Decoding is bounded three ways, so that no snip can cost much more than a normal one:

* ``max_len``: the token limit above (reason ``"length"`` when reached without EOS; with
  ``syntax``, a reading near the limit is made to close what it opened and end, and is marked
  ``"length"`` when the limit, not the model, chose a token);
* ``time_budget``: seconds for the whole call, encoder included, checked after every decoder
  step, so a call ends at most one step past it (reason ``"time"``);
* ``guard``: a :class:`RepetitionGuard` that stops a row whose last tokens are one n-gram
  repeated over and over, the way a half-trained or confused model loops until its length
  limit; the loop is cut back to one copy of the n-gram (reason ``"repetition"``).

A result stopped by any bound is incomplete, so ``Decoded.stopped`` names the bound and its
confidence is capped at ``STOPPED_CONFIDENCE``.  Results that end at EOS are unchanged by the
bounds: same ids, same confidence.

``syntax`` (:class:`model.syntax.SyntaxRules`, built from the model's vocabulary) keeps every
reading well formed: at each step the most probable *allowed* token is taken, so braces,
``\\left``/``\\right`` and environments close in order and commands get their arguments; a
reading the time budget or the repetition guard cuts gets what it left open closed after it
(``SyntaxRules.closing``).  A reading the model writes well formed anyway is unchanged;
confidences stay the model's own probabilities.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .network import Im2LatexModel
from .syntax import SyntaxRules, SyntaxState, follow
from .vocab import BOS, EOS, PAD


STOPPED_CONFIDENCE = 0.1  # the highest confidence a result cut short by a bound can have
STOP_REASONS = ("length", "time", "repetition")


@dataclass
class Decoded:
    ids: list[int]
    confidence: float
    alternatives: list[tuple[list[int], float]] = field(default_factory=list)
    stopped: str | None = None  # None: ended at EOS; else the bound that cut it ("length", "time", "repetition")
    weakest: float = 0.0  # probability of its least probable token (EOS included): where it is unsure


@dataclass(frozen=True)
class RepetitionGuard:
    """Finds a decoding loop: the tail is one n-gram (n <= ``max_ngram``) repeated back to back
    at least ``min_repeats`` times and over at least ``min_span`` tokens.

    The span rule keeps real formulas safe: a quadruple integral, a vector of five equal fractions
    or a zero matrix repeats an n-gram a few times, but 48 tokens of one n-gram is a model going
    round in circles.  With these defaults none of the 327,566 corpus formulas trips the guard
    (``benchmarks/decoding_bounds.py``), while a loop still stops at about a fifth of the
    256-token limit.
    """

    max_ngram: int = 10
    min_repeats: int = 5
    min_span: int = 48

    def period(self, ids: list[int]) -> int:
        """The length n of the repeated n-gram ending ``ids``, or 0 when it does not loop."""
        if len(ids) < self.min_span:
            return 0
        for n in range(1, self.max_ngram + 1):
            span = n * max(self.min_repeats, math.ceil(self.min_span / n))
            if span > len(ids):
                continue
            tail = ids[-span:]
            if tail[n:] == tail[:-n]:
                return n
        return 0

    def cut(self, ids: list[int]) -> list[int] | None:
        """``ids`` with its loop cut back to one copy of the n-gram, or None when it does not loop."""
        n = self.period(ids)
        if not n:
            return None
        start = len(ids) - n
        while start >= n and ids[start - n:start] == ids[start:start + n]:
            start -= n
        return ids[:start + n]


DEFAULT_GUARD = RepetitionGuard()


def _deadline(time_budget: float | None) -> float | None:
    if time_budget is None:
        return None
    if not time_budget > 0:
        raise ValueError("time_budget must be a positive number of seconds (or None)")
    return time.perf_counter() + float(time_budget)


def _capped(confidence: float, stopped: str | None) -> float:
    return confidence if stopped is None else min(confidence, STOPPED_CONFIDENCE)


class _CachedStepper:
    """One token per row per step through the key/value cache."""

    def __init__(self, model: Im2LatexModel, memory: torch.Tensor, pad_mask: torch.Tensor):
        self.model = model
        self.cache = model.start_decoding(memory, pad_mask)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.decode_step(tokens, self.cache)

    def select(self, index: torch.Tensor) -> None:
        self.cache = self.cache.select(index)


class _UncachedStepper:
    """The reference: the whole prefix through the decoder at every step."""

    def __init__(self, model: Im2LatexModel, memory: torch.Tensor, pad_mask: torch.Tensor):
        self.model, self.memory, self.pad_mask = model, memory, pad_mask
        self.prefix = torch.empty(memory.shape[0], 0, dtype=torch.long, device=memory.device)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.prefix = torch.cat([self.prefix, tokens[:, None]], dim=1)
        return self.model.decode(self.prefix, self.memory, self.pad_mask)[:, -1]

    def select(self, index: torch.Tensor) -> None:
        self.prefix = self.prefix.index_select(0, index)
        self.memory = self.memory.index_select(0, index)
        self.pad_mask = self.pad_mask.index_select(0, index)


def _steps(model: Im2LatexModel, max_len: int) -> int:
    return max(1, min(int(max_len), model.config.max_len) - 1)


def _log_probs(logits: torch.Tensor, step: int, min_len: int) -> torch.Tensor:
    logits = logits.float()
    # never outputs; a half-trained model may still rank them (two plain fills: a list index costs more)
    logits[:, PAD] = float("-inf")
    logits[:, BOS] = float("-inf")
    logp = F.log_softmax(logits, dim=-1)
    if step < min_len:
        logp[:, EOS] = float("-inf")
    return logp


def _mean_prob(log_probs: list[float]) -> float:
    if not log_probs:
        return 0.0
    return float(torch.tensor(log_probs, dtype=torch.float64).exp().mean())


def _min_prob(log_probs: list[float]) -> float:
    return float(torch.tensor(log_probs, dtype=torch.float64).exp().min()) if log_probs else 0.0


@contextmanager
def _decoding(model: Im2LatexModel, images: torch.Tensor, sizes: torch.Tensor, cached: bool, rows_per_item: int = 1):
    """What greedy decoding and beam search share: the model in eval and inference mode (its
    training flag restored after), the images encoded, a stepper over ``rows_per_item`` rows per
    image.  Yields ``(batch, stepper, device)``."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            device = next(model.parameters()).device
            memory, pad_mask = model.encode(images.to(device), sizes.to(device))
            if rows_per_item > 1:
                memory, pad_mask = memory.repeat_interleave(rows_per_item, 0), pad_mask.repeat_interleave(rows_per_item, 0)
            stepper = (_CachedStepper if cached else _UncachedStepper)(model, memory, pad_mask)
            yield memory.shape[0] // rows_per_item, stepper, memory.device
    finally:
        model.train(was_training)


def greedy_decode(model: Im2LatexModel, images: torch.Tensor, sizes: torch.Tensor, max_len: int,
                  *, min_len: int = 0, cached: bool = True, time_budget: float | None = None,
                  guard: RepetitionGuard | None = DEFAULT_GUARD,
                  syntax: SyntaxRules | None = None) -> list[Decoded]:
    """The most probable (allowed) next token at every step.  ``min_len`` forbids EOS before that
    many tokens; ``time_budget`` (seconds) and ``guard`` bound the call, ``syntax`` keeps it well
    formed (see the module docstring)."""
    deadline = _deadline(time_budget)
    with _decoding(model, images, sizes, cached) as (batch, stepper, device):
        ids: list[list[int]] = [[] for _ in range(batch)]
        logps: list[list[float]] = [[] for _ in range(batch)]
        stopped: list[str | None] = [None] * batch
        ended = [False] * batch
        states = [SyntaxState()] * batch
        pressed = [False] * batch  # the length limit, not the model, chose a token (syntax's budget)
        active = list(range(batch))  # the item of each row still decoding
        tokens = torch.full((batch,), BOS, dtype=torch.long, device=device)
        steps = _steps(model, max_len)
        for step in range(steps):
            logp = _log_probs(stepper.step(tokens), step, min_len)
            if syntax is not None:
                row_states = [states[item] for item in active]
                syntax.mask(logp, row_states)
                for item, limited in zip(active, syntax.budget(logp, row_states, steps - step)):
                    pressed[item] |= limited
            best_logp, best = logp.max(dim=-1)
            keep = []
            for row, (item, token, lp) in enumerate(zip(active, best.tolist(), best_logp.tolist())):
                logps[item].append(lp)
                if token == EOS:
                    ended[item] = True
                    continue
                ids[item].append(token)
                if syntax is not None:
                    states[item] = syntax.advance(states[item], token)
                cut = guard.cut(ids[item]) if guard is not None else None
                if cut is not None:
                    ids[item], stopped[item] = cut, "repetition"
                    continue
                keep.append(row)
            if not keep:
                break
            if deadline is not None and time.perf_counter() > deadline:
                for row in keep:
                    stopped[active[row]] = "time"
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=device)
                stepper.select(index)
                best = best.index_select(0, index)
                active = [active[row] for row in keep]
            tokens = best
        for i in range(batch):
            if (pressed[i] or not ended[i]) and stopped[i] is None:
                stopped[i] = "length"
        return [_closed(Decoded(ids[i], _capped(_mean_prob(logps[i]), stopped[i]), stopped=stopped[i],
                                weakest=_min_prob(logps[i])), syntax) for i in range(batch)]


def _closed(reading: Decoded, syntax: SyntaxRules | None) -> Decoded:
    """A reading a bound cut short (and any such alternative), with what it left open closed
    (``SyntaxRules.closing``), so that its LaTeX compiles; complete readings owe no closing and
    stay as they are, and without ``syntax`` nothing changes."""
    if syntax is None:
        return reading
    close = lambda ids: ids + syntax.closing(follow(syntax, ids))  # noqa: E731
    return Decoded(close(reading.ids), reading.confidence, [(close(ids), c) for ids, c in reading.alternatives],
                   reading.stopped, reading.weakest)


@dataclass
class _Hypothesis:
    ids: list[int]
    logps: list[float]
    stopped: str | None = None  # set when a bound, not EOS, ended it
    state: SyntaxState = SyntaxState()
    pressed: bool = False  # the length limit, not the model, chose one of its tokens

    def extended(self, token: int, logp: float, syntax: SyntaxRules | None, pressed: bool = False) -> "_Hypothesis":
        pressed = self.pressed or pressed
        if token == EOS:
            return _Hypothesis(self.ids, self.logps + [logp], "length" if pressed else None, self.state, pressed)
        state = syntax.advance(self.state, token) if syntax is not None else self.state
        return _Hypothesis(self.ids + [token], self.logps + [logp], state=state, pressed=pressed)

    def ended_by(self, reason: str, ids: list[int] | None = None) -> "_Hypothesis":
        return _Hypothesis(self.ids if ids is None else ids, self.logps, reason, self.state, self.pressed)

    @property
    def score(self) -> float:
        """Length-normalized log probability, so long formulas are not punished for their length."""
        return sum(self.logps) / max(1, len(self.logps))


def beam_search(model: Im2LatexModel, images: torch.Tensor, sizes: torch.Tensor, beam: int, max_len: int,
                *, min_len: int = 0, cached: bool = True, time_budget: float | None = None,
                guard: RepetitionGuard | None = DEFAULT_GUARD,
                syntax: SyntaxRules | None = None) -> list[Decoded]:
    """Keep the ``beam`` best prefixes per item (allowed ones, with ``syntax``); the best finished
    one wins, the others are alternatives.

    A hypothesis ends when EOS is among the top ``beam`` candidates of a step.  An item stops
    once ``beam`` have ended and its live beams score no better (length-normalized, so far), or
    at the length limit or the time budget, where its unfinished beams are scored too.  A
    looping hypothesis leaves the beam (cut back by ``guard``) and is kept as a last resort,
    ranked after every hypothesis that reached EOS; once ``beam`` of them have looped the item
    stops (so a beam of 1 gives exactly the greedy result, loops included).
    """
    if beam < 1:
        raise ValueError("beam must be at least 1")
    deadline = _deadline(time_budget)
    with _decoding(model, images, sizes, cached, rows_per_item=beam) as (batch, stepper, device):
        k = beam
        finished: list[list[_Hypothesis]] = [[] for _ in range(batch)]
        looped: list[list[_Hypothesis]] = [[] for _ in range(batch)]
        active = list(range(batch))  # rows i*k .. i*k+k-1 belong to item active[i]
        hyps = [[_Hypothesis([], []) for _ in range(k)] for _ in range(batch)]
        scores = torch.full((batch, k), float("-inf"), device=device)
        scores[:, 0] = 0.0  # all beams start equal: expand only the first at step 0
        tokens = torch.full((batch * k,), BOS, dtype=torch.long, device=device)
        steps = _steps(model, max_len)
        for step in range(steps):
            logp = _log_probs(stepper.step(tokens), step, min_len)
            pressed = [False] * logp.shape[0]
            if syntax is not None:
                row_states = [h.state for row in hyps for h in row]
                syntax.mask(logp, row_states)
                pressed = syntax.budget(logp, row_states, steps - step)
            vocab = logp.shape[-1]
            logp = logp.view(len(active), k, vocab)
            total = (scores[:, :, None] + logp).view(len(active), k * vocab)
            top_total, top_index = total.topk(min(2 * k, k * vocab), dim=1)
            top_beam, top_token = top_index // vocab, top_index % vocab
            top_logp = logp[torch.arange(len(active), device=device)[:, None], top_beam, top_token]
            out_of_time = deadline is not None and time.perf_counter() > deadline
            last = step == steps - 1 or out_of_time
            reason = "length" if step == steps - 1 else "time"
            rows, new_tokens, new_scores, new_active, new_hyps = [], [], [], [], []
            for i, item in enumerate(active):
                chosen: list[tuple[int, int, float, _Hypothesis]] = []
                for rank, (b, token, s, lp) in enumerate(zip(top_beam[i].tolist(), top_token[i].tolist(),
                                                             top_total[i].tolist(), top_logp[i].tolist())):
                    if s == float("-inf"):
                        break
                    hyp = hyps[i][b].extended(token, lp, syntax, pressed[i * k + b])
                    if token == EOS:
                        if rank < k:
                            finished[item].append(hyp)
                        continue
                    cut = guard.cut(hyp.ids) if guard is not None else None
                    if cut is not None:
                        looped[item].append(hyp.ended_by("repetition", cut))
                        continue
                    chosen.append((i * k + b, token, s, hyp))
                    if len(chosen) == k:
                        break
                if last:
                    finished[item].extend(h.ended_by(reason) for *_, h in chosen)
                if last or not chosen or len(looped[item]) >= k or _settled(finished[item], chosen, k):
                    continue
                while len(chosen) < k:  # too few live candidates: pad with dead beams
                    chosen.append((chosen[0][0], chosen[0][1], float("-inf"), chosen[0][3]))
                new_active.append(item)
                new_hyps.append([h for *_, h in chosen])
                for row, token, s, _ in chosen:
                    rows.append(row)
                    new_tokens.append(token)
                    new_scores.append(s)
            if not new_active:
                break
            stepper.select(torch.tensor(rows, device=device))
            active, hyps = new_active, new_hyps
            tokens = torch.tensor(new_tokens, dtype=torch.long, device=device)
            scores = torch.tensor(new_scores, device=device).view(len(active), k)
        return [_closed(_best_of(finished[i] + looped[i], k), syntax) for i in range(batch)]


def _settled(finished: list[_Hypothesis], chosen: list, beam: int) -> bool:
    """Done once ``beam`` hypotheses have ended and no live beam scores better than the worst of them.

    Stopping at the first ``beam`` endings would let early, truncated endings crowd out the
    complete reading that is still one or two tokens from its EOS.
    """
    if len(finished) < beam:
        return False
    worst_kept = sorted((h.score for h in finished), reverse=True)[beam - 1]
    best_live = max(s / max(1, len(h.logps)) for _, _, s, h in chosen)
    return best_live <= worst_kept


def _best_of(hypotheses: list[_Hypothesis], beam: int) -> Decoded:
    """The best-scoring hypothesis, the distinct others of the best ``beam`` as alternatives, best first.

    Hypotheses that reached EOS rank before those a bound cut short, whatever their scores.
    """
    if not hypotheses:
        return Decoded([], 0.0, stopped="length")
    ranked = sorted(hypotheses, key=lambda h: (h.stopped is None, h.score), reverse=True)[:beam]
    best = ranked[0]
    seen = {tuple(best.ids)}
    alternatives = []
    for h in ranked[1:]:
        if tuple(h.ids) not in seen:
            seen.add(tuple(h.ids))
            alternatives.append((h.ids, _capped(_mean_prob(h.logps), h.stopped)))
    return Decoded(best.ids, _capped(_mean_prob(best.logps), best.stopped), alternatives, best.stopped,
                   _min_prob(best.logps))


def unsure(reading: Decoded, reread_below: float) -> bool:
    """Whether a first reading should be read again at the other scales: a bound cut it short,
    or one of its tokens is less probable than ``reread_below`` (``input.reread_below``)."""
    return reading.stopped is not None or reading.weakest < reread_below


def most_confident(readings: list[Decoded]) -> Decoded:
    """One image read several ways (at several scales): the most confident reading, with the
    distinct others (and every reading's alternatives) as alternatives, most confident first.

    Readings a bound cut short have their confidence capped, so a complete one wins over them."""
    if len(readings) == 1:
        return readings[0]
    best = max(readings, key=lambda d: (d.stopped is None, d.confidence))
    others = [(d.ids, d.confidence) for d in readings if d is not best] + [
        alt for d in readings for alt in d.alternatives]
    alternatives, seen = [], {tuple(best.ids)}
    for ids, confidence in sorted(others, key=lambda alt: -alt[1]):
        if tuple(ids) not in seen:
            seen.add(tuple(ids))
            alternatives.append((ids, confidence))
    return Decoded(best.ids, best.confidence, alternatives, best.stopped, best.weakest)
