"""response_format / tool_choice -> grammar plans, without a model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from qwenkit.chat.template import TemplateFamily
from qwenkit.engine.llamacpp import LlamaCppRunner
from qwenkit.engine.params import ChatParams, NamedToolChoice, ToolChoiceMode
from qwenkit.engine.transformers import TransformersRunner
from qwenkit.engine.types import BackendKind, Capability
from qwenkit.errors import UsageError
from qwenkit.server.protocol_chat import ChatCompletionRequest
from qwenkit.server.serving_chat import chat_params
from qwenkit.server.structured import CALL_RULE, plan_constraint


@dataclass(frozen=True)
class FakeBackend:
    kind: BackendKind
    capabilities: Capability


LLAMA = FakeBackend(BackendKind.LLAMACPP, LlamaCppRunner.capabilities)
TRANSFORMERS = FakeBackend(BackendKind.TRANSFORMERS, TransformersRunner.capabilities)

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
OTHER = {"type": "function", "function": {"name": "search"}}


def req(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "x"}], **fields})


def test_json_schema_becomes_a_grammar_without_raw_control_characters() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    plan = plan_constraint(
        req(response_format={"type": "json_schema", "json_schema": {"schema": schema}}), LLAMA
    )
    assert plan.grammar is not None and plan.forbids_thinking and plan.tools is None
    assert '"\\"a\\""' in plan.grammar and "root ::=" in plan.grammar
    assert r'char ::= [^"\\\x7F\x00-\x1F]' in plan.grammar


def test_tool_choice_plans() -> None:
    auto = plan_constraint(req(tools=[TOOL]), LLAMA)
    assert auto.grammar is None and auto.tools is not None and not auto.forbids_thinking
    assert plan_constraint(req(tools=[TOOL], tool_choice="none"), LLAMA).tools is None
    named = plan_constraint(
        req(tools=[TOOL, OTHER], tool_choice={"type": "function", "function": {"name": "search"}}),
        LLAMA,
    )
    assert (
        named.grammar is not None and '"\\"search\\""' in named.grammar and "get_weather" not in named.grammar
    )
    assert named.grammar.startswith(f'root ::= "<tool_call>\\n" {CALL_RULE} "\\n</tool_call>"\n')
    required = plan_constraint(req(tools=[TOOL, OTHER], tool_choice="required"), LLAMA)
    assert required.grammar is not None and "get_weather" in required.grammar and "search" in required.grammar
    assert required.grammar.splitlines()[0].endswith(")*")  # parallel calls allowed


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"response_format": {"type": "json_object"}}, "not supported by this backend"),
        ({"tools": [TOOL], "tool_choice": "required"}, "not supported by this backend"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "not in tools",
        ),
        ({"tool_choice": "required"}, "requires tools"),
    ],
)
def test_clear_refusals(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plan_constraint(req(**fields), TRANSFORMERS)


def test_unconvertible_schema_is_a_usage_error() -> None:
    bad = {"type": "json_schema", "json_schema": {"schema": {"$ref": "#/definitions/missing"}}}
    with pytest.raises(UsageError):
        plan_constraint(req(response_format=bad), LLAMA)


def test_tool_choice_reaches_the_chat_params() -> None:
    def params(**fields: Any) -> ChatParams:
        request = req(**fields)
        return chat_params(request, plan_constraint(request, LLAMA), TemplateFamily.QWEN2_5)

    auto = params(tools=[TOOL])
    assert auto.tool_choice is ToolChoiceMode.AUTO and auto.json_tool_answers
    explicit = params(tools=[TOOL], tool_choice="auto")
    assert explicit.tool_choice is ToolChoiceMode.AUTO and explicit.json_tool_answers
    none = params(tools=[TOOL], tool_choice="none")
    assert none.offered_tools is None and not none.json_tool_answers
    required = params(tools=[TOOL], tool_choice="required")
    assert required.tool_choice is ToolChoiceMode.REQUIRED and not required.json_tool_answers
    named = params(tools=[TOOL, OTHER], tool_choice={"type": "function", "function": {"name": "search"}})
    assert named.tool_choice == NamedToolChoice("search") and named.grammar is not None
    with_format = params(tools=[TOOL], response_format={"type": "json_object"})
    assert with_format.offered_tools and not with_format.json_tool_answers


def test_the_first_installed_converter_converts(monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-cpp-python's converter when installed, else xgrammar's (vLLM's environment), else an error
    that names the extra to install."""
    import qwenkit.server.structured as structured
    from qwenkit.errors import MissingDependencyError

    seen: list[str] = []

    def fake(schema: str) -> str:
        seen.append(schema)
        return "root ::= fake"

    monkeypatch.setattr(structured, "_CONVERTERS", (lambda: None, lambda: fake))
    assert structured.schema_to_gbnf({"type": "object"}, "response_format") == "root ::= fake"
    assert seen == ['{"type": "object"}']
    monkeypatch.setattr(structured, "_CONVERTERS", (lambda: None, lambda: None))
    with pytest.raises(MissingDependencyError, match="llama_cpp"):
        structured.schema_to_gbnf({"type": "object"}, "response_format")
