"""The server's request/response models in OpenAI's shapes, in one import (split by endpoint)."""

from __future__ import annotations

from qwenkit.server.protocol_chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    JSONSchemaFormat,
    NamedToolChoice,
    TokenizeRequest,
    ToolDef,
)
from qwenkit.server.protocol_common import (
    DetokenizeRequest,
    DetokenizeResponse,
    ErrorResponse,
    ModelCard,
    ModelList,
    TokenizeResponse,
    UsageInfo,
)
from qwenkit.server.protocol_completions import Completion, CompletionRequest

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "Completion",
    "CompletionRequest",
    "DetokenizeRequest",
    "DetokenizeResponse",
    "ErrorResponse",
    "JSONSchemaFormat",
    "ModelCard",
    "ModelList",
    "NamedToolChoice",
    "TokenizeRequest",
    "TokenizeResponse",
    "ToolDef",
    "UsageInfo",
]
