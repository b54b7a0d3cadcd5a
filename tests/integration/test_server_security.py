"""Keys, limits, backpressure and metrics wired into a small FastAPI app of this test's own."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable, MutableMapping
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import StreamingResponse
from starlette.routing import Route

from qwenkit.errors import QwenkitError
from qwenkit.server.admission import ServerGate, build_gate, metrics_response
from qwenkit.server.auth import ApiKeyMiddleware, load_api_keys

SECRETS = {"alice": "sk-alice-0123456789", "bob": "sk-bob-9876543210"}


def make_app(**limits: Any) -> FastAPI:
    settings = SimpleNamespace(
        rate_limit_rpm=None, rate_limit_tpm=None, max_concurrent_per_key=None, parallel=1, max_queue=4,
        queue_timeout=0.0,
    )
    vars(settings).update(limits)
    app = FastAPI()
    gate = build_gate(settings, app.state)
    app.state.stream_open = asyncio.Event()

    @app.exception_handler(QwenkitError)
    async def on_error(request: Request, exc: QwenkitError) -> JSONResponse:
        retry = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(max(1, math.ceil(retry)))} if retry is not None else None
        return JSONResponse(exc.to_openai(), status_code=exc.http_status, headers=headers)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": []}

    @app.get("/metrics")
    async def metrics(request: Request) -> Any:
        return metrics_response(request.app.state, request.headers.get("accept"))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        ticket = await gate.admit(request, 10, int(body.get("max_tokens", 16)))
        hold = bool(body.get("hold", False))

        async def tokens() -> AsyncIterator[str]:
            done = None
            try:
                yield "data: first\n\n"
                if hold:
                    request.app.state.stream_open.set()
                    await asyncio.sleep(3600)  # until the client goes away
                yield "data: [DONE]\n\n"
                done = 3
            finally:
                ticket.release(done)

        return StreamingResponse(tokens(), media_type="text/event-stream")

    app.add_middleware(ApiKeyMiddleware, keyring=load_api_keys([f"{k}:{v}" for k, v in SECRETS.items()]))
    return app


def gate_of(app: FastAPI) -> ServerGate:
    gate: ServerGate = app.state.gate
    return gate


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[name]}"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_every_route_but_health_needs_a_key() -> None:
    app = make_app()
    paths = sorted({r.path for r in app.routes if isinstance(r, Route)} | {"/no/such/route"})
    assert {"/health", "/docs", "/openapi.json", "/v1/models", "/metrics"} <= set(paths)

    async def scenario() -> None:
        async with client(app) as c:
            for path in paths:
                for method in ("GET", "POST"):
                    anonymous = await c.request(method, path, json={})
                    if path == "/health":
                        assert anonymous.status_code != 401
                        continue
                    assert anonymous.status_code == 401, (method, path)
                    assert anonymous.headers["www-authenticate"].startswith("Bearer")
                    error = anonymous.json()["error"]
                    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
                    keyed = await c.request(method, path, headers=bearer("bob"), json={})
                    assert keyed.status_code != 401, (method, path)

    run(scenario())


def test_bearer_and_x_api_key_are_accepted_and_wrong_keys_are_not_echoed() -> None:
    async def scenario() -> None:
        async with client(make_app()) as c:
            assert (await c.get("/v1/models", headers=bearer("alice"))).status_code == 200
            assert (await c.get("/v1/models", headers={"x-api-key": SECRETS["bob"]})).status_code == 200
            wrong = await c.get("/v1/models", headers={"Authorization": "Bearer sk-guess-abcdef"})
            assert wrong.status_code == 401 and "sk-guess-abcdef" not in wrong.text
            malformed = await c.get("/v1/models", headers={"Authorization": SECRETS["alice"]})
            assert malformed.status_code == 401 and SECRETS["alice"] not in malformed.text

    run(scenario())


def test_rate_limit_is_429_with_retry_after_per_key_and_counted_by_name() -> None:
    app = make_app(rate_limit_rpm=2)

    async def scenario() -> None:
        async with client(app) as c:
            for _ in range(2):
                ok = await c.post("/v1/chat/completions", headers=bearer("alice"), json={})
                assert ok.status_code == 200 and ok.text.endswith("data: [DONE]\n\n")
            limited = await c.post("/v1/chat/completions", headers=bearer("alice"), json={})
            assert limited.status_code == 429
            assert 1 <= int(limited.headers["retry-after"]) <= 60
            assert limited.json()["error"]["type"] == "rate_limit_error"
            assert (await c.post("/v1/chat/completions", headers=bearer("bob"), json={})).status_code == 200
            scrape = await c.get("/metrics", headers=bearer("bob"))
            assert 'qwenkit:rate_limited_total{key="alice"} 1.0' in scrape.text
            assert 'qwenkit:requests_total{status="ok"} 3.0' in scrape.text
            assert all(secret not in scrape.text for secret in SECRETS.values())

    run(scenario())


async def asgi_post(app: FastAPI, headers: dict[str, str], body: dict[str, Any],
                    disconnect: asyncio.Event) -> list[dict[str, Any]]:
    """POST straight through ASGI; the client disconnects when ``disconnect`` is set."""
    raw = json.dumps(body).encode()
    scope = {
        "type": "http", "method": "POST", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
        "server": ("test", 80), "client": ("127.0.0.1", 1234),
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    sent_body = [False]
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not sent_body[0]:
            sent_body[0] = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(dict(message))

    await app(scope, receive, send)
    return messages


def _wait_for(predicate: Callable[[], bool]) -> Any:
    async def waiting() -> None:
        while not predicate():
            await asyncio.sleep(0.001)

    return asyncio.wait_for(waiting(), timeout=10)


def test_disconnects_while_running_or_waiting_leak_nothing() -> None:
    app = make_app(parallel=1, max_queue=4, max_concurrent_per_key=2, rate_limit_tpm=10_000)
    gate = gate_of(app)

    async def scenario() -> None:
        gone_running, gone_waiting = asyncio.Event(), asyncio.Event()
        running = asyncio.create_task(asgi_post(app, bearer("alice"), {"hold": True}, gone_running))
        await asyncio.wait_for(app.state.stream_open.wait(), timeout=10)
        waiting = asyncio.create_task(asgi_post(app, bearer("alice"), {}, gone_waiting))
        await _wait_for(lambda: gate.queue.waiting == 1)
        assert gate.limiter.usage("alice").concurrent == 2
        waiting.cancel()  # the server drops a request whose client vanished while it queued
        await asyncio.gather(waiting, return_exceptions=True)
        assert (gate.queue.running, gate.queue.waiting) == (1, 0)
        gone_running.set()  # the streaming client hangs up mid-stream
        messages = await asyncio.wait_for(running, timeout=10)
        assert messages[0]["status"] == 200
        assert (gate.queue.running, gate.queue.waiting) == (0, 0)
        assert gate.limiter.usage("alice").concurrent == 0
        async with client(app) as c:
            scrape = (await c.get("/metrics", headers=bearer("bob"))).text
        assert "qwenkit:num_requests_running 0.0" in scrape and "qwenkit:num_requests_waiting 0.0" in scrape
        assert 'qwenkit:requests_total{status="aborted"} 1.0' in scrape

    run(scenario())


def test_a_full_queue_answers_503_with_retry_after() -> None:
    app = make_app(parallel=1, max_queue=0)

    async def scenario() -> None:
        hang_up = asyncio.Event()
        holder = asyncio.create_task(asgi_post(app, bearer("alice"), {"hold": True}, hang_up))
        await asyncio.wait_for(app.state.stream_open.wait(), timeout=10)
        async with client(app) as c:
            refused = await c.post("/v1/chat/completions", headers=bearer("bob"), json={})
            assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "overloaded"
            hang_up.set()
            await asyncio.wait_for(holder, timeout=10)
            assert (await c.post("/v1/chat/completions", headers=bearer("bob"), json={})).status_code == 200

    run(scenario())


@pytest.mark.parametrize("accept", [None, "application/openmetrics-text; version=1.0.0"])
def test_metrics_endpoint_content_types(accept: str | None) -> None:
    async def scenario() -> httpx.Response:
        headers = bearer("alice") | ({"accept": accept} if accept else {})
        async with client(make_app()) as c:
            return await c.get("/metrics", headers=headers)

    response = run(scenario())
    assert response.status_code == 200
    expected = "application/openmetrics-text" if accept else "text/plain"
    assert response.headers["content-type"].startswith(expected)
    assert "qwenkit:e2e_request_latency_seconds" in response.text
