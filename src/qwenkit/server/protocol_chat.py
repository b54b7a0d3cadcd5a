"""/v1/chat/completions request and response models, in OpenAI's shapes (plus vLLM's extensions).

Types are strict (``"0.5"`` is not a number, ``1`` is not a boolean), ranges are checked here, and
messages stay JSON objects: ``qwenkit.chat.messages`` validates them and names the bad field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from qwenkit.engine.sampling import SamplingOptions
from qwenkit.engine.stops import MAX_STOP_LENGTH, MAX_STOP_STRINGS
from qwenkit.server.openapi import message_list_schema
from qwenkit.server.protocol_common import (
    MAX_N,
    ChoiceLogprobs,
    Response,
    StreamOptions,
    StrictRequest,
    UsageInfo,
    null_is_default,
)

MAX_MESSAGES = 4096
# vLLM's pre-fill flag: the answer goes on from the final message, which must be the assistant's. JSON
# Schema cannot say "the last item of messages", so the field stays out of the published schema (a
# fuzzer would send it with any messages); it is documented in the README.
ContinueFinal = SkipJsonSchema[bool]
MAX_TOOLS = 128
StopText = Annotated[str, Field(min_length=1, max_length=MAX_STOP_LENGTH)]
StopList = Annotated[list[StopText], Field(max_length=MAX_STOP_STRINGS)]
FunctionName = Annotated[str, Field(min_length=1, max_length=256)]


class FunctionDef(StrictRequest):
    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(StrictRequest):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(StrictRequest):
    name: FunctionName


class NamedToolChoice(StrictRequest):
    type: Literal["function"] = "function"
    function: NamedFunction


class TextFormat(StrictRequest):
    type: Literal["text"]


class JSONObjectFormat(StrictRequest):
    type: Literal["json_object"]


class JSONSchemaSpec(StrictRequest):
    name: str = Field(default="response", max_length=256)
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class JSONSchemaFormat(StrictRequest):
    type: Literal["json_schema"]
    json_schema: JSONSchemaSpec


ResponseFormat = Annotated[TextFormat | JSONObjectFormat | JSONSchemaFormat, Field(discriminator="type")]


class SamplingFields(StrictRequest, SamplingOptions):
    """Fields shared by chat and text completions: the sampling options (declared once, in
    ``qwenkit.engine.sampling``) and the request-level ones."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=False)

    model: str | None = Field(default=None, max_length=1024)
    n: int = null_is_default(1, ge=1, le=MAX_N)
    stop: StopText | StopList | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    stream: bool = null_is_default(False)
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256)
    ignore_eos: bool = Field(
        default=False, description="Keep generating past end-of-text (vLLM's extension; for benchmarks)."
    )
    chat_template: Any = Field(
        default=None, description="Refused: chat templates are not taken from requests."
    )


# Cross-field rules the server enforces, stated for clients and fuzzers (JSON Schema if/then).
_LOGPROBS_NEEDED: dict[str, Any] = {
    "if": {"required": ["top_logprobs"], "properties": {"top_logprobs": {"type": "integer", "minimum": 1}}},
    "then": {"required": ["logprobs"], "properties": {"logprobs": {"const": True}}},
}
_FORCED_TOOL_RULES: dict[str, Any] = {  # a forced tool_choice needs tools and no JSON response_format
    "if": {
        "required": ["tool_choice"],
        "properties": {"tool_choice": {"anyOf": [{"const": "required"}, {"type": "object"}]}},
    },
    "then": {
        "required": ["tools"],
        "properties": {
            "tools": {"type": "array", "minItems": 1},
            "response_format": {"anyOf": [{"type": "null"}, {"properties": {"type": {"const": "text"}}}]},
        },
    },
}


class ChatCompletionRequest(SamplingFields):
    # top_logprobs > 0 needs logprobs: true (checked in serving_chat); stated for clients and fuzzers.
    model_config = ConfigDict(
        extra="ignore",
        strict=True,
        json_schema_extra={"allOf": [_LOGPROBS_NEEDED, _FORCED_TOOL_RULES]},
    )
    messages: Annotated[list[dict[str, Any]], message_list_schema(MAX_MESSAGES)] = Field(
        min_length=1, max_length=MAX_MESSAGES
    )
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = null_is_default(False)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[ToolDef] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    enable_thinking: bool | None = None
    thinking_budget: int | None = Field(default=None, ge=0)
    continue_final_message: ContinueFinal = False


class FunctionCall(Response):
    name: str
    arguments: str


class ToolCallOut(Response):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessageOut(Response):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None  # alias of reasoning_content, for clients that read this name
    tool_calls: list[ToolCallOut] | None = None


class ChatChoice(Response):
    index: int
    message: ChatMessageOut
    finish_reason: str
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(Response):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageInfo
    system_fingerprint: str | None = None


class FunctionCallDelta(Response):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(Response):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class ChatDelta(Response):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChatChunkChoice(Response):
    index: int
    delta: ChatDelta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(Response):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: UsageInfo | None = None


NULL: dict[str, Any] = {"type": "null"}


class TokenizeRequest(StrictRequest):
    """vLLM's /tokenize: either ``prompt`` (plain text) or ``messages`` (rendered by the chat template)."""

    model_config = ConfigDict(
        extra="ignore",
        strict=True,
        json_schema_extra={  # exactly one of the two (a null counts as absent)
            "oneOf": [
                {"required": ["prompt"], "properties": {"prompt": {"type": "string"}, "messages": NULL}},
                {"required": ["messages"], "properties": {"messages": {"type": "array"}, "prompt": NULL}},
            ]
        },
    )

    model: str | None = Field(default=None, max_length=1024)
    prompt: str | None = None
    messages: Annotated[list[dict[str, Any]], message_list_schema()] | None = Field(
        default=None, min_length=1
    )
    add_generation_prompt: bool = True
    continue_final_message: ContinueFinal = False
    add_special_tokens: bool = True
    tools: list[ToolDef] | None = Field(default=None, max_length=MAX_TOOLS)
    enable_thinking: bool | None = None
    return_token_strs: bool = False
