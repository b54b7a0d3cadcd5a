"""The driver over fake targets, and the in-process runner over a paced fake engine behind a real LLM."""

from __future__ import annotations

import asyncio

import pytest
from _bench_fakes import FakeTarget, paced_llm

from qwenkit.bench.driver import calibrate, run_workload
from qwenkit.bench.roofline import Bandwidth, ModelBytes
from qwenkit.bench.run import auto_context, compute_roofline, single_stream
from qwenkit.bench.runner_inprocess import InProcessTarget
from qwenkit.bench.target import TargetInfo
from qwenkit.bench.workload import COMMON_WORDS, Workload, vocabulary_words


class CountingProgress:
    def __init__(self) -> None:
        self.phases: list[tuple[str, int]] = []
        self.advanced = 0
        self.ended = 0

    def begin(self, description: str, total: int) -> None:
        self.phases.append((description, total))

    def advance(self) -> None:
        self.advanced += 1

    def end(self) -> None:
        self.ended += 1


def test_every_level_runs_its_requests_with_at_most_its_concurrency() -> None:
    target = FakeTarget()
    workload = Workload(concurrency=(1, 3), prompt_tokens=(40, 80), output_tokens=5, requests=6, warmup=2)
    progress = CountingProgress()
    result = asyncio.run(run_workload(target, workload, COMMON_WORDS, progress=progress))
    keys = [(s.prompt_tokens_target, s.concurrency) for s in result.levels]
    assert keys == [(40, 1), (40, 3), (80, 1), (80, 3)]
    assert all(s.requests == s.ok == 6 and s.errors == 0 for s in result.levels)
    assert target.max_in_flight == 3
    # warm-up first (2 requests of the shortest prompt), then 4 levels x 6; every prompt exactly sized
    assert target.calls == [40, 40] + [40] * 12 + [80] * 12
    assert progress.phases[0] == ("warm-up", 2) and len(progress.phases) == 5
    assert progress.advanced == 2 + 24 and progress.ended == 5
    assert all(s.completion_tokens_total == 6 * 5 for s in result.levels)
    assert result.notes == ("prompt lengths counted exactly",)
    assert all(s.peak_rss_bytes and s.peak_rss_bytes > 0 for s in result.levels)


def test_failures_and_short_answers_are_reported_not_raised() -> None:
    target = FakeTarget(fail_every=3, cap=2)
    workload = Workload(concurrency=(2,), prompt_tokens=(30,), output_tokens=5, requests=6, warmup=0)
    result = asyncio.run(run_workload(target, workload, COMMON_WORDS))
    (level,) = result.levels
    assert (level.ok, level.errors, level.short_outputs) == (4, 2, 4)
    assert level.error_samples == ("HTTP 503: overloaded",)
    assert any("ignore_eos" in note for note in result.notes)


def test_calibration_falls_back_to_a_probe_then_to_a_plain_approximation() -> None:
    probed = asyncio.run(calibrate(FakeTarget(count=False, overhead=25), COMMON_WORDS, 0))
    assert not probed.exact and "probe" in probed.note
    prompt = asyncio.run(probed.factory.make(100))
    assert len(str(prompt.messages[0]["content"]).split()) + 25 == 100  # overhead learnt from the probe

    blind = asyncio.run(calibrate(FakeTarget(count=False, probe=False), COMMON_WORDS, 0))
    assert not blind.exact and "unknown" in blind.note
    assert len(str(asyncio.run(blind.factory.make(100)).messages[0]["content"]).split()) == 100


def test_in_process_runner_decodes_exactly_the_requested_tokens_ignoring_eos() -> None:
    llm, backend = paced_llm(delay=0.002, eos_after=3)
    target = InProcessTarget(llm, TargetInfo(kind="in-process", model="paced"))
    workload = Workload(concurrency=(1, 4), prompt_tokens=(48,), output_tokens=12, warmup=1)
    result = asyncio.run(run_workload(target, workload, vocabulary_words(llm.tokenizer, limit=500)))
    asyncio.run(target.aclose())
    assert all(params.ignore_eos and params.max_tokens == 12 for _, params in backend.submitted)
    assert all(len(ids) == 48 for ids, _ in backend.submitted)  # the prompt the engine saw: exactly 48
    one, four = result.levels
    assert (one.requests, four.requests) == (1, 4)
    for level in (one, four):
        assert level.ok == level.requests and level.short_outputs == 0
        assert level.completion_tokens_total == 12 * level.requests
        assert level.prompt_tokens_mean == 48
        assert level.decode_tps is not None and level.decode_tps.p50 > 0
        assert level.ttft is not None and level.itl is not None


def test_in_process_failures_are_recorded() -> None:
    llm, _ = paced_llm(context_length=64)
    target = InProcessTarget(llm, TargetInfo(kind="in-process", model="paced"))
    messages = [{"role": "user", "content": " word" * 100}]
    result = asyncio.run(target.generate(messages, 8, 0.0))
    assert not result.ok and "ContextLengthError" in (result.error or "")


def test_auto_context_fits_the_longest_sequence() -> None:
    assert auto_context(Workload(prompt_tokens=(128,), output_tokens=64)) == 256
    assert auto_context(Workload(prompt_tokens=(128, 1024), output_tokens=128)) == 1280


def test_roofline_uses_the_lowest_concurrency_level() -> None:
    target = FakeTarget(per_token=0.002)
    workload = Workload(concurrency=(2, 1), prompt_tokens=(40,), output_tokens=8, warmup=0)
    levels = asyncio.run(run_workload(target, workload, COMMON_WORDS)).levels
    chosen = single_stream(levels)
    assert chosen is not None and chosen.concurrency == 1
    model = ModelBytes(weights_per_token=1e6, weights_total=10**6, kv_per_token=100.0, source="t")
    r = compute_roofline(levels, model, Bandwidth(1e9, "measured", "t"), output_tokens=8)
    assert r is not None and chosen.decode_tps is not None
    assert r.measured_tps == chosen.decode_tps.p50
    assert r.context_tokens == pytest.approx(40 + 4)
    assert compute_roofline(levels, None, Bandwidth(1e9, "measured", "t"), 8) is None
