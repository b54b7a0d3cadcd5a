"""Thinking budget and loop guard on a real engine: the tiny random Qwen3 on transformers.

Random weights never write ``<think>`` on their own, so the prompt opens it (as Qwen3-Thinking-2507's
template does) and everything the model writes is reasoning until the budget forces ``</think>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qwenkit.chat.events import ContentDelta
from qwenkit.engine.llm import LLM, load
from qwenkit.engine.params import THINKING_EARLY_STOP

OPEN_THINK_TEMPLATE = (
    "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}"
)
USER = [{"role": "user", "content": "Think about numbers."}]


@pytest.fixture(scope="module")
def llm(tiny_qwen3_dir: Path) -> Iterator[LLM]:
    """One tiny Qwen3 for the module, with a template whose generation prompt opens <think>."""
    with load(
        str(tiny_qwen3_dir),
        backend="transformers",
        context=4096,  # room for a consumer that falls behind (see assert_the_budget_lands)
        parallel=1,
        progress=False,
        template=OPEN_THINK_TEMPLATE,
    ) as model:
        yield model


def assert_the_budget_lands(llm: LLM, budget: int) -> None:
    """The budget forces Qwen's early stop, at ``budget`` reasoning tokens or after, and the answer follows.

    The consumer injects the early-stop text once the reasoning reaches the budget, and the engine takes
    it at its next step: a consumer that falls behind (a loaded machine) lets the reasoning run past the
    budget by as many tokens as it is behind. So the request may run to the end of the context, is read
    until the answer's first text (random weights may write only whitespace after ``</think>``: then to
    the end), and the landing is checked as a lower bound; tests/unit/test_llm_scripted.py checks the
    exact landing with a scripted engine. (Shared with tests/vllm_engine.)"""
    tok = llm.tokenizer
    forced = [*tok.encode_text(THINKING_EARLY_STOP), tok.special_tokens["</think>"], *tok.encode_text("\n\n")]
    stream = llm.start_chat(
        USER,
        thinking_budget=budget,
        max_tokens=llm.context_length - 64,
        temperature=0.0,
        ignore_eos=True,
    )
    for event in stream:
        if isinstance(event, ContentDelta):
            break
    stream.cancel()
    result = stream.result()
    assert result.thinking_stopped_early == "budget"
    assert result.usage.reasoning_tokens >= budget + len(forced) - 1  # never before the budget
    assert result.reasoning.endswith(THINKING_EARLY_STOP.strip("\n"))
    assert result.usage.completion_tokens > result.usage.reasoning_tokens  # the answer goes on


@pytest.mark.parametrize("budget", [8, 20])
def test_budget_forces_the_early_stop_and_the_answer_goes_on(llm: LLM, budget: int) -> None:
    assert_the_budget_lands(llm, budget)


def test_without_budget_random_reasoning_runs_to_max_tokens(llm: LLM) -> None:
    result = llm.chat(USER, max_tokens=24, temperature=0.0, ignore_eos=True)
    assert result.thinking_stopped_early is None
    assert result.content == ""
    assert result.finish_reason == "length"
    assert result.usage.reasoning_tokens == 24  # truncated inside thinking: all of it is reasoning
