"""The engine API over a scripted backend: thinking budget, loop guard, stops, defaults, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _chat_tokenizer import real_qwen_tokenizer
from _scripted import ScriptedBackend

from qwenkit.catalog import load_catalog
from qwenkit.chat.encode import ALWAYS_THINKS
from qwenkit.chat.events import ContentDelta, ReasoningDelta
from qwenkit.chat.template import TemplateFamily
from qwenkit.engine.llm import LLM, ModelFacts
from qwenkit.engine.params import THINKING_EARLY_STOP
from qwenkit.errors import ContextLengthError, UsageError

REASONING = "".join(f"Step {i}: consider case number {i} carefully. " for i in range(60))
ANSWER = "The answer is 42."
USER = [{"role": "user", "content": "What is six times seven?"}]
# Qwen3-Thinking-2507 style: the generation prompt itself opens <think>.
OPEN_THINK_TEMPLATE = (
    "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}"
)


def make_llm(reasoning: str = REASONING, answer: str = ANSWER, *, template: str | None = OPEN_THINK_TEMPLATE,
             context: int = 4096) -> tuple[LLM, ScriptedBackend]:
    tokenizer = real_qwen_tokenizer()
    backend = ScriptedBackend(tokenizer, reasoning, answer, context)
    variant = load_catalog().get("qwen3-8b")
    facts = ModelFacts(path=Path("scripted"), variant=variant, template_family=TemplateFamily.QWEN3)
    return LLM(backend, facts, template=template), backend


def early_stop_ids(llm: LLM) -> list[int]:
    tok = llm.tokenizer
    return [*tok.encode_text(THINKING_EARLY_STOP), tok.special_tokens["</think>"], *tok.encode_text("\n\n")]


@pytest.mark.parametrize("budget", [1, 10, 37])
def test_thinking_budget_forces_early_stop_at_the_budget(budget: int) -> None:
    llm, backend = make_llm()
    result = llm.chat(USER, thinking_budget=budget)
    handle = backend.handles[-1]
    forced = early_stop_ids(llm)
    assert handle.forced_positions == list(range(budget, budget + len(forced)))
    assert handle.emitted[budget : budget + len(forced)] == forced
    assert handle.emitted[: budget] == backend.reasoning[:budget]
    assert result.content == ANSWER  # the answer goes on after the forced </think>
    assert result.thinking_stopped_early == "budget"
    # Reasoning ends with </think>; the forced "\n\n" after it belongs to the answer.
    assert result.usage.reasoning_tokens == budget + len(forced) - 1
    assert result.usage.completion_tokens == budget + len(forced) + len(backend.answer)
    assert result.reasoning.endswith(THINKING_EARLY_STOP.strip("\n"))


def test_blank_lines_in_the_reasoning_do_not_end_the_count() -> None:
    """Qwen writes a blank line as one token (271), the last of the early-stop ids: the count goes on
    over it, and the model's own </think> is what ends the thinking."""
    paragraphs = "\n\n".join(f"Step {i}: consider case {i}" for i in range(30))
    llm, backend = make_llm(reasoning=paragraphs)
    assert 271 in backend.reasoning[:20] and early_stop_ids(llm)[-1] == 271
    result = llm.chat(USER, thinking_budget=40)
    assert backend.handles[-1].forced_positions == list(range(40, 40 + len(early_stop_ids(llm))))
    assert result.thinking_stopped_early == "budget" and result.content == ANSWER


def test_no_budget_lets_reasoning_run_to_its_end() -> None:
    llm, backend = make_llm(reasoning="Short thought.\n</think>\n\n")
    result = llm.chat(USER)
    assert result.reasoning == "Short thought."
    assert result.content == ANSWER
    assert result.thinking_stopped_early is None
    assert backend.handles[-1].forced_positions == []


def test_budget_zero_means_non_thinking_prompt() -> None:
    llm, backend = make_llm(template=None)
    llm.chat(USER, thinking_budget=0, max_tokens=3)
    prompt = llm.tokenizer.decode(backend.submitted[-1][0])
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_a_template_that_always_thinks_keeps_the_budget_and_says_so() -> None:
    """QwQ and Qwen3-*-Thinking-2507 open <think> whatever enable_thinking says: a zero budget (or
    enable_thinking=false with a budget) must still cut the thinking short, not let it run unbounded."""
    llm, backend = make_llm()  # its generation prompt always ends in <think>
    forced = early_stop_ids(llm)
    result = llm.chat(USER, thinking_budget=0, max_tokens=40)
    assert backend.handles[-1].forced_positions == list(range(len(forced)))  # before any reasoning token
    assert result.usage.reasoning_tokens == len(forced) - 1  # the early-stop text and </think>
    assert result.thinking_stopped_early == "budget"
    assert result.content == ANSWER
    assert result.warnings == (ALWAYS_THINKS,)
    result = llm.chat(USER, thinking_budget=5, enable_thinking=False, max_tokens=40)
    assert backend.handles[-1].forced_positions == list(range(5, 5 + len(forced)))
    assert result.warnings == (ALWAYS_THINKS,)
    assert backend.submitted[-1][1].temperature == 0.6  # the thinking mode's sampling defaults


def test_loop_guard_ends_repeating_thinking() -> None:
    loop = "I should check whether the number is prime by trial division. " * 30
    llm, backend = make_llm(reasoning=loop)
    result = llm.chat(USER, thinking_loop_guard=True)
    assert backend.submitted[-1][1].reasoning_budget is not None  # the handle tracks the thinking's end
    assert result.thinking_stopped_early == "loop"
    assert result.content == ANSWER
    assert backend.handles[-1].forced_positions  # injected
    assert result.usage.reasoning_tokens < len(backend.reasoning)


def test_loop_guard_leaves_varied_reasoning_alone() -> None:
    llm, backend = make_llm(reasoning=REASONING + "\n</think>\n\n")
    result = llm.chat(USER, thinking_loop_guard=True)
    assert result.thinking_stopped_early is None
    assert backend.handles[-1].forced_positions == []


def test_stop_string_is_never_emitted_and_cancels() -> None:
    llm, backend = make_llm(reasoning="ok\n</think>\n\n", answer="Hello world. Goodbye world.")
    events = list(llm.stream_chat(USER, stop=["world"]))
    content = "".join(e.text for e in events if isinstance(e, ContentDelta))
    assert content == "Hello "
    assert backend.handles[-1].finish_reason is not None


def test_sampling_defaults_follow_the_mode() -> None:
    llm, backend = make_llm(template=None)
    llm.chat(USER, max_tokens=2)
    thinking = backend.submitted[-1][1]
    assert (thinking.temperature, thinking.top_p, thinking.top_k, thinking.min_p) == (0.6, 0.95, 20, 0.0)
    llm.chat(USER, max_tokens=2, enable_thinking=False)
    plain = backend.submitted[-1][1]
    assert (plain.temperature, plain.top_p, plain.top_k) == (0.7, 0.8, 20)
    llm.chat(USER, max_tokens=2, temperature=0.0)  # greedy only when asked for explicitly
    assert backend.submitted[-1][1].temperature == 0.0


def test_no_think_soft_switch_selects_non_thinking_defaults() -> None:
    llm, backend = make_llm(template=None)
    llm.chat([{"role": "user", "content": "Hi /no_think"}], max_tokens=2)
    assert backend.submitted[-1][1].temperature == 0.7


def test_async_and_sync_agree() -> None:
    llm, _ = make_llm(reasoning="Think.\n</think>\n\n")
    sync = llm.chat(USER)
    result = asyncio.run(llm.achat(USER))
    assert (result.content, result.reasoning) == (sync.content, sync.reasoning)

    async def collect() -> list[object]:
        return [e async for e in llm.astream_chat(USER)]

    events = asyncio.run(collect())
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "Think."


def test_stream_closed_early_cancels_the_generation() -> None:
    llm, backend = make_llm()
    stream = llm.stream_chat(USER)
    next(stream)
    stream.close()
    assert backend.handles[-1].finish_reason is not None


def test_prompt_longer_than_context_is_a_clear_error() -> None:
    llm, _ = make_llm(context=64)
    with pytest.raises(ContextLengthError):
        llm.chat([{"role": "user", "content": "word " * 200}])


def test_max_tokens_beyond_context_is_rejected() -> None:
    llm, _ = make_llm(context=128)
    with pytest.raises(UsageError, match="max_tokens"):
        llm.chat(USER, max_tokens=10_000)


def test_unknown_option_is_rejected() -> None:
    llm, _ = make_llm()
    with pytest.raises(UsageError, match="temprature"):
        llm.chat(USER, temprature=0.5)


def test_budget_on_a_model_without_thinking_is_ignored_with_a_warning() -> None:
    llm, backend = make_llm(reasoning="", answer="Plain answer.", template="qwen2.5")
    result = llm.chat(USER, thinking_budget=5)
    assert result.content == "Plain answer."
    assert any("ignored" in w for w in result.warnings)
    assert backend.handles[-1].forced_positions == []
