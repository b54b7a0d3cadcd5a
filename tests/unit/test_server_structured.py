"""response_format / tool_choice -> grammar plans, without a model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from qwenkit.engine.llamacpp import LlamaCppRunner
from qwenkit.engine.transformers import TransformersRunner
from qwenkit.engine.types import BackendKind, Capability
from qwenkit.errors import UsageError
from qwenkit.server.protocol_chat import ChatCompletionRequest
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
