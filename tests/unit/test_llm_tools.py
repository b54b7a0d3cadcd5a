"""Tool calls through the engine API: the model's tool format picks the parser; tool_choice gates it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _chat_tokenizer import real_qwen_tokenizer
from _scripted import ScriptedBackend

from qwenkit.catalog import ToolFormat, load_catalog
from qwenkit.engine.llm import LLM, ModelFacts
from qwenkit.engine.params import ChatParams, NamedToolChoice, ToolChoiceMode
from qwenkit.errors import UsageError

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
USER = [{"role": "user", "content": "What is the weather in Paris right now?"}]
# What Qwen2.5-Coder-0.5B-Instruct answers to USER with WEATHER offered (greedy).
FENCED = '```json\n{\n    "name": "get_weather",\n    "arguments": {\n        "city": "Paris"\n    }\n}\n```'
XML_CALL = (
    "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>"
)
XML_TEMPLATE = (
    "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if tools %}{{ 'Call a tool as <tool_call>\\n<function=NAME>\\n<parameter=KEY>\\nvalue\\n"
    "</parameter>\\n</function>\\n</tool_call>' }}{%- endif %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)


def make_llm(answer: str, catalog_id: str | None, template: str = "qwen2.5") -> tuple[LLM, ScriptedBackend]:
    tokenizer = real_qwen_tokenizer()
    backend = ScriptedBackend(tokenizer, "", answer)
    variant = load_catalog().get(catalog_id) if catalog_id else None
    return LLM(backend, ModelFacts(Path("scripted"), variant, "qwen2.5"), template=template), backend


def _prompt(llm: LLM, backend: ScriptedBackend) -> str:
    return llm.tokenizer.decode(backend.submitted[-1][0])


def test_qwen25_coder_json_answer_is_a_tool_call() -> None:
    llm, backend = make_llm(FENCED, "qwen2.5-coder-0.5b-instruct")
    assert llm.tool_format is ToolFormat.HERMES_JSON
    result = llm.chat(USER, tools=[WEATHER])
    calls = [(c.name, json.loads(c.arguments)) for c in result.tool_calls]
    assert calls == [("get_weather", {"city": "Paris"})]
    assert (result.content, result.finish_reason) == ("", "tool_calls")
    assert "<tools>" in _prompt(llm, backend)


def test_tool_choice_none_hides_the_tools_and_parses_nothing() -> None:
    llm, backend = make_llm(FENCED, "qwen2.5-coder-0.5b-instruct")
    result = llm.chat(USER, tools=[WEATHER], tool_choice="none")
    assert (result.content, result.tool_calls, result.finish_reason) == (FENCED, (), "stop")
    assert "<tools>" not in _prompt(llm, backend)


def test_a_json_answer_is_content_for_a_hermes_model_and_under_a_grammar() -> None:
    llm, _ = make_llm(FENCED, "qwen2.5-0.5b-instruct")
    assert llm.tool_format is ToolFormat.HERMES
    assert llm.chat(USER, tools=[WEATHER]).content == FENCED
    coder, _ = make_llm(FENCED, "qwen2.5-coder-0.5b-instruct")
    params = ChatParams(tools=(WEATHER,), grammar='root ::= "x"')  # e.g. a response_format grammar
    assert not params.json_tool_answers
    assert coder.start_chat(USER, params).result().content == FENCED


def test_models_outside_the_catalog_take_the_format_their_template_teaches() -> None:
    llm, _ = make_llm(XML_CALL, None, template=XML_TEMPLATE)
    assert llm.tool_format is ToolFormat.QWEN3_CODER
    result = llm.chat(USER, tools=[WEATHER])
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_weather", '{"city": "Paris"}')]
    plain, _ = make_llm(FENCED, None)
    assert plain.tool_format is ToolFormat.HERMES_JSON
    assert [c.name for c in plain.chat(USER, tools=[WEATHER]).tool_calls] == ["get_weather"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tool_choice": "required"}, "requires tools"),
        ({"tools": [WEATHER], "tool_choice": "required"}, "needs a grammar"),
        ({"tools": [WEATHER], "tool_choice": {"function": {"name": "nope"}}}, "not in tools"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice must be"),
    ],
)
def test_tool_choice_misuse_is_a_usage_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ChatParams.from_kwargs(**kwargs)


def test_tool_choice_values_are_typed() -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    named = ChatParams.from_kwargs(tools=[WEATHER], grammar="root ::= x", tool_choice=choice)
    assert named.tool_choice == NamedToolChoice("get_weather") and named.forces_tool_call
    assert not named.json_tool_answers
    auto = ChatParams.from_kwargs(tools=[WEATHER])
    assert auto.tool_choice is ToolChoiceMode.AUTO and auto.json_tool_answers and not auto.forces_tool_call
    assert ChatParams.from_kwargs(tools=[WEATHER], tool_choice="none").offered_tools is None
    assert not ChatParams().json_tool_answers
