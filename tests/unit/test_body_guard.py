"""The body guard in front of every route (what json.loads accepts but the routes could not handle),
and the ``param`` a refused request's error names."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError

from qwenkit.server.errors import validation_message
from qwenkit.server.middleware import MAX_JSON_DEPTH, BadBody, check_json_body
from qwenkit.server.protocol_chat import ChatCompletionRequest
from qwenkit.server.protocol_completions import CompletionRequest


def nested(levels: int, inner: bytes = b"1") -> bytes:
    """``levels`` objects and arrays, alternating, around ``inner``."""
    body = inner
    for level in range(levels):
        body = b'{"a": ' + body + b"}" if level % 2 else b"[" + body + b"]"
    return body


def test_nesting_up_to_the_limit_passes_and_one_more_level_is_a_400() -> None:
    check_json_body(nested(MAX_JSON_DEPTH))
    with pytest.raises(BadBody, match="nested too deeply") as refused:
        check_json_body(nested(MAX_JSON_DEPTH + 1))
    assert refused.value.status == 400


def test_scalars_do_not_count_as_levels() -> None:
    check_json_body(nested(MAX_JSON_DEPTH, b'"deep string"'))
    check_json_body(b"1")


def test_an_integer_python_will_not_convert_is_a_400() -> None:
    digits = sys.get_int_max_str_digits()
    check_json_body(b'{"max_tokens": ' + b"9" * digits + b"}")
    with pytest.raises(BadBody, match=f"more than {digits} digits") as refused:
        check_json_body(b'{"max_tokens": ' + b"9" * (digits + 1) + b"}")
    assert refused.value.status == 400


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"stop": ""}, "stop"),
        ({"stop": ["a", 5]}, "stop"),
        ({"stream_options": {"include_usage": "x"}}, "stream_options.include_usage"),
        ({"messages": []}, "messages"),
    ],
)
def test_a_validation_error_names_the_field_not_pydantics_union_member(body: dict, param: str) -> None:
    request = {"messages": [{"role": "user", "content": "a"}], **body}
    with pytest.raises(ValidationError) as refused:
        ChatCompletionRequest.model_validate(request)
    assert validation_message(refused.value.errors())[1] == param


def test_a_completion_prompt_of_token_ids_is_refused_as_prompt() -> None:
    with pytest.raises(ValidationError) as refused:
        CompletionRequest.model_validate({"prompt": [1, 2, 3]})
    assert validation_message(refused.value.errors())[1] == "prompt"
