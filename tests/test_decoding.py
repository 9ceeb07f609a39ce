"""Greedy and beam decoding: cached equals uncached, beam 1 equals greedy, batching changes nothing."""

from __future__ import annotations

import pytest
import torch

from model.batching import pad_batch
from model.decoding import Decoded, beam_search, greedy_decode, most_confident
from model.vocab import EOS


def test_greedy_items_stop_at_eos_independently(varied_model):
    model, _, images, sizes = varied_model
    decoded = greedy_decode(model, images, sizes, 40)
    assert len({len(d.ids) for d in decoded}) >= 3
    for d in decoded:
        assert EOS not in d.ids and 0.0 < d.confidence <= 1.0
        assert 0.0 < d.weakest <= d.confidence  # the least probable token is at most the mean


def test_weakest_token_is_the_same_for_greedy_and_beam_of_one_and_travels_with_the_best(varied_model):
    model, _, images, sizes = varied_model
    greedy = greedy_decode(model, images, sizes, 40)
    beam = beam_search(model, images, sizes, 1, 40)
    for g, b in zip(greedy, beam):
        assert g.weakest == pytest.approx(b.weakest, abs=1e-6)
    surer = Decoded(greedy[0].ids, 2.0, weakest=0.123)
    assert most_confident([greedy[0], surer]).weakest == 0.123


def test_cached_greedy_equals_uncached(varied_model):
    model, _, images, sizes = varied_model
    cached = greedy_decode(model, images, sizes, 40)
    uncached = greedy_decode(model, images, sizes, 40, cached=False)
    assert [d.ids for d in cached] == [d.ids for d in uncached]
    for a, b in zip(cached, uncached):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-5)


def test_cached_beam_equals_uncached(varied_model):
    model, _, images, sizes = varied_model
    cached = beam_search(model, images, sizes, 3, 40)
    uncached = beam_search(model, images, sizes, 3, 40, cached=False)
    assert [d.ids for d in cached] == [d.ids for d in uncached]
    for a, b in zip(cached, uncached):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-5)
        assert [ids for ids, _ in a.alternatives] == [ids for ids, _ in b.alternatives]


def test_beam_of_one_equals_greedy(varied_model):
    model, _, images, sizes = varied_model
    greedy = greedy_decode(model, images, sizes, 40)
    beam = beam_search(model, images, sizes, 1, 40)
    assert [d.ids for d in greedy] == [d.ids for d in beam]
    for g, b in zip(greedy, beam):
        assert g.confidence == pytest.approx(b.confidence, abs=1e-6)
        assert b.alternatives == []


def test_batched_greedy_equals_per_item_greedy(varied_model):
    model, arrays, images, sizes = varied_model
    batched = greedy_decode(model, images, sizes, 40)
    for array, together in zip(arrays, batched):
        alone = greedy_decode(model, *pad_batch([array]), 40)[0]
        assert alone.ids == together.ids
        assert alone.confidence == pytest.approx(together.confidence, abs=1e-5)


def test_batched_beam_equals_per_item_beam(varied_model):
    model, arrays, images, sizes = varied_model
    batched = beam_search(model, images, sizes, 3, 40)
    for array, together in zip(arrays, batched):
        alone = beam_search(model, *pad_batch([array]), 3, 40)[0]
        assert alone.ids == together.ids


def test_beam_alternatives_are_distinct_other_hypotheses(varied_model):
    model, _, images, sizes = varied_model
    decoded = beam_search(model, images, sizes, 4, 40)
    assert any(d.alternatives for d in decoded)
    for d in decoded:
        seen = [tuple(d.ids)] + [tuple(ids) for ids, _ in d.alternatives]
        assert len(seen) == len(set(seen)) and len(d.alternatives) <= 3
        assert all(0.0 < confidence <= 1.0 for _, confidence in d.alternatives)


def test_beam_finds_a_sequence_at_least_as_likely_as_greedy(varied_model):
    model, _, images, sizes = varied_model

    def normalized_logp(ids: list[int], index: int) -> float:
        seq = torch.tensor([[1, *ids, EOS]])
        with torch.no_grad():
            logits = model(images[index:index + 1, :, :sizes[index, 0], :sizes[index, 1]],
                           sizes[index:index + 1], seq[:, :-1])
        logp = torch.log_softmax(logits, -1)[0].gather(1, seq[0, 1:, None])
        return float(logp.mean())

    greedy = greedy_decode(model, images, sizes, 40)
    beam = beam_search(model, images, sizes, 4, 40)
    for i, (g, b) in enumerate(zip(greedy, beam)):
        assert normalized_logp(b.ids, i) >= normalized_logp(g.ids, i) - 1e-4


def test_max_len_is_the_smaller_of_argument_and_config(varied_model):
    model, _, images, sizes = varied_model
    assert max(len(d.ids) for d in greedy_decode(model, images, sizes, 5)) <= 4
    # EOS forbidden and the loop guard off: runs to the cap (tests/test_bounded_decoding.py: with it)
    forced = greedy_decode(model, images, sizes, 1000, min_len=1000, guard=None)
    assert {len(d.ids) for d in forced} == {model.config.max_len - 1}
    assert {d.stopped for d in forced} == {"length"}
    forced = beam_search(model, images, sizes, 2, 12, min_len=1000, guard=None)
    assert {len(d.ids) for d in forced} == {11}


def test_decoding_restores_training_mode(varied_model):
    model, _, images, sizes = varied_model
    model.train()
    try:
        greedy_decode(model, images[:1], sizes[:1], 5)
        beam_search(model, images[:1], sizes[:1], 2, 5)
        assert model.training
    finally:
        model.eval()


def test_most_confident_reading_wins_and_the_others_become_alternatives():
    a = Decoded([5, 6], 0.6, alternatives=[([5, 7], 0.3)])
    b = Decoded([5, 8], 0.9, alternatives=[([5, 6], 0.2)])
    cut = Decoded([9] * 30, 0.1, stopped="repetition")
    best = most_confident([a, b, cut])
    assert best.ids == [5, 8] and best.confidence == 0.9 and best.stopped is None
    assert best.alternatives == [([5, 6], 0.6), ([5, 7], 0.3), ([9] * 30, 0.1)]  # distinct, most confident first
    assert most_confident([cut, Decoded([4], 0.05)]).ids == [4]  # a complete reading beats a cut one
    assert most_confident([a]) is a
