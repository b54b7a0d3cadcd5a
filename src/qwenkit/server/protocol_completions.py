"""/v1/completions models (raw text completion; ``suffix`` asks Qwen-Coder for fill-in-the-middle)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from qwenkit.server.protocol_chat import SamplingFields
from qwenkit.server.protocol_common import MAX_N, Response, UsageInfo, null_is_default

MAX_PROMPTS = 32
MAX_SEQUENCES = MAX_PROMPTS * MAX_N  # the most generations one request can start
# OpenAI's default for legacy completions: without it an empty prompt generates to the end of the context.
DEFAULT_COMPLETION_TOKENS = 16
PromptText = Annotated[str, Field(max_length=4 * 1024 * 1024)]


class CompletionRequest(SamplingFields):
    max_tokens: int | None = Field(
        default=DEFAULT_COMPLETION_TOKENS,
        ge=1,
        description=f"Most tokens to generate; {DEFAULT_COMPLETION_TOKENS} when absent or null, as OpenAI.",
    )
    prompt: PromptText | Annotated[list[PromptText], Field(min_length=1, max_length=MAX_PROMPTS)]
    suffix: str | None = None
    echo: bool = null_is_default(False)
    logprobs: int | None = Field(default=None, ge=0, le=20)
    best_of: int | None = Field(default=None, ge=1, le=1)  # only 1: no server-side reranking


class CompletionLogprobs(Response):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None = None
    text_offset: list[int]


class CompletionChoice(Response):
    index: int
    text: str
    finish_reason: str | None = None
    logprobs: CompletionLogprobs | None = None


class Completion(Response):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None
    system_fingerprint: str | None = None
