"""Turn images into token ids: greedy decoding and beam search over the decoder's key/value cache.

Both take a batch; each item stops on its own at EOS and its rows leave the batch, so a short
formula does not pay for a long neighbour.  ``max_len`` counts the BOS position like
``ModelConfig.max_len`` (at most ``max_len - 1`` tokens are emitted, EOS included) and is capped
at the model's own limit.  Returned ids hold neither BOS nor EOS.  Confidence is the mean
probability of the emitted tokens (EOS included when reached): cheap, and in [0, 1].

``cached=False`` re-runs the decoder over the whole prefix at every step: slow, kept as the
reference the cached path is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .network import Im2LatexModel
from .vocab import BOS, EOS, PAD


@dataclass
class Decoded:
    ids: list[int]
    confidence: float
    alternatives: list[tuple[list[int], float]] = field(default_factory=list)


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
    logits[:, [PAD, BOS]] = float("-inf")  # never outputs; a half-trained model may still rank them
    logp = F.log_softmax(logits, dim=-1)
    if step < min_len:
        logp[:, EOS] = float("-inf")
    return logp


def _mean_prob(log_probs: list[float]) -> float:
    if not log_probs:
        return 0.0
    return float(torch.tensor(log_probs, dtype=torch.float64).exp().mean())


def _prepare(model: Im2LatexModel, images: torch.Tensor, sizes: torch.Tensor):
    device = next(model.parameters()).device
    return model.encode(images.to(device), sizes.to(device))


def greedy_decode(model: Im2LatexModel, images: torch.Tensor, sizes: torch.Tensor, max_len: int,
                  *, min_len: int = 0, cached: bool = True) -> list[Decoded]:
    """The most probable next token at every step.  ``min_len`` forbids EOS before that many tokens."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            memory, pad_mask = _prepare(model, images, sizes)
            stepper = (_CachedStepper if cached else _UncachedStepper)(model, memory, pad_mask)
            batch = memory.shape[0]
            ids: list[list[int]] = [[] for _ in range(batch)]
            logps: list[list[float]] = [[] for _ in range(batch)]
            active = list(range(batch))  # the item of each row still decoding
            tokens = torch.full((batch,), BOS, dtype=torch.long, device=memory.device)
            for step in range(_steps(model, max_len)):
                best_logp, best = _log_probs(stepper.step(tokens), step, min_len).max(dim=-1)
                keep = []
                for row, (item, token, lp) in enumerate(zip(active, best.tolist(), best_logp.tolist())):
                    logps[item].append(lp)
                    if token != EOS:
                        ids[item].append(token)
                        keep.append(row)
                if not keep:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=memory.device)
                    stepper.select(index)
                    best = best.index_select(0, index)
                    active = [active[row] for row in keep]
                tokens = best
            return [Decoded(ids[i], _mean_prob(logps[i])) for i in range(batch)]
    finally:
        model.train(was_training)


@dataclass
class _Hypothesis:
    ids: list[int]
    logps: list[float]

    def extended(self, token: int, logp: float) -> "_Hypothesis":
        return _Hypothesis(self.ids + [token] if token != EOS else self.ids, self.logps + [logp])

    @property
    def score(self) -> float:
        """Length-normalized log probability, so long formulas are not punished for their length."""
        return sum(self.logps) / max(1, len(self.logps))


def beam_search(model: Im2LatexModel, images: torch.Tensor, sizes: torch.Tensor, beam: int, max_len: int,
                *, min_len: int = 0, cached: bool = True) -> list[Decoded]:
    """Keep the ``beam`` best prefixes per item; the best finished one wins, the others are alternatives.

    A hypothesis ends when EOS is among the top ``beam`` candidates of a step.  An item stops
    once ``beam`` have ended and its live beams score no better (length-normalized, so far), or
    at the length limit, where its unfinished beams are scored too.
    """
    if beam < 1:
        raise ValueError("beam must be at least 1")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            memory, pad_mask = _prepare(model, images, sizes)
            device = memory.device
            batch, k = memory.shape[0], beam
            stepper = (_CachedStepper if cached else _UncachedStepper)(
                model, memory.repeat_interleave(k, 0), pad_mask.repeat_interleave(k, 0))
            finished: list[list[_Hypothesis]] = [[] for _ in range(batch)]
            active = list(range(batch))  # rows i*k .. i*k+k-1 belong to item active[i]
            hyps = [[_Hypothesis([], []) for _ in range(k)] for _ in range(batch)]
            scores = torch.full((batch, k), float("-inf"), device=device)
            scores[:, 0] = 0.0  # all beams start equal: expand only the first at step 0
            tokens = torch.full((batch * k,), BOS, dtype=torch.long, device=device)
            steps = _steps(model, max_len)
            for step in range(steps):
                logp = _log_probs(stepper.step(tokens), step, min_len)
                vocab = logp.shape[-1]
                logp = logp.view(len(active), k, vocab)
                total = (scores[:, :, None] + logp).view(len(active), k * vocab)
                top_total, top_index = total.topk(min(2 * k, k * vocab), dim=1)
                top_beam, top_token = top_index // vocab, top_index % vocab
                top_logp = logp[torch.arange(len(active), device=device)[:, None], top_beam, top_token]
                last = step == steps - 1
                rows, new_tokens, new_scores, new_active, new_hyps = [], [], [], [], []
                for i, item in enumerate(active):
                    chosen: list[tuple[int, int, float, _Hypothesis]] = []
                    for rank, (b, token, s, lp) in enumerate(zip(top_beam[i].tolist(), top_token[i].tolist(),
                                                                 top_total[i].tolist(), top_logp[i].tolist())):
                        if s == float("-inf"):
                            break
                        hyp = hyps[i][b].extended(token, lp)
                        if token == EOS:
                            if rank < k:
                                finished[item].append(hyp)
                        else:
                            chosen.append((i * k + b, token, s, hyp))
                            if len(chosen) == k:
                                break
                    if last:
                        finished[item].extend(h for *_, h in chosen)
                    if last or not chosen or _settled(finished[item], chosen, k):
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
            return [_best_of(finished[i], k) for i in range(batch)]
    finally:
        model.train(was_training)


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
    """The best-scoring hypothesis, the distinct others of the best ``beam`` as alternatives, best first."""
    if not hypotheses:
        return Decoded([], 0.0)
    ranked = sorted(hypotheses, key=lambda h: h.score, reverse=True)[:beam]
    best = ranked[0]
    seen = {tuple(best.ids)}
    alternatives = []
    for h in ranked[1:]:
        if tuple(h.ids) not in seen:
            seen.add(tuple(h.ids))
            alternatives.append((h.ids, _mean_prob(h.logps)))
    return Decoded(best.ids, _mean_prob(best.logps), alternatives)
