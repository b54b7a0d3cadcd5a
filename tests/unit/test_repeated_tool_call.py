"""A tool call that repeats the one just answered is asked again as an answer (issue 10, section 3).

Qwen2.5-Coder-0.5B answers a tool result by calling the same tool again, whatever the prompt says; the
engine drops that generation before the caller sees any of it and runs the turn again without tools.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from _chat_tokenizer import real_qwen_tokenizer
from _scripted import ScriptedBackend, ScriptedHandle

from qwenkit.catalog import load_catalog
from qwenkit.chat.answered import call_key, call_opening_ids, just_answered
from qwenkit.chat.events import ContentDelta, Done, ToolCall
from qwenkit.chat.messages import normalize_messages
from qwenkit.engine.llm import LLM, REPEAT_WARNING, ModelFacts
from qwenkit.engine.types import SamplingParams

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PARIS = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
CALL = {"id": "call_1", "type": "function", "function": PARIS}
AFTER_RESULT = [
    {"role": "user", "content": "What is the weather in Paris right now?"},
    {"role": "assistant", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature_c": 18, "condition": "sunny"}'},
]
REPEAT = '```json\n{\n    "name": "get_weather",\n    "arguments": {\n        "city": "Paris"\n    }\n}\n```'
ANSWER = "It is 18 degrees and sunny in Paris."


class AnswersInTurn(ScriptedBackend):
    """Each submit answers with the next text of ``answers`` (the last one repeats)."""

    def __init__(self, answers: Sequence[str]) -> None:
        super().__init__(real_qwen_tokenizer(), "", answers[0])
        self.answers = [self.tokenizer.encode_text(a) for a in answers]

    def submit(self, prompt_ids: Sequence[int], params: SamplingParams) -> ScriptedHandle:
        self.answer = self.answers[min(len(self.submitted), len(self.answers) - 1)]
        return super().submit(prompt_ids, params)


def coder(answers: Sequence[str]) -> tuple[LLM, AnswersInTurn]:
    backend = AnswersInTurn(answers)
    variant = load_catalog().get("qwen2.5-coder-0.5b-instruct")
    return LLM(backend, ModelFacts(Path("scripted"), variant, "qwen2.5"), template="qwen2.5"), backend


def test_just_answered_is_the_last_turns_calls_when_only_their_results_follow() -> None:
    key = call_key("get_weather", {"city": "Paris"})
    assert just_answered(normalize_messages(AFTER_RESULT)) == {key}
    assert just_answered(normalize_messages(AFTER_RESULT[:2])) == frozenset()  # no result yet
    later = [*AFTER_RESULT, {"role": "assistant", "content": "Sunny."}, {"role": "user", "content": "Rome?"}]
    assert just_answered(normalize_messages(later)) == frozenset()
    assert just_answered(normalize_messages(AFTER_RESULT[2:])) == frozenset()  # a result with no call
    # Key order and spacing do not make a different call; other arguments do.
    assert call_key("get_weather", '{ "city" : "Paris" }') == key
    assert call_key("get_weather", {"city": "Rome"}) != key


def test_call_openings_are_banned_by_token_and_special_id() -> None:
    tokenizer = real_qwen_tokenizer()
    bias = call_opening_ids(tokenizer)
    assert set(bias.values()) == {-100.0}
    for text in ("{", "```", '{"'):
        assert str(tokenizer.encode_text(text)[0]) in bias
    assert str(tokenizer.special_tokens["<tool_call>"]) in bias


def test_a_repeated_call_is_asked_again_as_an_answer() -> None:
    llm, backend = coder([REPEAT, ANSWER])
    result = llm.chat(AFTER_RESULT, tools=[WEATHER], tool_choice="auto", temperature=0)
    assert (result.content, result.tool_calls, result.finish_reason) == (ANSWER, (), "stop")
    assert REPEAT_WARNING in result.warnings
    assert len(backend.submitted) == 2
    first, second = backend.submitted
    assert "get_weather" in llm.tokenizer.decode(first[0]).split("<|im_start|>user")[0]  # tools offered
    assert "get_weather" not in llm.tokenizer.decode(second[0]).split("<|im_start|>user")[0]  # no tools
    banned = dict(second[1].logit_bias)
    assert all(banned[int(k)] == -100.0 for k in call_opening_ids(llm.tokenizer))
    assert not first[1].logit_bias
    dropped = len(backend.answers[0])
    assert result.usage.completion_tokens == dropped + len(backend.answers[1])


def test_streams_sync_and_async_never_show_the_dropped_call() -> None:
    llm, _ = coder([REPEAT, ANSWER])
    events = list(llm.stream_chat(AFTER_RESULT, tools=[WEATHER], tool_choice="auto", temperature=0))
    llm, _ = coder([REPEAT, ANSWER])

    async def collect() -> list[object]:
        stream = llm.astream_chat(AFTER_RESULT, tools=[WEATHER], tool_choice="auto", temperature=0)
        return [e async for e in stream]

    for got in (events, asyncio.run(collect())):
        assert not any(isinstance(e, ToolCall) for e in got)
        assert "".join(e.text for e in got if isinstance(e, ContentDelta)) == ANSWER
        assert got[-1] == Done("stop")


def test_a_new_call_after_a_result_is_still_a_call() -> None:
    other = REPEAT.replace("Paris", "Lyon")
    llm, backend = coder([other, ANSWER])
    result = llm.chat(AFTER_RESULT, tools=[WEATHER], tool_choice="auto", temperature=0)
    calls = [(c.name, json.loads(c.arguments)) for c in result.tool_calls]
    assert calls == [("get_weather", {"city": "Lyon"})]
    assert len(backend.submitted) == 1 and REPEAT_WARNING not in result.warnings


def test_without_auto_tools_nothing_is_asked_again() -> None:
    llm, backend = coder([REPEAT, ANSWER])
    result = llm.chat(AFTER_RESULT, tools=[WEATHER], tool_choice="none", temperature=0)
    assert result.content == REPEAT and len(backend.submitted) == 1
    llm, backend = coder([REPEAT, ANSWER])
    first_turn = llm.chat(AFTER_RESULT[:1], tools=[WEATHER], tool_choice="auto", temperature=0)
    assert first_turn.tool_calls and len(backend.submitted) == 1  # nothing answered yet: a real call
