"""Thinking budget and loop guard on a real engine: the tiny random Qwen3 on transformers.

Random weights never write ``<think>`` on their own, so the prompt opens it (as Qwen3-Thinking-2507's
template does) and everything the model writes is reasoning until the budget forces ``</think>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
        context=512,
        parallel=1,
        progress=False,
        template=OPEN_THINK_TEMPLATE,
    ) as model:
        yield model


@pytest.mark.parametrize("budget", [8, 20])
def test_budget_forces_the_early_stop_and_the_answer_goes_on(llm: LLM, budget: int) -> None:
    tok = llm.tokenizer
    forced = [
        *tok.encode_text(THINKING_EARLY_STOP),
        tok.special_tokens["</think>"],
        *tok.encode_text("\n\n"),
    ]
    stream = llm.start_chat(
        USER,
        thinking_budget=budget,
        max_tokens=budget + len(forced) + 12,
        temperature=0.0,
        ignore_eos=True,
    )
    events = list(stream)
    result = stream.result()
    assert result.thinking_stopped_early == "budget"
    # The engine may have sampled at most one token beyond the budget before the injection landed.
    assert budget + len(forced) - 1 <= result.usage.reasoning_tokens <= budget + len(forced)
    assert result.reasoning.endswith(THINKING_EARLY_STOP.strip("\n"))
    assert result.usage.completion_tokens > result.usage.reasoning_tokens  # the answer continued
    assert result.finish_reason == "length"
    assert events


def test_without_budget_random_reasoning_runs_to_max_tokens(llm: LLM) -> None:
    result = llm.chat(USER, max_tokens=24, temperature=0.0, ignore_eos=True)
    assert result.thinking_stopped_early is None
    assert result.content == ""
    assert result.finish_reason == "length"
    assert result.usage.reasoning_tokens == 24  # truncated inside thinking: all of it is reasoning
