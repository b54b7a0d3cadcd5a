"""Which llama.cpp sequence ids a step uses, on the real Qwen2.5-Coder-0.5B-Instruct GGUF.

With a KV stream per sequence (the default layout), llama.cpp puts only sequences whose ids follow each
other into one ubatch: a step over slots 0, 1, 6 and 7 is two passes over the weights where 2 to 5 is
one (``engine/prefix.py``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from _llama_chat import GREEDY, chat, run

from qwenkit.engine.llamacpp import LlamaCppBackend, LlamaCppRunner
from qwenkit.engine.prefix import runs
from qwenkit.engine.types import BackendOptions, SamplingParams

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]

FOUR_SLOTS = BackendOptions(context=512, parallel=4, threads=2)


def record_steps(runner: LlamaCppRunner, monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The sequence id of every token of every ``llama_decode`` from now on, batch by batch."""
    steps: list[list[int]] = []
    decode = runner._lib.llama_decode

    def recording(ctx: object, batch: object) -> int:
        steps.append([batch.seq_id[i][0] for i in range(batch.n_tokens)])  # type: ignore[attr-defined]
        return int(decode(ctx, batch))

    monkeypatch.setattr(runner._lib, "llama_decode", recording)
    return steps


def stream_runner(backend: LlamaCppBackend) -> LlamaCppRunner:
    runner = backend.runner
    assert isinstance(runner, LlamaCppRunner) and not runner.kv_unified
    return runner


def test_a_step_lists_its_sequences_in_slot_order(
    real_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Conversations admitted in the reverse of their slots' order still reach llama_decode in slot
    order: any other order splits a step into several passes over the weights."""
    topics = ("rivers of Europe", "mountains of Asia", "deserts of Africa", "lakes of North America")
    questions = [  # longer than what they share (the template's system prompt): each takes its own slot
        f"{opening} Describe the {topic}, naming the three largest, where each one lies and a fact about it."
        for opening, topic in zip(("Please.", "Now:", "Task:", "Question:"), topics, strict=True)
    ]
    with LlamaCppBackend.load(real_model_path, FOUR_SLOTS) as b:
        runner = stream_runner(b)
        prompts = [chat(b, q) for q in questions]
        for prompt in prompts:  # one after another: slots 0, 1, 2, 3
            run(b, prompt, dataclasses.replace(GREEDY, max_tokens=4))
        steps = record_steps(runner, monkeypatch)
        params = dataclasses.replace(GREEDY, max_tokens=16, ignore_eos=True)
        handles = [b.submit(prompt, params) for prompt in reversed(prompts)]  # admitted 3, 2, 1, 0
        assert [len([ev for ev in h]) for h in handles] == [16] * 4
        monkeypatch.undo()
        assert [h.timings.cached_prompt_tokens for h in handles] == [len(p) for p in reversed(prompts)]
        shared = [ids for ids in steps if len(set(ids)) == 4]
        assert shared, "the four conversations never decoded in one step"
        assert all(ids == sorted(ids) for ids in steps)


def test_a_new_request_runs_beside_the_busy_slot_and_the_cache_it_displaces_is_kept(
    real_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversation decodes in slot 0 when a new one arrives. Empty slots 2 and 3 would start a second
    run of ids; the newcomer takes slot 1 instead, and the conversation slot 1 cached moves to slot 2
    first, where asking it again reuses all of it and answers the same."""
    with LlamaCppBackend.load(real_model_path, FOUR_SLOTS) as b:
        runner = stream_runner(b)
        first, second, newcomer = (
            chat(b, f"{q} Answer in two sentences, with one example.")
            for q in ("Why do leaves change color?", "How does a lighthouse work?", "What makes bread rise?")
        )
        short = dataclasses.replace(GREEDY, max_tokens=8)
        run(b, first, short)  # slot 0
        answer = run(b, second, short)  # slot 1, then its cache is all that slot holds
        steps = record_steps(runner, monkeypatch)
        busy = b.submit(first, SamplingParams(temperature=0.0, max_tokens=400, ignore_eos=True))  # slot 0
        next(iter(busy))
        arrived = b.submit(newcomer, dataclasses.replace(GREEDY, max_tokens=16, ignore_eos=True))
        assert len(list(arrived)) == 16
        assert busy.finish_reason is None, "the busy conversation ended before the newcomer did"
        busy.cancel()
        list(busy)
        monkeypatch.undo()
        assert all(runs(ids) == 1 for ids in steps), [sorted(set(ids)) for ids in steps if runs(ids) > 1]
        assert any(set(ids) == {0, 1} for ids in steps)
        again = b.submit(second, short)
        assert [ev.token_id for ev in again] == answer
        assert again.timings.cached_prompt_tokens == len(second)  # moved whole, its kept logits too


def test_the_first_token_comes_from_the_prompts_own_prefill_and_a_repeat_needs_no_step(
    real_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole prompt goes into one batch whose last row chooses the first token (no step of its own
    for the last prompt token, as in llama-server). The same prompt again is cached whole: its first
    token comes from the logits the slot kept, with no decode, and the answer is the same."""
    with LlamaCppBackend.load(real_model_path, FOUR_SLOTS) as b:
        runner = stream_runner(b)
        prompt = chat(b, "Which planet is the largest? One sentence.")
        one = dataclasses.replace(GREEDY, max_tokens=1)
        steps = record_steps(runner, monkeypatch)
        cold = run(b, prompt, one)
        assert [len(ids) for ids in steps] == [len(prompt)]
        steps.clear()
        handle = b.submit(prompt, one)
        assert [ev.token_id for ev in handle] == cold
        assert steps == []
        assert handle.timings.cached_prompt_tokens == len(prompt)
        monkeypatch.undo()
        longer = dataclasses.replace(GREEDY, max_tokens=12, ignore_eos=True)
        answer = run(b, prompt, longer)
        assert answer[:1] == cold
        assert run(b, prompt, longer) == answer  # the answer's own KV does not hide the kept row
