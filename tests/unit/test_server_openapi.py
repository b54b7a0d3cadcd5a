"""The OpenAPI document states the limits the server enforces (issue: fuzzers should send valid requests)."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from qwenkit.chat.messages import ImagePart, normalize_messages
from qwenkit.engine.sampling import SEED_MAX, SEED_MIN, SamplingOptions
from qwenkit.errors import UsageError
from qwenkit.server.app import create_app
from qwenkit.server.openapi import MESSAGE_SCHEMA, token_id_pattern
from qwenkit.server.protocol_chat import ChatCompletionRequest
from qwenkit.server.protocol_completions import CompletionRequest
from qwenkit.server.settings import ServerSettings


@pytest.mark.parametrize("vocab", [1, 2, 9, 10, 11, 99, 100, 101, 1000, 1001, 12345, 151665, 151936])
def test_token_id_pattern_matches_exactly_the_vocabulary(vocab: int) -> None:
    pattern = re.compile(token_id_pattern(vocab))
    upper = max(3 * vocab, 2000) if vocab < 100_000 else vocab + 5000
    accepted = [n for n in range(upper) if pattern.match(str(n))]
    assert accepted == list(range(vocab))
    assert not pattern.match("01") and not pattern.match("-1") and not pattern.match("")


def test_max_tokens_states_the_context_limit() -> None:
    schema = create_app(ServerSettings(context=2048)).openapi()["components"]["schemas"]
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        branches = schema[name]["properties"]["max_tokens"]["anyOf"]
        branch = next(b for b in branches if b.get("type") == "integer")
        assert branch["maximum"] == 2047
    assert schema["CompletionRequest"]["properties"]["max_tokens"]["default"] == 16


def test_the_seed_range_is_stated_exactly_as_it_is_enforced() -> None:
    """FastAPI's OpenAPI models keep bounds as floats, which turn 2**64 - 1 into 2**64."""
    schema = create_app(ServerSettings()).openapi()["components"]["schemas"]
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        branch = next(b for b in schema[name]["properties"]["seed"]["anyOf"] if b.get("type") == "integer")
        assert (branch["minimum"], branch["maximum"]) == (SEED_MIN, SEED_MAX)
        assert type(branch["minimum"]) is int and type(branch["maximum"]) is int
        for edge in (SEED_MIN, SEED_MAX):
            jsonschema.validate(edge, branch)
            assert SamplingOptions(seed=edge).seed == edge
        for outside in (SEED_MIN - 1, SEED_MAX + 1):
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(outside, branch)
            with pytest.raises(ValueError):
                SamplingOptions(seed=outside)


VALID: list[Any] = [
    {"role": "user", "content": "hi"},
    {"role": "system", "content": [{"type": "text", "text": "a"}]},
    {"role": "developer", "content": "x", "name": None},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function",
                                                            "function": {"name": "f", "arguments": "{}"}}]},
    {"role": "assistant", "content": "x", "reasoning_content": "r"},
    {"role": "tool", "content": "42", "tool_call_id": "c"},
]
INVALID: list[Any] = [
    {"content": "hi"},
    {"role": "bad", "content": "hi"},
    {"role": "user"},
    {"role": "user", "content": 5},
    {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]},
    {"role": "user", "content": [{"type": "audio", "audio": "x"}]},
    {"role": "assistant", "tool_calls": [{"function": {"name": ""}}]},
    {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 5}}]},
    {"role": "tool", "content": "x", "tool_call_id": 5},
]


@pytest.mark.parametrize("message", VALID)
def test_messages_the_schema_allows_are_accepted(message: dict[str, Any]) -> None:
    jsonschema.validate(message, MESSAGE_SCHEMA)
    normalize_messages([message])


@pytest.mark.parametrize("message", INVALID)
def test_messages_the_validator_refuses_are_outside_the_schema(message: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(message, MESSAGE_SCHEMA)
    with pytest.raises(UsageError):
        normalize_messages([message])


def test_image_parts_are_messages_but_not_in_the_published_schema() -> None:
    """The served models read text, so the schema leaves image parts out (a fuzzer would send them and
    count the 400 that names the part); the message validator keeps them for the chat layer, which
    refuses them for a text model (tests/unit/test_chat_encode.py, the server's bad-input table)."""
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(message, MESSAGE_SCHEMA)
    assert normalize_messages([message])[0].images == (ImagePart("x"),)


NULLABLE = {
    "ChatCompletionRequest": ("n", "stream", "logprobs"),
    "CompletionRequest": ("n", "stream", "echo"),
}


@pytest.mark.parametrize("name", sorted(NULLABLE))
def test_null_means_the_default_where_openai_types_a_field_as_nullable(name: str) -> None:
    """The openai client sends ``n=None`` as ``"n": null``; OpenAI treats it as not given."""
    model = {"ChatCompletionRequest": ChatCompletionRequest, "CompletionRequest": CompletionRequest}[name]
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]} if name.startswith("Chat") else {
        "prompt": "hi"}
    given = model.model_validate({**body, **dict.fromkeys(NULLABLE[name])})
    default = model.model_validate(body)
    assert {f: getattr(given, f) for f in NULLABLE[name]} == {f: getattr(default, f) for f in NULLABLE[name]}
    assert not set(NULLABLE[name]) & given.model_fields_set
    with pytest.raises(ValidationError):
        model.model_validate({**body, "n": 0})  # the bounds still hold for a value
    schema = create_app(ServerSettings()).openapi()["components"]["schemas"][name]
    for field in NULLABLE[name]:
        jsonschema.validate(None, schema["properties"][field])
        jsonschema.validate(schema["properties"][field]["default"], schema["properties"][field])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(0, schema["properties"]["n"])
