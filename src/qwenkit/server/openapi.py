"""The OpenAPI document states every limit the server enforces, so clients and fuzzers can stay inside.

Pydantic already writes the static limits (ranges, lengths, patterns). Two kinds it cannot see are
added here: the shape of a chat message (``chat.messages`` validates it, to name the bad field), and
limits that depend on the loaded model, such as ``max_tokens`` below the context length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from pydantic import WithJsonSchema

from qwenkit.engine.sampling import SEED_MAX, SEED_MIN

TOKEN_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens")
# Integer bounds past 2**53, which FastAPI's OpenAPI models (bounds typed float) would round: the
# seed's 2**64 - 1 became 2**64, so a fuzzer sent 2**64 as "valid" and was refused.
EXACT_INTEGER_BOUNDS: dict[str, tuple[int, int]] = {"seed": (SEED_MIN, SEED_MAX)}
GENERATING_REQUESTS = ("ChatCompletionRequest", "CompletionRequest")

_NULLABLE_STRING = {"type": ["string", "null"]}
_TEXT_PART = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}
_TEXT = {"anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_PART}]}
_TOOL_CALL = {
    "type": "object",
    "required": ["function"],
    "properties": {
        "id": _NULLABLE_STRING,
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "arguments": {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "null"}]},
            },
        },
    },
}
# What qwenkit.chat.messages accepts, one branch per role (OpenAI's message shapes, text only).
MESSAGE_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "required": ["role", "content"],
            "properties": {
                "role": {"enum": ["system", "developer", "user"]},
                "content": _TEXT,
                "name": _NULLABLE_STRING,
            },
        },
        {
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": {"const": "assistant"},
                "content": {"anyOf": [_TEXT, {"type": "null"}]},
                "reasoning_content": _NULLABLE_STRING,
                "tool_calls": {"anyOf": [{"type": "array", "items": _TOOL_CALL}, {"type": "null"}]},
                "name": _NULLABLE_STRING,
            },
        },
        {
            "type": "object",
            "required": ["role", "content"],
            "properties": {
                "role": {"const": "tool"},
                "content": _TEXT,
                "tool_call_id": _NULLABLE_STRING,
                "name": _NULLABLE_STRING,
            },
        },
    ]
}


def message_list_schema(max_items: int | None = None) -> WithJsonSchema:
    """The JSON schema of a ``messages`` list (validation itself stays in ``qwenkit.chat.messages``)."""
    schema: dict[str, Any] = {"type": "array", "items": MESSAGE_SCHEMA, "minItems": 1}
    if max_items is not None:
        schema["maxItems"] = max_items
    return WithJsonSchema(schema)


def token_id_pattern(vocab_size: int) -> str:
    """A regex matching exactly the decimal numbers 0 .. vocab_size - 1 (no leading zeros)."""
    top = str(vocab_size - 1)
    alternatives = ["[0-9]"] + [f"[1-9][0-9]{{{n - 1}}}" for n in range(2, len(top))]
    if len(top) == 1:
        alternatives = [f"[0-{top}]"]
    else:
        for i, digit in enumerate(top):
            low = 1 if i == 0 else 0
            if int(digit) > low:
                rest = len(top) - i - 1
                tail = f"[0-9]{{{rest}}}" if rest else ""
                alternatives.append(f"{top[:i]}[{low}-{int(digit) - 1}]{tail}")
        alternatives.append(top)
    return "^(?:" + "|".join(alternatives) + ")$"


def _cap_tokens(schema: dict[str, Any], context_length: int) -> None:
    components = schema.get("components", {}).get("schemas", {})
    for name in GENERATING_REQUESTS:
        properties = components.get(name, {}).get("properties", {})
        for field in TOKEN_LIMIT_FIELDS:
            prop = properties.get(field)
            if prop is None:
                continue
            for branch in prop.get("anyOf", [prop]):
                if branch.get("type") == "integer":
                    branch["maximum"] = context_length - 1  # the prompt takes at least one token


def _exact_integer_bounds(schema: dict[str, Any]) -> None:
    for component in _schemas(schema).values():
        for field, (low, high) in EXACT_INTEGER_BOUNDS.items():
            prop = component.get("properties", {}).get(field, {})
            for branch in prop.get("anyOf", [prop]):
                if branch.get("type") == "integer":
                    branch["minimum"], branch["maximum"] = low, high


@dataclass(frozen=True)
class ModelLimits:
    """What the loaded model allows: context, vocabulary, the names it answers to (None: unknown yet)."""

    context_length: int
    vocab_size: int | None = None
    model_names: frozenset[str] | None = None
    grammar: bool = True  # constrained decoding: response_format and forced tool_choice


def _schemas(schema: dict[str, Any]) -> dict[str, Any]:
    return schema.get("components", {}).get("schemas", {})  # type: ignore[no-any-return]


def _exact_token_ids(schema: dict[str, Any], vocab_size: int) -> None:
    pattern = token_id_pattern(vocab_size)
    for name in GENERATING_REQUESTS:
        prop = _schemas(schema).get(name, {}).get("properties", {})
        for branch in prop.get("logit_bias", {}).get("anyOf", []):
            if "propertyNames" in branch:
                branch["propertyNames"] = {"pattern": pattern}
    tokens = _schemas(schema).get("DetokenizeRequest", {}).get("properties", {}).get("tokens", {})
    if "items" in tokens:
        tokens["items"]["maximum"] = vocab_size - 1


def _model_names(schema: dict[str, Any], names: frozenset[str]) -> None:
    allowed = sorted(names)
    for component in _schemas(schema).values():
        prop = component.get("properties", {}).get("model")
        if prop is not None and any(b.get("type") == "string" for b in prop.get("anyOf", [])):
            prop["anyOf"] = [{"type": "string", "enum": allowed}, {"type": "null"}]
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for param in operation.get("parameters", []):
                if param.get("in") == "path" and param.get("name") == "model_id":
                    param["schema"] = {"type": "string", "enum": allowed}


def _without_grammar(schema: dict[str, Any]) -> None:
    """A backend without constrained decoding takes only plain text output and unforced tool calls."""
    chat = _schemas(schema).get("ChatCompletionRequest", {}).get("properties", {})
    if "response_format" in chat:
        chat["response_format"] = {"anyOf": [{"$ref": "#/components/schemas/TextFormat"}, {"type": "null"}]}
    if "tool_choice" in chat:
        chat["tool_choice"] = {"anyOf": [{"type": "string", "enum": ["none", "auto"]}, {"type": "null"}]}


def state_model_limits(app: FastAPI, limits: ModelLimits) -> None:
    """Make ``app.openapi()`` carry the limits of the model it serves."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _exact_integer_bounds(schema)
            _cap_tokens(schema, limits.context_length)
            if limits.vocab_size is not None:
                _exact_token_ids(schema, limits.vocab_size)
            if limits.model_names:
                _model_names(schema, limits.model_names)
            if not limits.grammar:
                _without_grammar(schema)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
