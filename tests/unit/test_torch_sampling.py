"""Torch sampling on tiny tensors whose right answers can be worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from qwenkit.engine.torch_sampling import (
    SequenceSampler,
    TokenHistory,
    draw,
    gumbel_noise,
    keep_min_p,
    keep_top_p,
    make_processors,
    make_sampler,
    min_p_candidates,
    nucleus_candidates,
    presence_frequency_penalty,
    repetition_penalty,
    top_k_candidates,
)
from qwenkit.engine.types import SamplingParams

NEG_INF = float("-inf")


def _ids(candidates: tuple[torch.Tensor, torch.Tensor]) -> list[int]:
    return candidates[1].tolist()


def _sorted(probs: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    values, ids = torch.tensor(probs).log().sort(descending=True)
    return values, ids


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_logits() -> None:
    history = TokenHistory(4, prompt_ids=[0, 1])
    logits = torch.tensor([2.0, -2.0, 2.0, -2.0])
    assert repetition_penalty(2.0)(logits, history).tolist() == [1.0, -4.0, 2.0, -2.0]
    history.accept(2)
    assert repetition_penalty(2.0)(logits, history).tolist() == [1.0, -4.0, 1.0, -2.0]


def test_presence_and_frequency_penalties_count_output_tokens_only() -> None:
    history = TokenHistory(4, prompt_ids=[3])
    for token in (0, 0, 1):
        history.accept(token)
    out = presence_frequency_penalty(presence=0.5, frequency=0.25)(torch.zeros(4), history)
    assert out.tolist() == pytest.approx([-1.0, -0.75, 0.0, 0.0])


def test_make_processors_skips_neutral_settings() -> None:
    assert make_processors(SamplingParams()) == []
    assert len(make_processors(SamplingParams(repetition_penalty=1.1, presence_penalty=0.5))) == 2


def test_top_k_candidates_are_the_k_best_renormalised() -> None:
    values, ids = top_k_candidates(torch.tensor([0.1, 0.4, 0.2, 0.3]).log(), 2)
    assert ids.tolist() == [1, 3]
    assert values.exp().tolist() == pytest.approx([0.4 / 0.7, 0.3 / 0.7])
    assert _ids(top_k_candidates(torch.zeros(3), 10)) != []  # k beyond the vocabulary: all of it


def test_nucleus_candidates_grow_until_they_hold_p() -> None:
    probs = torch.full((1000,), 0.5 / 999)
    probs[7] = 0.5
    values, ids = nucleus_candidates(probs.log(), 0.9, first=4)
    assert ids[0] == 7
    assert float(values.exp().sum()) >= 0.9
    assert len(ids) == 1000  # 4 -> 16 -> 64 -> 256 -> 1000 tokens needed for 0.9
    assert len(nucleus_candidates(probs.log(), 0.4, first=4)[1]) == 4


def test_keep_top_p_keeps_the_smallest_prefix_reaching_p() -> None:
    candidates = _sorted([0.1, 0.5, 0.15, 0.25])
    assert _ids(keep_top_p(candidates, 0.7)) == [1, 3]  # 0.5 + 0.25 >= 0.7
    assert _ids(keep_top_p(candidates, 0.75)) == [1, 3]  # exactly reached: no third token
    assert _ids(keep_top_p(candidates, 0.8)) == [1, 3, 2]
    assert _ids(keep_top_p(candidates, 0.0)) == [1]  # always at least the best one
    values, _ = keep_top_p(candidates, 0.7)
    assert values.exp().tolist() == pytest.approx([0.5 / 0.75, 0.25 / 0.75])


def test_min_p_scales_with_the_best_probability() -> None:
    candidates = _sorted([0.5, 0.3, 0.15, 0.05])
    assert _ids(keep_min_p(candidates, 0.5)) == [0, 1]  # threshold 0.25
    assert _ids(keep_min_p(candidates, 0.2)) == [0, 1, 2]  # threshold 0.1
    assert _ids(min_p_candidates(torch.tensor([0.15, 0.05, 0.5, 0.3]).log(), 0.2)) == [2, 3, 0]


def test_draw_follows_the_distribution() -> None:
    gen = torch.Generator().manual_seed(3)
    candidates = _sorted([0.7, 0.0, 0.3])
    drawn = [draw(candidates, gumbel_noise(3, gen, torch.device("cpu"))) for _ in range(3000)]
    assert drawn.count(1) == 0
    assert 0.66 < drawn.count(0) / 3000 < 0.74


def test_draw_does_not_depend_on_candidate_order() -> None:
    noise = gumbel_noise(5, torch.Generator().manual_seed(0), torch.device("cpu"))
    values = torch.tensor([0.2, 0.2, 0.2]).log()
    ids = torch.tensor([4, 0, 2])
    order = torch.tensor([2, 0, 1])
    assert draw((values, ids), noise) == draw((values[order], ids[order]), noise)


def test_greedy_sampler_takes_argmax() -> None:
    sampler = make_sampler(SamplingParams(temperature=0.0), None)
    assert sampler(torch.tensor([0.1, 3.0, 2.9]).log_softmax(-1)) == 1


@pytest.mark.parametrize(
    ("options", "allowed"),
    [
        ({"top_k": 2}, {0, 2}),
        ({"top_p": 0.6}, {0, 2}),  # 0.4 + 0.3 reaches 0.6
        ({"min_p": 0.6}, {0, 2, 3}),  # at least 0.24
        ({"top_k": 3, "top_p": 0.6}, {0, 2}),  # renormalised over the 3: 0.42 + 0.32 >= 0.6
        ({"top_k": 3, "min_p": 0.7}, {0, 2}),  # 0.25 < 0.7 * 0.4
        ({}, {0, 1, 2, 3}),
    ],
)
def test_sampler_only_draws_from_what_filters_keep(options: dict[str, float], allowed: set[int]) -> None:
    gen = torch.Generator().manual_seed(0)
    sampler = make_sampler(SamplingParams(temperature=1.0, **options), gen)  # type: ignore[arg-type]
    lp = torch.tensor([0.3, 0.05, 0.4, 0.25]).log()
    assert {sampler(lp) for _ in range(400)} == allowed


def test_temperature_sharpens_the_distribution() -> None:
    lp = torch.tensor([0.6, 0.4]).log()
    counts = {}
    for temperature in (0.1, 2.0):
        gen = torch.Generator().manual_seed(1)
        sampler = make_sampler(SamplingParams(temperature=temperature), gen)
        counts[temperature] = sum(sampler(lp) == 1 for _ in range(2000))
    # p(1) is 0.4**10 / (0.6**10 + 0.4**10) ~ 0.017 at T=0.1, and ~0.45 at T=2.
    assert counts[0.1] < 100
    assert 750 < counts[2.0] < 1050


def test_same_seed_same_tokens_and_different_seed_differs() -> None:
    logits = torch.zeros(1000)

    def run(seed: int) -> list[int]:
        s = SequenceSampler(SamplingParams(temperature=1.0, seed=seed), [], vocab_size=1000)
        return [s(logits).token_id for _ in range(20)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_logprobs_come_from_the_penalised_logits() -> None:
    params = SamplingParams(temperature=0.0, repetition_penalty=2.0, logprobs=True, top_logprobs=2)
    s = SequenceSampler(params, prompt_ids=[0], vocab_size=3)
    sample = s(torch.tensor([2.0, 1.5, 0.0]))  # token 0 is penalised to 1.0, so token 1 wins
    expected = torch.tensor([1.0, 1.5, 0.0]).log_softmax(-1)
    assert sample.token_id == 1
    assert sample.logprob == pytest.approx(float(expected[1]))
    assert [t for t, _ in sample.top_logprobs] == [1, 0]
    assert sample.top_logprobs[1][1] == pytest.approx(float(expected[0]))
    assert math.exp(sample.top_logprobs[0][1]) + math.exp(sample.top_logprobs[1][1]) < 1.0


def test_no_logprobs_unless_asked() -> None:
    s = SequenceSampler(SamplingParams(temperature=0.0), [], vocab_size=3)
    sample = s(torch.tensor([0.0, 1.0, 0.0]))
    assert (sample.logprob, sample.top_logprobs) == (None, ())


def test_columns_beyond_the_vocabulary_are_never_chosen() -> None:
    s = SequenceSampler(SamplingParams(temperature=0.0), [], vocab_size=3)
    assert s(torch.tensor([0.0, 1.0, 0.5, 9.0, 9.0])).token_id == 1


def test_accepted_tokens_feed_the_penalties() -> None:
    s = SequenceSampler(SamplingParams(temperature=0.0, frequency_penalty=2.0), [], vocab_size=2)
    logits = torch.tensor([1.0, 0.0])
    assert s(logits).token_id == 0
    s.accept(0)
    assert s(logits).token_id == 1  # 1.0 - 2.0 < 0.0
