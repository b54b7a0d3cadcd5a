"""``qwenkit serve`` with the real Qwen2.5-Coder-0.5B GGUF, driven by curl and the official openai SDK.

One server process for the module (the ``make serve`` path: the CLI, uvicorn, llama.cpp). Greedy
decoding makes stream and non-stream comparable token for token.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from _ports import free_port

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]
MODEL = "qwen2.5-coder-0.5b-instruct"
SERVE = "import sys; from qwenkit.cli import serve_cmd, main; sys.exit(main(sys.argv[1:]))"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "the city name"}},
            "required": ["city"],
        },
    },
}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "languages": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 3},
    },
    "required": ["name", "age", "languages"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def base_url(real_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    args = ["serve", str(real_model_path), "--backend", "llamacpp", "--port", str(port), "--context", "2048"]
    args += ["--parallel", "4", "--api-key", "tester:sk-test-123"]
    log_path = tmp_path_factory.mktemp("serve") / "stderr.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", SERVE, *args], env=dict(os.environ), stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, f"qwenkit serve exited: {log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "qwenkit serve did not become ready"
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        assert proc.wait(timeout=120) == 0, log_path.read_text()[-2000:]


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test-123", max_retries=0, timeout=600)


ASK = [{"role": "user", "content": "What is 2 + 2? Answer with just the number."}]


def test_curl_answers(base_url: str) -> None:
    body = json.dumps({"model": MODEL, "messages": ASK, "max_tokens": 8, "temperature": 0})
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-H",
            "Authorization: Bearer sk-test-123",
            "-d",
            body,
            f"{base_url}/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    assert "4" in json.loads(out)["choices"][0]["message"]["content"]


def test_non_stream_stream_and_async_stream_agree(client: openai.OpenAI, base_url: str) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8, temperature=0)
    text = whole.choices[0].message.content or ""
    assert "4" in text and whole.choices[0].finish_reason == "stop"
    pieces = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices) == text

    async def collect() -> str:
        aclient = openai.AsyncOpenAI(
            base_url=f"{base_url}/v1", api_key="sk-test-123", max_retries=0, timeout=600
        )
        stream = await aclient.chat.completions.create(
            model=MODEL, messages=ASK, max_tokens=8, temperature=0, stream=True
        )
        out = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await aclient.close()
        return out

    assert asyncio.run(collect()) == text


def test_tool_round_trip(client: openai.OpenAI) -> None:
    system = "Use tools when needed. After a tool result arrives, answer the user in one plain sentence."
    messages: list[dict[str, object]] = [
        {"role": "system", "content": system},
        {"role": "user", "content": "What is the weather in Paris right now?"},
    ]
    first = client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=40,
        temperature=0,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    # The grammar spells "<tool_call>" out in plain tokens; its "<" is never reasoning (issue 10).
    assert first.usage is not None and first.usage.completion_tokens_details is not None
    assert first.usage.completion_tokens_details.reasoning_tokens == 0
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments)["city"].lower().startswith("paris")  # type: ignore[union-attr]
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append(
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21, "sky": "sunny"}'}
    )
    answer = client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",  # the answer now: the template gets no tools, the result is in the history
        max_tokens=60,
        temperature=0,
    )
    reply = answer.choices[0]
    assert reply.finish_reason == "stop" and not reply.message.tool_calls
    assert "21" in (reply.message.content or "")


PARIS_WEATHER = [{"role": "user", "content": "What is the weather in Paris right now?"}]
WEATHER_RESULT = '{"temperature_c": 18, "condition": "sunny"}'


def _ask(client: openai.OpenAI, messages: list[dict[str, object]], *, stream: bool, **kwargs: object) -> Any:
    """One greedy chat completion as (finish_reason, content, [(id, name, arguments)]), stream or not."""
    common: dict[str, Any] = {"model": MODEL, "messages": messages, "temperature": 0, "max_tokens": 80}
    common.update(kwargs)
    if not stream:
        choice = client.chat.completions.create(**common).choices[0]
        calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
        return choice.finish_reason, choice.message.content, calls
    content: list[str] = []
    parts: dict[int, list[str]] = {}
    finish = None
    for chunk in client.chat.completions.create(**common, stream=True):
        delta = chunk.choices[0].delta
        content.append(delta.content or "")
        for call in delta.tool_calls or []:
            part = parts.setdefault(call.index, ["", "", ""])
            fn = call.function
            part[0] += call.id or ""
            part[1] += (fn.name or "") if fn else ""
            part[2] += (fn.arguments or "") if fn else ""
        finish = chunk.choices[0].finish_reason or finish
    calls = [tuple(parts[i]) for i in sorted(parts)]
    return finish, "".join(content) or None, calls


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_auto_tool_choice_makes_the_coder_json_answer_a_call(client: openai.OpenAI, stream: bool) -> None:
    """No system prompt, tool_choice auto: Qwen2.5-Coder answers with a fenced JSON call, not a
    <tool_call> block; the SDK must still see a tool call (issue 10, section 3)."""
    finish, content, calls = _ask(client, PARIS_WEATHER, stream=stream, tools=[WEATHER], tool_choice="auto")
    assert finish == "tool_calls" and content is None
    assert [(name, json.loads(args)) for _, name, args in calls] == [("get_weather", {"city": "Paris"})]
    assert calls[0][0].startswith("call_")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_auto_tool_round_trip_answers_with_the_result(client: openai.OpenAI, stream: bool) -> None:
    """Call (tool_choice auto, no system prompt) -> tool result -> an answer that uses it, tools still
    offered with tool_choice auto. The 0.5B model answers the result by repeating the call; the server
    asks for that turn again as an answer, without tools (chat/answered.py)."""
    messages: list[dict[str, object]] = [*PARIS_WEATHER]
    finish, content, calls = _ask(client, messages, stream=stream, tools=[WEATHER], tool_choice="auto")
    assert finish == "tool_calls" and content is None and len(calls) == 1
    call_id, name, arguments = calls[0]
    assert (name, json.loads(arguments)) == ("get_weather", {"city": "Paris"})
    function = {"name": name, "arguments": arguments}
    turn = {"role": "assistant", "tool_calls": [{"id": call_id, "type": "function", "function": function}]}
    messages.append(turn)
    messages.append({"role": "tool", "tool_call_id": call_id, "content": WEATHER_RESULT})
    finish, content, calls = _ask(client, messages, stream=stream, tools=[WEATHER], tool_choice="auto")
    assert finish == "stop" and not calls
    assert "18" in (content or "") and "sunny" in (content or "").lower()


def test_json_schema_output_validates_twenty_of_twenty(client: openai.OpenAI) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    outputs: list[str] = []
    for seed in range(5):
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Invent a fictional programmer. Reply in JSON."}],
            response_format=fmt,  # type: ignore[arg-type]
            n=4,
            seed=seed,
            max_tokens=80,
        )
        assert all(c.finish_reason == "stop" for c in reply.choices)
        outputs += [c.message.content or "" for c in reply.choices]
    assert len(outputs) == 20
    for text in outputs:
        jsonschema.validate(json.loads(text), PERSON)


def test_errors_arrive_as_sdk_exceptions(client: openai.OpenAI, base_url: str) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-wrong", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=ASK)
    with pytest.raises(openai.BadRequestError, match="chat templates cannot be supplied"):
        client.chat.completions.create(model=MODEL, messages=ASK, extra_body={"chat_template": "{{ x }}"})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL,
            messages=ASK,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "nonsense"}},
            },  # type: ignore[arg-type]
        )
    assert [m.id for m in client.models.list().data] == [MODEL]
