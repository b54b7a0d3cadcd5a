"""The HTTP runner against scripted OpenAI-compatible servers (httpx.MockTransport): SSE, usage, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from qwenkit.bench.runner_http import HttpTarget, StreamState, api_root, feed_sse_line
from qwenkit.errors import UsageError

MESSAGES = [{"role": "user", "content": " time year people"}]


def sse(events: list[object]) -> bytes:
    lines = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
    return "".join(lines).encode()


def chunk(text: str | None = None, reasoning: str | None = None, usage: dict[str, object] | None = None
          ) -> dict[str, object]:
    delta = {k: v for k, v in (("content", text), ("reasoning_content", reasoning)) if v is not None}
    return {"choices": [{"index": 0, "delta": delta}] if delta else [], "usage": usage}


USAGE = {"prompt_tokens": 31, "completion_tokens": 4, "total_tokens": 35,
         "prompt_tokens_details": {"cached_tokens": 20}}


class Server:
    """Records requests; answers from handlers by path."""

    def __init__(self, routes: dict[str, Callable[[httpx.Request], httpx.Response]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handler = self.routes.get(request.url.path)
        return handler(request) if handler else httpx.Response(404, json={"detail": "Not Found"})

    def target(self, **kw: object) -> HttpTarget:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self))
        return HttpTarget("http://bench.test:9999/v1/", client=client, **kw)  # type: ignore[arg-type]


def models(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"object": "list", "data": [{"id": "served-qwen", "object": "model"}]})


def streaming(events: list[object]) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(200, content=sse(events), headers={"content-type": "text/event-stream"})


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_api_root_accepts_server_or_v1_urls() -> None:
    assert api_root("http://h:8000") == "http://h:8000"
    assert api_root("http://h:8000/v1/") == "http://h:8000"
    assert api_root("https://h/proxy/v1") == "https://h/proxy"
    for bad in ("h:8000", "ftp://h", "http://", "http://h:99999", "http://h:abc", "http://[::1", "http://:80"):
        with pytest.raises(UsageError):
            api_root(bad)


def test_sse_lines_record_text_chunks_and_usage() -> None:
    state = StreamState()
    assert not feed_sse_line(state, ": keep-alive", 1.0)
    assert not feed_sse_line(state, "data: " + json.dumps(chunk(text="")), 1.0)  # role-only chunk: no text
    assert not feed_sse_line(state, "data: " + json.dumps(chunk(reasoning="hm")), 2.0)
    assert not feed_sse_line(state, "data: " + json.dumps(chunk(text="Hi")), 3.0)
    assert not feed_sse_line(state, "data: " + json.dumps(chunk(usage=USAGE)), 4.0)
    assert feed_sse_line(state, "data: [DONE]", 5.0)
    assert state.chunk_times == [2.0, 3.0]
    assert (state.prompt_tokens, state.completion_tokens, state.cached_tokens) == (31, 4, 20)


def test_an_error_event_ends_the_stream_with_its_message() -> None:
    state = StreamState()
    assert feed_sse_line(state, 'data: {"error": {"message": "context too long", "type": "x"}}', 1.0)
    assert state.error == "context too long"


def test_a_streamed_request_sends_ignore_eos_and_reads_usage() -> None:
    events = [chunk(text=""), *[chunk(text=t) for t in ("a", "b", "c", "d")], chunk(usage=USAGE)]
    server = Server({"/v1/models": models, "/v1/chat/completions": streaming(events)})

    async def go():  # type: ignore[no-untyped-def]
        target = server.target(api_key="sk-test")
        await target.connect()
        result = await target.generate(MESSAGES, 4, 0.0)
        await target.aclose()
        return target, result

    target, result = run(go())
    assert target.info.model == "served-qwen" and target.info.url == "http://bench.test:9999"
    body = json.loads(server.requests[-1].content)
    assert body["model"] == "served-qwen" and body["messages"] == MESSAGES
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["ignore_eos"] is True and body["min_tokens"] == 4 and body["max_tokens"] == 4
    assert server.requests[-1].headers["authorization"] == "Bearer sk-test"
    assert result.ok and len(result.chunk_times) == 4
    assert (result.prompt_tokens, result.completion_tokens, result.cached_prompt_tokens) == (31, 4, 20)
    assert result.ttft is not None and result.ttft >= 0


def test_http_errors_and_missing_usage_become_failed_results() -> None:
    error = {"error": {"message": "overloaded", "type": "server_error"}}
    overloaded = lambda _: httpx.Response(503, json=error)  # noqa: E731
    server = Server({"/v1/chat/completions": overloaded})
    result = run(server.target(model="m").generate(MESSAGES, 4, 0.0))
    assert not result.ok and result.error == "HTTP 503: overloaded"

    no_usage = Server({"/v1/chat/completions": streaming([chunk(text="a"), chunk(text="b")])})
    result = run(no_usage.target(model="m").generate(MESSAGES, 4, 0.0))
    assert not result.ok and "usage" in (result.error or "")


def test_connection_refused_is_a_failed_result_not_a_crash() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result = run(Server({"/v1/chat/completions": refuse}).target(model="m").generate(MESSAGES, 4, 0.0))
    assert not result.ok and "ConnectError" in (result.error or "")
    with pytest.raises(UsageError, match="no OpenAI-compatible server"):
        run(Server({"/v1/models": refuse}).target().connect())


def test_connect_without_models_or_with_a_bad_key_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--model"):
        run(Server({}).target().connect())
    unauthorized = Server({"/v1/models": lambda _: httpx.Response(401, json={"error": {"message": "no"}})})
    with pytest.raises(UsageError, match="api-key"):
        run(unauthorized.target().connect())
    with pytest.raises(UsageError, match="not JSON"):  # some other web server
        run(Server({"/v1/models": lambda _: httpx.Response(200, text="<html></html>")}).target().connect())
    for listed in ([{"id": "m"}], {"data": [{"name": "m"}]}, {"data": ["m"]}):
        with pytest.raises(UsageError, match="--model"):
            server = Server({"/v1/models": lambda _, body=listed: httpx.Response(200, json=body)})
            run(server.target().connect())


def test_vllm_style_tokenize_counts_messages() -> None:
    def tokenize(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        n = 10 + len(body["messages"][0]["content"].split())
        return httpx.Response(200, json={"count": n, "max_model_len": 4096, "tokens": list(range(n))})

    server = Server({"/tokenize": tokenize})
    target = server.target(model="m")
    assert run(target.count_prompt(MESSAGES)) == 13
    assert run(target.count_prompt([{"role": "user", "content": " a"}])) == 11


def test_llama_cpp_style_apply_template_then_tokenize() -> None:
    def tokenize(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "content" not in body:
            return httpx.Response(200, json={"tokens": []})  # llama-server ignores "messages"
        return httpx.Response(200, json={"tokens": list(range(len(body["content"].split())))})

    def applied(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["messages"][0]["content"]
        return httpx.Response(200, json={"prompt": "<s> user: " + text})

    server = Server({"/tokenize": tokenize, "/apply-template": applied})
    target = server.target(model="m")
    assert run(target.count_prompt(MESSAGES)) == 5
    assert run(target.count_prompt(MESSAGES)) == 5
    assert [r.url.path for r in server.requests].count("/apply-template") == 2


def test_no_tokenizer_endpoint_means_no_count_and_is_asked_once() -> None:
    server = Server({})
    target = server.target(model="m")
    assert run(target.count_prompt(MESSAGES)) is None
    asked = len(server.requests)
    assert run(target.count_prompt(MESSAGES)) is None
    assert len(server.requests) == asked


def test_probe_reads_prompt_tokens_from_a_one_token_request() -> None:
    def complete(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["max_tokens"] == 1 and not body.get("stream")
        usage = {"prompt_tokens": 42, "completion_tokens": 1}
        return httpx.Response(200, json={"choices": [], "usage": usage})

    target = Server({"/v1/chat/completions": complete}).target(model="m")
    assert run(target.probe_prompt_tokens(MESSAGES)) == 42
