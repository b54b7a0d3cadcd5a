"""Overload and per-key limits over real HTTP: every request gets an answer, none is lost or hangs.

At 4x capacity (capacity = running slots + waiting queue) each request ends as either a complete answer
(200 with a full body, or a stream ending in [DONE]) or a refusal (429/503) carrying ``Retry-After``.
A per-key limit of R requests a minute admits exactly R of a quick burst and refuses the rest with 429.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from _backends import LLAMACPP, SERVED, TRANSFORMERS, load_served
from _server_harness import LiveServer, live_server

from qwenkit.engine.llm import LLM

PARALLEL = 2
MAX_QUEUE = 2
CAPACITY = PARALLEL + MAX_QUEUE
REQUEST_SECONDS = 180.0
CHAT = "/v1/chat/completions"
RPM = 5
BURST = 12
KEYS = {"alice": "sk-alice-overload-test", "bob": "sk-bob-overload-test"}


@pytest.fixture(scope="module", params=SERVED)
def tiny_llm(request: pytest.FixtureRequest) -> Iterator[LLM]:
    llm = load_served(request, request.param, tiny="tiny_qwen2_dir", parallel=PARALLEL)
    yield llm
    llm.close()


def _body(i: int, max_tokens: int) -> dict[str, object]:
    return {
        "messages": [{"role": "user", "content": f"request number {i}"}],
        "max_tokens": max_tokens,
        "temperature": 1.0,
        "seed": i,
        "stream": i % 2 == 0,
        "ignore_eos": True,  # each answer holds its slot for all its tokens
    }


def _is_complete(response: httpx.Response, streamed: bool) -> bool:
    """A 200 whose body is whole: a stream ending in [DONE] after a finish_reason, or a full JSON body."""
    if streamed:
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        if len(events) < 2 or events[-1] != "[DONE]":
            return False
        return json.loads(events[-2])["choices"][0].get("finish_reason") in ("length", "stop")
    data = response.json()
    finished = data["choices"][0]["finish_reason"] in ("length", "stop")
    return finished and data["usage"]["completion_tokens"] > 0


def _outcome(response: httpx.Response, streamed: bool) -> str:
    if response.status_code == 200:
        return "complete" if _is_complete(response, streamed) else "truncated"
    if response.status_code in (429, 503):
        retry = response.headers.get("retry-after", "")
        ok = retry.isdigit() and int(retry) >= 1 and "error" in response.json()
        return f"refused {response.status_code}" if ok else f"bad refusal {response.status_code}"
    return f"unexpected {response.status_code}"


async def _fire(
    url: str, bodies: list[dict[str, object]], headers: dict[str, str] | None = None
) -> list[str]:
    """Send all bodies at once, each on its own connection; a request that hangs fails the test."""
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_SECONDS, limits=limits) as http:

        async def one(body: dict[str, object]) -> str:
            response = await asyncio.wait_for(http.post(CHAT, json=body, headers=headers), REQUEST_SECONDS)
            return _outcome(response, bool(body["stream"]))

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def _gauge(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} is not in /metrics"
    return float(match.group(1))


def _running_waiting(srv: LiveServer) -> tuple[float, float]:
    """The /metrics gauges, once both reach 0 (or after a while: whatever they say then)."""
    deadline = time.monotonic() + 30
    while True:
        text = httpx.get(f"{srv.base_url}/metrics", timeout=30).text
        values = (_gauge(text, "qwenkit:num_requests_running"), _gauge(text, "qwenkit:num_requests_waiting"))
        if values == (0.0, 0.0) or time.monotonic() > deadline:
            return values
        time.sleep(0.1)


# Tokens an answer takes in the overload test: seconds of work for both backends (the tiny model makes
# a token in a few ms, the real one in some 40), so the slots and the queue are still full when the
# last of the burst arrives, however slowly a loaded client sends it.
OVERLOAD_TOKENS = {TRANSFORMERS: 400, LLAMACPP: 48}


@pytest.mark.slow
def test_four_times_capacity_gets_answers_or_retry_after(
    tiny_llm: LLM, request: pytest.FixtureRequest
) -> None:
    max_tokens = OVERLOAD_TOKENS[request.node.callspec.params["tiny_llm"]]
    with live_server(tiny_llm, parallel=PARALLEL, max_queue=MAX_QUEUE, queue_timeout=60) as srv:
        bodies = [_body(i, max_tokens=max_tokens) for i in range(4 * CAPACITY)]
        outcomes = Counter(asyncio.run(_fire(srv.base_url, bodies)))
        assert sum(outcomes.values()) == 4 * CAPACITY  # none lost
        assert set(outcomes) <= {"complete", "refused 429", "refused 503"}, outcomes
        assert outcomes["complete"] >= PARALLEL, outcomes  # the slots did serve
        assert outcomes["refused 503"] >= 1, outcomes  # and the overflow was refused, not dropped
        assert _running_waiting(srv) == (0.0, 0.0)
        again = asyncio.run(_fire(srv.base_url, [_body(99, max_tokens=4)]))
        assert again == ["complete"]


@pytest.mark.slow
def test_per_key_requests_per_minute_admits_exactly_r(tiny_llm: LLM) -> None:
    keys = [f"{name}:{secret}" for name, secret in KEYS.items()]
    with live_server(tiny_llm, api_keys=keys, rate_limit_rpm=RPM, max_queue=64, queue_timeout=0) as srv:
        alice = {"Authorization": f"Bearer {KEYS['alice']}"}
        bodies = [_body(i, max_tokens=4) for i in range(BURST)]
        outcomes = Counter(asyncio.run(_fire(srv.base_url, bodies, alice)))
        assert outcomes == Counter({"complete": RPM, "refused 429": BURST - RPM}), outcomes
        # the window is a minute: still refused right away, with a wait of at most a minute
        late = httpx.post(f"{srv.base_url}{CHAT}", json=_body(0, 4), headers=alice, timeout=60)
        assert late.status_code == 429 and 1 <= int(late.headers["retry-after"]) <= 60
        assert late.json()["error"]["type"] == "rate_limit_error"
        # the limit is per key: another key is not charged for alice's burst
        bob = {"Authorization": f"Bearer {KEYS['bob']}"}
        assert asyncio.run(_fire(srv.base_url, [_body(1, 4)], bob)) == ["complete"]
        metrics = httpx.get(f"{srv.base_url}/metrics", headers=bob, timeout=30).text
        assert f'qwenkit:rate_limited_total{{key="alice"}} {float(BURST - RPM + 1)}' in metrics
        assert all(secret not in metrics for secret in KEYS.values())
