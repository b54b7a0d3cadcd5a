"""Malformed requests, table-driven: each one gets its 4xx in OpenAI's error shape, never a 5xx.

Every case is a distinct way to get a request wrong (types, ranges, NaN, sizes, shapes, encodings,
refused fields), sent over real HTTP to a server with a tiny model loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _backends import LLAMACPP, SERVED, load_served
from _server_harness import LiveServer, live_server

from qwenkit.engine.llm import LLM

pytestmark = pytest.mark.slow
MODEL = "tiny"
HI = {"role": "user", "content": "hi"}
CHAT: dict[str, Any] = {"model": MODEL, "messages": [HI], "max_tokens": 1}
MAX_BODY = 256 * 1024


def chat(**changes: Any) -> dict[str, Any]:
    body = {**CHAT, **changes}
    return {k: v for k, v in body.items() if v is not _DROP}


def msg(**fields: Any) -> dict[str, Any]:
    return chat(messages=[fields])


_DROP = object()
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

# (id, path, JSON body or raw bytes, expected status)
CASES: list[tuple[str, str, Any, int]] = [
    # --- messages --------------------------------------------------------------------------
    ("messages-string", "/v1/chat/completions", chat(messages="hi"), 400),
    ("messages-object", "/v1/chat/completions", chat(messages={}), 400),
    ("messages-empty", "/v1/chat/completions", chat(messages=[]), 400),
    ("messages-int-item", "/v1/chat/completions", chat(messages=[1]), 400),
    ("messages-string-item", "/v1/chat/completions", chat(messages=["hi"]), 400),
    ("messages-null-item", "/v1/chat/completions", chat(messages=[None]), 400),
    ("messages-null", "/v1/chat/completions", chat(messages=None), 400),
    ("messages-missing", "/v1/chat/completions", chat(messages=_DROP), 400),
    ("messages-too-many", "/v1/chat/completions", chat(messages=[HI] * 4097), 400),
    ("role-missing", "/v1/chat/completions", msg(content="hi"), 400),
    ("role-unknown", "/v1/chat/completions", msg(role="bad", content="hi"), 400),
    ("role-int", "/v1/chat/completions", msg(role=5, content="hi"), 400),
    ("role-null", "/v1/chat/completions", msg(role=None, content="hi"), 400),
    ("role-uppercase", "/v1/chat/completions", msg(role="USER", content="hi"), 400),
    ("content-int", "/v1/chat/completions", msg(role="user", content=5), 400),
    ("content-object", "/v1/chat/completions", msg(role="user", content={"a": 1}), 400),
    (
        "content-image-part",
        "/v1/chat/completions",
        msg(role="user", content=[{"type": "image_url", "image_url": {"url": "x"}}]),
        400,
    ),
    (
        "content-part-text-int",
        "/v1/chat/completions",
        msg(role="user", content=[{"type": "text", "text": 5}]),
        400,
    ),
    ("content-part-int", "/v1/chat/completions", msg(role="user", content=[5]), 400),
    ("user-content-null", "/v1/chat/completions", msg(role="user", content=None), 400),
    ("system-content-missing", "/v1/chat/completions", msg(role="system"), 400),
    (
        "tool-content-missing",
        "/v1/chat/completions",
        chat(messages=[HI, {"role": "tool", "tool_call_id": "a"}]),
        400,
    ),
    (
        "tool-calls-string",
        "/v1/chat/completions",
        chat(messages=[HI, {"role": "assistant", "tool_calls": "x"}, HI]),
        400,
    ),
    (
        "tool-call-function-string",
        "/v1/chat/completions",
        chat(messages=[HI, {"role": "assistant", "tool_calls": [{"function": "x"}]}, HI]),
        400,
    ),
    (
        "tool-call-name-empty",
        "/v1/chat/completions",
        chat(messages=[HI, {"role": "assistant", "tool_calls": [{"function": {"name": ""}}]}, HI]),
        400,
    ),
    (
        "tool-call-name-int",
        "/v1/chat/completions",
        chat(messages=[HI, {"role": "assistant", "tool_calls": [{"function": {"name": 5}}]}, HI]),
        400,
    ),
    (
        "tool-call-arguments-int",
        "/v1/chat/completions",
        chat(
            messages=[
                HI,
                {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 5}}]},
                HI,
            ]
        ),
        400,
    ),
    ("message-name-int", "/v1/chat/completions", msg(role="user", content="hi", name=5), 400),
    (
        "reasoning-content-int",
        "/v1/chat/completions",
        chat(messages=[HI, {"role": "assistant", "content": "a", "reasoning_content": 5}, HI]),
        400,
    ),
    (
        "tool-call-id-int",
        "/v1/chat/completions",
        chat(messages=[HI, {"role": "tool", "content": "x", "tool_call_id": 5}]),
        400,
    ),
    # --- sampling ranges and types -----------------------------------------------------------
    ("temperature-string", "/v1/chat/completions", chat(temperature="hot"), 400),
    ("temperature-numeric-string", "/v1/chat/completions", chat(temperature="0.5"), 400),
    ("temperature-negative", "/v1/chat/completions", chat(temperature=-0.1), 400),
    ("temperature-too-high", "/v1/chat/completions", chat(temperature=2.5), 400),
    ("temperature-bool", "/v1/chat/completions", chat(temperature=True), 400),
    ("temperature-list", "/v1/chat/completions", chat(temperature=[0.5]), 400),
    ("top-p-high", "/v1/chat/completions", chat(top_p=1.5), 400),
    ("top-p-negative", "/v1/chat/completions", chat(top_p=-1), 400),
    ("top-p-string", "/v1/chat/completions", chat(top_p="x"), 400),
    ("top-k-below-minus-one", "/v1/chat/completions", chat(top_k=-2), 400),
    ("top-k-float", "/v1/chat/completions", chat(top_k=1.5), 400),
    ("top-k-string", "/v1/chat/completions", chat(top_k="5"), 400),
    ("top-k-huge", "/v1/chat/completions", chat(top_k=10**7), 400),
    ("min-p-high", "/v1/chat/completions", chat(min_p=2), 400),
    ("min-p-negative", "/v1/chat/completions", chat(min_p=-0.5), 400),
    ("presence-penalty-high", "/v1/chat/completions", chat(presence_penalty=3), 400),
    ("presence-penalty-low", "/v1/chat/completions", chat(presence_penalty=-3), 400),
    ("frequency-penalty-high", "/v1/chat/completions", chat(frequency_penalty=2.1), 400),
    ("frequency-penalty-string", "/v1/chat/completions", chat(frequency_penalty="x"), 400),
    ("repetition-penalty-zero", "/v1/chat/completions", chat(repetition_penalty=0), 400),
    ("repetition-penalty-high", "/v1/chat/completions", chat(repetition_penalty=11), 400),
    ("n-zero", "/v1/chat/completions", chat(n=0), 400),
    ("n-nine", "/v1/chat/completions", chat(n=9), 400),
    ("n-huge", "/v1/chat/completions", chat(n=1_000_000), 400),
    ("n-negative", "/v1/chat/completions", chat(n=-1), 400),
    ("n-float", "/v1/chat/completions", chat(n=1.5), 400),
    ("n-string", "/v1/chat/completions", chat(n="2"), 400),
    ("max-tokens-zero", "/v1/chat/completions", chat(max_tokens=0), 400),
    ("max-tokens-negative", "/v1/chat/completions", chat(max_tokens=-5), 400),
    ("max-tokens-over-context", "/v1/chat/completions", chat(max_tokens=10**9), 400),
    ("max-tokens-string", "/v1/chat/completions", chat(max_tokens="10"), 400),
    ("max-tokens-float", "/v1/chat/completions", chat(max_tokens=1.5), 400),
    ("max-completion-tokens-zero", "/v1/chat/completions", chat(max_completion_tokens=0), 400),
    ("max-completion-tokens-over-context", "/v1/chat/completions", chat(max_completion_tokens=100_000), 400),
    ("seed-string", "/v1/chat/completions", chat(seed="x"), 400),
    ("seed-too-big", "/v1/chat/completions", chat(seed=2**70), 400),
    ("seed-float", "/v1/chat/completions", chat(seed=1.5), 400),
    ("stop-int", "/v1/chat/completions", chat(stop=5), 400),
    ("stop-int-list", "/v1/chat/completions", chat(stop=[1]), 400),
    ("stop-too-many", "/v1/chat/completions", chat(stop=["a"] * 17), 400),
    ("stop-empty-string", "/v1/chat/completions", chat(stop=""), 400),
    ("stop-too-long", "/v1/chat/completions", chat(stop=["x" * 300]), 400),
    ("stop-empty-in-list", "/v1/chat/completions", chat(stop=[""]), 400),
    ("stop-object", "/v1/chat/completions", chat(stop={"a": 1}), 400),
    ("stream-string", "/v1/chat/completions", chat(stream="yes"), 400),
    ("stream-int", "/v1/chat/completions", chat(stream=1), 400),
    ("stream-options-string", "/v1/chat/completions", chat(stream_options="x"), 400),
    (
        "stream-options-usage-string",
        "/v1/chat/completions",
        chat(stream_options={"include_usage": "yes"}),
        400,
    ),
    ("logprobs-string", "/v1/chat/completions", chat(logprobs="yes"), 400),
    ("top-logprobs-high", "/v1/chat/completions", chat(logprobs=True, top_logprobs=21), 400),
    ("top-logprobs-negative", "/v1/chat/completions", chat(logprobs=True, top_logprobs=-1), 400),
    ("top-logprobs-without-logprobs", "/v1/chat/completions", chat(top_logprobs=2), 400),
    ("logit-bias-key-not-an-id", "/v1/chat/completions", chat(logit_bias={"abc": 1}), 400),
    ("logit-bias-huge", "/v1/chat/completions", chat(logit_bias={"5": 1e308}), 400),
    ("logit-bias-over-100", "/v1/chat/completions", chat(logit_bias={"5": 100.5}), 400),
    ("logit-bias-under-minus-100", "/v1/chat/completions", chat(logit_bias={"5": -101}), 400),
    ("logit-bias-negative-id", "/v1/chat/completions", chat(logit_bias={"-1": 1}), 400),
    ("logit-bias-out-of-vocab", "/v1/chat/completions", chat(logit_bias={"999999": 1}), 400),
    ("logit-bias-value-string", "/v1/chat/completions", chat(logit_bias={"5": "x"}), 400),
    ("logit-bias-list", "/v1/chat/completions", chat(logit_bias=[1]), 400),
    ("logit-bias-too-many", "/v1/chat/completions", chat(logit_bias={str(i): 1 for i in range(1025)}), 400),
    # --- tools, tool_choice, response_format ---------------------------------------------------
    ("tools-string", "/v1/chat/completions", chat(tools="x"), 400),
    ("tools-int-item", "/v1/chat/completions", chat(tools=[1]), 400),
    ("tools-no-function", "/v1/chat/completions", chat(tools=[{"type": "function"}]), 400),
    (
        "tools-wrong-type",
        "/v1/chat/completions",
        chat(tools=[{"type": "retrieval", "function": {"name": "f"}}]),
        400,
    ),
    (
        "tools-empty-name",
        "/v1/chat/completions",
        chat(tools=[{"type": "function", "function": {"name": ""}}]),
        400,
    ),
    (
        "tools-int-name",
        "/v1/chat/completions",
        chat(tools=[{"type": "function", "function": {"name": 5}}]),
        400,
    ),
    (
        "tools-parameters-string",
        "/v1/chat/completions",
        chat(tools=[{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
        400,
    ),
    ("tools-object", "/v1/chat/completions", chat(tools={}), 400),
    ("tool-choice-unknown", "/v1/chat/completions", chat(tools=[TOOL], tool_choice="sometimes"), 400),
    (
        "tool-choice-no-function",
        "/v1/chat/completions",
        chat(tools=[TOOL], tool_choice={"type": "function"}),
        400,
    ),
    (
        "tool-choice-unknown-function",
        "/v1/chat/completions",
        chat(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "g"}}),
        400,
    ),
    ("tool-choice-required-without-tools", "/v1/chat/completions", chat(tool_choice="required"), 400),
    ("tool-choice-int", "/v1/chat/completions", chat(tools=[TOOL], tool_choice=5), 400),
    ("response-format-string", "/v1/chat/completions", chat(response_format="json"), 400),
    ("response-format-unknown", "/v1/chat/completions", chat(response_format={"type": "xml"}), 400),
    (
        "response-format-schema-missing",
        "/v1/chat/completions",
        chat(response_format={"type": "json_schema"}),
        400,
    ),
    (
        "response-format-unsupported-backend",
        "/v1/chat/completions",
        chat(response_format={"type": "json_object"}),
        400,
    ),
    # --- refused and typed extension fields ------------------------------------------------------
    ("chat-template", "/v1/chat/completions", chat(chat_template="{{ messages }}"), 400),
    ("chat-template-null", "/v1/chat/completions", chat(chat_template=None), 400),
    (
        "chat-template-in-kwargs",
        "/v1/chat/completions",
        chat(chat_template_kwargs={"chat_template": "x"}),
        400,
    ),
    (
        "enable-thinking-kwarg-string",
        "/v1/chat/completions",
        chat(chat_template_kwargs={"enable_thinking": "yes"}),
        400,
    ),
    ("chat-template-kwargs-string", "/v1/chat/completions", chat(chat_template_kwargs="x"), 400),
    ("enable-thinking-string", "/v1/chat/completions", chat(enable_thinking="yes"), 400),
    ("thinking-budget-negative", "/v1/chat/completions", chat(thinking_budget=-1), 400),
    ("thinking-budget-string", "/v1/chat/completions", chat(thinking_budget="x"), 400),
    ("user-int", "/v1/chat/completions", chat(user=5), 400),
    ("user-too-long", "/v1/chat/completions", chat(user="x" * 1000), 400),
    ("model-unknown", "/v1/chat/completions", chat(model="gpt-4o"), 404),
    ("model-int", "/v1/chat/completions", chat(model=5), 400),
    # --- raw bodies ------------------------------------------------------------------------------
    ("body-not-json", "/v1/chat/completions", b"{", 400),
    ("body-empty", "/v1/chat/completions", b"", 400),
    ("body-array", "/v1/chat/completions", b"[]", 400),
    ("body-string", "/v1/chat/completions", b'"hi"', 400),
    ("body-null", "/v1/chat/completions", b"null", 400),
    (
        "body-invalid-utf8",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}',
        400,
    ),
    (
        "body-lone-surrogate",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "a\\ud800b"}]}',
        400,
    ),
    (
        "body-lone-surrogate-key",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "a"}], "\\udfff": 1}',
        400,
    ),
    (
        "body-nan",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "a"}], "temperature": NaN}',
        400,
    ),
    (
        "body-infinity",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "a"}], "top_p": Infinity}',
        400,
    ),
    (
        "body-minus-infinity",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "a"}], "presence_penalty": -Infinity}',
        400,
    ),
    (
        "body-nan-nested",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "a"}], '
        b'"tools": [{"type": "function", "function": {"name": "f", "parameters": {"x": NaN}}}]}',
        400,
    ),
    ("body-deep-nesting", "/v1/chat/completions", b"[" * 100_000 + b"]" * 100_000, 400),
    (
        "body-deep-nesting-small",
        "/v1/chat/completions",
        b'{"a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        400,
    ),
    (  # more digits than Python turns into an int: json.loads raises a plain ValueError
        "body-integer-too-long",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "a"}], "max_tokens": ' + b"1" * 5000 + b"}",
        400,
    ),
    (  # parses, but deeper than the recursive code behind the routes goes
        "body-nesting-in-a-message",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "a", "x": '
        + b'{"a": ' * 500 + b"1" + b"}" * 500 + b"}]}",
        400,
    ),
    (
        "body-nesting-in-tool-parameters",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "a"}], "tools": [{"type": "function", "function": '
        b'{"name": "f", "parameters": ' + b'{"a": ' * 101 + b"1" + b"}" * 101 + b"}}]}",
        400,
    ),
    (
        "body-oversized",
        "/v1/chat/completions",
        json.dumps(chat(messages=[{"role": "user", "content": "x" * MAX_BODY}])).encode(),
        413,
    ),
    ("body-form-encoded", "/v1/chat/completions", b"messages=hi", 400),
    # --- /v1/completions ---------------------------------------------------------------------------
    ("completion-prompt-missing", "/v1/completions", {"model": MODEL, "max_tokens": 1}, 400),
    ("completion-prompt-int", "/v1/completions", {"prompt": 5, "max_tokens": 1}, 400),
    ("completion-prompt-token-ids", "/v1/completions", {"prompt": [1, 2], "max_tokens": 1}, 400),
    ("completion-prompt-empty-list", "/v1/completions", {"prompt": [], "max_tokens": 1}, 400),
    ("completion-suffix-int", "/v1/completions", {"prompt": "a", "suffix": 5, "max_tokens": 1}, 400),
    ("completion-echo-string", "/v1/completions", {"prompt": "a", "echo": "x", "max_tokens": 1}, 400),
    ("completion-logprobs-high", "/v1/completions", {"prompt": "a", "logprobs": 21, "max_tokens": 1}, 400),
    ("completion-best-of", "/v1/completions", {"prompt": "a", "best_of": 2, "max_tokens": 1}, 400),
    ("completion-n-nine", "/v1/completions", {"prompt": "a", "n": 9, "max_tokens": 1}, 400),
    ("completion-too-many-prompts", "/v1/completions", {"prompt": ["a"] * 33, "max_tokens": 1}, 400),
    ("completion-max-tokens-over-context", "/v1/completions", {"prompt": "a", "max_tokens": 100_000}, 400),
    ("completion-logit-bias-huge-id", "/v1/completions", {"prompt": "a", "logit_bias": {"10000000": 5}}, 400),
    ("completion-logit-bias-huge", "/v1/completions", {"prompt": "a", "logit_bias": {"5": 1e308}}, 400),
    (
        "completion-chat-template",
        "/v1/completions",
        {"prompt": "a", "chat_template": "x", "max_tokens": 1},
        400,
    ),
    # --- /tokenize and /detokenize -------------------------------------------------------------------
    ("tokenize-neither", "/tokenize", {"model": MODEL}, 400),
    ("tokenize-both", "/tokenize", {"prompt": "a", "messages": [HI]}, 400),
    ("tokenize-messages-empty", "/tokenize", {"messages": []}, 400),
    ("tokenize-prompt-int", "/tokenize", {"prompt": 5}, 400),
    ("tokenize-generation-prompt-string", "/tokenize", {"messages": [HI], "add_generation_prompt": "x"}, 400),
    ("tokenize-bad-role", "/tokenize", {"messages": [{"role": "x", "content": "a"}]}, 400),
    ("detokenize-string", "/detokenize", {"tokens": "x"}, 400),
    ("detokenize-negative", "/detokenize", {"tokens": [-1]}, 400),
    ("detokenize-out-of-vocab", "/detokenize", {"tokens": [10**9]}, 400),
    ("detokenize-missing", "/detokenize", {}, 400),
    ("detokenize-float", "/detokenize", {"tokens": [1.5]}, 400),
]


# Cases whose request is valid on a backend with grammar support: llama.cpp answers them.
NEEDS_NO_GRAMMAR = {"response-format-unsupported-backend"}


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, LiveServer]]:
    """One server per backend for the whole table (parametrized on its own, so pytest reuses it)."""
    llm: LLM = load_served(request, request.param)
    try:
        with live_server(llm, served_model_name=MODEL, max_body_bytes=MAX_BODY) as srv:
            yield request.param, srv
    finally:
        llm.close()


def test_the_table_has_over_a_hundred_distinct_cases() -> None:
    assert len(CASES) >= 100
    assert len({case[0] for case in CASES}) == len(CASES)
    assert len(
        {(path, json.dumps(b) if not isinstance(b, bytes) else b.hex()) for _, path, b, _ in CASES}
    ) == len(CASES)


@pytest.mark.parametrize(
    ("name", "path", "body", "status"), [pytest.param(*case, id=case[0]) for case in CASES]
)
@pytest.mark.parametrize("server", SERVED, indirect=True)
def test_malformed_request_gets_openai_error(
    server: tuple[str, LiveServer], name: str, path: str, body: Any, status: int
) -> None:
    backend, live = server
    with httpx.Client(base_url=live.base_url, timeout=60) as http:
        if isinstance(body, bytes):
            reply = http.post(path, content=body, headers={"content-type": "application/json"})
        else:
            reply = http.post(path, json=body)
    if backend == LLAMACPP and name in NEEDS_NO_GRAMMAR:
        assert reply.status_code == 200, reply.text
        return
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == "invalid_request_error"
