"""The HTTP evaluation target against a scripted OpenAI-compatible server (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json

import httpx

from qwenkit.eval.targets import GenSettings, HttpEvalTarget

MESSAGES = [{"role": "user", "content": "Write add(a, b)."}]


def sse(events: list[object]) -> bytes:
    return "".join([f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]).encode()


def delta(content: str | None = None, reasoning: str | None = None,
          finish: str | None = None) -> dict[str, object]:
    d = {k: v for k, v in (("content", content), ("reasoning_content", reasoning)) if v is not None}
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


class Server:
    def __init__(self, stream: bytes, status: int = 200) -> None:
        self.stream, self.status = stream, status
        self.bodies: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "served-qwen"}]})
        self.bodies.append(json.loads(request.content))
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "busy"}})
        return httpx.Response(200, content=self.stream, headers={"content-type": "text/event-stream"})


def answer(server: Server, settings: GenSettings):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        client = httpx.AsyncClient(transport=httpx.MockTransport(server))
        target = HttpEvalTarget("http://eval.test:1/v1", client=client)
        await target.connect()
        try:
            return await target.answer(MESSAGES, settings)
        finally:
            await target.aclose()

    return asyncio.run(go())


def test_answer_text_reasoning_and_usage_come_back() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21,
             "completion_tokens_details": {"reasoning_tokens": 4}}
    stream = sse([delta(reasoning="think "), delta(reasoning="more"), delta("def add"), delta("(a, b): ..."),
                  delta(finish="stop"), {"choices": [], "usage": usage}])
    server = Server(stream)
    got = answer(server, GenSettings(256, {"temperature": 0.0, "repetition_penalty": 1.0}, True, 128))
    assert (got.content, got.reasoning) == ("def add(a, b): ...", "think more")
    assert (got.prompt_tokens, got.completion_tokens, got.reasoning_tokens) == (12, 9, 4)
    assert got.finish_reason == "stop" and got.error is None
    body = server.bodies[0]
    assert body["model"] == "served-qwen" and body["max_tokens"] == 256 and body["stream"] is True
    assert body["temperature"] == 0.0 and body["repetition_penalty"] == 1.0
    assert body["chat_template_kwargs"] == {"enable_thinking": True} and body["thinking_budget"] == 128


def test_without_thinking_settings_nothing_extra_is_sent() -> None:
    server = Server(sse([delta("ok", finish="stop"), {"choices": [], "usage": {"completion_tokens": 1}}]))
    answer(server, GenSettings(16))
    assert "chat_template_kwargs" not in server.bodies[0] and "thinking_budget" not in server.bodies[0]


def test_a_prefilled_answer_asks_the_server_to_continue_it() -> None:
    server = Server(sse([delta("x", finish="stop"), {"choices": [], "usage": {"completion_tokens": 1}}]))
    target = HttpEvalTarget("http://eval.test:1/v1")
    body = target.answer_body([*MESSAGES, {"role": "assistant", "content": "```python\n"}], GenSettings(16))
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["messages"][-1] == {"role": "assistant", "content": "```python\n"}
    answer(server, GenSettings(16))
    assert "continue_final_message" not in server.bodies[0]


def test_a_server_error_is_an_answer_error_not_a_crash() -> None:
    got = answer(Server(b"", status=503), GenSettings(16))
    assert got.error is not None and got.error.startswith("HTTP 503")
