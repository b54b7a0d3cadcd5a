"""200 clients that hang up at random points leave a `qwenkit serve` process exactly as they found it:
no request still running or waiting, a new request answered normally, and no memory kept.

Each client opens a streaming chat completion and either reads a random number of chunks and closes
the connection, or gives up after a random delay (while queued, before headers, or mid-stream).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Iterator

import httpx
import psutil
import pytest
from _backends import SERVED, served_model
from _serve_process import ServeProcess, serve_process

CLIENTS = 200
CONCURRENCY = 20
WARMUP_CLIENTS = 20
MAX_GROWTH_BYTES = 50 * 1024 * 1024
CHAT = "/v1/chat/completions"


def _body(rng: random.Random) -> dict[str, object]:
    vocabulary = ["hello", "qwen", "stream", "token", "cat"]
    words = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 12)))
    return {
        "messages": [{"role": "user", "content": words}],
        "max_tokens": 64,
        "temperature": 1.0,
        "stream": True,
    }


async def _hang_up_after_chunks(http: httpx.AsyncClient, body: dict[str, object], chunks: int) -> str:
    async with http.stream("POST", CHAT, json=body) as response:
        if response.status_code != 200:
            return f"status {response.status_code}"
        seen = 0
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                seen += 1
                if line == "data: [DONE]":
                    return "completed"
                if seen >= chunks:
                    return "closed mid-stream"
    return "ended without [DONE]"


async def _client(http: httpx.AsyncClient, rng: random.Random) -> str:
    body = _body(rng)
    if rng.random() < 0.25:  # give up after a random delay, wherever the request is by then
        try:
            await asyncio.wait_for(_hang_up_after_chunks(http, body, 10**6), rng.uniform(0.0, 0.6))
        except asyncio.TimeoutError:
            return "timed out"
        return "completed"
    # chunk 1 is the role chunk sent before any token: 1 means hanging up right after the headers
    return await _hang_up_after_chunks(http, body, rng.randint(1, 5))


async def _run_clients(url: str, count: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    seeds = [rng.random() for _ in range(count)]
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(s: float) -> str:
        # a client (and connection) of its own: hanging up really closes the socket
        async with limit, httpx.AsyncClient(base_url=url, timeout=120) as http:
            return await _client(http, random.Random(s))

    return Counter(await asyncio.gather(*(one(s) for s in seeds)))


def _rss(server: ServeProcess) -> int:
    return int(psutil.Process(server.proc.pid).memory_info().rss)


def _assert_answers_normally(server: ServeProcess) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    reply = httpx.post(f"{server.url}{CHAT}", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    choice = reply.json()["choices"][0]
    assert choice["finish_reason"] in ("length", "stop") and reply.json()["usage"]["completion_tokens"] >= 1
    streamed = httpx.post(f"{server.url}{CHAT}", json={**body, "stream": True}, timeout=120)
    events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["choices"][0]["finish_reason"] in ("length", "stop")


@pytest.fixture(scope="module", params=SERVED)
def server(request: pytest.FixtureRequest) -> Iterator[ServeProcess]:
    # No queue timeout and a queue deeper than the concurrency: every refusal would be a bug here.
    # Four slots: hang-ups land in prefill, decode and the queue alike, and the 220 clients take less time.
    env = {"QWENKIT_MAX_QUEUE": "64", "QWENKIT_QUEUE_TIMEOUT": "0"}
    model = served_model(request, request.param)
    with serve_process(model, "--parallel", "4", env=env, backend=request.param) as srv:
        yield srv


@pytest.mark.slow
def test_random_disconnects_leave_no_running_waiting_or_memory(server: ServeProcess) -> None:
    warmup = asyncio.run(_run_clients(server.url, WARMUP_CLIENTS, seed=1))
    assert server.wait_idle() == (0.0, 0.0), warmup
    _assert_answers_normally(server)
    before = _rss(server)

    outcomes = asyncio.run(_run_clients(server.url, CLIENTS, seed=2))

    assert sum(outcomes.values()) == CLIENTS
    assert not [o for o in outcomes if o.startswith("status") or o.startswith("ended")], outcomes
    assert outcomes["closed mid-stream"] >= CLIENTS // 2 and outcomes["timed out"] > 0, outcomes
    assert server.wait_idle() == (0.0, 0.0), outcomes
    _assert_answers_normally(server)
    growth = _rss(server) - before
    assert growth < MAX_GROWTH_BYTES, f"resident memory grew by {growth / 2**20:.1f} MiB"
    assert server.proc.poll() is None, server.stderr_text()
