"""Thinking budget and loop guard on a real engine: the tiny random Qwen3 on transformers.

Random weights never write ``<think>`` on their own, so the prompt opens it (as Qwen3-Thinking-2507's
template does) and everything the model writes is reasoning until the budget forces ``</think>``.
"""

from __future__ import annotations

import time
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


def assert_the_budget_lands(llm: LLM, budget: int) -> None:
    """The budget forces Qwen's early stop right after the budget-th reasoning token, and the answer
    goes on. The handle counts as the engine pushes, so this holds however far behind the reader is:
    here it starts reading only once the engine is done (a loaded machine, vLLM's own process). Shared with
    tests/vllm_engine."""
    tok = llm.tokenizer
    forced = [*tok.encode_text(THINKING_EARLY_STOP), tok.special_tokens["</think>"], *tok.encode_text("\n\n")]
    stream = llm.start_chat(
        USER, thinking_budget=budget, max_tokens=budget + len(forced) + 12, temperature=0.0, ignore_eos=True
    )
    time.sleep(0.5)  # this reader is behind from the start: the engine makes every token meanwhile
    events = list(stream)
    result = stream.result()
    assert result.thinking_stopped_early == "budget"
    # Reasoning ends with </think>; the forced "\n\n" after it belongs to the answer.
    assert result.usage.reasoning_tokens == budget + len(forced) - 1
    assert result.reasoning.endswith(THINKING_EARLY_STOP.strip("\n"))
    assert result.usage.completion_tokens == budget + len(forced) + 12  # the answer went on
    assert result.finish_reason == "length" and events


@pytest.mark.parametrize("budget", [0, 8, 20])
def test_budget_forces_the_early_stop_and_the_answer_goes_on(llm: LLM, budget: int) -> None:
    assert_the_budget_lands(llm, budget)


def test_without_budget_random_reasoning_runs_to_max_tokens(llm: LLM) -> None:
    result = llm.chat(USER, max_tokens=24, temperature=0.0, ignore_eos=True)
    assert result.thinking_stopped_early is None
    assert result.content == ""
    assert result.finish_reason == "length"
    assert result.usage.reasoning_tokens == 24  # truncated inside thinking: all of it is reasoning
