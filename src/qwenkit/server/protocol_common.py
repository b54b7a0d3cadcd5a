"""Pydantic models shared by the endpoints: errors, usage, models list, tokenize/detokenize.

Requests ignore unknown fields (as OpenAI does); every response model is declared on its route so the
OpenAPI document describes what the server really sends.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qwenkit.server.openapi import message_list_schema

MAX_N = 8
MAX_TOKEN_IDS = 1_000_000


class Request(BaseModel):
    """Base of every request body: unknown fields are ignored, as OpenAI's API ignores them."""

    model_config = ConfigDict(extra="ignore")


class StrictRequest(Request):
    """Strict types: ``"0.5"`` is not a number and ``1`` is not a boolean, as in OpenAI's API."""

    model_config = ConfigDict(extra="ignore", strict=True)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Response):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(Response):
    error: ErrorDetail


class PromptTokensDetails(Response):
    cached_tokens: int = 0


class CompletionTokensDetails(Response):
    reasoning_tokens: int = 0


class UsageInfo(Response):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class StreamOptions(StrictRequest):
    include_usage: bool = False


class SamplingPreset(Response):
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    presence_penalty: float
    repetition_penalty: float


class ModelCard(Response):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "qwenkit"
    family: str | None = None
    quant: str | None = None
    context_length: int
    backend: str
    display_name: str | None = None
    params_total: int | None = None
    thinking: Literal["none", "hybrid", "thinking-only"] | None = None
    sampling: dict[str, SamplingPreset] | None = None  # mode ("default", "thinking", ...) -> Qwen's values


class ModelList(Response):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class TokenizeRequest(StrictRequest):
    """vLLM's /tokenize: either ``prompt`` (plain text) or ``messages`` (rendered by the chat template)."""

    model: str | None = None
    prompt: str | None = None
    messages: Annotated[list[dict[str, Any]], message_list_schema()] | None = Field(
        default=None, min_length=1
    )
    add_generation_prompt: bool = True
    add_special_tokens: bool = True
    tools: list[dict[str, Any]] | None = None
    enable_thinking: bool | None = None
    return_token_strs: bool = False


class TokenizeResponse(Response):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(StrictRequest):
    model: str | None = None
    tokens: list[int] = Field(max_length=MAX_TOKEN_IDS)


class DetokenizeResponse(Response):
    prompt: str


class HealthResponse(Response):
    status: str


class TopLogprob(Response):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprobInfo(Response):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(Response):
    content: list[TokenLogprobInfo] | None = None
